package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// TestCollectorWithEnvoyServesL7Flows runs the built binary with --envoy
// and --proxy-redirect web:8080: requests from a peer pod to web's port
// 8080 reach web from the peer's address through the supervised Envoy,
// and come out of the collector's API as L7 flows attributed to both pods.
func TestCollectorWithEnvoyServesL7Flows(t *testing.T) {
	labtest.RequireRoot(t)
	envoyBin := envoyBinary(t)
	dir := t.TempDir()
	bin := buildPeriscope(t, dir)
	lab := labtest.NewLab(t)
	web, err := lab.AddPod(netlab.PodSpec{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	peer, err := lab.AddPod(netlab.PodSpec{Name: "peer"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := web.ListenTCP(8080)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, _ := netip.ParseAddrPort(r.RemoteAddr)
		fmt.Fprintf(w, "client=%s", ap.Addr().Unmap())
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	cfg := filepath.Join(dir, "node.yaml")
	yaml := fmt.Sprintf("node_name: l7\nendpoints:\n  - name: web\n    labels: {app: web}\n    interface: %s\n    ips: [%s, %s]\n"+
		"  - name: peer\n    labels: {app: peer}\n    interface: %s\n    ips: [%s, %s]\n",
		web.HostVeth.Name, web.IPv4, web.IPv6, peer.HostVeth.Name, peer.IPv4, peer.IPv6)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	pin := fmt.Sprintf("/sys/fs/bpf/periscope-l7-%d-%d", os.Getpid(), time.Now().UnixNano())
	listen := freeAddr(t)
	cmd := exec.Command(bin, "collector", "--config", cfg, "--listen", listen, "--bpf-pin-path", pin,
		"--api-socket", filepath.Join(dir, "api.sock"), "--hubble-listen", "", "--ui=false", "--sock-events=false",
		"--identity-state", filepath.Join(dir, "ids.json"), "--policy-dir", filepath.Join(dir, "policies"),
		"--endpoint-state", filepath.Join(dir, "endpoints.json"),
		"--envoy", "--envoy-binary", envoyBin, "--envoy-socket", filepath.Join(dir, "envoy.sock"),
		"--envoy-admin", "127.0.0.1:0", "--proxy-redirect", "web:8080")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(pin)
	})
	base := "http://" + listen
	waitHealthy(t, base, exited, &out)

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
			t.Fatalf("no L7 flow in 30s; output:\n%s", out.String())
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
