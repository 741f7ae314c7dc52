package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is a validation error at a position of a policy file.
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// ParseFile reads and parses a policy file (multi-document YAML).
func ParseFile(path string) ([]*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	return Parse(path, data)
}

// maxNodes bounds the YAML nodes visited per file, so alias expansion
// ("billion laughs") cannot blow up the walk.
const maxNodes = 1 << 20

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse parses policies from data; name is used in errors. On error it
// returns no policies and an error joining every *Error found. Documents
// that are not network policies are skipped (ParseDocuments reports them).
func Parse(name string, data []byte) ([]*Policy, error) {
	docs, _, err := ParseDocuments(name, data)
	if err != nil {
		return nil, err
	}
	out := make([]*Policy, len(docs))
	for i, d := range docs {
		out[i] = d.Policy
	}
	return out, nil
}

// ParseDocuments parses the policies of data, a stream of YAML documents
// split by the YAML decoder, each policy with its document's own text.
// Documents of other Kubernetes objects (a Deployment, a Service) are
// skipped and listed, as kubectl-style tools skip what they do not handle;
// a network policy Periscope does not know is an error, never skipped.
// Errors name name:line:column counted in data, for every document. On
// error it returns no documents and an error joining every *Error found.
func ParseDocuments(name string, data []byte) ([]Document, []Skipped, error) {
	p := &parser{file: name, budget: maxNodes}
	data = asUTF8(data)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var starts []int // first line of every document, policy or not
	var out []Document
	seen := map[string]*yaml.Node{}
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			line := 0
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				line, _ = strconv.Atoi(m[1])
				msg = m[2]
			}
			msg = "not valid YAML: " + msg
			// yaml.v3 reports syntax errors by line only.
			p.errs = append(p.errs, &Error{File: name, Line: line, Column: 1, Msg: msg})
			break
		}
		starts = append(starts, doc.Line)
		if len(doc.Content) == 0 {
			continue
		}
		root := p.deref(doc.Content[0])
		if root == nil || root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		pol := p.document(root)
		if pol == nil {
			continue
		}
		key := string(pol.Kind) + "/" + pol.Ref()
		if prev, dup := seen[key]; dup {
			p.errorf(root, "%s %q defined twice (first at line %d)", pol.Kind, pol.Ref(), prev.Line)
			continue
		}
		seen[key] = root
		out = append(out, Document{Policy: pol, index: len(starts) - 1, rootLine: doc.Content[0].Line})
	}
	if len(p.errs) > 0 {
		return nil, nil, errors.Join(p.errs...)
	}
	cutTexts(data, starts, out)
	return out, p.skipped, nil
}

type parser struct {
	file    string
	errs    []error
	skipped []Skipped
	budget  int
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: p.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	p.errs = append(p.errs, e)
}

// deref follows aliases and charges the node budget; nil when exhausted.
func (p *parser) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	p.budget--
	if p.budget == 0 {
		p.errorf(n, "document too large (more than %d YAML nodes after alias expansion)", maxNodes)
	}
	if p.budget <= 0 {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// obj is a parsed mapping: values and key nodes by field name.
type obj struct {
	vals map[string]*yaml.Node
	keys map[string]*yaml.Node
	node *yaml.Node
}

func (o obj) has(k string) bool { _, ok := o.vals[k]; return ok }

// notSupported explains refusing a field that Periscope does not enforce.
const notSupported = "is not enforced by Periscope yet; the policy is refused rather than the rule ignored (an ignored rule would be a policy bypass)"

// fields reads a mapping with the given known fields; unsupported fields
// and unknown fields are errors. A null node is an empty mapping.
func (p *parser) fields(n *yaml.Node, what string, known []string, unsupported []string) (obj, bool) {
	o := obj{vals: map[string]*yaml.Node{}, keys: map[string]*yaml.Node{}, node: n}
	if n == nil {
		return o, true // absent
	}
	n = p.deref(n)
	if n == nil || isNull(n) {
		return o, n != nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping, got %s", what, describe(n))
		return o, false
	}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.deref(n.Content[i]), n.Content[i+1]
		if k == nil {
			return o, false
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%s: field name must be a string", what)
			ok = false
			continue
		}
		name := k.Value
		if prev, dup := o.keys[name]; dup {
			p.errorf(k, "%s: field %q repeated (first at line %d)", what, name, prev.Line)
			ok = false
			continue
		}
		switch {
		case contains(known, name):
			o.vals[name], o.keys[name] = v, k
		case contains(unsupported, name):
			p.errorf(k, "%s: %q %s", what, name, notSupported)
			ok = false
		default:
			p.errorf(k, "unknown field %q in %s", name, what)
			ok = false
		}
	}
	return o, ok
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// list returns a sequence's items; null is an empty list.
func (p *parser) list(n *yaml.Node, what string) ([]*yaml.Node, bool) {
	if n == nil {
		return nil, true // absent
	}
	n = p.deref(n)
	if n == nil {
		return nil, false
	}
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s: want a list, got %s", what, describe(n))
		return nil, false
	}
	return n.Content, true
}

// scalar returns a non-null scalar's text.
func (p *parser) scalar(n *yaml.Node, what string) (string, bool) {
	n = p.deref(n)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		p.errorf(n, "%s: want a value, got %s", what, describe(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	d := n
	for i := 0; d != nil && d.Kind == yaml.AliasNode && i < 100; i++ {
		d = d.Alias
	}
	s, ok := p.scalar(n, what)
	if ok && d.Tag != "!!str" {
		p.errorf(n, "%s: want a string, got %s", what, describe(n))
		return "", false
	}
	return s, ok
}

func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	n = p.deref(n)
	if n == nil {
		return false, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(n, "%s: want true or false, got %s", what, describe(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		p.errorf(n, "%s: %v", what, err)
		return false, false
	}
	return b, true
}

// document parses one YAML document into a Policy.
func (p *parser) document(root *yaml.Node) *Policy {
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "policy document: want a mapping, got %s", describe(root))
		return nil
	}
	var kind, apiVersion string
	var kindNode *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "kind":
			kindNode = root.Content[i+1]
			kind, _ = p.scalar(kindNode, "kind")
		case "apiVersion":
			apiVersion, _ = p.scalar(root.Content[i+1], "apiVersion")
		}
	}
	if !p.isPolicy(root, kind, kindNode, apiVersion) {
		return nil
	}
	switch Kind(kind) {
	case KindCNP, KindCCNP:
		if apiVersion != "cilium.io/v2" {
			p.errorf(root, "%s: apiVersion %q, want cilium.io/v2", kind, apiVersion)
			return nil
		}
		return p.cilium(root, Kind(kind))
	case KindKNP:
		if apiVersion != "networking.k8s.io/v1" {
			p.errorf(root, "NetworkPolicy: apiVersion %q, want networking.k8s.io/v1", apiVersion)
			return nil
		}
		return p.k8s(root)
	}
	return nil
}

var metadataFields = []string{"name", "namespace", "labels", "annotations", "uid", "resourceVersion",
	"generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
	"managedFields", "finalizers", "ownerReferences", "generateName", "selfLink"}

// metadata fills name and namespace; namespaced policies default to "default".
func (p *parser) metadata(n *yaml.Node, pol *Policy, namespaced bool) bool {
	if n == nil {
		p.errorf(nil, "%s without metadata", pol.Kind)
		return false
	}
	m, ok := p.fields(n, "metadata", metadataFields, nil)
	if v := m.vals["name"]; v != nil {
		pol.Name, _ = p.str(v, "metadata.name")
	}
	if pol.Name == "" {
		p.errorf(n, "%s: metadata.name is required", pol.Kind)
		ok = false
	}
	if v := m.vals["namespace"]; v != nil {
		ns, _ := p.str(v, "metadata.namespace")
		if !namespaced {
			p.errorf(v, "%s is cluster-scoped: metadata.namespace must not be set", pol.Kind)
			ok = false
		}
		pol.Namespace = ns
	}
	if namespaced && pol.Namespace == "" {
		pol.Namespace = "default"
	}
	return ok
}
