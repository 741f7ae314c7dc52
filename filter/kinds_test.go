package filter

import (
	"strings"
	"testing"
)

// The table of kinds is what other packages derive their translations from:
// its entries must be complete and consistent.
func TestEveryKindIsDescribed(t *testing.T) {
	seen := map[string]string{}
	for _, k := range Kinds() {
		for _, name := range append([]string{k.Name}, k.Aliases...) {
			if other, dup := seen[name]; dup {
				t.Errorf("%q names both %s and %s", name, other, k.Name)
			}
			seen[name] = k.Name
			if lookupKind(name) == nil || lookupKind(name).Name != k.Name {
				t.Errorf("%q does not look up kind %s", name, k.Name)
			}
		}
		if k.Help == "" {
			t.Errorf("kind %s has no help", k.Name)
		}
		groups := strings.Count(k.Help, "{")
		switch {
		case k.Sided && (groups != 1 || strings.Count(k.Help, "|") != 2 || !strings.Contains(k.Help, "}")):
			t.Errorf("sided kind %s: help %q needs one {either|from|to} group", k.Name, k.Help)
		case !k.Sided && groups != 0:
			t.Errorf("kind %s has no sides: help %q must not have a {…} group", k.Name, k.Help)
		}
		switch {
		case len(k.Hubble) == 0:
		case k.Sided && len(k.Hubble) != 2:
			t.Errorf("sided kind %s: Hubble %q must name a source and a destination field", k.Name, k.Hubble)
		case !k.Sided && len(k.Hubble) != 1:
			t.Errorf("kind %s: Hubble %q must name one field", k.Name, k.Hubble)
		}
		if k.Short != "" && k.Flag == "" {
			t.Errorf("kind %s has a shorthand but no flag", k.Name)
		}
	}
}

func TestKindsReturnsACopy(t *testing.T) {
	ks := Kinds()
	ks[0].Name = "changed"
	ks[0].Hubble[0] = "changed"
	if Kinds()[0].Name == "changed" || Kinds()[0].Hubble[0] == "changed" {
		t.Error("changing Kinds' result changed the table")
	}
}
