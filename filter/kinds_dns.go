package filter

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// The dns kind (hubble observe's --fqdn, --from-fqdn, --to-fqdn; Hubble's
// source_fqdn and destination_fqdn): a flow's source_names or
// destination_names, the names its endpoints' DNS answers gave its
// addresses, with Hubble's patterns (pkg/hubble/filters/patterns.go):
// lower case, one trailing dot dropped, `*` any run of [-.0-9a-z]
// (dots too), the rest literal, matched against a whole name.

// parseFQDN reads a name pattern as Hubble does.
func parseFQDN(raw string) (value, error) {
	p := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(raw), "."))
	switch {
	case p == "":
		return value{}, errors.New("dns must be a DNS name or a pattern with * (api.example.com, *.example.com)")
	case strings.HasSuffix(p, "."):
		return value{}, fmt.Errorf("dns %q: more than one trailing dot", raw)
	}
	for _, r := range p {
		if !(r == '.' || r == '*' || r == '-' || r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z') {
			return value{}, fmt.Errorf("dns %q: %q is not allowed in a name pattern (a-z, 0-9, '-', '_', '.', '*')", raw, r)
		}
	}
	v := value{text: p, name: p}
	if strings.Contains(p, "*") {
		v.glob, v.re = true, regexp.MustCompile(FQDNPatternRegexp(p))
	}
	return v, nil
}

// FQDNPatternRegexp is the regular expression (RE2, anchored) of a dns
// value as a filter holds it (TermValue.Name: lower case, no trailing dot):
// Hubble's, for SQL and others that match names themselves.
func FQDNPatternRegexp(pattern string) string {
	var expr strings.Builder
	expr.WriteString(`\A(?:`)
	for _, r := range pattern {
		switch r {
		case '.':
			expr.WriteString(`\.`)
		case '*':
			expr.WriteString(`[-.0-9a-z]*`)
		default:
			expr.WriteRune(r)
		}
	}
	expr.WriteString(`)\z`)
	return expr.String()
}

// matchFQDN tests the names of the side (either side's for no side).
func matchFQDN(v *value, fl *api.Flow, s side) bool {
	switch s {
	case sideFrom:
		return anyNameMatches(v, fl.SourceNames)
	case sideTo:
		return anyNameMatches(v, fl.DestinationNames)
	}
	return anyNameMatches(v, fl.SourceNames) || anyNameMatches(v, fl.DestinationNames)
}

func anyNameMatches(v *value, names []string) bool {
	for _, n := range names {
		if v.glob && v.re.MatchString(n) || !v.glob && n == v.name {
			return true
		}
	}
	return false
}
