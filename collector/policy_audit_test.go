package collector_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	ciliumapi "github.com/cilium/cilium/pkg/policy/api"

	"github.com/periscope-dev/periscope/enforcer/policy"
)

// fieldVerdict is what Periscope does with one field of Cilium's rule: a
// connectivity scenario enforcing it, refused (with file:line:column), or
// metadata that decides nothing (in Cilium either).
type fieldVerdict struct {
	scenario string
	refused  bool
	metadata string
}

func enforcedBy(scenario string) fieldVerdict { return fieldVerdict{scenario: scenario} }

var refused = fieldVerdict{refused: true}

// ciliumRuleFields is the audit table: every field of Cilium's
// api.Rule (the policy's spec), by JSON path. A refused field's children
// are not listed: the field is refused whatever they hold.
func ciliumRuleFields() map[string]fieldVerdict {
	t := map[string]fieldVerdict{
		"spec.endpointSelector":                             enforcedBy("label allow admits only the selected peer"),
		"spec.endpointSelector.matchLabels":                 enforcedBy("label allow admits only the selected peer"),
		"spec.endpointSelector.matchExpressions":            enforcedBy("CiliumClusterwideNetworkPolicy selects in every namespace"),
		"spec.endpointSelector.matchExpressions[].key":      enforcedBy("CiliumClusterwideNetworkPolicy selects in every namespace"),
		"spec.endpointSelector.matchExpressions[].operator": enforcedBy("CiliumClusterwideNetworkPolicy selects in every namespace"),
		"spec.endpointSelector.matchExpressions[].values":   enforcedBy("CiliumClusterwideNetworkPolicy selects in every namespace"),
		"spec.nodeSelector":                                 enforcedBy("a host policy (nodeSelector) default-denies the host's ingress"),
		"spec.nodeSelector.matchLabels":                     enforcedBy("a host policy (nodeSelector) default-denies the host's ingress"),
		"spec.nodeSelector.matchExpressions":                enforcedBy("a host policy whose nodeSelector matches no node enforces nothing"),
		"spec.nodeSelector.matchExpressions[].key":          enforcedBy("a host policy whose nodeSelector matches no node enforces nothing"),
		"spec.nodeSelector.matchExpressions[].operator":     enforcedBy("a host policy whose nodeSelector matches no node enforces nothing"),
		"spec.nodeSelector.matchExpressions[].values":       enforcedBy("a host policy whose nodeSelector matches no node enforces nothing"),
		"spec.ingress":                                        enforcedBy("default deny ingress drops with POLICY_DENIED"),
		"spec.ingressDeny":                                    enforcedBy("ingressDeny wins over allow"),
		"spec.egress":                                         enforcedBy("default deny egress drops with POLICY_DENIED"),
		"spec.egressDeny":                                     enforcedBy("egressDeny on a port wins over allow"),
		"spec.enableDefaultDeny":                              enforcedBy("enableDefaultDeny per direction"),
		"spec.enableDefaultDeny.ingress":                      enforcedBy("enableDefaultDeny per direction"),
		"spec.enableDefaultDeny.egress":                       enforcedBy("enableDefaultDeny per direction"),
		"spec.log":                                            refused,
		"spec.description":                                    {metadata: "free text"},
		"spec.labels":                                         {metadata: "the rule's own labels: they name the rule, select nothing"},
		"spec.ingress[].fromEndpoints":                        enforcedBy("label allow admits only the selected peer"),
		"spec.ingress[].fromEndpoints[].matchLabels":          enforcedBy("label allow admits only the selected peer"),
		"spec.ingress[].fromEndpoints[].matchExpressions":     enforcedBy("matchExpressions In"),
		"spec.ingress[].fromCIDR":                             enforcedBy("fromCIDR admits one address"),
		"spec.ingress[].fromCIDRSet":                          enforcedBy("fromCIDRSet with except"),
		"spec.ingress[].fromCIDRSet[].cidr":                   enforcedBy("fromCIDRSet with except"),
		"spec.ingress[].fromCIDRSet[].except":                 enforcedBy("fromCIDRSet with except"),
		"spec.ingress[].fromEntities":                         enforcedBy("entity world"),
		"spec.ingress[].toPorts":                              enforcedBy("label allow on a port"),
		"spec.ingress[].toPorts[].ports":                      enforcedBy("label allow on a port"),
		"spec.ingress[].toPorts[].ports[].port":               enforcedBy("label allow on a port"),
		"spec.ingress[].toPorts[].ports[].endPort":            enforcedBy("port range with endPort"),
		"spec.ingress[].toPorts[].ports[].protocol":           enforcedBy("UDP port allowed, TCP on it not"),
		"spec.ingress[].icmps":                                enforcedBy("ICMPv4 echo allowed by icmps"),
		"spec.ingress[].icmps[].fields":                       enforcedBy("ICMPv4 echo allowed by icmps"),
		"spec.ingress[].icmps[].fields[].type":                enforcedBy("ICMPv4 echo allowed by icmps"),
		"spec.ingress[].icmps[].fields[].family":              enforcedBy("ICMPv6 echo allowed by icmps"),
		"spec.ingressDeny[].fromEndpoints":                    enforcedBy("ingressDeny wins over allow"),
		"spec.ingressDeny[].fromEndpoints[].matchLabels":      enforcedBy("ingressDeny wins over allow"),
		"spec.ingressDeny[].fromEndpoints[].matchExpressions": enforcedBy("every peer and port field of ingressDeny"),
		"spec.egress[].toEndpoints":                           enforcedBy("egress allow is not ingress allow"),
		"spec.egress[].toEndpoints[].matchLabels":             enforcedBy("egress allow is not ingress allow"),
		"spec.egress[].toEndpoints[].matchExpressions":        enforcedBy("every peer and port field of egress"),
		"spec.egressDeny[].toEndpoints":                       enforcedBy("egressDeny on a port wins over allow"),
		"spec.egressDeny[].toEndpoints[].matchLabels":         enforcedBy("egressDeny on a port wins over allow"),
		"spec.egressDeny[].toEndpoints[].matchExpressions":    enforcedBy("every peer and port field of egressDeny"),
	}
	// What every direction shares, named by the scenario exercising it in
	// that direction.
	for dir, sc := range map[string]string{"ingressDeny": "every peer and port field of ingressDeny",
		"egress": "every peer and port field of egress", "egressDeny": "every peer and port field of egressDeny"} {
		peer := map[bool]string{true: "from", false: "to"}[strings.HasPrefix(dir, "ingress")]
		for _, f := range []string{peer + "CIDR", peer + "CIDRSet", peer + "CIDRSet[].cidr", peer + "CIDRSet[].except", peer + "Entities",
			"toPorts", "toPorts[].ports", "toPorts[].ports[].port", "toPorts[].ports[].endPort", "toPorts[].ports[].protocol",
			"icmps", "icmps[].fields", "icmps[].fields[].type", "icmps[].fields[].family"} {
			t["spec."+dir+"[]."+f] = enforcedBy(sc)
		}
	}
	for _, dir := range []string{"ingress", "ingressDeny", "egress", "egressDeny"} {
		peer := map[bool]string{true: "fromEndpoints", false: "toEndpoints"}[strings.HasPrefix(dir, "ingress")]
		sc := t["spec."+dir+"[]."+peer+"[].matchExpressions"].scenario
		for _, f := range []string{"key", "operator", "values"} {
			t["spec."+dir+"[]."+peer+"[].matchExpressions[]."+f] = enforcedBy(sc)
		}
	}
	// DNS (issue 13): rules.dns on egress allows, toFQDNs; DNS rules on
	// ingress stay refused (rules.http: below).
	for f, sc := range map[string]string{
		"egress[].toFQDNs":                            "toFQDNs: nothing before the lookup, then the answer's address on the port, nothing else",
		"egress[].toFQDNs[].matchName":                "toFQDNs: nothing before the lookup, then the answer's address on the port, nothing else",
		"egress[].toFQDNs[].matchPattern":             "toFQDNs *.example.com admits one label deep only",
		"egress[].toPorts[].rules":                    "rules.dns matchName: the name is answered, another REFUSED naming the policy, never asked upstream",
		"egress[].toPorts[].rules.dns":                "rules.dns matchName: the name is answered, another REFUSED naming the policy, never asked upstream",
		"egress[].toPorts[].rules.dns[].matchName":    "rules.dns matchName: the name is answered, another REFUSED naming the policy, never asked upstream",
		"egress[].toPorts[].rules.dns[].matchPattern": "matchPattern *.example.com is one label deep",
		// `rules: {}` is no L7 rule, as in Cilium; each kind inside is refused.
		"ingress[].toPorts[].rules": "rules.dns matchName: the name is answered, another REFUSED naming the policy, never asked upstream",
	} {
		t["spec."+f] = enforcedBy(sc)
	}
	for _, f := range []string{
		"ingress[].toPorts[].rules.dns",
	} {
		t["spec."+f] = refused
	}
	for _, f := range []string{
		"ingress[].fromRequires", "ingress[].fromGroups", "ingress[].fromNodes", "ingress[].authentication",
		"ingress[].fromCIDRSet[].cidrGroupRef", "ingress[].fromCIDRSet[].cidrGroupSelector",
		"ingress[].toPorts[].serverNames", "ingress[].toPorts[].listener",
		"ingress[].toPorts[].originatingTLS", "ingress[].toPorts[].terminatingTLS",
		"ingressDeny[].fromRequires", "ingressDeny[].fromGroups", "ingressDeny[].fromNodes",
		"ingressDeny[].fromCIDRSet[].cidrGroupRef", "ingressDeny[].fromCIDRSet[].cidrGroupSelector",
		"egress[].toRequires", "egress[].toServices", "egress[].toGroups", "egress[].toNodes", "egress[].authentication",
		"egress[].toCIDRSet[].cidrGroupRef", "egress[].toCIDRSet[].cidrGroupSelector",
		"egress[].toPorts[].serverNames", "egress[].toPorts[].listener",
		"egress[].toPorts[].originatingTLS", "egress[].toPorts[].terminatingTLS",
		"egressDeny[].toRequires", "egressDeny[].toServices", "egressDeny[].toGroups", "egressDeny[].toNodes",
		"egressDeny[].toCIDRSet[].cidrGroupRef", "egressDeny[].toCIDRSet[].cidrGroupSelector",
	} {
		t["spec."+f] = refused
	}
	// L7 rules: rules.http is enforced through Envoy (the L7 connectivity
	// suite, l7Scenarios); rules.dns is the DNS proxy's (above).
	for dir, sc := range map[string][2]string{
		"ingress": {"GET /public/.* allowed, anything else 403", "headerMatches: a value, or presence"},
		"egress":  {"egress L7 rule at the client", "egress L7 rule at the client"},
	} {
		for _, f := range []string{"rules", "rules.http", "rules.http[].method", "rules.http[].path"} {
			t["spec."+dir+"[].toPorts[]."+f] = enforcedBy(sc[0])
		}
		t["spec."+dir+"[].toPorts[].rules.http[].host"] = enforcedBy(map[string]string{"ingress": "host rule matches the whole authority", "egress": sc[0]}[dir])
		t["spec."+dir+"[].toPorts[].rules.http[].headers"] = enforcedBy(map[string]string{"ingress": "header rule: present with the value, repeats joined", "egress": sc[0]}[dir])
		for _, f := range []string{"headerMatches", "headerMatches[].name", "headerMatches[].value"} {
			t["spec."+dir+"[].toPorts[].rules.http[]."+f] = enforcedBy(sc[1])
		}
		for _, f := range []string{"rules.http[].headerMatches[].mismatch", "rules.http[].headerMatches[].secret"} {
			t["spec."+dir+"[].toPorts[]."+f] = refused
		}
	}
	return t
}

// ruleFieldPaths walks Cilium's api.Rule by reflection: every field by JSON
// path ("[]" for a list's items), children of the fields verdicts says are
// refused or metadata excluded.
func ruleFieldPaths(verdicts map[string]fieldVerdict) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			if t.Kind() == reflect.Slice {
				path += "[]"
			}
			t = t.Elem()
		}
		// IntOrString (an ICMP type) is one value on the wire.
		if t.Kind() != reflect.Struct || t.Name() == "IntOrString" {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if f.Anonymous && name == "" || strings.Contains(opts, "inline") {
				walk(f.Type, path)
				continue
			}
			p := path + "." + name
			out[p] = f.Type
			if v, ok := verdicts[p]; ok && (v.refused || v.metadata != "") {
				continue
			}
			walk(f.Type, p)
		}
	}
	walk(reflect.TypeOf(ciliumapi.Rule{}), "spec")
	return out
}

// TestEveryCiliumPolicyFieldIsEnforcedOrRefused walks every field of
// Cilium's policy API (the version in go.mod) and holds it against the
// audit table: a field Periscope would read and not enforce is a policy
// bypass. Enforced fields name a connectivity scenario that uses them;
// refused fields are refused with file:line:column.
func TestEveryCiliumPolicyFieldIsEnforcedOrRefused(t *testing.T) {
	verdicts := ciliumRuleFields()
	paths := ruleFieldPaths(verdicts)
	scenarios := map[string]string{}
	for _, sc := range policyScenarios("198.18.0.10", "198.18.0.11", "198.18.0.0/24") {
		scenarios[sc.name] = sc.yaml
	}
	for _, sc := range l7Scenarios(netip.MustParseAddr("198.18.0.10")) {
		scenarios[sc.name] = sc.yaml
	}
	for _, sc := range dnsScenarios() {
		scenarios[sc.name] = sc.policy
	}
	for _, p := range slices.Sorted(mapsKeys(paths)) {
		v, ok := verdicts[p]
		switch {
		case !ok:
			t.Errorf("%s (%s): a field of Cilium's policy API the audit does not know: enforce it (and name a scenario) or refuse it", p, paths[p])
		case v.scenario != "":
			yaml, exists := scenarios[v.scenario]
			last := p[strings.LastIndex(p, ".")+1:]
			switch {
			case !exists:
				t.Errorf("%s: scenario %q is not in the connectivity suite", p, v.scenario)
			case !strings.Contains(yaml, last+":"):
				t.Errorf("%s: scenario %q does not use %s", p, v.scenario, last)
			}
			if _, err := parseWithField(p, paths[p], false); err != nil {
				t.Errorf("%s is enforced but a policy using it is refused: %v", p, err)
			}
		case v.refused:
			doc, err := parseWithField(p, paths[p], true)
			if err == nil {
				t.Errorf("%s: a policy using it is accepted, want it refused", p)
				continue
			}
			checkRefusedAt(t, p, doc, err)
		}
	}
	for p := range verdicts {
		if _, ok := paths[p]; !ok {
			t.Errorf("%s: in the audit table but not a field of Cilium's policy API", p)
		}
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// parseWithField parses a policy whose spec holds a value at path (the rule
// needs an endpointSelector, the refused field any value of its type).
func parseWithField(path string, typ reflect.Type, refusedField bool) ([]byte, error) {
	spec := map[string]any{"endpointSelector": map[string]any{}}
	if strings.HasPrefix(path, "spec.nodeSelector") {
		spec = map[string]any{}
	}
	segs := strings.Split(strings.TrimPrefix(path, "spec."), ".")
	cur := spec
	for i, seg := range segs {
		name, list := strings.CutSuffix(seg, "[]")
		for k, v := range requiredSiblings[name] {
			if _, set := cur[k]; !set {
				cur[k] = v
			}
		}
		if i == len(segs)-1 {
			cur[name] = sampleValue(path, typ)
			break
		}
		next := map[string]any{}
		for k, v := range requiredInside[name] {
			next[k] = v
		}
		if existing, ok := cur[name].(map[string]any); ok {
			next = existing
		}
		if list {
			cur[name] = []any{next}
		} else {
			cur[name] = next
		}
		cur = next
	}
	hasRule := false
	for _, k := range []string{"ingress", "ingressDeny", "egress", "egressDeny"} {
		if l, ok := spec[k].([]any); ok && len(l) > 0 {
			hasRule = true
		}
	}
	for _, k := range []string{"egressDeny", "ingressDeny"} {
		if _, set := spec[k]; !set && !hasRule {
			// A rule needs one (as Cilium's Sanitize): `{}` matches nothing.
			spec[k], hasRule = []any{map[string]any{}}, true
		}
	}
	kind := "CiliumNetworkPolicy"
	meta := map[string]any{"name": "audit", "namespace": "default"}
	if strings.HasPrefix(path, "spec.nodeSelector") {
		kind, meta = "CiliumClusterwideNetworkPolicy", map[string]any{"name": "audit"}
	}
	doc, _ := json.MarshalIndent(map[string]any{"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta, "spec": spec}, "", "  ")
	_, err := policy.Parse("audit.yaml", doc)
	if err != nil && !refusedField {
		return doc, fmt.Errorf("%w\n%s", err, doc)
	}
	return doc, err
}

// requiredInside are the fields a field's value needs inside it when a
// deeper field is set: L7 rules need a TCP port.
var requiredInside = map[string]map[string]any{
	"toPorts": {"ports": []any{map[string]any{"port": "80", "protocol": "TCP"}}},
}

// requiredSiblings are the fields a field needs beside it to be valid.
var requiredSiblings = map[string]map[string]any{
	"value":    {"name": "X-A"},
	"mismatch": {"name": "X-A"},
	"family":   {"type": 8},
	"except":   {"cidr": "198.18.0.0/16"},
	"endPort":  {"port": "80"},
	"key":      {"operator": "In", "values": []any{"x"}},
	"operator": {"key": "app", "values": []any{"x"}},
	"values":   {"key": "app", "operator": "In"},
	"rules":    {"ports": []any{map[string]any{"port": "53", "protocol": "UDP"}}},
}

// sampleValue is a value a policy may hold at path: valid for the fields
// Periscope enforces, anything of the type for those it refuses.
func sampleValue(path string, typ reflect.Type) any {
	last := path[strings.LastIndex(path, ".")+1:]
	if strings.HasPrefix(path, "spec.enableDefaultDeny.") {
		return false
	}
	switch last {
	case "matchLabels":
		return map[string]any{"app": "x"}
	case "matchExpressions", "matchExpressions[]":
		return []any{map[string]any{"key": "app", "operator": "In", "values": []any{"x"}}}
	case "key":
		return "app"
	case "operator":
		return "In"
	case "values":
		return []any{"x"}
	case "fromCIDR", "toCIDR", "except":
		return []any{"198.18.0.0/24"}
	case "cidr":
		return "198.18.0.0/16"
	case "fromCIDRSet", "toCIDRSet":
		return []any{map[string]any{"cidr": "198.18.0.0/16"}}
	case "fromEntities", "toEntities":
		return []any{"world"}
	case "port":
		return "80"
	case "endPort":
		return 81
	case "protocol":
		return "TCP"
	case "ports", "toPorts":
		ports := []any{map[string]any{"port": "80"}}
		if last == "toPorts" {
			return []any{map[string]any{"ports": ports}}
		}
		return ports
	case "type":
		return 8
	case "family":
		return "IPv4"
	case "fields", "icmps":
		fields := []any{map[string]any{"type": 8}}
		if last == "icmps" {
			return []any{map[string]any{"fields": fields}}
		}
		return fields
	case "ingress", "egress", "ingressDeny", "egressDeny":
		return []any{map[string]any{}}
	case "fromEndpoints", "toEndpoints":
		return []any{map[string]any{}}
	case "endpointSelector", "nodeSelector":
		return map[string]any{}
	case "toFQDNs", "dns":
		return []any{map[string]any{"matchName": "api.example.com"}}
	case "matchName":
		return "api.example.com"
	case "matchPattern":
		return "*.example.com"
	case "enableDefaultDeny":
		return map[string]any{"ingress": true}
	case "headers":
		return []any{"X-A: b"}
	case "headerMatches":
		return []any{map[string]any{"name": "X-A"}}
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Bool:
		return true
	case reflect.String:
		return "x"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint16, reflect.Uint32:
		return 1
	case reflect.Slice:
		return []any{map[string]any{}}
	}
	return map[string]any{}
}

var position = regexp.MustCompile(`^audit\.yaml:(\d+):(\d+): `)

// checkRefusedAt checks that err names the refused field, at the line and
// column of its key in doc.
func checkRefusedAt(t *testing.T, path string, doc []byte, err error) {
	t.Helper()
	msg := strings.Split(err.Error(), "\n")[0]
	m := position.FindStringSubmatch(msg)
	field := strings.TrimSuffix(path[strings.LastIndex(path, ".")+1:], "[]")
	if m == nil || !strings.Contains(msg, field) {
		t.Errorf("%s refused with %q, want audit.yaml:line:column naming %s", path, msg, field)
		return
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	lines := strings.Split(string(doc), "\n")
	if line > len(lines) || col < 1 || col > len(lines[line-1]) || !strings.HasPrefix(lines[line-1][col-1:], `"`+field+`"`) {
		t.Errorf("%s refused at %d:%d, which is not its key:\n%s", path, line, col, doc)
	}
}
