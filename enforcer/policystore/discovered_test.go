package policystore

import (
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/discovery"
)

// TestPolicyObjectsAreAppliedAsIfByPolicyApply follows a watcher's policy
// events through the store: an object is applied, replaced, refused (with
// the error policy apply gives, the rest and its previous version staying
// in force) and removed.
func TestPolicyObjectsAreAppliedAsIfByPolicyApply(t *testing.T) {
	s := newTestStore(t, t.TempDir(), &fakeApplier{})
	cnp := func(name, spec string) []byte {
		return []byte(`{"apiVersion":"cilium.io/v2","kind":"CiliumNetworkPolicy","metadata":{"name":"` + name +
			`","namespace":"default"},"spec":{"endpointSelector":{"matchLabels":{"app":"frontend"}},` + spec + `}}`)
	}
	ev := func(kind discovery.EventKind, objKind, ns, name string, src []byte) discovery.PolicyEvent {
		return discovery.PolicyEvent{Kind: kind, ObjectKind: objKind, Namespace: ns, Name: name, Source: src}
	}
	allow := cnp("web", `"ingress":[{"fromEntities":["world"]}]`)
	allowHost := cnp("web", `"ingress":[{"fromEntities":["host"]}]`)
	refused := cnp("web", `"egress":[{"toServices":[]}]`)
	other := cnp("other", `"ingress":[{"fromEntities":["world"]}]`)
	ccnp := []byte(`{"apiVersion":"cilium.io/v2","kind":"CiliumClusterwideNetworkPolicy","metadata":{"name":"all"},` +
		`"spec":{"endpointSelector":{},"ingress":[{"fromEntities":["cluster"]}]}}`)
	tests := []struct {
		name    string
		ev      discovery.PolicyEvent
		wantErr string
		want    map[string]string // policy name -> a piece of its document
	}{
		{"added: applied", ev(discovery.Added, "CiliumNetworkPolicy", "default", "web", allow), "",
			map[string]string{"web": "world"}},
		{"another added", ev(discovery.Added, "CiliumNetworkPolicy", "default", "other", other), "",
			map[string]string{"web": "world", "other": "world"}},
		{"updated: replaced", ev(discovery.Updated, "CiliumNetworkPolicy", "default", "web", allowHost), "",
			map[string]string{"web": "host", "other": "world"}},
		{"an update with a field not enforced is refused; the previous version stays",
			ev(discovery.Updated, "CiliumNetworkPolicy", "default", "web", refused), `"toServices" is not enforced`,
			map[string]string{"web": "host", "other": "world"}},
		{"cluster-wide added", ev(discovery.Added, "CiliumClusterwideNetworkPolicy", "", "all", ccnp), "",
			map[string]string{"web": "host", "other": "world", "all": "cluster"}},
		{"deleted: removed", ev(discovery.Deleted, "CiliumNetworkPolicy", "default", "web", allowHost), "",
			map[string]string{"other": "world", "all": "cluster"}},
		{"cluster-wide deleted", ev(discovery.Deleted, "CiliumClusterwideNetworkPolicy", "", "all", ccnp), "",
			map[string]string{"other": "world"}},
		{"an object whose document names another is refused, and that other stays",
			ev(discovery.Added, "CiliumNetworkPolicy", "default", "third", other), "its document is CiliumNetworkPolicy default/other",
			map[string]string{"other": "world"}},
	}
	for _, tt := range tests {
		err := s.PolicyChanged(tt.ev)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Fatalf("%s: error %v, want %q", tt.name, err, tt.wantErr)
		}
		got := map[string]string{}
		for _, p := range s.List() {
			got[p.Name] = p.YAML
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%s: policies %v, want %v", tt.name, got, tt.want)
		}
		for name, piece := range tt.want {
			if !strings.Contains(got[name], piece) {
				t.Fatalf("%s: policy %s is %q, want it to say %q", tt.name, name, got[name], piece)
			}
		}
	}
}
