package policy

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestEverySupportedFieldParses(t *testing.T) {
	pols, err := ParseFile("testdata/all_fields.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(pols) != 3 {
		t.Fatalf("got %d policies", len(pols))
	}
	cnp, ccnp, knp := pols[0], pols[1], pols[2]
	if cnp.Ref() != "shop/backend" || cnp.Kind != KindCNP || ccnp.Ref() != "lockdown" || knp.Ref() != "shop/db" {
		t.Fatalf("refs: %s %s %s", cnp.Ref(), ccnp.Ref(), knp.Ref())
	}
	r := cnp.Rules[0]
	if len(r.Ingress.Allow) != 4 || len(r.Ingress.Deny) != 1 || len(r.Egress.Allow) != 2 || len(r.Egress.Deny) != 1 {
		t.Fatalf("rule shape: %+v", r)
	}
	if !r.Ingress.DefaultDeny || r.Egress.DefaultDeny {
		t.Fatalf("enableDefaultDeny not applied: %v %v", r.Ingress.DefaultDeny, r.Egress.DefaultDeny)
	}
	// 8080/TCP plus 9000-9100 for TCP, UDP and SCTP.
	if got := r.Ingress.Allow[0].Ports; len(got) != 4 || got[1] != (PortRange{6, 9000, 9100}) {
		t.Fatalf("ports: %+v", got)
	}
	if got := r.Ingress.Allow[1].Peers; len(got) != 3 || got[1].CIDR.String() != "192.168.1.7/32" || len(got[2].Except) != 1 {
		t.Fatalf("cidr peers: %+v", got)
	}
	if got := r.Ingress.Allow[3].Ports; len(got) != 2 || got[0] != (PortRange{1, 8, 8}) || got[1] != (PortRange{58, 128, 128}) {
		t.Fatalf("icmps: %+v", got)
	}
	if len(ccnp.Rules) != 2 || !ccnp.Rules[1].Host {
		t.Fatalf("ccnp: %+v", ccnp.Rules)
	}
	if k := knp.Rules[0]; len(k.Ingress.Allow[0].Peers) != 3 || len(k.Ingress.Allow[0].Ports) != 2 || !k.Egress.DefaultDeny {
		t.Fatalf("knp: %+v", k)
	}
}

func TestParseErrorsCarryPositions(t *testing.T) {
	const head = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {}\n"
	const knpHead = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n"
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"Kafka L7 rules are refused", head + "  ingress:\n  - toPorts:\n    - ports: [{port: '80', protocol: TCP}]\n      rules: {kafka: [{}]}\n",
			`x.yaml:9:15: rules: "kafka" is not enforced`},
		{"toFQDNs cannot deny", head + "  egressDeny:\n  - toFQDNs: [{matchName: a.com}]\n", `x.yaml:7:5: egressDeny rule: toFQDNs cannot deny`},
		{"toServices is refused", head + "  egress:\n  - toServices: []\n", `x.yaml:7:5: egress rule: "toServices" is not enforced`},
		{"fromRequires is refused", head + "  ingress:\n  - fromRequires: []\n", `x.yaml:7:5: ingress rule: "fromRequires" is not enforced`},
		{"named ports are refused", head + "  ingress:\n  - toPorts: [{ports: [{port: http}]}]\n", `x.yaml:7:31: named port "http" is not supported`},
		{"unknown fields are errors", head + "  ingres: []\n", `x.yaml:6:3: unknown field "ingres" in spec`},
		{"unknown metadata fields are errors", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, nme: q}\nspec: {endpointSelector: {}}\n", `x.yaml:3:21: unknown field "nme" in metadata`},
		{"bad CIDRs are errors", head + "  egress:\n  - toCIDR: [10.0.0.0/33]\n", `x.yaml:7:14: toCIDR: bad CIDR "10.0.0.0/33"`},
		{"except outside the CIDR is an error", head + "  egress:\n  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [11.0.0.0/16]}]\n", `x.yaml:7:45: toCIDRSet: except 11.0.0.0/16 is not inside 10.0.0.0/8`},
		{"ports above 65535 are errors", head + "  ingress:\n  - toPorts: [{ports: [{port: '70000'}]}]\n", `x.yaml:7:31: port 70000 out of range`},
		{"endPort below port is an error", head + "  ingress:\n  - toPorts: [{ports: [{port: '80', endPort: 79}]}]\n", `x.yaml:7:46: endPort 79 is below port 80`},
		{"endPort without port is an error", head + "  ingress:\n  - toPorts: [{ports: [{endPort: 79}]}]\n", `endPort needs a port`},
		{"bad protocols are errors", head + "  ingress:\n  - toPorts: [{ports: [{port: '1', protocol: ICMP}]}]\n", `protocol "ICMP": want TCP, UDP, SCTP, ANY or a port-less IP protocol`},
		{"extended protocols have no ports", head + "  ingress:\n  - toPorts: [{ports: [{port: '47', protocol: GRE}]}]\n", `x.yaml:7:31: protocol GRE has no ports: port must be empty or 0`},
		{"extended protocols are not Kubernetes'", knpHead + "  ingress: [{ports: [{protocol: ESP}]}]\n", `protocol "ESP": want TCP, UDP or SCTP`},
		{"unknown entities are errors", head + "  ingress:\n  - fromEntities: [galaxy]\n", `x.yaml:7:20: fromEntities: entity "galaxy" is not supported`},
		{"icmps with toPorts is an error", head + "  ingress:\n  - toPorts: [{ports: [{port: '1'}]}]\n    icmps: [{fields: [{type: 8}]}]\n", `icmps and toPorts cannot be in the same rule`},
		{"bad ICMP type names are errors", head + "  ingress:\n  - icmps: [{fields: [{type: Ping}]}]\n", `icmp type "Ping"`},
		{"mixing endpoints and CIDRs is an error", head + "  ingress:\n  - fromEndpoints: [{}]\n    fromCIDR: [1.0.0.0/8]\n", `combining fromEndpoints`},
		{"bad operators are errors", head + "  ingress:\n  - fromEndpoints: [{matchExpressions: [{key: a, operator: Has}]}]\n", `unknown operator "Has"`},
		{"In without values is an error", head + "  ingress:\n  - fromEndpoints: [{matchExpressions: [{key: a, operator: In}]}]\n", `operator In needs values`},
		{"cidr labels are not selectable", head + "  ingress:\n  - fromEndpoints: [{matchLabels: {'cidr:1.0.0.0/8': ''}}]\n", `cidr labels are not selectable`},
		{"missing selector is an error", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec: {ingress: [{}]}\n", `x.yaml:4:7: spec: needs endpointSelector or nodeSelector`},
		{"nodeSelector in a namespaced policy is an error", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec: {nodeSelector: {}}\n", `nodeSelector is only valid in a CiliumClusterwideNetworkPolicy`},
		{"wrong apiVersion is an error", "apiVersion: cilium.io/v1\nkind: CiliumNetworkPolicy\n", `want cilium.io/v2`},
		{"unknown policy kinds are errors", "apiVersion: v1\nkind: GlobalNetworkPolicy\n", `x.yaml:2:7: kind "GlobalNetworkPolicy"`},
		{"YAML syntax errors carry the line", "a: [\n", `x.yaml:1:1:`},
		{"duplicate keys are errors", head + "  ingress: []\n  ingress: []\n", `x.yaml:7:3: spec: field "ingress" repeated`},
		{"duplicate policies are errors", head + "  ingress: [{}]\n---\n" + head + "  ingress: [{}]\n", `defined twice`},
		{"a rule without ingress, egress or deny rules is refused (as Cilium's Sanitize)", head, `x.yaml:5:3: spec: needs at least one rule in ingress, ingressDeny, egress or egressDeny`},
		{"empty lists are no rules", head + "  ingress: []\n  egressDeny: []\n", `spec: needs at least one rule`},
		{"a host policy without rules is refused", "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: p}\nspec: {nodeSelector: {}, enableDefaultDeny: {ingress: true}}\n", `spec: needs at least one rule`},
		{"K8s named ports are refused", knpHead + "  ingress: [{ports: [{port: http}]}]\n", `named port "http"`},
		{"K8s ipBlock with selectors is an error", knpHead + "  ingress: [{from: [{podSelector: {}, ipBlock: {cidr: 1.0.0.0/8}}]}]\n", `ipBlock cannot be combined`},
		{"K8s empty peer is an error", knpHead + "  ingress: [{from: [{}]}]\n", `needs podSelector, namespaceSelector or ipBlock`},
		{"K8s ANY protocol is an error", knpHead + "  ingress: [{ports: [{protocol: ANY}]}]\n", `want TCP, UDP or SCTP`},
		{"K8s missing podSelector is an error", "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {}\n", `podSelector is required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pols, err := Parse("x.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("no error; policies %+v", pols)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryErrorAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {}\n  egress:\n  - toServices: []\n  - toPorts: [{ports: [{port: dns}]}]\n"), 0o644)
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}, ingress: [{}]}\n"), 0o644)
	again := filepath.Join(dir, "again.yaml")
	os.WriteFile(again, []byte("apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}, ingress: [{}]}\n"), 0o644)
	errs, _ := Validate(bad, good, again, filepath.Join(dir, "missing.yaml"))
	if len(errs) != 4 {
		t.Fatalf("got %d errors: %v", len(errs), errs)
	}
	if !strings.HasPrefix(errs[0].Error(), bad+":7:5: ") || !strings.HasPrefix(errs[1].Error(), bad+":8:31: ") {
		t.Fatalf("positions: %v", errs)
	}
	if !strings.Contains(errs[2].Error(), "already defined at "+good+":1:1") {
		t.Fatalf("duplicate: %v", errs[2])
	}
}

func TestAliasBombsAreRefused(t *testing.T) {
	doc := "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
	prev := "a"
	for i := 0; i < 8; i++ {
		name := string(rune('b' + i))
		doc += name + ": &" + name + " [*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + "]\n"
		prev = name
	}
	doc = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec:\n  endpointSelector: {}\n  ingress:\n  - fromCIDR: *" + prev + "\n" + "x:\n  " + strings.ReplaceAll(strings.TrimSpace(doc), "\n", "\n  ") + "\n"
	// Either the alias graph is rejected or the budget stops the walk; it must
	// not hang or panic.
	if _, err := Parse("bomb.yaml", []byte(doc)); err == nil {
		t.Fatal("alias bomb accepted")
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("testdata/all_fields.yaml")
	f.Add(seed)
	f.Add([]byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {}, ingress: [{}]}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("--- \n---\n- 1\n"))
	f.Add([]byte(cnpText("a") + "...\n%YAML 1.1\n--- # b\n" + cnpText("b")))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, _, err := ParseDocuments("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, d := range docs {
			Evaluate([]*Policy{d.Policy}, Endpoint{Namespace: "default", Labels: []string{"k8s:app=a"}},
				Peer{Identity: 2, Labels: []string{"reserved:world"}}, Ingress, 6, 80, 0)
			// A document's text is what the store persists: it must parse
			// alone to the same policy.
			alone, err := Parse("alone.yaml", []byte(d.Text))
			if err != nil || len(alone) != 1 {
				t.Fatalf("text %q of %q parses alone to %d policies, %v", d.Text, data, len(alone), err)
			}
			want := *d.Policy
			alone[0].Source, want.Source = "", ""
			if !reflect.DeepEqual(alone[0], &want) {
				t.Fatalf("text %q of %q parses alone to another policy", d.Text, data)
			}
		}
	})
}
