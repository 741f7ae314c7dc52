package collector_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/account"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// e2eNode is a collector running over the real datapath, for end-to-end tests.
type e2eNode struct {
	c    *collector.Collector
	dp   *datapath.Datapath
	base string // http://host:port of the HTTP API
}

// newE2ELab makes a netlab lab removed by t.Cleanup.
func newE2ELab(t testing.TB) *netlab.Lab {
	t.Helper()
	lab := labtest.NewLab(t)
	return lab
}

// addPods adds a pod per spec to lab, in order, failing the test on an
// error.
func addPods(t testing.TB, lab *netlab.Lab, specs ...netlab.PodSpec) []*netlab.Pod {
	t.Helper()
	pods := make([]*netlab.Pod, len(specs))
	for i, spec := range specs {
		p, err := lab.AddPod(spec)
		if err != nil {
			t.Fatalf("add pod %s: %v", spec.Name, err)
		}
		pods[i] = p
	}
	return pods
}

// startE2ENode loads the datapath with dcfg (a unique pin path is set),
// resolves cfg and runs a collector until the test ends.
func startE2ENode(t *testing.T, cfg *collector.Config, dcfg datapath.Config, ringSize int) *e2eNode {
	t.Helper()
	topo, err := collector.Resolve(cfg)
	if err != nil {
		t.Fatalf("resolve endpoints: %v", err)
	}
	dcfg.PinPath = netlab.PinPath(t, "e2e")
	dp, err := datapath.Load(dcfg)
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	t.Cleanup(func() {
		if err := dp.Close(); err != nil {
			t.Errorf("close datapath: %v", err)
		}
		if _, err := os.Stat(dcfg.PinPath); !os.IsNotExist(err) {
			t.Errorf("pin path %s left behind after Close (stat: %v)", dcfg.PinPath, err)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Options{
		Topology: topo, Sources: []collector.Source{dp}, Attacher: dp, Listener: ln, Interfaces: dp.Interfaces, RingSize: ringSize,
		Stats: func() collector.DatapathStats {
			s := dp.Stats()
			return collector.DatapathStats{EventsRead: s.EventsRead, EventsLost: s.EventsLost,
				EventsEmitted: s.EventsEmitted, EventsPending: s.EventsPending, FlowsEnded: s.FlowsEnded}
		},
		Stages: func() []account.Stage { return dp.Stats().Stages() },
	})
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "collector", c)
	return &e2eNode{c: c, dp: dp, base: "http://" + c.Addr().String()}
}

// flows fetches every stored flow matching the filter chips over HTTP.
func (n *e2eNode) flows(t *testing.T, chips ...string) []api.Flow {
	t.Helper()
	q := url.Values{"all": {"1"}}
	if len(chips) > 0 {
		q["filter"] = chips
	}
	resp, err := http.Get(n.base + "/api/v1/flows?" + q.Encode())
	if err != nil {
		t.Fatalf("GET flows: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET flows: %s", resp.Status)
	}
	var out []api.Flow
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var f api.Flow
		if err := api.ParseJSON(sc.Bytes(), &f); err != nil {
			t.Fatalf("parse flow %s: %v", sc.Text(), err)
		}
		out = append(out, f)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read flows: %v", err)
	}
	return out
}

// run runs a command and fails the test with its output if it fails.
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// podMAC is the MAC address of the pod's eth0.
func podMAC(t testing.TB, p *netlab.Pod) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := p.Do(func() error {
		ifc, err := net.InterfaceByName(p.Veth.Name)
		if err != nil {
			return err
		}
		mac = ifc.HardwareAddr
		return nil
	})
	if err != nil {
		t.Fatalf("MAC of %s: %v", p.Name, err)
	}
	return mac
}

// quietPods removes every source of traffic the test does not make between
// pods: IPv6 router solicitations and DAD are turned off, every pod gets
// permanent neighbour entries (IPv4 and IPv6) for every other pod, so no ARP
// or neighbour discovery crosses a veth, and the bridge gets static FDB
// entries, so unicast between pods is never flooded to other ports.
func quietPods(t testing.TB, lab *netlab.Lab, pods ...*netlab.Pod) {
	t.Helper()
	for _, key := range []string{"router_solicitations", "dad_transmits", "accept_dad"} {
		run(t, "sysctl", "-qw", fmt.Sprintf("net.ipv6.conf.%s.%s=0", lab.Bridge.Name, key))
	}
	macs := make([]net.HardwareAddr, len(pods))
	for i, p := range pods {
		macs[i] = podMAC(t, p)
		for _, dev := range []string{"all", "default", "eth0"} {
			for _, key := range []string{"router_solicitations", "dad_transmits", "accept_dad"} {
				run(t, "ip", "netns", "exec", p.NetNSName, "sysctl", "-qw", fmt.Sprintf("net.ipv6.conf.%s.%s=0", dev, key))
			}
		}
		run(t, "bridge", "fdb", "replace", macs[i].String(), "dev", p.HostVeth.Name, "master", "static")
	}
	for i, p := range pods {
		for j, q := range pods {
			if i == j {
				continue
			}
			for _, a := range []string{q.IPv4.String(), q.IPv6.String()} {
				run(t, "ip", "-n", p.NetNSName, "neigh", "replace", a, "lladdr", macs[j].String(),
					"dev", "eth0", "nud", "permanent")
			}
		}
	}
}

// vethCounters are a host veth's counters: rx is what came from the pod
// (the TC ingress hook), tx what went to it (the TC egress hook).
type vethCounters struct {
	RxPackets, RxBytes, TxPackets, TxBytes uint64
}

func readVeth(t *testing.T, index int) vethCounters {
	t.Helper()
	l, err := netlink.LinkByIndex(index)
	if err != nil {
		t.Fatalf("link %d: %v", index, err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		t.Fatalf("link %d: no statistics", index)
	}
	return vethCounters{RxPackets: s.RxPackets, RxBytes: s.RxBytes, TxPackets: s.TxPackets, TxBytes: s.TxBytes}
}

// settle waits until none of the veths has moved a frame for quiet, long
// enough for the sweeper to have ended every flow they carried, and returns
// their counters with the store's sequence number taken in between: every
// flow ended before the snapshot has a sequence number at or below seq.
func settle(t *testing.T, n *e2eNode, quiet time.Duration, indexes ...int) (map[int]vethCounters, uint64) {
	t.Helper()
	deadline := time.Now().Add(quiet + 10*time.Second)
	snap := func() map[int]vethCounters {
		m := make(map[int]vethCounters, len(indexes))
		for _, i := range indexes {
			m[i] = readVeth(t, i)
		}
		return m
	}
	equal := func(a, b map[int]vethCounters) bool {
		for k, v := range a {
			if b[k] != v {
				return false
			}
		}
		return true
	}
	prev, since := snap(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		cur := snap()
		if !equal(prev, cur) {
			prev, since = cur, time.Now()
			continue
		}
		if time.Since(since) < quiet {
			continue
		}
		seq := n.c.Store().Seen()
		if after := snap(); equal(cur, after) {
			return cur, seq
		}
	}
	t.Fatalf("veths %v never quiet for %v", indexes, quiet)
	return nil, 0
}
