package policy

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// l7Rules parses a toPorts item's `rules` for its ports (what names the
// peer rule: ingress, egressDeny...). Only rules.http is enforced; the
// other L7 kinds are refused. A `rules` without HTTP rules (`{}`, `{http:
// []}`) is no L7 rule, as in Cilium.
func (p *parser) l7Rules(n *yaml.Node, what string, ports []PortRange) (*PortL7, bool) {
	o, ok := p.fields(n, "rules", []string{"http"}, []string{"kafka", "dns", "l7proto", "l7"})
	items, lok := p.list(o.vals["http"], "rules.http")
	if !ok || !lok || len(items) == 0 {
		return nil, ok && lok
	}
	at := o.keys["http"]
	if strings.HasSuffix(what, "Deny") {
		p.errorf(at, "%s rule: L7 rules cannot deny (as in Cilium): allow what may pass in %s", what, strings.TrimSuffix(what, "Deny"))
		return nil, false
	}
	for _, r := range ports {
		switch {
		case r.Proto != 6:
			p.errorf(at, "rules.http: every port needs protocol TCP (as in Cilium: L7 rules apply to TCP only)")
			return nil, false
		case r.Lo == 0 && r.Hi == 65535:
			p.errorf(at, "rules.http: every port needs a port number (as in Cilium: not port 0)")
			return nil, false
		case r.Lo != r.Hi:
			p.errorf(at, "rules.http: a port range (endPort) with L7 rules is not supported: list the ports")
			return nil, false
		}
	}
	l7 := &PortL7{Ports: ports}
	for _, it := range items {
		r, rok := p.httpRule(it)
		ok = ok && rok
		l7.HTTP = append(l7.HTTP, r)
	}
	return l7, ok
}

// httpRule parses one rules.http item (Cilium's PortRuleHTTP).
func (p *parser) httpRule(n *yaml.Node) (HTTPRule, bool) {
	var r HTTPRule
	o, ok := p.fields(n, "rules.http item", []string{"method", "path", "host", "headers", "headerMatches"}, nil)
	for _, f := range []struct {
		name string
		into *string
	}{{"method", &r.Method}, {"path", &r.Path}, {"host", &r.Host}} {
		v := o.vals[f.name]
		if v == nil || isNull(p.deref(v)) {
			continue
		}
		s, sok := p.str(v, "rules.http "+f.name)
		if !sok {
			ok = false
			continue
		}
		if err := checkRegexp(s); err != nil {
			p.errorf(v, "rules.http %s %q: not a regular expression: %v", f.name, s, err)
			ok = false
			continue
		}
		*f.into = s
	}
	items, lok := p.list(o.vals["headers"], "rules.http headers")
	ok = ok && lok
	for _, it := range items {
		h, hok := p.headerLine(it)
		ok = ok && hok
		r.Headers = append(r.Headers, h)
	}
	items, lok = p.list(o.vals["headerMatches"], "rules.http headerMatches")
	ok = ok && lok
	for _, it := range items {
		h, hok := p.headerMatch(it)
		ok = ok && hok
		r.Headers = append(r.Headers, h)
	}
	return r, ok
}

// headerLine parses a rules.http headers item as Cilium reads it: "Name"
// (present) or "Name value" / "Name: value" (present with exactly value).
func (p *parser) headerLine(n *yaml.Node) (HeaderMatch, bool) {
	s, ok := p.str(n, "rules.http headers item")
	if !ok {
		return HeaderMatch{}, false
	}
	name, value, _ := strings.Cut(s, " ")
	name = strings.TrimRight(name, ":")
	if !p.headerName(n, name) {
		return HeaderMatch{}, false
	}
	if value != strings.TrimSpace(value) {
		p.errorf(n, "rules.http header %q: the value has spaces around it, so no request could match it", s)
		return HeaderMatch{}, false
	}
	return HeaderMatch{Name: strings.ToLower(name), Value: value}, true
}

// headerMatch parses a rules.http headerMatches item. Only the default
// mismatch action (the request does not match) is enforced; LOG, ADD,
// DELETE and REPLACE, and values from secrets, are refused.
func (p *parser) headerMatch(n *yaml.Node) (HeaderMatch, bool) {
	o, ok := p.fields(n, "headerMatches item", []string{"name", "value", "mismatch"}, []string{"secret"})
	if !ok {
		return HeaderMatch{}, false
	}
	var h HeaderMatch
	v := o.vals["name"]
	if v == nil {
		p.errorf(n, "headerMatches item: name is required")
		return h, false
	}
	name, ok := p.str(v, "headerMatches name")
	if !ok || !p.headerName(v, name) {
		return h, false
	}
	h.Name = strings.ToLower(name)
	if v := o.vals["value"]; v != nil && !isNull(p.deref(v)) {
		if h.Value, ok = p.str(v, "headerMatches value"); !ok {
			return h, false
		}
	}
	if v := o.vals["mismatch"]; v != nil && !isNull(p.deref(v)) {
		action, aok := p.str(v, "headerMatches mismatch")
		if !aok {
			return h, false
		}
		if action != "" {
			p.errorf(o.keys["mismatch"], "headerMatches mismatch %q %s: without it a request whose header does not match is denied", action, notSupported)
			return h, false
		}
	}
	return h, true
}

// headerName checks an HTTP header name (RFC 9110 token); pseudo-headers
// are what method, path and host are for.
func (p *parser) headerName(n *yaml.Node, name string) bool {
	if name == "" {
		p.errorf(n, "rules.http: empty header name")
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			p.errorf(n, "rules.http: header name %q: want letters, digits and !#$%%&'*+-.^_`|~ (method, path and host match the pseudo-headers)", name)
			return false
		}
	}
	return true
}
