package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/cmd/periscope/periscopetest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy/envoy/envoytest"
)

// TestCollectorWithEnvoyServesL7Flows runs the built binary with --envoy
// and --proxy-redirect web:8080: requests from a peer pod to web's port
// 8080 reach web from the peer's address through the supervised Envoy,
// and come out of the collector's API as L7 flows attributed to both pods.
func TestCollectorWithEnvoyServesL7Flows(t *testing.T) {
	labtest.RequireRoot(t)
	envoyBin := envoytest.Binary(t)
	dir := t.TempDir()
	bin := periscopetest.Build(t)
	web, peer, cfg := webAndPeer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, _ := netip.ParseAddrPort(r.RemoteAddr)
		fmt.Fprintf(w, "client=%s", ap.Addr().Unmap())
	}))
	c := periscopetest.StartCollector(t, bin, nil, "--config", cfg, "--hubble-listen", "", "--ui=false", "--sock-events=false",
		"--envoy", "--envoy-binary", envoyBin, "--envoy-socket", filepath.Join(dir, "envoy.sock"),
		"--envoy-admin", "127.0.0.1:0", "--proxy-redirect", "web:8080")
	base := c.URL

	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return peer.DialTCP(ctx, netip.MustParseAddrPort(addr))
		}}}
	url := "http://" + netip.AddrPortFrom(web.IPv4, 8080).String() + "/hello"
	// Envoy takes a moment to start and get its listener, and the
	// redirect is set once it has: ask until an L7 flow shows the request
	// went through it.
	var l7 []api.Flow
	deadline := time.Now().Add(30 * time.Second)
	for len(l7) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no L7 flow in 30s; output:\n%s", c.Output.String())
		}
		resp, err := client.Get(url)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "client="+peer.IPv4.String() {
			t.Fatalf("web answered %q, want it to see the peer %s", b, peer.IPv4)
		}
		time.Sleep(300 * time.Millisecond) // Envoy flushes its access log every 100ms
		for _, f := range getFlows(t, base, "from:pod=default/web") {
			if f.Type == api.FlowTypeL7 {
				l7 = append(l7, f)
			}
		}
	}
	f := l7[0]
	// The response goes from the server back to the client, as Hubble's.
	if f.Source.PodName != "web" || f.Destination.PodName != "peer" || f.L4.SourcePort != 8080 || !f.IsReply ||
		f.TrafficDirection != api.TrafficDirectionIngress || f.NodeName != "l7" {
		t.Errorf("L7 flow %+v", f)
	}
}

// webAndPeer adds the pods web and peer (labelled app=web and app=peer) to
// a lab of the test's own, serves h on web's port 8080 until the test ends,
// and writes the endpoints file of node l7 that declares both by their host
// veth and addresses; it returns the pods and the file's path.
func webAndPeer(t *testing.T, h http.Handler) (web, peer *netlab.Pod, endpointsFile string) {
	t.Helper()
	lab := labtest.NewLab(t)
	cfg := collector.Config{NodeName: "l7"}
	for _, name := range []string{"web", "peer"} {
		p, err := lab.AddPod(netlab.PodSpec{Name: name, Labels: map[string]string{"app": name}})
		if err != nil {
			t.Fatal(err)
		}
		ep := periscopetest.PodEndpoint(p)
		ep.NetNS = "" // declared by its host veth
		cfg.Endpoints = append(cfg.Endpoints, ep)
		if name == "web" {
			web = p
		} else {
			peer = p
		}
	}
	ln, err := web.ListenTCP(8080)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return web, peer, periscopetest.EndpointsFile(t, cfg)
}
