package dnsmatch

import (
	"slices"
	"strings"
	"testing"
)

// TestIndexSelectsWhatTheMatchersSelect compares Index.Select with trying
// every matcher, over patterns of every shape and names around them.
func TestIndexSelectsWhatTheMatchersSelect(t *testing.T) {
	var ms []*Matcher
	for _, s := range []Selector{
		{MatchName: "api.example.com"}, {MatchName: "Example.com."},
		{MatchPattern: "*.example.com"}, {MatchPattern: "**.example.com"}, {MatchPattern: "*example.com"},
		{MatchPattern: "sub*.example.com"}, {MatchPattern: "test.**.example.com"}, {MatchPattern: "api.example.*"},
		{MatchPattern: "a*b.*.net"}, {MatchPattern: "*"}, {MatchPattern: "**."}, {MatchPattern: "*.svc1.example"},
	} {
		m, err := Compile(s)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	x := NewIndex(ms)
	for _, name := range []string{
		"api.example.com", "API.Example.COM.", "example.com", "www.example.com", "a.b.example.com", "subexample.com",
		"sub.example.com", "subdomain.example.com", "test.x.example.com", "api.example.org", "api.example.",
		"ab.x.net", "axxb.y.net", "ab.x.y.net", "h1.svc1.example", "svc1.example", "x\\.svc1.example.", ".", "com.",
		"other.org", "we\\032ird.example.com",
	} {
		var want []Selector
		for _, m := range ms {
			if m.Match(name) {
				want = append(want, m.Selector())
			}
		}
		var got []Selector
		for _, m := range x.Select(name, nil) {
			got = append(got, m.Selector())
		}
		sortSelectors(want)
		sortSelectors(got)
		if !slices.Equal(got, want) {
			t.Errorf("Select(%q) = %v, want %v", name, got, want)
		}
	}
}

func sortSelectors(s []Selector) {
	slices.SortFunc(s, func(a, b Selector) int {
		return strings.Compare(a.MatchName+"|"+a.MatchPattern, b.MatchName+"|"+b.MatchPattern)
	})
}

func TestIndexSelectDoesNotAllocate(t *testing.T) {
	m, err := Compile(Selector{MatchPattern: "*.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	x := NewIndex([]*Matcher{m})
	var buf [4]*Matcher
	if n := testing.AllocsPerRun(100, func() { x.Select("www.example.com.", buf[:0]) }); n != 0 {
		t.Errorf("Select allocates %v times a call", n)
	}
}
