package xds

import (
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
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
			if len(snap.Listeners) != len(tc.ls) || len(snap.Routes) != len(tc.ls) || len(snap.Clusters) != 1 {
				t.Fatalf("%d listeners, %d routes, %d clusters", len(snap.Listeners), len(snap.Routes), len(snap.Clusters))
			}
			for _, l := range tc.ls {
				lis := listenerNamed(snap, l.Name())
				if lis == nil {
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

// listenerNamed is snap's listener called name, or nil.
func listenerNamed(snap *Snapshot, name string) *listener.Listener {
	for _, l := range snap.Listeners {
		if l.GetName() == name {
			return l
		}
	}
	return nil
}

func TestSnapshotCheck(t *testing.T) {
	build := func(t *testing.T) *Snapshot {
		snap, err := Build("1", []Listener{{Endpoint: 7, Direction: "ingress", Port: 80, ProxyPort: 15100}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	for _, tc := range []struct {
		name   string
		change func(*Snapshot)
		err    string
	}{
		{"as built", func(*Snapshot) {}, ""},
		{"no version", func(s *Snapshot) { s.Version = "" }, "no version"},
		{"a listener's routes missing", func(s *Snapshot) { s.Routes = nil }, "which it lacks"},
		{"routes no listener names", func(s *Snapshot) {
			s.Routes = append(s.Routes, &route.RouteConfiguration{Name: "orphan"})
		}, `"orphan" is named by no listener`},
		{"a cluster twice", func(s *Snapshot) { s.Clusters = append(s.Clusters, s.Clusters[0]) }, "twice"},
		{"a listener without a name", func(s *Snapshot) { s.Listeners = append(s.Listeners, &listener.Listener{}) }, `listener named ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := build(t)
			tc.change(snap)
			err := snap.Check()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}
