package compile

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// TestTheHostEndpointIsCompiledOnItsDevices: host policies select the host
// endpoint (one per host device) by the node's labels; its devices are
// flagged FlagHostDevice, stay out of LocalIngress, and the host identity
// carries the node's labels so peer selectors on them select the host.
func TestTheHostEndpointIsCompiledOnItsDevices(t *testing.T) {
	pols, err := policy.Parse("h.yaml", []byte(`apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: host-ssh}
spec:
  nodeSelector: {matchLabels: {node-access: ssh}}
  ingress:
  - fromEntities: [remote-node]
    toPorts: [{ports: [{port: "22", protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: to-ssh-nodes, namespace: default}
spec:
  endpointSelector: {}
  egress: [{toEndpoints: [{matchLabels: {reserved:host: "", node-access: ssh}}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	hostLabels := []string{"k8s:node-access=ssh", "reserved:host"}
	c, err := Compile(Input{Policies: pols, Endpoints: []Endpoint{
		{ID: 2, Identity: uint32(identity.Host), Labels: hostLabels, Host: true},
		{ID: 3, Identity: uint32(identity.Host), Labels: hostLabels, Host: true},
		{ID: 10, Identity: 1000, Namespace: "default", Labels: []string{"k8s:app=web"}, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.10")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range []uint32{2, 3} {
		if c.Flags[dev]&FlagHostDevice == 0 || !c.Enforce[dev].Ingress || c.Enforce[dev].Egress {
			t.Errorf("device %d: flags %b, enforcement %+v; want a host device in default deny at ingress", dev, c.Flags[dev], c.Enforce[dev])
		}
		if d := c.Decide(dev, uint32(identity.RemoteNode), policy.Ingress, 6, 22); d.Verdict != policy.Allowed || !slices.Equal(d.Refs(), []string{"host-ssh"}) {
			t.Errorf("device %d: remote-node to 22: %+v", dev, d)
		}
		if d := c.Decide(dev, uint32(identity.World), policy.Ingress, 6, 22); d.Verdict != policy.Denied {
			t.Errorf("device %d: world to 22: %+v", dev, d)
		}
	}
	if c.Flags[10]&FlagHostDevice != 0 {
		t.Errorf("a pod's endpoint is flagged a host device")
	}
	if d := c.Decide(10, uint32(identity.Host), policy.Egress, 6, 22); d.Verdict != policy.Allowed {
		t.Errorf("the host identity lacks the node's labels: pod to host %+v", d)
	}
	for a, ep := range c.LocalIngress {
		if ep == 2 || ep == 3 {
			t.Errorf("host device %d in LocalIngress (%s)", ep, a)
		}
	}
}
