package policy

import (
	"reflect"
	"strings"
	"testing"
)

const deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  replicas: 2\n  template: {spec: {containers: [{name: web, image: nginx}]}}\n"
const service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec: {ports: [{port: 80}]}\n"

func TestOtherKubernetesObjectsAreSkippedWithANote(t *testing.T) {
	in := deployment + "---\n" + cnpText("a") + "---\n" + service + "---\n" + cnpText("b")
	docs, skipped, err := ParseDocuments("app.yaml", []byte(in))
	if err != nil {
		t.Fatalf("a file mixing policies with other objects refused: %v", err)
	}
	var names []string
	for _, d := range docs {
		names = append(names, d.Policy.Name)
	}
	if !reflect.DeepEqual(names, []string{"a", "b"}) {
		t.Fatalf("policies %v, want [a b]", names)
	}
	var notes []string
	for _, s := range skipped {
		notes = append(notes, s.String())
	}
	want := []string{
		`app.yaml:1:1: skipped Deployment "web" (apps/v1): not a network policy`,
		`app.yaml:15:1: skipped Service "web" (v1): not a network policy`,
	}
	if !reflect.DeepEqual(notes, want) {
		t.Fatalf("notes\n%q\nwant\n%q", notes, want)
	}
	for _, d := range docs {
		if strings.Contains(d.Text, "Deployment") || strings.Contains(d.Text, "Service") {
			t.Errorf("policy %s's text holds a skipped object: %q", d.Policy.Name, d.Text)
		}
	}
}

func TestDocumentsThatMayBeMeantAsPoliciesAreRefusedNotSkipped(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"no kind", "apiVersion: cilium.io/v2\nmetadata: {name: p}\n", "x.yaml:8:1: document without kind"},
		{"no apiVersion", "kind: Deployment\nmetadata: {name: p}\n", "x.yaml:8:1: Deployment without apiVersion"},
		{"a list", "apiVersion: v1\nkind: List\nitems: []\n", `x.yaml:9:7: kind "List": lists are not read`},
		{"a policy list", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicyList\nitems: []\n", `kind "CiliumNetworkPolicyList": lists are not read`},
		{"an admin network policy", "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: p}\n",
			`x.yaml:9:7: kind "AdminNetworkPolicy" (policy.networking.k8s.io/v1alpha1) is a network policy Periscope does not enforce`},
		{"a misspelt kind", "apiVersion: cilium.io/v2\nkind: CiliumNetworkpolicy\nmetadata: {name: p}\n", `kind "CiliumNetworkpolicy" (cilium.io/v2) is a network policy Periscope does not enforce`},
		{"a policy kind of another API", "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p}\n", `apiVersion "projectcalico.org/v3"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseDocuments("x.yaml", []byte(deployment+"---\n"+tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
