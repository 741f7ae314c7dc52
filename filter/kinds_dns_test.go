package filter

import (
	"slices"
	"testing"

	"github.com/periscope-dev/periscope/api"
)

// namedFlow: a pod that resolved api.example.com connects to it; the
// server's address is named a.b.cdn.example.net by the other side.
var namedFlow = &api.Flow{
	Type:             api.FlowTypeL3L4,
	SourceNames:      []string{"a.b.cdn.example.net"},
	DestinationNames: []string{"api.example.com", "www.example.com"},
}

func TestDNSKindFollowsHubblesFQDNFilter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chips []string
		want  bool
	}{
		{"a name on either side", []string{"dns=api.example.com"}, true},
		{"the fqdn alias, any case, a trailing dot", []string{"fqdn=API.Example.com."}, true},
		{"to: tests the destination's names", []string{"to:dns=www.example.com"}, true},
		{"from: tests the source's names only", []string{"from:dns=www.example.com"}, false},
		{"from: a source name", []string{"from:dns=a.b.cdn.example.net"}, true},
		{"a name must match whole", []string{"dns=example.com"}, false},
		{"* spans dots, as Hubble's [-.0-9a-z]*", []string{"from:dns=*.example.net"}, true},
		{"* in the middle", []string{"to:dns=api.*.com"}, true},
		{"* alone matches any name", []string{"dns=*"}, true},
		{"a pattern matching no name", []string{"dns=*.example.org"}, false},
		{"negated", []string{"!to:dns=api.example.com"}, false},
		{"values OR", []string{"dns=nope.example", "dns=www.example.com"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MustParse(tc.chips...).Match(namedFlow); got != tc.want {
				t.Fatalf("%q matched %v, want %v", tc.chips, got, tc.want)
			}
		})
	}
	if MustParse("dns=*").Match(tcpFlow) {
		t.Fatal("a flow without names matched dns=*")
	}
}

func TestDNSKindRejectsBadPatternsAndIsCanonical(t *testing.T) {
	for _, bad := range []string{"dns=", "dns=a..", "dns=a b.com", "dns=x/y", "dns=a?.com"} {
		if _, err := Parse([]string{bad}); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	f := MustParse("fqdn= API.Example.COM. ", "to:dns=*.Example.com")
	if got, want := f.Chips(), []string{"dns=api.example.com", "to:dns=*.example.com"}; !slices.Equal(got, want) {
		t.Fatalf("Chips() = %q, want %q", got, want)
	}
}

func TestDNSMatchDoesNotAllocate(t *testing.T) {
	f := MustParse("to:dns=*.example.com", "from:dns=a.b.cdn.example.net")
	if !f.Match(namedFlow) {
		t.Fatal("no match")
	}
	if n := testing.AllocsPerRun(100, func() { f.Match(namedFlow) }); n != 0 {
		t.Fatalf("Match allocated %.1f times", n)
	}
}
