package ui

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/relay"
	"github.com/periscope-dev/periscope/ui/uitest"
)

// TestBrowserAgainstRelayAndCollectorsWithRealTraffic is the whole stack in
// one piece: pods in network namespaces exchange real packets, two
// collectors (node-a with frontend and backend, node-b with db) see them
// through their own datapaths, a relay merges both, and the relay's web UI
// is driven in headless Chromium. Each collector knows the other node's pods
// by address only (as Hubble's cluster-wide identities do), so a flow is
// named on both sides whichever node saw it; the node name tells them apart.
func TestBrowserAgainstRelayAndCollectorsWithRealTraffic(t *testing.T) {
	labtest.RequireRoot(t)
	start := time.Now()

	lab := labtest.NewLab(t)
	pod := func(name, ns string) *netlab.Pod {
		p, err := lab.AddPod(netlab.PodSpec{Name: name, Namespace: ns, Labels: map[string]string{"app": name}})
		if err != nil {
			t.Fatalf("pod %s: %v", name, err)
		}
		return p
	}
	frontend, backend, db := pod("frontend", "default"), pod("backend", "default"), pod("db", "other")

	nodeA := startE2ECollector(t, "node-a", []*netlab.Pod{frontend, backend}, []*netlab.Pod{db})
	nodeB := startE2ECollector(t, "node-b", []*netlab.Pod{db}, []*netlab.Pod{frontend, backend})
	base := startE2ERelayUI(t, nodeA, nodeB)

	var exchanged, failed atomic.Int64
	trafficCtx, stopTraffic := context.WithCancel(context.Background())
	trafficDone := make(chan error, 1)
	go func() {
		trafficDone <- netlab.RunTraffic(trafficCtx, netlab.TrafficOptions{Report: func(_ netlab.Traffic, err error) {
			if err != nil {
				failed.Add(1)
			} else {
				exchanged.Add(1)
			}
		}},
			netlab.Traffic{Kind: netlab.Requests, From: frontend, To: backend, Port: 8080, Every: 200 * time.Millisecond},
			netlab.Traffic{Kind: netlab.Requests, From: backend, To: db, Port: 5432, Every: 200 * time.Millisecond},
			netlab.Traffic{Kind: netlab.Datagrams, From: frontend, To: db, Port: 53, Every: 200 * time.Millisecond},
		)
	}()
	t.Cleanup(func() {
		stopTraffic()
		if err := <-trafficDone; err != nil {
			t.Errorf("traffic: %v", err)
		}
		t.Logf("traffic: %d exchanges, %d failed; test ran %v", exchanged.Load(), failed.Load(),
			time.Since(start).Round(time.Millisecond))
	})

	// Started last, so its cleanup closes the WebSocket before the rest stops.
	ctx := uitest.Browser(t)
	run(t, ctx, pageLoad,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="flow-row"]`)),
	)

	t.Run("rows from both collectors name the pods on both sides", func(t *testing.T) {
		// The table draws only the rows in view, so what passes by is
		// gathered in the page across polls.
		const gather = `(() => {
			const seen = (window.__e2eSeen ||= new Set());
			for (const r of document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')) {
				const m = r._row && r._row.msg;
				if (!m) continue;
				const node = (m.flow || {}).node_name || m.node_name || '';
				seen.add(r.dataset.src + ' -> ' + r.dataset.dst + ' ' + r.dataset.verdict + ' @' + node);
			}
			return [...seen].sort();
		})()`
		want := []string{
			"default/frontend -> default/backend FORWARDED @node-a",
			"default/backend -> other/db FORWARDED @node-b",
		}
		var seen []string
		for deadline := time.Now().Add(15 * time.Second); ; {
			seen = evalJS[[]string](t, ctx, gather)
			if containsAll(seen, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rows never showed %q; seen: %q (traffic: %d exchanges, %d failed)",
					want, seen, exchanged.Load(), failed.Load())
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("rows seen: %q", seen)
	})

	t.Run("a pod chip narrows the rows to that pod's flows", func(t *testing.T) {
		const chip = "from:pod=default/frontend"
		run(t, ctx, 10*time.Second,
			chromedp.SendKeys(chromedp.CSS(`[data-testid="filter-input"]`), chip+kb.Enter),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="filter-chip"][data-chip="`+chip+`"]`)),
		)
		waitJS(t, ctx, `(() => {
			const rows = [...document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')];
			return rows.length > 0 && rows.every(r => r.dataset.src === 'default/frontend');
		})()`, 10*time.Second)
	})

	t.Run("the service map draws the frontend to backend edge", func(t *testing.T) {
		// The chip cleared the map: only the frontend's edges come back.
		waitJS(t, ctx, `(() => {
			const edges = [...document.querySelectorAll('[data-testid="map-edge"]')];
			return edges.some(e => e.dataset.from === 'default/frontend' && e.dataset.to === 'default/backend') &&
				edges.every(e => e.dataset.from === 'default/frontend');
		})()`, 10*time.Second)
		var edges []string
		eval(t, ctx, `[...document.querySelectorAll('[data-testid="map-edge"]')].map(
			e => e.dataset.from + ' -> ' + e.dataset.to + ' ' + e.dataset.verdict)`, &edges)
		t.Logf("map edges: %q", edges)
		screenshot(t, ctx, "relay-real-traffic.png")
	})

	t.Run("every row is a flow of its own", func(t *testing.T) {
		var dup []string
		eval(t, ctx, `(() => {
			const seen = new Map(), dup = [];
			for (const r of document.querySelectorAll('[data-testid="flow-row"]:not([hidden])')) {
				const f = (r._row && r._row.msg && r._row.msg.flow) || {};
				const k = f.uuid || JSON.stringify(f);
				if (seen.has(k)) dup.push(JSON.stringify(f).slice(0, 400));
				seen.set(k, true);
			}
			return dup;
		})()`, &dup)
		if len(dup) > 0 {
			t.Errorf("%d rows repeat a flow shown above them, e.g. %s", len(dup), dup[0])
		}
	})

	t.Run("pause holds the rows while real flows keep arriving", func(t *testing.T) { checkPauseHolds(t, ctx) })

	t.Run("a click shows the whole record of a real flow", func(t *testing.T) {
		run(t, ctx, 10*time.Second,
			chromedp.Click(chromedp.CSS(`[data-testid="flow-row"][data-index="0"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="detail-pane"]`)),
		)
		var text string
		eval(t, ctx, `document.querySelector('[data-testid="detail-pane"]').innerText`, &text)
		for _, want := range []string{"default/frontend", `"node_name": "node-`, `"verdict": "FORWARDED"`} {
			if !strings.Contains(text, want) {
				t.Errorf("detail pane lacks %q:\n%s", want, text)
			}
		}
		// The newest of the frontend's flows may be IPv6 (its neighbour
		// discovery, say) as well as the IPv4 traffic.
		if !strings.Contains(text, `"`+frontend.IPv4.String()+`"`) && !strings.Contains(text, `"`+frontend.IPv6.String()+`"`) {
			t.Errorf("detail pane has neither of the frontend's addresses %s, %s:\n%s", frontend.IPv4, frontend.IPv6, text)
		}
		screenshot(t, ctx, "relay-real-traffic-detail.png")
	})
}

func containsAll(have, want []string) bool {
	set := make(map[string]bool, len(have))
	for _, h := range have {
		set[h] = true
	}
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}

// startE2ECollector loads a datapath (under a pin path of its own) and runs
// a collector named node over it, attached to the local pods' veths and
// knowing the remote pods by address, until the test ends. It returns the
// collector's address.
func startE2ECollector(t *testing.T, node string, local, remote []*netlab.Pod) string {
	t.Helper()
	cfg := &collector.Config{NodeName: node}
	for _, p := range local {
		cfg.Endpoints = append(cfg.Endpoints, collector.EndpointConfig{
			Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, NetNS: p.NetNSName})
	}
	topo, err := collector.Resolve(cfg)
	if err != nil {
		t.Fatalf("%s: resolve endpoints: %v", node, err)
	}
	for _, p := range remote { // no host veth here: named, never attached
		topo.Endpoints = append(topo.Endpoints, collector.ResolvedEndpoint{
			Config: collector.EndpointConfig{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels},
			IPs:    []netip.Addr{p.IPv4, p.IPv6},
		})
	}

	pin := netlab.PinPath(t, "e2e-ui-"+node)
	dp, err := datapath.Load(datapath.Config{PinPath: pin})
	if err != nil {
		t.Fatalf("%s: load datapath: %v", node, err)
	}
	t.Cleanup(func() {
		if err := dp.Close(); err != nil {
			t.Errorf("%s: close datapath: %v", node, err)
		}
		if _, err := os.Stat(pin); !os.IsNotExist(err) {
			t.Errorf("%s: pin path %s left behind after Close (stat: %v)", node, pin, err)
		}
	})
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Options{
		Topology: topo, Sources: []collector.Source{dp}, Attacher: dp, Interfaces: dp.Interfaces, Listener: ln,
	})
	if err != nil {
		ln.Close()
		t.Fatalf("%s: %v", node, err)
	}
	apitest.Start(t, node, c)
	if got := strings.Join(dp.Interfaces(), ","); len(dp.Interfaces()) != len(local) {
		t.Fatalf("%s: datapath attached to %q, want the %d local veths", node, got, len(local))
	}
	return c.Addr().String()
}

// startE2ERelayUI runs a relay over the peers with the web UI, fed by the
// relay, at "GET /", until the test ends, and returns the UI's base URL.
func startE2ERelayUI(t *testing.T, peers ...string) string {
	t.Helper()
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	// The UI reads the relay, the relay serves the UI: mounted once both exist.
	var mounted atomicHandler
	r, err := relay.New(relay.Options{
		Peers:       peers,
		Listener:    ln,
		MergeWindow: 200 * time.Millisecond,
		Handlers:    map[string]http.Handler{"GET /": &mounted},
	})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	u, err := New(Options{Source: r.Ring()})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	mounted.set(u)
	apitest.Start(t, "relay", r)
	t.Cleanup(u.Close) // before the relay stops: the hub follows it
	return "http://" + r.Addr().String()
}
