package periscopetest

import (
	"reflect"
	"testing"

	"github.com/periscope-dev/periscope/collector"
)

func TestEndpointsFileIsReadBackAsWritten(t *testing.T) {
	want := collector.Config{NodeName: "l7", Endpoints: []collector.EndpointConfig{
		{Name: "web", Namespace: "shop", Labels: map[string]string{"app": "web"}, Interface: "psc-web", IPs: []string{"198.18.0.2", "fd00::2"}, Audit: true},
		{Name: "peer", Labels: map[string]string{"app": "peer"}, Interface: "psc-peer", IPs: []string{"198.18.0.3"}},
	}}
	got, err := collector.LoadConfig(EndpointsFile(t, want))
	if err != nil {
		t.Fatalf("the collector refuses the endpoints file: %v", err)
	}
	if !reflect.DeepEqual(got.Endpoints, want.Endpoints) || got.NodeName != want.NodeName {
		t.Fatalf("read back %+v, want %+v", *got, want)
	}
}
