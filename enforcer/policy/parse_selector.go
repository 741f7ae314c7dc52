package policy

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// selector parses a label selector (matchLabels, matchExpressions). Keys
// read "source:key"; without a source they match any source. k8sKeys
// treats keys as Kubernetes label keys (source k8s, no source prefix).
func (p *parser) selector(n *yaml.Node, what string) (Selector, bool) {
	return p.selectorWith(n, what, false)
}

func (p *parser) selectorWith(n *yaml.Node, what string, k8sKeys bool) (Selector, bool) {
	var sel Selector
	o, ok := p.fields(n, what, []string{"matchLabels", "matchExpressions"}, nil)
	if v := p.deref(o.vals["matchLabels"]); v != nil && !isNull(v) {
		if v.Kind != yaml.MappingNode {
			p.errorf(v, "%s.matchLabels: want a mapping, got %s", what, describe(v))
			ok = false
		} else {
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, kok := p.scalar(v.Content[i], what+".matchLabels key")
				val, vok := p.labelValue(v.Content[i+1], what+".matchLabels["+k+"]")
				src, key, sok := p.labelKey(v.Content[i], k, k8sKeys)
				if !kok || !vok || !sok {
					ok = false
					continue
				}
				sel.Reqs = append(sel.Reqs, Requirement{Source: src, Key: key, Op: OpIn, Values: []string{val}})
			}
		}
	}
	exprs, lok := p.list(o.vals["matchExpressions"], what+".matchExpressions")
	ok = ok && lok
	for _, e := range exprs {
		req, rok := p.expression(e, what, k8sKeys)
		ok = ok && rok
		if rok {
			sel.Reqs = append(sel.Reqs, req)
		}
	}
	return sel, ok
}

func (p *parser) labelValue(n *yaml.Node, what string) (string, bool) {
	d := p.deref(n)
	if d == nil {
		return "", false
	}
	if isNull(d) {
		return "", true // "reserved:host": "" is often written as reserved:host: null
	}
	return p.scalar(d, what)
}

func (p *parser) labelKey(n *yaml.Node, k string, k8sKeys bool) (source, key string, ok bool) {
	if k == "" {
		p.errorf(n, "empty label key")
		return "", "", false
	}
	if k8sKeys {
		return "k8s", k, true
	}
	src, key, has := strings.Cut(k, ":")
	if !has {
		return "any", k, true
	}
	if src == "" || key == "" {
		p.errorf(n, "label key %q: want source:key or key", k)
		return "", "", false
	}
	if src == "cidr" || src == "fqdn" {
		p.errorf(n, "label key %q: %s labels are not selectable by label; use %s rules", k, src, map[string]string{"cidr": "fromCIDR/toCIDR", "fqdn": "toFQDNs"}[src])
		return "", "", false
	}
	return src, key, true
}

func (p *parser) expression(n *yaml.Node, what string, k8sKeys bool) (Requirement, bool) {
	var req Requirement
	o, ok := p.fields(n, what+".matchExpressions item", []string{"key", "operator", "values"}, nil)
	if !ok {
		return req, false
	}
	k, kok := p.scalar(o.vals["key"], "key")
	if o.vals["key"] == nil {
		p.errorf(n, "%s.matchExpressions: key is required", what)
		return req, false
	}
	src, key, sok := p.labelKey(o.vals["key"], k, k8sKeys)
	op, ook := p.scalar(o.vals["operator"], "operator")
	if o.vals["operator"] == nil {
		p.errorf(n, "%s.matchExpressions: operator is required", what)
		return req, false
	}
	if !kok || !sok || !ook {
		return req, false
	}
	req = Requirement{Source: src, Key: key, Op: Operator(op)}
	vals, lok := p.list(o.vals["values"], "values")
	if !lok {
		return req, false
	}
	for _, v := range vals {
		s, vok := p.scalar(v, "values item")
		if !vok {
			return req, false
		}
		req.Values = append(req.Values, s)
	}
	switch req.Op {
	case OpIn, OpNotIn:
		if len(req.Values) == 0 {
			p.errorf(o.keys["operator"], "operator %s needs values", op)
			return req, false
		}
	case OpExists, OpDoesNotExist:
		if len(req.Values) != 0 {
			p.errorf(o.keys["values"], "operator %s takes no values", op)
			return req, false
		}
	default:
		p.errorf(o.vals["operator"], "unknown operator %q (want In, NotIn, Exists or DoesNotExist)", op)
		return req, false
	}
	return req, true
}
