package collector_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// TestCollectorWithRealDatapath runs the whole node: two pods on a netlab
// bridge declared by netns only, the real datapath, and the HTTP API.
func TestCollectorWithRealDatapath(t *testing.T) {
	labtest.RequireRoot(t)
	lab := labtest.NewLab(t)
	pods := addPods(t, lab, netlab.PodSpec{Name: "client"}, netlab.PodSpec{Name: "server"})
	client, server := pods[0], pods[1]

	cfg := &collector.Config{
		NodeName: "itest",
		Endpoints: []collector.EndpointConfig{
			{Name: "client", Labels: map[string]string{"app": "client"}, NetNS: client.NetNSPath},
			{Name: "server", Namespace: "shop", NetNS: server.NetNSName},
		},
	}
	topo, err := collector.Resolve(cfg)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	for i, pod := range []*netlab.Pod{client, server} {
		ep := topo.Endpoints[i]
		if ep.HostIfName != pod.HostVeth.Name || int(ep.HostIfIndex) != pod.HostVeth.Index {
			t.Errorf("%s: host veth %s/%d, want %s/%d", pod.Name, ep.HostIfName, ep.HostIfIndex, pod.HostVeth.Name, pod.HostVeth.Index)
		}
		if !slices.Contains(ep.IPs, pod.IPv4) || !slices.Contains(ep.IPs, pod.IPv6) {
			t.Errorf("%s: IPs %v, want %s and %s", pod.Name, ep.IPs, pod.IPv4, pod.IPv6)
		}
	}

	dp, err := datapath.Load(datapath.Config{
		PinPath: netlab.PinPath(t, "ctest"),
	})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(func() {
		if err := dp.Close(); err != nil {
			t.Errorf("close datapath: %v", err)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Options{Topology: topo, Sources: []collector.Source{dp}, Attacher: dp, Listener: ln, Interfaces: dp.Interfaces,
		Stats: func() collector.DatapathStats {
			s := dp.Stats()
			return collector.DatapathStats{EventsRead: s.EventsRead, EventsLost: s.EventsLost, EventsEmitted: s.EventsEmitted, FlowsEnded: s.FlowsEnded}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "collector", c)
	base := "http://" + c.Addr().String()

	// Follow before the traffic: the flow must also arrive live.
	q := url.Values{"follow": {"1"}, "filter": {"from:pod=client", "to:pod=shop/server", "port=8080"}}
	resp, err := http.Get(base + "/api/v1/flows?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	srv, err := server.ListenTCP(8080)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		conn, err := srv.Accept()
		if err == nil {
			io.Copy(conn, conn)
			conn.Close()
		}
	}()
	conn, err := client.DialTCP(t.Context(), netip.AddrPortFrom(server.IPv4, 8080))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "hello")
	conn.Read(make([]byte, 5))
	conn.Close()

	lines := bufio.NewScanner(resp.Body)
	deadline := time.AfterFunc(15*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	// The connection's record holds both veths, each with its direction.
	seen := map[string]api.TrafficDirection{}
	for len(seen) < 2 && lines.Scan() {
		var f api.Flow
		if err := api.ParseJSON(lines.Bytes(), &f); err != nil {
			t.Fatalf("parse %s: %v", lines.Text(), err)
		}
		if f.NodeName != "itest" || f.Source.Workload != "client" || f.Destination.Namespace != "shop" ||
			!slices.Contains(f.Source.Labels, "k8s:app=client") || f.Source.Identity < 256 {
			t.Errorf("badly enriched flow: %s", lines.Text())
		}
		seen[f.Interface.Name] = f.TrafficDirection
		if f.Paired() {
			seen[f.Other.Interface.Name] = f.Other.TrafficDirection
		}
	}
	if got := seen[client.HostVeth.Name]; got != api.TrafficDirectionEgress {
		t.Errorf("direction on the client's veth %v, want EGRESS (seen %v)", got, seen)
	}
	if got := seen[server.HostVeth.Name]; got != api.TrafficDirectionIngress {
		t.Errorf("direction on the server's veth %v, want INGRESS (seen %v)", got, seen)
	}

	st := c.Status()
	if st.EventsRead == 0 || st.FlowsSeen == 0 || len(st.AttachedInterfaces) != 2 {
		t.Errorf("status %+v", st)
	}
}
