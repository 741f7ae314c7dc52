package xds

import (
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

func TestBuild(t *testing.T) {
	ok := Listener{Endpoint: 7, Direction: "ingress", Port: 80, ProxyPort: 15100, UpstreamMark: 0xb00}
	for _, tc := range []struct {
		name string
		ls   []Listener
		err  string
	}{
		{"no redirect: one cluster, no listener", nil, ""},
		{"two redirects", []Listener{ok, {Endpoint: 8, Direction: "egress", Port: 53, ProxyPort: 15101}}, ""},
		{"a bad regexp in L7 rules is refused", []Listener{{Endpoint: 7, Direction: "ingress", Port: 80, ProxyPort: 15100,
			Rules: Rules{Groups: []PeerGroup{{HTTP: []HTTPRule{{Method: "GET("}}}}}}}, "regexp"},
		{"a port equal to its proxy port is refused", []Listener{{Endpoint: 7, Direction: "ingress", Port: 80, ProxyPort: 80}}, "proxy port"},
		{"an unknown direction is refused", []Listener{{Endpoint: 7, Direction: "sideways", Port: 80, ProxyPort: 15100}}, "direction"},
		{"the same redirect twice is refused", []Listener{ok, ok}, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := Build("1", tc.ls, Options{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ls := snap.GetResources(resource.ListenerType)
			if len(ls) != len(tc.ls) || len(snap.GetResources(resource.RouteType)) != len(tc.ls) ||
				len(snap.GetResources(resource.ClusterType)) != 1 {
				t.Fatalf("%d listeners, %d routes, %d clusters", len(ls), len(snap.GetResources(resource.RouteType)),
					len(snap.GetResources(resource.ClusterType)))
			}
			for _, l := range tc.ls {
				lis, found := ls[l.Name()].(*listener.Listener)
				if !found {
					t.Fatalf("no listener %s", l.Name())
				}
				if !lis.GetTransparent().GetValue() || lis.GetAddress().GetSocketAddress().GetPortValue() != uint32(l.ProxyPort) ||
					lis.GetFilterChains()[0].GetFilterChainMatch().GetDestinationPort().GetValue() != uint32(l.Port) {
					t.Errorf("listener %s: %v", l.Name(), lis)
				}
			}
		})
	}
}
