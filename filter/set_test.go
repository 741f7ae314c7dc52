package filter

import (
	"slices"
	"testing"
)

// matching names the sample flows s matches, sorted.
func matching(s *Set) []string { return matchedBy(s.Match, sampleFlows) }

// set builds a Set from chip lists: each allow and deny entry is one Filter.
func set(allow, deny [][]string) *Set {
	var a, d []*Filter
	for _, chips := range allow {
		a = append(a, MustParse(chips...))
	}
	for _, chips := range deny {
		d = append(d, MustParse(chips...))
	}
	return NewSet(a, d)
}

func TestSetFollowsHubbleWhitelistAndBlacklist(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny [][]string
		want        []string
		chipsOK     bool
	}{
		{"an empty set matches every flow", nil, nil, []string{"icmp", "sock", "tcp", "udp"}, true},
		{"one allowed filter is the filter", [][]string{{"port=53", "port=8080"}}, nil, []string{"tcp", "udp"}, true},
		{"allowed filters OR", [][]string{{"verdict=DROPPED"}, {"protocol=sctp"}}, nil, []string{"sock", "udp"}, false},
		{"an allowed filter matching everything allows everything", [][]string{{"verdict=DROPPED"}, {}}, nil,
			[]string{"icmp", "sock", "tcp", "udp"}, true},
		{"a denied filter excludes", nil, [][]string{{"protocol=tcp", "protocol=udp"}}, []string{"icmp", "sock"}, true},
		{"denied filters exclude what either matches", nil, [][]string{{"protocol=tcp"}, {"to:ip=fd00::53"}},
			[]string{"icmp", "sock"}, true},
		{"a denied filter of two terms excludes what matches both", nil, [][]string{{"namespace=default", "protocol=tcp"}},
			[]string{"icmp", "sock", "udp"}, false},
		{"a denied negated term keeps only what it names", nil, [][]string{{"!protocol=tcp"}}, []string{"tcp"}, false},
		{"allowed minus denied", [][]string{{"namespace=default"}}, [][]string{{"type=l7"}}, []string{"tcp"}, true},
		{"a denial joins an allowed negation of the same kind", [][]string{{"!protocol=tcp"}}, [][]string{{"protocol=udp"}},
			[]string{"icmp", "sock"}, true},
		{"denying an empty filter denies everything", nil, [][]string{{}}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := set(tt.allow, tt.deny)
			got := matching(s)
			if !slices.Equal(got, tt.want) {
				t.Errorf("%v matches %v, want %v", s, got, tt.want)
			}
			chips, ok := s.Chips()
			if ok != tt.chipsOK {
				t.Fatalf("Chips() ok = %v (%q), want %v", ok, chips, tt.chipsOK)
			}
			if !ok {
				return
			}
			// Chips must say exactly what the set says.
			again := MustParseSet(chips...)
			if g := matching(again); !slices.Equal(g, tt.want) {
				t.Errorf("the chips %q match %v, the set %v", chips, g, tt.want)
			}
		})
	}
}

func TestNilAndParsedSets(t *testing.T) {
	var s *Set
	if !s.Match(tcpFlow) || !s.Empty() || s.Allow() != nil || s.Deny() != nil {
		t.Error("a nil Set must match every flow and be empty")
	}
	if chips, ok := s.Chips(); chips != nil || !ok {
		t.Errorf("a nil Set's chips = %q, %v; want none, true", chips, ok)
	}
	if p, err := ParseSet([]string{" "}); p != nil || err != nil {
		t.Errorf("ParseSet of blank chips = %v, %v; want nil", p, err)
	}
	if _, err := ParseSet([]string{"color=red"}); err == nil {
		t.Error("ParseSet accepted an unknown kind")
	}
}

func TestSetMatchDoesNotAllocate(t *testing.T) {
	s := set([][]string{{"from:label=app=frontend", "port=8080"}, {"verdict=DROPPED"}}, [][]string{{"node=x*"}, {"type=sock"}})
	if !s.Match(tcpFlow) {
		t.Fatal("the set should match tcpFlow")
	}
	if allocs := testing.AllocsPerRun(100, func() { s.Match(tcpFlow) }); allocs != 0 {
		t.Errorf("Match allocated %.1f times per call, want 0", allocs)
	}
}
