package filter

import (
	"fmt"
	"strings"
)

// op is a label requirement's operator.
type op uint8

const (
	opExists op = iota
	opNotExists
	opEquals
	opNotEquals
)

// requirement is one comma-separated part of a label selector.
type requirement struct {
	source string // label source such as "k8s"; "" matches any source
	key    string
	op     op
	value  string
}

// selector is a label selector: every requirement must hold.
type selector []requirement

// parseSelector reads the equality-based subset of Kubernetes' selector
// syntax: key, !key, key=value, key==value, key!=value, comma-separated.
func parseSelector(raw string) (selector, error) {
	var sel selector
	for part := range strings.SplitSeq(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("label selector has an empty requirement")
		}
		if strings.ContainsAny(part, "()") || strings.Contains(part, " in ") || strings.Contains(part, " notin ") {
			return nil, fmt.Errorf("label selector: set-based requirements (in, notin) are not supported")
		}
		var r requirement
		var key string
		switch {
		case strings.HasPrefix(part, "!"):
			r.op, key = opNotExists, part[1:]
		case strings.Contains(part, "!="):
			key, r.value, _ = strings.Cut(part, "!=")
			r.op = opNotEquals
		case strings.Contains(part, "=="):
			key, r.value, _ = strings.Cut(part, "==")
			r.op = opEquals
		case strings.Contains(part, "="):
			key, r.value, _ = strings.Cut(part, "=")
			r.op = opEquals
		default:
			r.op, key = opExists, part
		}
		key, r.value = strings.TrimSpace(key), strings.TrimSpace(r.value)
		if src, k, ok := strings.Cut(key, ":"); ok {
			r.source, key = src, k
			if r.source == "any" {
				r.source = ""
			}
		}
		if key == "" || strings.ContainsAny(key, " =!") || strings.ContainsAny(r.value, " =!") {
			return nil, fmt.Errorf("label selector %q: want key, !key, key=value or key!=value", part)
		}
		r.key = key
		sel = append(sel, r)
	}
	return sel, nil
}

// String returns the selector's canonical text.
func (s selector) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		if r.op == opNotExists {
			b.WriteByte('!')
		}
		if r.source != "" {
			b.WriteString(r.source)
			b.WriteByte(':')
		}
		b.WriteString(r.key)
		switch r.op {
		case opEquals:
			b.WriteByte('=')
			b.WriteString(r.value)
		case opNotEquals:
			b.WriteString("!=")
			b.WriteString(r.value)
		}
	}
	return b.String()
}

// matches reports whether labels ("source:key=value" or "key=value") satisfy
// every requirement.
func (s selector) matches(labels []string) bool {
	for i := range s {
		if !s[i].matches(labels) {
			return false
		}
	}
	return true
}

func (r *requirement) matches(labels []string) bool {
	found := false // a label with this key and, for = and !=, this value
	for _, l := range labels {
		src, key, val := splitLabel(l)
		if key != r.key || (r.source != "" && src != r.source) {
			continue
		}
		if r.op == opExists || r.op == opNotExists || val == r.value {
			found = true
			break
		}
	}
	if r.op == opNotExists || r.op == opNotEquals {
		return !found
	}
	return found
}

// splitLabel splits "source:key=value"; the source and value may be absent.
// A colon counts as the source separator only before the '='.
func splitLabel(l string) (source, key, value string) {
	kv := l
	if i := strings.IndexByte(l, ':'); i >= 0 {
		if eq := strings.IndexByte(l, '='); eq < 0 || i < eq {
			source, kv = l[:i], l[i+1:]
		}
	}
	key, value, _ = strings.Cut(kv, "=")
	return source, key, value
}
