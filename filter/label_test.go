package filter

import (
	"testing"

	k8slabels "github.com/cilium/cilium/pkg/k8s/slim/k8s/apis/labels"
	ciliumlabels "github.com/cilium/cilium/pkg/labels"
)

func TestSplitLabelFindsSourceKeyAndValue(t *testing.T) {
	tests := []struct{ label, source, key, value string }{
		{"k8s:app=frontend", "k8s", "app", "frontend"},
		{"app=frontend", "", "app", "frontend"},
		{"reserved:world", "reserved", "world", ""},
		{"k8s:io.kubernetes.pod.namespace=default", "k8s", "io.kubernetes.pod.namespace", "default"},
		{"key=a:b", "", "key", "a:b"},
		{"bare", "", "bare", ""},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			s, k, v := splitLabel(tt.label)
			if s != tt.source || k != tt.key || v != tt.value {
				t.Errorf("splitLabel(%q) = %q, %q, %q; want %q, %q, %q", tt.label, s, k, v, tt.source, tt.key, tt.value)
			}
		})
	}
}

// TestSelectorsMatchAsHubblesDo: every selector form selects the label
// sets Hubble's label filter selects. The oracle is what Hubble runs:
// Cilium's Kubernetes selector (pkg/k8s/slim/k8s/apis/labels) over the
// endpoint's labels as Cilium reads them (pkg/labels), with the keys as
// Hubble translates them ("k8s:app" becomes "k8s.app", a key without a
// source "any.key").
func TestSelectorsMatchAsHubblesDo(t *testing.T) {
	selectors := []struct{ periscope, hubble string }{
		{"app", "any.app"},
		{"!app", "!any.app"},
		{"app=web", "any.app=web"},
		{"app==web", "any.app==web"},
		{"app!=web", "any.app!=web"},
		{"app in (web,db)", "any.app in (web,db)"},
		{"app in (web, db)", "any.app in (web, db)"},
		{"app notin (web,db)", "any.app notin (web,db)"},
		{"k8s:app in (web)", "k8s.app in (web)"},
		{"k8s:app notin (web)", "k8s.app notin (web)"},
		{"tier=front,app in (web,db)", "any.tier=front,any.app in (web,db)"},
		{"app,!tier", "any.app,!any.tier"},
		{"replicas>2", "any.replicas>2"},
		{"replicas<2", "any.replicas<2"},
		{"k8s:app=web,version notin (v1)", "k8s.app=web,any.version notin (v1)"},
		{"container:app=web", "container.app=web"},
		{"app=", "any.app="},
	}
	labelSets := [][]string{
		nil,
		{"k8s:app=web"},
		{"k8s:app=db", "k8s:tier=front"},
		{"k8s:app=api", "k8s:tier=front"},
		{"container:app=web"},
		{"k8s:app=web", "k8s:version=v1"},
		{"k8s:app=web", "k8s:version=v2", "k8s:replicas=3"},
		{"k8s:replicas=1"},
		{"k8s:replicas=two"},
		{"k8s:tier=back"},
		{"k8s:app="},
		{"reserved:host"},
	}
	for _, s := range selectors {
		mine, err := parseSelector(s.periscope)
		if err != nil {
			t.Errorf("%q: %v", s.periscope, err)
			continue
		}
		hubble, err := k8slabels.Parse(s.hubble)
		if err != nil {
			t.Fatalf("Hubble's %q: %v", s.hubble, err)
		}
		for _, ls := range labelSets {
			got, want := mine.matches(ls), hubble.Matches(ciliumlabels.ParseK8sLabelArrayFromArray(ls))
			if got != want {
				t.Errorf("%q on %q: Periscope %v, Hubble %v", s.periscope, ls, got, want)
			}
		}
	}
}

// TestSelectorTextIsCanonical: a selector's text reads back to itself, in
// and notin with their values sorted once each.
func TestSelectorTextIsCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"app in ( web , db, web )": "app in (db,web)",
		"k8s:app notin (x)":        "k8s:app notin (x)",
		"any:app==a , ! tier":      "app=a,!tier",
		"replicas > 2":             "replicas>2",
		"app in (a,)":              "app in (,a)",
	} {
		sel, err := parseSelector(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := sel.String(); got != want {
			t.Errorf("%q reads as %q, want %q", in, got, want)
		}
		again, err := parseSelector(sel.String())
		if err != nil || again.String() != want {
			t.Errorf("%q does not read back: %q (%v)", want, again, err)
		}
	}
}

// FuzzParseSelector: any text parses or is refused without a panic, and a
// selector's text reads back to the same selector.
func FuzzParseSelector(f *testing.F) {
	for _, seed := range []string{"app", "!app", "app=web,tier!=db", "k8s:app in (a, b)", "x notin ()", "a>1", "a<-2",
		"a in (b,", "==", ",", "a,,b", "any:app==a", "a in (,)", "!", "a b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		sel, err := parseSelector(raw)
		if err != nil {
			return
		}
		again, err := parseSelector(sel.String())
		if err != nil {
			t.Fatalf("%q reads as %q, which does not parse: %v", raw, sel.String(), err)
		}
		if again.String() != sel.String() {
			t.Fatalf("%q reads as %q, then as %q", raw, sel.String(), again.String())
		}
	})
}
