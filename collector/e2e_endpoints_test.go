package collector_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/enforcer/policystore"
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

// keptRun is one run of a collector with a policy store, as the collector
// command wires them, over the real datapath and an endpoint state file.
type keptRun struct {
	c     *collector.Collector
	store *policystore.Store
	base  string
	stop  func()
}

func startKeptRun(t *testing.T, cfg *collector.Config, pin, state, policyDir string, log *logBuffer) *keptRun {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(log, nil))
	dp, err := datapath.Load(datapath.Config{PinPath: pin, Logger: logger, ReportInterval: time.Hour})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Options{Config: cfg, Sources: []collector.Source{dp}, Attacher: dp, Listener: ln,
		Interfaces: dp.Interfaces, EndpointState: state, Logger: logger})
	if err != nil {
		dp.Close()
		t.Fatalf("collector: %v", err)
	}
	store, err := policystore.New(policystore.Options{Dir: policyDir, Applier: dp, Endpoints: c, Logger: logger})
	if err != nil {
		dp.Close()
		t.Fatalf("policy store: %v", err)
	}
	c.OnEndpointsChange(store.Refresh)
	stopCollector := apitest.Start(t, "collector", c)
	var once sync.Once
	r := &keptRun{c: c, store: store, base: "http://" + c.Addr().String(), stop: func() {
		once.Do(func() {
			stopCollector()
			if err := dp.Close(); err != nil {
				t.Errorf("close datapath: %v", err)
			}
		})
	}}
	t.Cleanup(r.stop)
	return r
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAnEndpointTheFileNoLongerDeclaresIsKeptUntilRemoved: a policy
// selects the server pod. A restart with an endpoints file that omits the
// server keeps it: it stays enforced (a denied port stays denied), status
// and the log say so, and a clean stop leaves its programs attached. Only
// an explicit removal (DELETE /api/v1/endpoints/default/server) stops
// enforcing it: its programs are detached, and the next run does not keep it.
func TestAnEndpointTheFileNoLongerDeclaresIsKeptUntilRemoved(t *testing.T) {
	lab := newE2ELab(t)
	client, err := lab.AddPod(netlab.PodSpec{Name: "client", Labels: map[string]string{"app": "client"}})
	if err != nil {
		t.Fatal(err)
	}
	server, err := lab.AddPod(netlab.PodSpec{Name: "server", Labels: map[string]string{"app": "server"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []uint16{8080, 8081} {
		labtest.ServeTCP(t, server, port, nil)
	}
	pin := netlab.PinPath(t, "e2e-kept")
	dir := t.TempDir()
	state, policyDir := filepath.Join(dir, "endpoints.json"), filepath.Join(dir, "policies")
	ep := func(p *netlab.Pod) collector.EndpointConfig {
		return collector.EndpointConfig{Name: p.Name, Labels: p.Labels, NetNS: p.NetNSName}
	}
	both := &collector.Config{Endpoints: []collector.EndpointConfig{ep(client), ep(server)}}
	clientOnly := &collector.Config{Endpoints: []collector.EndpointConfig{ep(client)}}
	connects := func(port uint16) bool {
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		c, err := client.DialTCP(ctx, netip.AddrPortFrom(server.IPv4, port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	enforced := func(when string) {
		t.Helper()
		if !connects(8080) || connects(8081) {
			t.Fatalf("%s: the server's policy is not in force (8080 must connect, 8081 must not)", when)
		}
	}
	programs := func() int {
		ifc, err := netlink.LinkByIndex(server.HostVeth.Index)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Attrs().Index, Attach: a})
			if err != nil {
				t.Fatal(err)
			}
			n += len(res.Programs)
		}
		return n
	}

	log1 := &logBuffer{}
	run1 := startKeptRun(t, both, pin, state, policyDir, log1)
	policyYAML := "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: server-in, namespace: default}\n" +
		"spec:\n  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n" +
		"    toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]\n"
	if _, _, err := run1.store.Apply("server-in.yaml", []byte(policyYAML)); err != nil {
		t.Fatal(err)
	}
	enforced("first run")
	run1.stop()

	log2 := &logBuffer{}
	run2 := startKeptRun(t, clientOnly, pin, state, policyDir, log2)
	enforced("a run whose file omits the server")
	var st collector.Status
	getJSON(t, run2.base+"/api/v1/status", &st)
	if len(st.Endpoints) != 2 || st.Endpoints[1].Name != "server" || !strings.Contains(st.Endpoints[1].Kept, "periscope endpoint remove default/server") {
		t.Errorf("status endpoints %+v, want the server kept", st.Endpoints)
	}
	if !strings.Contains(log2.String(), "endpoint kept") || !strings.Contains(log2.String(), "endpoint=default/server") {
		t.Errorf("the log does not say the server is kept:\n%s", log2)
	}
	run2.stop()
	if n := programs(); n != 2 {
		t.Fatalf("a clean stop left %d programs on the kept server's interface, want its 2", n)
	}
	enforced("no collector")

	run3 := startKeptRun(t, clientOnly, pin, state, policyDir, &logBuffer{})
	enforced("the next run")
	req, _ := http.NewRequest(http.MethodDelete, run3.base+collector.EndpointPath("default", "server"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE the server: %s", resp.Status)
	}
	if n := programs(); n != 0 {
		t.Errorf("%d programs left on the removed server's interface", n)
	}
	if !connects(8081) {
		t.Error("the removed server is still enforced")
	}
	run3.stop()

	log4 := &logBuffer{}
	run4 := startKeptRun(t, clientOnly, pin, state, policyDir, log4)
	getJSON(t, run4.base+"/api/v1/status", &st)
	if len(st.Endpoints) != 1 || st.Endpoints[0].Name != "client" || strings.Contains(log4.String(), "endpoint kept") {
		t.Errorf("after the removal the next run has %+v", st.Endpoints)
	}
	// The policy selects nothing now: the run leaves nothing behind.
	run4.stop()
}
