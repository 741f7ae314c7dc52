package policy

import (
	"reflect"
	"testing"
)

func TestEvaluateHTTP(t *testing.T) {
	cnp := func(name, spec string) string {
		return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: " + name + "}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n" + spec + "---\n"
	}
	getPublic := cnp("get-public", "  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{method: GET, path: '/public/.*'}]}}]\n")
	postAll := cnp("post", "  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{method: POST}]}}]\n")
	l4 := cnp("l4", "  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: '80', protocol: TCP}]}]\n")
	deny := cnp("deny", "  ingressDeny:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n")
	web := Endpoint{Namespace: "default", Labels: []string{"k8s:app=web"}}
	client := Peer{Identity: 1000, Labels: []string{"k8s:app=client", "k8s:" + NamespaceLabel + "=default"}}
	other := Peer{Identity: 1001, Labels: []string{"k8s:app=other", "k8s:" + NamespaceLabel + "=default"}}
	get := HTTPRequest{Method: "GET", Path: "/public/index.html"}
	admin := HTTPRequest{Method: "GET", Path: "/admin"}
	post := HTTPRequest{Method: "POST", Path: "/admin"}
	id := func(name string) ID { return ID{Kind: KindCNP, Namespace: "default", Name: name} }
	for _, tc := range []struct {
		name     string
		policies string
		peer     Peer
		port     uint16
		req      HTTPRequest
		want     Decision
	}{
		{"a matching request passes, naming its policy", getPublic, client, 80, get, Decision{Allowed, []ID{id("get-public")}}},
		{"another request of the allowed peer is denied at L7", getPublic, client, 80, admin, Decision{DeniedL7, []ID{id("get-public")}}},
		{"a peer L3/L4 does not allow never reaches L7", getPublic, other, 80, get, Decision{Verdict: Denied}},
		{"another port: L3/L4 decides", getPublic, client, 81, admin, Decision{Verdict: Denied}},
		{"rules of two policies union", getPublic + postAll, client, 80, post, Decision{Allowed, []ID{id("post")}}},
		{"neither policy's rule: denied naming both", getPublic + postAll, client, 80, HTTPRequest{Method: "DELETE", Path: "/x"}, Decision{DeniedL7, []ID{id("get-public"), id("post")}}},
		{"an L3/L4 allow on the port lets every request pass", getPublic + l4, client, 80, admin, Decision{Allowed, []ID{id("get-public"), id("l4")}}},
		{"an L3/L4 deny beats the L7 allow", getPublic + deny, client, 80, get, Decision{DeniedByDeny, []ID{id("deny")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pols, err := Parse("x.yaml", []byte(tc.policies))
			if err != nil {
				t.Fatal(err)
			}
			got := EvaluateHTTP(pols, web, tc.peer, Ingress, tc.port, tc.req)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%+v, want %+v", got, tc.want)
			}
			if HasL7(pols, web, Ingress, 80) != true || HasL7(pols, web, Egress, 80) || HasL7(pols, web, Ingress, 81) {
				t.Fatal("HasL7 is wrong")
			}
		})
	}
}
