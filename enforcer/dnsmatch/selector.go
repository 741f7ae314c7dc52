package dnsmatch

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// MaxNameLength bounds matchName and matchPattern, as Cilium does.
const MaxNameLength = 255

// Selector is one entry of a rules.dns or toFQDNs list: exactly one of
// MatchName and MatchPattern is set.
type Selector struct {
	MatchName    string
	MatchPattern string
}

// String shows the selector as it is written in a policy.
func (s Selector) String() string {
	if s.MatchName != "" {
		return "matchName: " + s.MatchName
	}
	return "matchPattern: " + s.MatchPattern
}

// labelChars is one character a pattern's star may stand for.
const labelChars = `[-a-z0-9_]`

var (
	nameChars    = regexp.MustCompile(`^[-a-zA-Z0-9_.]+$`)
	patternChars = regexp.MustCompile(`^[-a-zA-Z0-9_.*]+$`)
	onlyStars    = regexp.MustCompile(`^\*+\.?$`)
	leadingStars = regexp.MustCompile(`^\*{2,}\.`)
	starRun      = regexp.MustCompile(`\*+`)
	// anyName is what a lone "*" selects in toFQDNs: names of valid labels,
	// and the root.
	anyName = regexp.MustCompile(`^(?:` + labelChars + `+\.)+$|^\.$`)
)

// Matcher is a compiled Selector. It is immutable and safe for concurrent
// use.
type Matcher struct {
	sel      Selector
	exact    string         // the lower-case FQDN of a matchName
	re       *regexp.Regexp // a matchPattern's anchored expression
	matchAll bool           // the pattern is stars alone
}

// Compile validates s and compiles it.
func Compile(s Selector) (*Matcher, error) {
	switch {
	case s.MatchName != "" && s.MatchPattern != "":
		return nil, fmt.Errorf("dns selector %q / %q: only one of matchName and matchPattern may be set", s.MatchName, s.MatchPattern)
	case s.MatchName != "":
		return compileName(s)
	case s.MatchPattern != "":
		return compilePattern(s)
	}
	return nil, errors.New("dns selector: one of matchName and matchPattern must be set")
}

func compileName(s Selector) (*Matcher, error) {
	n := strings.TrimSpace(s.MatchName)
	if len(n) > MaxNameLength {
		return nil, fmt.Errorf("matchName %q: longer than %d characters", s.MatchName, MaxNameLength)
	}
	if !nameChars.MatchString(n) {
		return nil, fmt.Errorf("matchName %q: only a-z, A-Z, 0-9, '.', '-' and '_' are allowed", s.MatchName)
	}
	return &Matcher{sel: s, exact: Canonical(n)}, nil
}

func compilePattern(s Selector) (*Matcher, error) {
	p := strings.ToLower(strings.TrimSpace(s.MatchPattern))
	if len(p) > MaxNameLength {
		return nil, fmt.Errorf("matchPattern %q: longer than %d characters", s.MatchPattern, MaxNameLength)
	}
	if !patternChars.MatchString(p) {
		return nil, fmt.Errorf("matchPattern %q: only a-z, A-Z, 0-9, '.', '-', '_' and '*' are allowed", s.MatchPattern)
	}
	if onlyStars.MatchString(p) {
		return &Matcher{sel: s, re: anyName, matchAll: true}, nil
	}
	p = Canonical(p)
	var expr strings.Builder
	expr.WriteString("^")
	if loc := leadingStars.FindStringIndex(p); loc != nil {
		expr.WriteString(`(?:` + labelChars + `+\.)+`)
		p = p[loc[1]:]
	}
	rest := strings.ReplaceAll(p, ".", `\.`)
	expr.WriteString(starRun.ReplaceAllLiteralString(rest, labelChars+"*"))
	expr.WriteString("$")
	re, err := regexp.Compile(expr.String())
	if err != nil {
		return nil, fmt.Errorf("matchPattern %q: %w", s.MatchPattern, err)
	}
	return &Matcher{sel: s, re: re}, nil
}

// Selector returns the selector m was compiled from.
func (m *Matcher) Selector() Selector { return m.sel }

// MatchAll reports whether m is a pattern of stars alone.
func (m *Matcher) MatchAll() bool { return m.matchAll }

// Match reports whether name (in any case, with or without the trailing
// dot) is selected, with toFQDNs semantics: a lone "*" selects names of
// valid labels only.
func (m *Matcher) Match(name string) bool {
	return m.matchCanonical(Canonical(name))
}

// matchCanonical is Match for a name already in Canonical form.
func (m *Matcher) matchCanonical(name string) bool {
	if m.re == nil {
		return name == m.exact
	}
	return m.re.MatchString(name)
}

// Canonical returns name in the form selectors compare: lower case and
// fully qualified (ending in a dot, unless that dot is escaped).
func Canonical(name string) string {
	if !isFQDN(name) {
		name += "."
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}

// isFQDN reports whether name ends in a dot that is not escaped by a
// backslash (as in "a\.").
func isFQDN(name string) bool {
	if name == "" || name[len(name)-1] != '.' {
		return false
	}
	slashes := 0
	for i := len(name) - 2; i >= 0 && name[i] == '\\'; i-- {
		slashes++
	}
	return slashes%2 == 0
}
