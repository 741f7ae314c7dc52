package collector_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	xicmp "golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/relay/hubble"
)

// TestE2EPeersWithoutAnEndpointHaveReservedIdentities runs real traffic of
// a declared pod with peers that are none: the host (its bridge address),
// a pod nobody declared (the world), and the pod's own IPv6 link-local
// address to the all-nodes multicast group. The flows name the host and
// the world by Cilium's reserved identities and labels, in the collector's
// JSON, in Hubble's record and in ClickHouse; the link-local address is
// the pod's (the registry read it from the pod's interface) and the group
// is the world's.
func TestE2EPeersWithoutAnEndpointHaveReservedIdentities(t *testing.T) {
	labtest.RequireRoot(t)
	srv := chtest.Start(t)
	lab := newE2ELab(t)
	web, err := lab.AddPod(netlab.PodSpec{Name: "web", Labels: map[string]string{"app": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	outsider, err := lab.AddPod(netlab.PodSpec{Name: "outsider"})
	if err != nil {
		t.Fatal(err)
	}
	llWeb := podLinkLocal(t, web)

	ctx := context.Background()
	store, err := clickhouse.Open(ctx, clickhouse.Options{DSN: srv.DSN("periscope")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	sinks, err := sink.Open(ctx, sink.Env{}, sink.Queued(store, clickhouse.RecommendedQueueOptions()))
	if err != nil {
		t.Fatal(err)
	}
	stopSinks := sinks.Start(ctx)
	t.Cleanup(func() { stopSinks() }) //nolint:errcheck // checked below
	node, stopNode := startSinkNode(t, &collector.Config{NodeName: "e2e", Endpoints: []collector.EndpointConfig{
		{Name: "web", Labels: map[string]string{"app": "web"}, NetNS: web.NetNSName},
	}}, datapath.Config{}, sinks)

	t.Run("status lists the pod's link-local address", func(t *testing.T) {
		var st collector.Status
		getJSON(t, node.base+"/api/v1/status", &st)
		if len(st.Endpoints) != 1 || !slices.Contains(st.Endpoints[0].LinkLocal, llWeb.String()) {
			t.Errorf("status endpoints %+v, want web with link-local %s", st.Endpoints, llWeb)
		}
	})

	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := web.Ping(pctx, lab.HostIPv4, 1); err != nil {
		t.Fatalf("web pings the host: %v", err)
	}
	if _, err := outsider.Ping(pctx, web.IPv4, 1); err != nil {
		t.Fatalf("the outsider pings web: %v", err)
	}
	allNodes := netip.MustParseAddr("ff02::1")
	pingGroup(t, web, allNodes)

	webID := func() uint32 {
		ep, _ := node.c.Registry().LookupIP(web.IPv4)
		return ep.Identity
	}()
	host := api.Endpoint{Identity: 1, Labels: []string{"reserved:host"}}
	world := api.Endpoint{Identity: 2, Labels: []string{"reserved:world"}}
	find := func(src, dst netip.Addr) (api.Flow, string) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			for _, line := range node.rawFlows(t, "from:ip="+src.String(), "to:ip="+dst.String()) {
				var f api.Flow
				if err := api.ParseJSON([]byte(line), &f); err != nil {
					t.Fatal(err)
				}
				if f.Type == api.FlowTypeL3L4 {
					return f, line
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no flow %s -> %s", src, dst)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Run("the host is reserved:host", func(t *testing.T) {
		f, line := find(web.IPv4, lab.HostIPv4)
		if f.Source.Identity != webID || f.Source.PodName != "web" || !sameEndpoint(f.Destination, host) {
			t.Errorf("source %+v destination %+v, want web and the host", f.Source, f.Destination)
		}
		if !strings.Contains(line, `"destination":{"identity":1,"labels":["reserved:host"]}`) {
			t.Errorf("JSON without Hubble's host endpoint: %s", line)
		}
		if p := hubble.FlowToProto(&f); p.Destination.GetIdentity() != 1 || !slices.Equal(p.Destination.GetLabels(), host.Labels) {
			t.Errorf("Hubble's destination %v", p.Destination)
		}
	})
	t.Run("an address nobody declared is reserved:world", func(t *testing.T) {
		f, line := find(outsider.IPv4, web.IPv4)
		if !sameEndpoint(f.Source, world) || f.Destination.PodName != "web" {
			t.Errorf("source %+v destination %+v, want the world and web", f.Source, f.Destination)
		}
		if !strings.Contains(line, `"source":{"identity":2,"labels":["reserved:world"]}`) {
			t.Errorf("JSON without Hubble's world endpoint: %s", line)
		}
		if p := hubble.FlowToProto(&f); p.Source.GetIdentity() != 2 || !slices.Equal(p.Source.GetLabels(), world.Labels) {
			t.Errorf("Hubble's source %v", p.Source)
		}
	})
	t.Run("the pod's link-local address is the pod's, a multicast group the world's", func(t *testing.T) {
		f, _ := find(llWeb, allNodes)
		if f.Source.Identity != webID || f.Source.PodName != "web" || !sameEndpoint(f.Destination, world) {
			t.Errorf("source %+v destination %+v, want web and the world", f.Source, f.Destination)
		}
		if f.TrafficDirection != api.TrafficDirectionEgress {
			t.Errorf("direction %v, want EGRESS: web sent it", f.TrafficDirection)
		}
	})

	stopNode()
	if err := stopSinks(); err != nil {
		t.Fatalf("stop the sinks: %v", err)
	}
	t.Run("ClickHouse keeps the reserved identities and labels", func(t *testing.T) {
		got := srv.Query("SELECT DISTINCT src_identity, arrayStringConcat(src_labels_keys, ','), dst_identity, " +
			"arrayStringConcat(dst_labels_keys, ',') FROM periscope.flows WHERE protocol = 1 ORDER BY src_identity FORMAT TSV")
		for _, want := range []string{"2\treserved:world\t", "\t1\treserved:host"} {
			if !strings.Contains(got, want) {
				t.Errorf("ClickHouse rows lack %q:\n%s", want, got)
			}
		}
	})
}

// rawFlows fetches the stored flows matching the chips as JSON lines.
func (n *e2eNode) rawFlows(t *testing.T, chips ...string) []string {
	t.Helper()
	resp, err := http.Get(n.base + "/api/v1/flows?" + url.Values{"all": {"1"}, "filter": chips}.Encode())
	if err != nil {
		t.Fatalf("GET flows: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET flows: %s", resp.Status)
	}
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// getJSON decodes the JSON answer of a GET.
func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", u, err)
	}
}

func sameEndpoint(a, b api.Endpoint) bool {
	return a.Identity == b.Identity && slices.Equal(a.Labels, b.Labels) && a.PodName == b.PodName && a.Namespace == b.Namespace
}

// podLinkLocal is the IPv6 link-local address of the pod's eth0, once
// duplicate address detection is done with it (a tentative address is no
// source yet).
func podLinkLocal(t *testing.T, p *netlab.Pod) netip.Addr {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var ll netip.Addr
		tentative := false
		err := p.Do(func() error {
			eth, err := netlink.LinkByName(p.Veth.Name)
			if err != nil {
				return err
			}
			addrs, err := netlink.AddrList(eth, netlink.FAMILY_V6)
			if err != nil {
				return err
			}
			for _, a := range addrs {
				if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.IsLinkLocalUnicast() {
					ll, tentative = ip, a.Flags&unix.IFA_F_TENTATIVE != 0
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("link-local address of %s: %v", p.Name, err)
		}
		if ll.IsValid() && !tentative {
			return ll
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no usable link-local address (%v, tentative %v)", p.Name, ll, tentative)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pingGroup sends one ICMPv6 echo request from the pod's eth0 to a
// link-scope multicast group (from its link-local address); replies are
// not awaited.
func pingGroup(t *testing.T, p *netlab.Pod, group netip.Addr) {
	t.Helper()
	var conn *xicmp.PacketConn
	if err := p.Do(func() (err error) {
		conn, err = xicmp.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, err := (&xicmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &xicmp.Echo{ID: 7, Seq: 1, Data: []byte("periscope")}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The zone by index: a name would be looked up in the caller's
	// network namespace, not the pod's.
	if _, err := conn.WriteTo(b, &net.IPAddr{IP: group.AsSlice(), Zone: strconv.Itoa(p.Veth.Index)}); err != nil {
		t.Fatalf("ping %s from %s: %v", group, p.Name, err)
	}
}
