package policy

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Skipped is a document of a policy stream that holds another Kubernetes
// object (a Deployment, a Service...): it is skipped, not refused, and
// reported so the user sees what was left out.
type Skipped struct {
	// Source is "file:line:column" of the document.
	Source string
	// APIVersion, Kind and Name are the object's.
	APIVersion, Kind, Name string
}

func (s Skipped) String() string {
	name := ""
	if s.Name != "" {
		name = fmt.Sprintf(" %q", s.Name)
	}
	return fmt.Sprintf("%s: skipped %s%s (%s): not a network policy", s.Source, s.Kind, name, s.APIVersion)
}

// isPolicy reports whether a document is one of the policy kinds, and
// records it as skipped when it is another Kubernetes object. Documents
// that may be meant as network policies are errors, never skipped: a
// document without kind or apiVersion, a list, or a kind naming a network
// policy Periscope does not enforce (AdminNetworkPolicy, a misspelling).
func (p *parser) isPolicy(root *yaml.Node, kind string, kindNode *yaml.Node, apiVersion string) bool {
	switch Kind(kind) {
	case KindCNP, KindCCNP, KindKNP:
		return true
	}
	switch {
	case kind == "":
		p.errorf(root, "document without kind: want a %s, %s or %s", KindCNP, KindCCNP, KindKNP)
	case apiVersion == "":
		p.errorf(root, "%s without apiVersion: not a Kubernetes object", kind)
	case strings.HasSuffix(kind, "List"):
		p.errorf(kindNode, "kind %q: lists are not read; write each item as its own document (---)", kind)
	case strings.Contains(strings.ToLower(kind), "networkpolic"):
		p.errorf(kindNode, "kind %q (%s) is a network policy Periscope does not enforce: it enforces %s and %s (cilium.io/v2) and %s (networking.k8s.io/v1); the file is refused rather than the policy ignored",
			kind, apiVersion, KindCNP, KindCCNP, KindKNP)
	default:
		sk := Skipped{Source: fmt.Sprintf("%s:%d:%d", p.file, root.Line, root.Column), APIVersion: apiVersion, Kind: kind}
		if md := mapValue(root, "metadata"); md != nil {
			if n := mapValue(md, "name"); n != nil && n.Kind == yaml.ScalarNode {
				sk.Name = n.Value
			}
		}
		p.skipped = append(p.skipped, sk)
	}
	return false
}

// mapValue is the value of key in a mapping node (aliases followed), or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
