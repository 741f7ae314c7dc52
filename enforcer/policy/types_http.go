package policy

import (
	"regexp"
	"regexp/syntax"
)

// PortL7 is a toPorts item of a peer rule with L7 rules: on its ports,
// traffic of the peer rule's peers goes through the L7 proxy and only
// requests matching one of HTTP pass; an item without rules (HTTP nil)
// lets every request on its ports pass.
type PortL7 struct {
	// Ports are the item's ports (TCP, one port each when HTTP is set).
	Ports []PortRange
	// HTTP are the item's rules.http; nil: every request.
	HTTP []HTTPRule
}

// Covers reports whether the rules apply to proto and port.
func (l *PortL7) Covers(proto uint8, port uint16) bool {
	for _, r := range l.Ports {
		if r.Proto == proto && r.Lo <= port && port <= r.Hi {
			return true
		}
	}
	return false
}

// HTTPRule is one allowed shape of request (Cilium's PortRuleHTTP). Method,
// Path and Host are regular expressions (RE2 syntax, as Envoy evaluates
// them) matched against the whole method, the whole path (with its query
// string, Envoy's :path after normalisation) and the whole host (the
// :authority, port included when the request names one); an empty one
// matches everything. Every header match must hold too.
type HTTPRule struct {
	Method, Path, Host string
	Headers            []HeaderMatch
}

// HeaderMatch requires a request header: present with exactly Value, or
// only present when Value is empty. A header the request repeats is
// matched against its values joined by ",", as Envoy does.
type HeaderMatch struct {
	Name  string // lower case
	Value string
}

// HTTPRequest is what an HTTP rule looks at.
type HTTPRequest struct {
	Method, Path, Host string
	// Headers by lower-case name, repeated values joined by ",".
	Headers map[string]string
}

// Matches reports whether the request matches the rule.
func (r *HTTPRule) Matches(req HTTPRequest) bool {
	for _, f := range []struct{ re, s string }{{r.Method, req.Method}, {r.Path, req.Path}, {r.Host, req.Host}} {
		if f.re != "" && !wholeMatch(f.re, f.s) {
			return false
		}
	}
	for _, h := range r.Headers {
		v, ok := req.Headers[h.Name]
		if !ok || h.Value != "" && v != h.Value {
			return false
		}
	}
	return true
}

// wholeMatch matches re against all of s (re was checked when parsed).
func wholeMatch(re, s string) bool {
	return regexp.MustCompile(`^(?:` + re + `)$`).MatchString(s)
}

// checkRegexp says why re is refused as a rule's regular expression: it
// must compile alone (so that wrapping it to match whole cannot change its
// meaning) in RE2's syntax.
func checkRegexp(re string) error {
	if _, err := syntax.Parse(re, syntax.Perl); err != nil {
		return err
	}
	_, err := regexp.Compile(`^(?:` + re + `)$`)
	return err
}

// hasL7 reports whether an allow of d has L7 rules.
func (d *DirectionRules) hasL7() bool {
	for i := range d.Allow {
		if len(d.Allow[i].L7) > 0 {
			return true
		}
	}
	return false
}

// L7For returns the L7 rules of pr on proto and port: restricted is
// false when pr lets every request there pass (no toPorts item covering
// the port has rules, or one without rules covers it, as Cilium merges
// an L3/L4-only allow with L7 rules), else rules are the union of the
// covering items' rules.
func (pr *PeerRule) L7For(proto uint8, port uint16) (rules []HTTPRule, restricted bool) {
	for i := range pr.L7 {
		it := &pr.L7[i]
		if !it.Covers(proto, port) {
			continue
		}
		if it.HTTP == nil {
			return nil, false
		}
		rules = append(rules, it.HTTP...)
	}
	return rules, len(rules) > 0
}
