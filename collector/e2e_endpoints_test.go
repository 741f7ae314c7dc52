package collector_test

import (
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/collector"
)

// TestResolveRefusesAnInterfaceThatIsNoVeth: an endpoint's interface is the
// host end of its veth pair; a bridge (or lo, refused by validation) would
// put the endpoint's programs and policy on the host's own traffic.
func TestResolveRefusesAnInterfaceThatIsNoVeth(t *testing.T) {
	lab := newE2ELab(t)
	_, err := collector.Resolve(&collector.Config{Endpoints: []collector.EndpointConfig{{Name: "web", Interface: lab.Bridge.Name}}})
	if err == nil || !strings.Contains(err.Error(), "resolve endpoint default/web: host interface "+lab.Bridge.Name+" is a bridge, not a veth") {
		t.Errorf("Resolve: %v; want the bridge refused", err)
	}
	_, err = collector.Resolve(&collector.Config{Endpoints: []collector.EndpointConfig{{Name: "web", Interface: "lo"}}})
	if err == nil || !strings.Contains(err.Error(), `interface "lo": the host's loopback is no endpoint's`) {
		t.Errorf("Resolve: %v; want lo refused", err)
	}
}
