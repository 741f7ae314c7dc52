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

var (
	nameChars    = regexp.MustCompile(`^[-a-zA-Z0-9_.]+$`)
	patternChars = regexp.MustCompile(`^[-a-zA-Z0-9_.*]+$`)
	onlyStars    = regexp.MustCompile(`^\*+\.?$`)
	leadingStars = regexp.MustCompile(`^\*{2,}\.`)
)

// Matcher is a compiled Selector. It is immutable and safe for concurrent
// use.
type Matcher struct {
	sel   Selector
	exact string // the lower-case FQDN of a matchName
	// pattern is a matchPattern's labels, left to right, without the
	// leading "**." (anyLabels) and the root's empty label; nil for a
	// matchName.
	pattern   []string
	anyLabels bool // the pattern began "**.": one label or more before
	matchAll  bool // the pattern is stars alone
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

// compilePattern compiles a matchPattern as Cilium reads it: stars alone
// select every name of valid labels (and the root); a leading "**."
// stands for one label or more; any other run of stars for zero or more
// characters of one label (a-z, 0-9, '-', '_'), never a dot. The name's
// dots are then the pattern's, so a name matches label by label.
func compilePattern(s Selector) (*Matcher, error) {
	p := strings.ToLower(strings.TrimSpace(s.MatchPattern))
	if len(p) > MaxNameLength {
		return nil, fmt.Errorf("matchPattern %q: longer than %d characters", s.MatchPattern, MaxNameLength)
	}
	if !patternChars.MatchString(p) {
		return nil, fmt.Errorf("matchPattern %q: only a-z, A-Z, 0-9, '.', '-', '_' and '*' are allowed", s.MatchPattern)
	}
	if onlyStars.MatchString(p) {
		return &Matcher{sel: s, pattern: []string{}, matchAll: true}, nil
	}
	p = Canonical(p)
	m := &Matcher{sel: s}
	if loc := leadingStars.FindStringIndex(p); loc != nil {
		m.anyLabels = true
		p = p[loc[1]:]
	}
	m.pattern = strings.Split(strings.TrimSuffix(p, "."), ".")
	return m, nil
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

// matchCanonical is Match for a name already in Canonical form. It does
// not allocate.
func (m *Matcher) matchCanonical(name string) bool {
	switch {
	case m.pattern == nil:
		return name == m.exact
	case m.matchAll:
		return name == "." || validLabels(name)
	}
	rest := name // what the pattern's labels have not matched yet
	for i := len(m.pattern) - 1; i >= 0; i-- {
		// rest ends in the dot after its last label.
		if rest == "" {
			return false
		}
		start := strings.LastIndexByte(rest[:len(rest)-1], '.') + 1
		if !matchLabel(m.pattern[i], rest[start:len(rest)-1]) {
			return false
		}
		rest = rest[:start]
	}
	if m.anyLabels {
		return validLabels(rest)
	}
	return rest == ""
}

// validLabels reports whether s is one label or more of label characters,
// each followed by a dot.
func validLabels(s string) bool {
	if s == "" {
		return false
	}
	n := 0 // characters of the current label
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if n == 0 {
				return false
			}
			n = 0
		case isLabelChar(c):
			n++
		default:
			return false
		}
	}
	return n == 0
}

// isLabelChar reports whether a pattern's star may stand for c.
func isLabelChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// matchLabel reports whether label matches pattern, a label whose runs of
// stars stand for zero or more label characters: a glob match that
// retries from the last star only, enough when stars cannot cross dots.
func matchLabel(pattern, label string) bool {
	p, l := 0, 0
	star, mark := -1, 0 // the last star seen in pattern, and where in label it stopped
	for l < len(label) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, l
			p++
		case p < len(pattern) && pattern[p] == label[l]:
			p++
			l++
		case star >= 0 && isLabelChar(label[mark]):
			// The last star takes one more character and the rest
			// is tried again after it.
			mark++
			p, l = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
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
