package dnsmatch

import (
	"strings"
	"testing"
)

// The cases follow Cilium's documentation of FQDNSelector and its
// matchpattern tests: what each pattern must and must not select.
func TestSelectorMatchesAsCiliumDefines(t *testing.T) {
	tests := []struct {
		name   string
		sel    Selector
		accept []string
		reject []string
	}{
		{"a matchName is one exact name in any case, dot or not",
			Selector{MatchName: "API.Example.com"},
			[]string{"api.example.com", "api.example.com.", "API.EXAMPLE.COM."},
			[]string{"example.com.", "www.api.example.com.", "api.example.co.", ""}},
		{"a matchName with its trailing dot is the same name",
			Selector{MatchName: "cilium.io."},
			[]string{"cilium.io", "Cilium.IO."},
			[]string{"www.cilium.io."}},
		{"a plain pattern is one exact name",
			Selector{MatchPattern: "cilium.io"},
			[]string{"cilium.io.", "CILIUM.io"},
			[]string{"anysub.cilium.io.", "anysub.ci.io.", "ciliumXio."}},
		{"*.cilium.io selects one label below cilium.io",
			Selector{MatchPattern: "*.cilium.io"},
			[]string{"www.cilium.io.", "blog.cilium.io", "_tcp.cilium.io."},
			[]string{"cilium.io.", "a.b.cilium.io.", "anysub.ciliumandmore.io.", "google.com."}},
		{"*cilium.io selects cilium.io and one label ending in cilium",
			Selector{MatchPattern: "*cilium.io"},
			[]string{"cilium.io.", "subcilium.io.", "sub-cilium.io."},
			[]string{"www.cilium.io.", "blog.cilium.io."}},
		{"sub*.cilium.io selects labels starting with sub",
			Selector{MatchPattern: "sub*.cilium.io"},
			[]string{"sub.cilium.io.", "subdomain.cilium.io."},
			[]string{"www.cilium.io.", "cilium.io.", "a.sub.cilium.io.", "google.com."}},
		{"**.cilium.io selects subdomains at any depth but not cilium.io",
			Selector{MatchPattern: "**.cilium.io"},
			[]string{"app.cilium.io.", "test.app.cilium.io.", "a.b.c.cilium.io."},
			[]string{"cilium.io.", "anysub.ci.io.", "xcilium.io."}},
		{"***.cilium.io is **.cilium.io",
			Selector{MatchPattern: "***.cilium.io."},
			[]string{"test.cilium.io.", "test.app.new.cilium.io."},
			[]string{"cilium.io."}},
		{"** inside a pattern is one star: one label",
			Selector{MatchPattern: "test.**.cilium.io"},
			[]string{"test.x.cilium.io.", "test..cilium.io."},
			[]string{"test.a.b.cilium.io.", "test.cilium.io."}},
		{"**.*.cilium.io needs at least two labels below cilium.io",
			Selector{MatchPattern: "**.*.cilium.io"},
			[]string{"_foobar._tcp.cilium.io.", "_foo._bar._tcp.cilium.io."},
			[]string{"cilium.io.", "foo.cilium.io."}},
		{"**.ci*.io mixes both wildcards",
			Selector{MatchPattern: "**.ci*.io"},
			[]string{"foo.bar.cilium.io.", "anysub.ci.io.", "_foo._bar.ciliumandmore.io."},
			[]string{"cilium.io.", "test.calium.io."}},
		{"*.ci*.io stars in two labels",
			Selector{MatchPattern: "*.ci*.io"},
			[]string{"anysub.cilium.io.", "anysub.ci.io.", "anysub.ciliumandmore.io."},
			[]string{"cilium.io.", "a.b.cilium.io."}},
		{"a lone * selects every name of valid labels and the root",
			Selector{MatchPattern: "*"},
			[]string{".", "io.", "cilium.io", "service.namespace.svc.cluster.local.", "_foobar._tcp.cilium.io."},
			[]string{".io.", ".cilium.io.", "we\\032ird.io."}},
		{"**. alone is a lone *",
			Selector{MatchPattern: "**."},
			[]string{"cilium.io.", "a.b.c."},
			[]string{".cilium.io."}},
		{"a star matches no dot and no character outside [-a-z0-9_]",
			Selector{MatchPattern: "a*.io"},
			[]string{"a.io.", "a-b_c9.io."},
			[]string{"a.b.io.", "a!.io."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Compile(tt.sel)
			if err != nil {
				t.Fatalf("Compile(%v): %v", tt.sel, err)
			}
			for _, n := range tt.accept {
				if !m.Match(n) {
					t.Errorf("%v rejects %q, want accepted", tt.sel, n)
				}
			}
			for _, n := range tt.reject {
				if m.Match(n) {
					t.Errorf("%v accepts %q, want rejected", tt.sel, n)
				}
			}
		})
	}
}

func TestSelectorRefusesWhatCiliumRefuses(t *testing.T) {
	tests := []struct {
		name string
		sel  Selector
		want string
	}{
		{"neither field", Selector{}, "one of matchName and matchPattern"},
		{"both fields", Selector{MatchName: "a.io", MatchPattern: "*.io"}, "only one of"},
		{"a star in matchName", Selector{MatchName: "*.io"}, "matchName"},
		{"a space inside matchName", Selector{MatchName: "a b.io"}, "only a-z"},
		{"a regexp in matchPattern", Selector{MatchPattern: "a.+io"}, "matchPattern"},
		{"a slash in matchPattern", Selector{MatchPattern: "a/b"}, "matchPattern"},
		{"a name over 255 characters", Selector{MatchName: strings.Repeat("a", 256)}, "longer than 255"},
		{"a pattern over 255 characters", Selector{MatchPattern: strings.Repeat("*", 256)}, "longer than 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.sel)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile(%#v) = %v, want an error containing %q", tt.sel, err, tt.want)
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"":               ".",
		".":              ".",
		"Example.COM":    "example.com.",
		"example.com.":   "example.com.",
		`a\.`:            `a\..`,
		`a\\.`:           `a\\.`,
		"already.lower.": "already.lower.",
	} {
		if got := Canonical(in); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCanonicalOfALowerCaseFQDNDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = Canonical("api.example.com.") }); n != 0 {
		t.Fatalf("Canonical allocates %v times", n)
	}
}
