package compile

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
	"github.com/periscope-dev/periscope/enforcer/policy/ciliumexample"
)

// Cilium's own HTTP example policies (read by package ciliumexample),
// compiled as the policy store compiles them, decide every request of
// every pair of endpoints as policy.EvaluateHTTP does (whose meaning
// enforcer/policy's conformance test holds to Cilium's documentation).
func TestCiliumHTTPExamplesCompileAsEvaluated(t *testing.T) {
	alloc, err := identity.NewAllocator("")
	if err != nil {
		t.Fatal(err)
	}
	var pods []Endpoint
	for i, l := range []string{"k8s:app=service", "k8s:env=prod", "k8s:env=dev", "k8s:app=myService", "k8s:id=web-server", "k8s:id=goodclient"} {
		id, err := alloc.Allocate(identity.NewLabels(l, "k8s:"+policy.NamespaceLabel+"=default"))
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, Endpoint{ID: uint32(10 + i), Identity: uint32(id), Namespace: "default", Labels: []string{l},
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})}})
	}
	requests := []policy.HTTPRequest{
		{Method: "GET", Path: "/public"}, {Method: "GET", Path: "/public/x"}, {Method: "POST", Path: "/public"},
		{Method: "GET", Path: "/path1"}, {Method: "GET", Path: "/path1x"},
		{Method: "PUT", Path: "/path2", Headers: map[string]string{"x-my-header": "true"}}, {Method: "PUT", Path: "/path2"},
		{Method: "POST", Path: "/", Host: "external-service.org"}, {Method: "POST", Path: "/", Host: "external-service.org.evil"},
	}
	for _, file := range []string{"l7/http/simple/l7.yaml", "l7/http/http.yaml", "l7/http/l7_multi.yaml", "getting-started/l7-policy.yaml"} {
		t.Run(file, func(t *testing.T) {
			pols, err := policy.ParseFile(ciliumexample.Path(t, file))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Compile(Input{Policies: pols, Endpoints: pods, Identities: alloc.List()})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.L7) == 0 {
				t.Fatal("no port goes through the L7 proxy")
			}
			denied := 0
			for _, local := range pods {
				for _, remote := range pods {
					peer := policy.Peer{Identity: remote.Identity, Labels: append(remote.Labels, "k8s:"+policy.NamespaceLabel+"=default"), IP: remote.IPs[0]}
					lp := policy.Endpoint{ID: local.ID, Namespace: local.Namespace, Labels: local.Labels}
					for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
						for _, port := range []uint16{80, 8181} {
							for _, req := range requests {
								want := policy.EvaluateHTTP(pols, lp, peer, dir, port, req)
								got := c.Decide(local.ID, remote.Identity, dir, 6, port)
								if got.Verdict.Forwarded() {
									got = c.decideRequest(local.ID, dir, port, remote.IPs[0], req, got)
								}
								if want.Verdict == policy.DeniedL7 {
									denied++
								}
								if got.Verdict.Forwarded() != want.Verdict.Forwarded() || (want.Verdict == policy.DeniedL7) != (got.Verdict == policy.DeniedL7) ||
									got.Verdict == policy.DeniedL7 && !reflect.DeepEqual(got.Policies, want.Policies) {
									t.Errorf("%v → %v %s port %d %+v: compiled %v %v, evaluated %v %v",
										remote.Labels, local.Labels, dir, port, req, got.Verdict, got.Policies, want.Verdict, want.Policies)
								}
							}
						}
					}
				}
			}
			if denied == 0 {
				t.Error("no request was denied at L7: the example was not exercised")
			}
		})
	}
}
