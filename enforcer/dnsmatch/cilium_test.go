package dnsmatch

import (
	"strings"
	"testing"

	"github.com/cilium/cilium/pkg/fqdn/matchpattern"
)

// Cilium's own matchPattern implementation (pkg/fqdn/matchpattern of the
// cilium module go.mod requires, which its FQDNSelector.ToRegex uses for
// matchName too) and Periscope's select the same names: stars alone, a star
// within a label, "**." prefixes, names in any case, with or without the
// final dot.
func TestPatternsSelectWhatCiliumsSelect(t *testing.T) {
	patterns := []string{
		"*", "**", "*.", "**.", "***.", "cilium.io", "cilium.io.", "*.cilium.io", "**.cilium.io", "***.cilium.io",
		"*cilium.io", "sub*.cilium.io", "part*ial.com", "special*service.api.cilium.io", "*.*.svc.cluster.local.",
		"a.**.b.com", "**.*.cilium.io", "*-*.example.com", "x_y.*.com", "CILIUM.IO", "*.Sub.Cilium.IO",
	}
	names := []string{
		"cilium.io", "cilium.io.", "CILIUM.IO", "sub.cilium.io", "app.sub.cilium.io", "a.b.c.cilium.io", "subcilium.io",
		"sub-cilium.io", "subdomain.cilium.io", "www.cilium.io", "partial.com", "part-extra-ial.com", "partXial.org",
		"special-region1-service.api.cilium.io", "region1-service.api.cilium.io", "web.ns.svc.cluster.local.",
		"a.x.b.com", "a.x.y.b.com", "a-b.example.com", "x_y.z.com", "x.sub.cilium.io", "y.x.sub.cilium.io",
		".", "com", "io.", "cilium.io.evil.com", "evilcilium.io",
	}
	var selectors []Selector
	for _, p := range patterns {
		selectors = append(selectors, Selector{MatchPattern: p})
	}
	for _, n := range []string{"cilium.io", "Cilium.IO.", "sub.cilium.io", "x_y.z.com"} {
		selectors = append(selectors, Selector{MatchName: n})
	}
	for _, sel := range selectors {
		p := sel.MatchPattern
		if sel.MatchName != "" {
			p = strings.TrimSuffix(sel.MatchName, ".") + "." // Cilium's dns.FQDN
		}
		m, err := Compile(sel)
		if err != nil {
			t.Errorf("%q: %v", p, err)
			continue
		}
		re, err := matchpattern.ValidateWithoutCache(matchpattern.Sanitize(p))
		if err != nil {
			t.Fatalf("Cilium refuses %q: %v", p, err)
		}
		for _, n := range names {
			fqdn := strings.ToLower(n)
			if !strings.HasSuffix(fqdn, ".") {
				fqdn += "."
			}
			if got, want := m.Match(n), re.MatchString(fqdn); got != want {
				t.Errorf("%s and %q: Periscope %v, Cilium %v", sel, n, got, want)
			}
		}
	}
}

// FuzzPatternsSelectWhatCiliumsSelect: for any pattern both accept and any
// name, Periscope's matcher and Cilium's regular expression agree.
func FuzzPatternsSelectWhatCiliumsSelect(f *testing.F) {
	for _, seed := range [][2]string{
		{"*.cilium.io", "sub.cilium.io"}, {"**.cilium.io", "a.b.cilium.io"}, {"part*ial.com", "part-x-ial.com"},
		{"*", "."}, {"*-*.example.com", "a-b.example.com"}, {"a*b*c.com", "aXbYbc.com"}, {"*..com", "a..com"},
		{"**..", "a.."}, {"a.**.b.com", "a.x.y.b.com"}, {"*.*.io", "x.io"}, {"x*", "x\\.y."}, {"**.*", "a.b."},
		{"***.x", "a.x"}, {"a*", "a*b."}, {"*b", "bbb"}, {"*.cilium.io", "SUB.Cilium.IO."},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		m, err := Compile(Selector{MatchPattern: pattern})
		if err != nil {
			return
		}
		re, err := matchpattern.ValidateWithoutCache(matchpattern.Sanitize(strings.ToLower(strings.TrimSpace(pattern))))
		if err != nil {
			return
		}
		fqdn := Canonical(name)
		if got, want := m.Match(name), re.MatchString(fqdn); got != want {
			t.Fatalf("pattern %q, name %q: Periscope %v, Cilium %v (%s)", pattern, fqdn, got, want, re)
		}
	})
}

// BenchmarkPatternMatch: a matchPattern's Match against Cilium's regular
// expression for it, on the same names (a match and a miss each).
func BenchmarkPatternMatch(b *testing.B) {
	const pattern = "*.example.com"
	names := []string{"www.example.com.", "www.example.org."}
	m, err := Compile(Selector{MatchPattern: pattern})
	if err != nil {
		b.Fatal(err)
	}
	re, err := matchpattern.ValidateWithoutCache(matchpattern.Sanitize(pattern))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("periscope", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if m.matchCanonical(names[i&1]) != (i&1 == 0) {
				b.Fatal("wrong answer")
			}
		}
	})
	b.Run("cilium-regexp", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if re.MatchString(names[i&1]) != (i&1 == 0) {
				b.Fatal("wrong answer")
			}
		}
	})
}
