package policystore

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serveTestStore serves the policy and identity API of a store over a
// fake kernel.
func serveTestStore(t *testing.T) string {
	t.Helper()
	s := newTestStore(t, t.TempDir(), &fakeApplier{})
	mux := http.NewServeMux()
	for pattern, h := range s.Handlers() {
		mux.Handle(pattern, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

const clusterTestPolicy = `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: web}
spec:
  endpointSelector: {matchLabels: {app: backend}}
  egress: [{toEntities: [world]}]
`

// TestPolicyAPIAnswers pins the policy API's paths, status codes, content
// types and bodies byte for byte: clients (the CLI, scripts) depend on them.
func TestPolicyAPIAnswers(t *testing.T) {
	base := serveTestStore(t)
	twoA := "# first\n" + strings.Replace(storeTestPolicy, "name: web", "name: a", 1)
	twoB := strings.Replace(storeTestPolicy, "name: web", "name: b", 1) + "# trailing comment\n"
	steps := []struct {
		name, method, path, body string
		code                     int
		contentType, want        string
	}{
		{"an empty store lists nothing", "GET", "/api/v1/policies", "",
			200, "application/json", "[]\n"},
		{"a policy applies at revision 2", "POST", "/api/v1/policies?file=web.yaml", storeTestPolicy,
			200, "application/json", `{"applied":[{"kind":"CiliumNetworkPolicy","namespace":"default","name":"web","revision":2}]}` + "\n"},
		{"the list names it", "GET", "/api/v1/policies", "",
			200, "application/json", `[{"kind":"CiliumNetworkPolicy","namespace":"default","name":"web","revision":2}]` + "\n"},
		{"get returns its YAML as applied", "GET", "/api/v1/policies/default/web", "",
			200, "application/yaml", storeTestPolicy},
		{"a clusterwide policy of the same name applies", "POST", "/api/v1/policies", "# cluster\n---\n" + clusterTestPolicy,
			200, "application/json", `{"applied":[{"kind":"CiliumClusterwideNetworkPolicy","namespace":"","name":"web","revision":3}]}` + "\n"},
		{"get of - is the clusterwide one", "GET", "/api/v1/policies/-/web", "",
			200, "application/yaml", clusterTestPolicy},
		{"the documents of one body apply in one change", "POST", "/api/v1/policies?file=two.yaml", twoA + "---\n" + twoB,
			200, "application/json", `{"applied":[{"kind":"CiliumNetworkPolicy","namespace":"default","name":"a","revision":4},{"kind":"CiliumNetworkPolicy","namespace":"default","name":"b","revision":4}]}` + "\n"},
		{"get returns the first document's own text", "GET", "/api/v1/policies/default/a", "",
			200, "application/yaml", twoA},
		{"get returns the second document's own text", "GET", "/api/v1/policies/default/b", "",
			200, "application/yaml", twoB},
		{"every document is refused with its position", "POST", "/api/v1/policies?file=bad.yaml",
			strings.Replace(storeTestPolicy, "world", "nowhere", 1) + "---\n" + strings.Replace(storeTestPolicy, "ingress", "ingres", 1),
			400, "application/json", `{"errors":["bad.yaml:6:29: fromEntities: entity \"nowhere\" is not supported (want all, world, cluster, host, remote-node, kube-apiserver, health, init, unmanaged, ingress or none)","bad.yaml:13:3: unknown field \"ingres\" in spec"]}` + "\n"},
		{"an empty body is refused", "POST", "/api/v1/policies", "",
			400, "application/json", `{"errors":["request: no policy in input"]}` + "\n"},
		{"a body over 4 MiB is refused", "POST", "/api/v1/policies", strings.Repeat("#", 4<<20+1),
			413, "application/json", `{"errors":["http: request body too large"]}` + "\n"},
		{"get of an unknown policy is 404", "GET", "/api/v1/policies/default/nope", "",
			404, "text/plain; charset=utf-8", "policy not found\n"},
		{"other Kubernetes objects are skipped with a note", "POST", "/api/v1/policies?file=app.yaml",
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: shop}\n---\n" + twoA,
			200, "application/json", `{"applied":[{"kind":"CiliumNetworkPolicy","namespace":"default","name":"a","revision":5}],"skipped":["app.yaml:1:1: skipped Deployment \"shop\" (apps/v1): not a network policy"]}` + "\n"},
		{"a body of other objects only is refused, with the notes", "POST", "/api/v1/policies?file=svc.yaml",
			"apiVersion: v1\nkind: Service\nmetadata: {name: shop}\n",
			400, "application/json", `{"errors":["svc.yaml: no policy in input (1 other object(s) skipped)"],"skipped":["svc.yaml:1:1: skipped Service \"shop\" (v1): not a network policy"]}` + "\n"},
		{"delete by kind removes one", "DELETE", "/api/v1/policies/-/web?kind=CiliumClusterwideNetworkPolicy", "",
			200, "application/json", `{"deleted":1}` + "\n"},
		{"delete removes the rest", "DELETE", "/api/v1/policies/default/web", "",
			200, "application/json", `{"deleted":1}` + "\n"},
		{"delete of an unknown policy is 404", "DELETE", "/api/v1/policies/default/web", "",
			404, "text/plain; charset=utf-8", "policy not found\n"},
	}
	for _, st := range steps {
		req, err := http.NewRequest(st.method, base+st.path, strings.NewReader(st.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != st.code || resp.Header.Get("Content-Type") != st.contentType || string(body) != st.want {
			t.Errorf("%s: %s %s answered %d %q\n%s\nwant %d %q\n%s", st.name, st.method, st.path,
				resp.StatusCode, resp.Header.Get("Content-Type"), body, st.code, st.contentType, st.want)
		}
	}
}

func TestIdentityAPIListsReservedAndEndpointIdentities(t *testing.T) {
	base := serveTestStore(t)
	resp, err := http.Get(base + "/api/v1/identities")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("answered %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`[{"id":1,"labels":["reserved:host"]},{"id":2,"labels":["reserved:world"]},`,
		`"labels":["k8s:app=frontend","k8s:io.kubernetes.pod.namespace=default","k8s:tier=web"]}`,
		`"labels":["k8s:io.kubernetes.pod.namespace=shop"]}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("identities %s\nlack %s", body, want)
		}
	}
}
