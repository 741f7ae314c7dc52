package ui

import (
	"regexp"
	"slices"
	"testing"

	"github.com/periscope-dev/periscope/filter"
)

// The app checks a chip's kind before sending it: it must know every
// filter kind, and no other.
func TestAppKnowsEveryFilterKind(t *testing.T) {
	js, err := webFS.ReadFile("web/chips.js")
	if err != nil {
		t.Fatal(err)
	}
	list := regexp.MustCompile(`(?s)export const KINDS = \[(.*?)\];`).FindSubmatch(js)
	if list == nil {
		t.Fatal("web/chips.js has no `export const KINDS = [...];`")
	}
	var app []string
	for _, m := range regexp.MustCompile(`'([a-z0-9-]+)'`).FindAllSubmatch(list[1], -1) {
		app = append(app, string(m[1]))
	}
	var names []string
	for _, k := range filter.Kinds() {
		names = append(names, k.Name)
		if !slices.Contains(app, k.Name) {
			t.Errorf("web/chips.js KINDS lacks filter kind %q", k.Name)
		}
	}
	for _, a := range app {
		if !slices.Contains(names, a) {
			t.Errorf("web/chips.js KINDS has %q, which is no filter kind", a)
		}
	}
}
