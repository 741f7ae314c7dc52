package collector_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/discovery"
	"github.com/periscope-dev/periscope/discovery/hostveth"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// discoveryNode is a collector on the real datapath whose endpoints and
// policies come from watchers only (no endpoints file).
type discoveryNode struct {
	c     *collector.Collector
	dp    *datapath.Datapath
	store *policystore.Store
	pin   string
	base  string
	log   *logBuffer
	// stop stops the node as a restart would: its watchers, collector and
	// datapath, the policies in force kept (pinned and persisted).
	stop func()
	// seen are the sides of the records the collector passed on whose
	// addresses are the test's.
	seen *sidesSeen
}

// sideSeen is one side of a record the collector passed on.
type sideSeen struct {
	time, start time.Time // the record's event time and its connection's start
	world       bool      // attributed to reserved:world
	pod         string
}

// sidesSeen is a collector sink keeping the sides of the records whose
// address is in the tests' range (198.18.0.0/15), by address.
type sidesSeen struct {
	mu sync.Mutex
	by map[netip.Addr][]sideSeen
}

var testAddrs = netip.MustParsePrefix("198.18.0.0/15")

func (s *sidesSeen) Consume(f *api.Flow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, side := range []struct {
		a  netip.Addr
		ep *api.Endpoint
	}{{f.IP.Source, &f.Source}, {f.IP.Destination, &f.Destination}} {
		if testAddrs.Contains(side.a) {
			s.by[side.a] = append(s.by[side.a], sideSeen{time: f.Time, start: f.StartTime,
				world: side.ep.Identity == uint32(identity.World), pod: side.ep.PodName})
		}
	}
}

// at returns the sides seen with address a.
func (s *sidesSeen) at(a netip.Addr) []sideSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.by[a])
}

// startDiscoveryNode runs a collector named node with an identity grace of
// grace, and the watchers run feeds it (run is called with the
// collector's endpoint sink and the store's policy sink) until the test
// ends.
func startDiscoveryNode(t *testing.T, node string, grace time.Duration,
	run func(ctx context.Context, eps discovery.EndpointSink, pols discovery.PolicySink) error) *discoveryNode {
	t.Helper()
	pin := netlab.PinPath(t, "e2e-disc")
	return startDiscoveryNodeAt(t, node, grace, t.TempDir(), pin, run)
}

// startDiscoveryNodeAt is startDiscoveryNode with the state in dir and the
// datapath pinned at pin: a node started again with both is the same
// node restarted. It runs until stop or the end of the test, which also
// deletes every policy (the datapath's programs then go with it).
func startDiscoveryNodeAt(t *testing.T, node string, grace time.Duration, dir, pin string,
	run func(ctx context.Context, eps discovery.EndpointSink, pols discovery.PolicySink) error) *discoveryNode {
	t.Helper()
	log := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(log, nil))
	dp, err := datapath.Load(datapath.Config{PinPath: pin, Logger: logger})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// As the binary does with discovery on: records of workloads not yet
	// discovered wait for their endpoint; here up to 10 s, not the
	// default 2 s: on this shared machine under load a pod's status update
	// and its report take seconds at times, and the tests hold the
	// mechanism, not the window (docs/BENCHMARKS.md has the latencies).
	nets, err := hostveth.NewNetworks(logger)
	if err != nil {
		t.Fatalf("workload networks: %v", err)
	}
	seen := &sidesSeen{by: map[netip.Addr][]sideSeen{}}
	c, err := collector.New(collector.Options{Config: &collector.Config{NodeName: node}, Sources: []collector.Source{dp},
		Attacher: dp, Listener: ln, Interfaces: dp.Interfaces, Logger: logger, IdentityGrace: grace,
		EndpointState: filepath.Join(dir, "endpoints.json"), Sinks: []collector.Sink{seen},
		Attribution: &collector.Attribution{Networks: nets, Window: 10 * time.Second}})
	if err != nil {
		dp.Close()
		t.Fatalf("collector: %v", err)
	}
	store, err := policystore.New(policystore.Options{Dir: filepath.Join(dir, "policies"), Applier: dp, Endpoints: c, Logger: logger})
	if err != nil {
		dp.Close()
		t.Fatalf("policy store: %v", err)
	}
	c.OnEndpointsChange(store.Refresh)
	stopCollector := apitest.Start(t, "collector", c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var netsStopped, watchersStopped atomic.Bool
	go func() {
		var wg sync.WaitGroup
		var nerr error
		wg.Go(func() { nerr = nets.Run(ctx); netsStopped.Store(true) })
		err := run(ctx, c, store)
		watchersStopped.Store(true)
		wg.Wait()
		done <- errors.Join(err, nerr)
	}()
	var once sync.Once
	stop := func(deletePolicies bool) {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("watchers: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("watchers did not stop within 30s (the test's watchers stopped: %v; the workload networks' watch stopped: %v)",
					watchersStopped.Load(), netsStopped.Load())
			}
			if deletePolicies {
				for _, p := range store.List() {
					if _, err := store.Delete(p.Kind, p.Namespace, p.Name); err != nil {
						t.Logf("delete policy %s: %v", p.Name, err)
					}
				}
			}
			stopCollector()
			if err := dp.Close(); err != nil {
				t.Errorf("close datapath: %v", err)
			}
			if t.Failed() {
				t.Logf("collector log:\n%s", log)
			}
		})
	}
	t.Cleanup(func() { stop(true) })
	return &discoveryNode{c: c, dp: dp, store: store, pin: pin, base: "http://" + c.Addr().String(), log: log,
		stop: func() { stop(false) }, seen: seen}
}

// endpointAt is the endpoint the collector's registry has at ip, if any.
func (n *discoveryNode) endpointAt(ip netip.Addr) (api.Endpoint, bool) {
	return n.c.Registry().LookupIP(ip)
}

// waitEndpoint waits until the registry names ip's endpoint podName and
// returns it.
func (n *discoveryNode) waitEndpoint(t *testing.T, ip netip.Addr, podName string, timeout time.Duration) api.Endpoint {
	t.Helper()
	var ep api.Endpoint
	waitWithin(t, timeout, fmt.Sprintf("%s attributed to %s", ip, podName), func() bool {
		var ok bool
		ep, ok = n.endpointAt(ip)
		return ok && ep.PodName == podName
	})
	return ep
}

// mapEntries counts the entries of the datapath's per-endpoint maps, by
// map, in the half of each double buffer that is in force. The other half
// is emptied in the background once a grace period has passed after the
// revision changed (datapath.ApplyPolicy), so it waits for that too: an
// entry left behind in either half fails the count or the wait.
func (n *discoveryNode) mapEntries(t *testing.T) map[string]int {
	t.Helper()
	bases := []string{"ipcache", "local_ep", "enforce", "policy"}
	var out map[string]int
	waitWithin(t, 10*time.Second, "the policy half not in force emptied", func() bool {
		rev := n.dp.PolicyRevision()
		out = map[string]int{}
		idle := 0
		for _, base := range bases {
			out[base] = n.pinnedEntries(t, fmt.Sprintf("%s_%d", base, rev&1))
			idle += n.pinnedEntries(t, fmt.Sprintf("%s_%d", base, (rev+1)&1))
		}
		return idle == 0 && n.dp.PolicyRevision() == rev
	})
	return out
}

// pinnedEntries counts the entries of the pinned map name.
func (n *discoveryNode) pinnedEntries(t *testing.T, name string) int {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(n.pin, name), nil)
	if err != nil {
		t.Fatalf("open pinned map %s: %v", name, err)
	}
	defer m.Close()
	k, v := make([]byte, m.KeySize()), make([]byte, m.ValueSize())
	it := m.Iterate()
	count := 0
	for it.Next(&k, &v) {
		count++
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate %s: %v", name, err)
	}
	return count
}

// connects reports whether from can open a TCP connection to to:port.
func connects(t *testing.T, from, to *netlab.Pod, port uint16) bool {
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	c, err := from.DialTCP(ctx, netip.AddrPortFrom(to.IPv4, port))
	if err == nil {
		c.Close()
	}
	return err == nil
}

// waitWithin polls cond every 20 ms until it holds, or fails the test after
// timeout naming what it waited for.
func waitWithin(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flowBetween finds a stored flow from the pod named src to the pod named
// dst.
func (n *discoveryNode) flowBetween(t *testing.T, src, dst string) (api.Flow, bool) {
	t.Helper()
	var found api.Flow
	ok := false
	for _, f := range (&e2eNode{c: n.c, base: n.base}).flows(t) {
		if f.Source.PodName == src && f.Destination.PodName == dst {
			found, ok = f, true
		}
	}
	return found, ok
}

// latencies summarises durations: the p50, p99 and max.
func latencies(ds []time.Duration) (p50, p99, maxd time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.5), at(0.99), s[len(s)-1]
}

// hasLabels reports whether labels has every one of want.
func hasLabels(labels []string, want ...string) error {
	var missing []string
	for _, w := range want {
		if !slices.Contains(labels, w) {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return errors.New("missing " + strings.Join(missing, ", ") + " in " + strings.Join(labels, ", "))
	}
	return nil
}
