package hubble

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/relay"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// Endpoints of the test topology.
var (
	ipFrontend = netip.MustParseAddr("10.0.0.1")
	ipBackend  = netip.MustParseAddr("10.0.0.2")
	ipDB       = netip.MustParseAddr("10.0.1.3")
	ipWorld    = netip.MustParseAddr("192.0.2.9")
	ipLegacy   = netip.MustParseAddr("10.0.2.4") // in no test flow but recentFlows' old one
)

func topology(node string) *collector.Topology {
	return &collector.Topology{
		NodeName: node,
		Endpoints: []collector.ResolvedEndpoint{
			{Config: collector.EndpointConfig{Name: "frontend-7d4", Namespace: "default", Labels: map[string]string{"app": "frontend"}},
				HostIfIndex: 10, HostIfName: "veth-fe", IPs: []netip.Addr{ipFrontend}},
			{Config: collector.EndpointConfig{Name: "backend-5c", Namespace: "shop", Labels: map[string]string{"app": "backend"}},
				HostIfIndex: 11, HostIfName: "veth-be", IPs: []netip.Addr{ipBackend}},
			{Config: collector.EndpointConfig{Name: "db-0", Namespace: "shop", Labels: map[string]string{"app": "db"}},
				HostIfIndex: 12, HostIfName: "veth-db", IPs: []netip.Addr{ipDB}},
			{Config: collector.EndpointConfig{Name: "legacy-0", Namespace: "old", Labels: map[string]string{"app": "legacy"}},
				HostIfIndex: 13, HostIfName: "veth-old", IPs: []netip.Addr{ipLegacy}},
		},
	}
}

// testFlows are the canned flows; flow n has n as the last byte of its UUID.
func testFlows() []api.Flow {
	mk := func(n int, src, dst netip.Addr, ifindex uint32, l4 api.L4, v api.Verdict) api.Flow {
		f := api.Flow{
			Time: t0.Add(time.Duration(n) * time.Second), Verdict: v, Type: api.FlowTypeL3L4,
			IP: api.IP{Source: src, Destination: dst, Version: api.IPv4}, L4: l4,
			Interface: api.Interface{Index: ifindex},
		}
		f.UUID[15] = byte(n)
		if v == api.VerdictDropped {
			f.DropReason = api.DropReasonPolicyDenied
		}
		return f
	}
	tcp := func(sport, dport uint16, fl api.TCPFlags) api.L4 {
		return api.L4{Protocol: api.ProtoTCP, SourcePort: sport, DestinationPort: dport, TCPFlags: fl}
	}
	syn, synack := api.TCPFlagSYN, api.TCPFlagSYN|api.TCPFlagACK
	denied := mk(2, ipFrontend, ipBackend, 11, tcp(40002, 8080, syn), api.VerdictDropped)
	denied.DropReason = api.DropReasonPolicyDeny
	denied.IngressDeniedBy = []api.PolicyRef{{Name: "no-frontend", Namespace: "shop", Kind: "CiliumNetworkPolicy", Revision: 17}}
	return []api.Flow{
		mk(1, ipFrontend, ipBackend, 10, tcp(40001, 8080, syn), api.VerdictForwarded),
		denied,
		mk(3, ipBackend, ipDB, 11, tcp(40003, 5432, synack), api.VerdictForwarded),
		mk(4, ipFrontend, ipDB, 10, api.L4{Protocol: api.ProtoUDP, SourcePort: 40004, DestinationPort: 53}, api.VerdictForwarded),
		mk(5, ipBackend, ipFrontend, 11, api.L4{Protocol: api.ProtoICMPv4, ICMPType: 8}, api.VerdictForwarded),
		mk(6, ipDB, ipWorld, 12, tcp(40006, 443, synack), api.VerdictForwarded),
	}
}

func startCollector(t *testing.T, node string, canned []api.Flow) (*collector.Collector, *apitest.Source, context.CancelFunc) {
	t.Helper()
	return startCollectorIn(t, node, "", canned)
}

// startCollectorIn starts a collector of node in cluster ("": the default)
// holding canned.
func startCollectorIn(t *testing.T, node, cluster string, canned []api.Flow) (*collector.Collector, *apitest.Source, context.CancelFunc) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := apitest.NewSource(canned, 16)
	topo := topology(node)
	topo.ClusterName = cluster
	c, err := collector.New(collector.Options{Topology: topo, Sources: []collector.Source{src}, Listener: ln, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	stop := apitest.Start(t, node, c)
	for c.Store().Seen() < uint64(len(canned)) {
		time.Sleep(time.Millisecond)
	}
	return c, src, stop
}

// serve runs the Observer service for b and returns a client.
func serve(t *testing.T, b Backend) observerpb.ObserverClient {
	t.Helper()
	conn, err := grpc.NewClient(serveAddr(t, b), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return observerpb.NewObserverClient(conn)
}

// collectorClient serves one collector holding every test flow.
func collectorClient(t *testing.T) observerpb.ObserverClient {
	c, _, _ := startCollector(t, "node1", testFlows())
	return serve(t, NewCollectorBackend(c))
}

// relayClient serves a relay over three collectors holding a third of the
// test flows each; it returns the collectors' stop functions too.
func relayClient(t *testing.T) (observerpb.ObserverClient, *relay.Relay, []func()) {
	flows := testFlows()
	var peers []string
	var stops []func()
	for i := range 3 {
		var mine []api.Flow
		for j := i; j < len(flows); j += 3 {
			mine = append(mine, flows[j])
		}
		c, _, stop := startCollector(t, fmt.Sprintf("node%d", i+1), mine)
		peers = append(peers, c.Addr().String())
		stops = append(stops, stop)
	}
	r := startRelay(t, peers)
	return serve(t, NewRelayBackend(r)), r, stops
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// flowIDs calls GetFlows and returns the flows' numbers, and node status events.
func flowIDs(t *testing.T, c observerpb.ObserverClient, req *observerpb.GetFlowsRequest) ([]int, []*relaypb.NodeStatusEvent, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.GetFlows(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var ids []int
	var events []*relaypb.NodeStatusEvent
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return ids, events, nil
		}
		if err != nil {
			return ids, events, err
		}
		if ev := resp.GetNodeStatus(); ev != nil {
			events = append(events, ev)
			continue
		}
		ids = append(ids, uuidID(t, resp.GetFlow().GetUuid()))
	}
}

func uuidID(t *testing.T, u string) int {
	t.Helper()
	n, err := strconv.ParseUint(u[len(u)-2:], 16, 8)
	if err != nil {
		t.Fatalf("uuid %q: %v", u, err)
	}
	return int(n)
}

func ff(f *flowpb.FlowFilter) []*flowpb.FlowFilter { return []*flowpb.FlowFilter{f} }

var filterCases = []struct {
	name         string
	white, black []*flowpb.FlowFilter
	number       uint64
	first        bool
	want         []int
	// relayWant, when set, is the answer through the relay, whose number
	// counts per node as hubble-relay's does (node1 holds flows 1 and 4,
	// node2 2 and 5, node3 3 and 6).
	relayWant []int
}{
	{name: "no filter returns every flow", want: []int{1, 2, 3, 4, 5, 6}},
	{name: "number returns the last N", number: 2, want: []int{5, 6}, relayWant: []int{1, 2, 3, 4, 5, 6}},
	{name: "number 1 is one flow of each node through a relay", number: 1, want: []int{6}, relayWant: []int{4, 5, 6}},
	{name: "number with first returns the first N", number: 2, first: true, want: []int{1, 2}, relayWant: []int{1, 2, 3, 4, 5, 6}},
	{name: "number 1 with first is the first flow of each node through a relay", number: 1, first: true, want: []int{1}, relayWant: []int{1, 2, 3}},
	{name: "source pod prefix in a namespace", white: ff(&flowpb.FlowFilter{SourcePod: []string{"default/frontend"}}), want: []int{1, 2, 4}},
	{name: "destination pod in a namespace", white: ff(&flowpb.FlowFilter{DestinationPod: []string{"shop/db"}}), want: []int{3, 4}},
	{name: "destination IP as a CIDR", white: ff(&flowpb.FlowFilter{DestinationIp: []string{"10.0.1.0/24"}}), want: []int{3, 4}},
	{name: "source IP", white: ff(&flowpb.FlowFilter{SourceIp: []string{"10.0.0.2"}}), want: []int{3, 5}},
	{name: "source label", white: ff(&flowpb.FlowFilter{SourceLabel: []string{"k8s:app=backend"}}), want: []int{3, 5}},
	{name: "destination label without a source", white: ff(&flowpb.FlowFilter{DestinationLabel: []string{"app=frontend"}}), want: []int{5}},
	{name: "verdict", white: ff(&flowpb.FlowFilter{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}), want: []int{2}},
	{name: "protocol", white: ff(&flowpb.FlowFilter{Protocol: []string{"udp", "icmp"}}), want: []int{4, 5}},
	{name: "destination port", white: ff(&flowpb.FlowFilter{DestinationPort: []string{"8080"}}), want: []int{1, 2}},
	{name: "source port", white: ff(&flowpb.FlowFilter{SourcePort: []string{"40006"}}), want: []int{6}},
	{name: "tcp flags need every flag of one entry", white: ff(&flowpb.FlowFilter{TcpFlags: []*flowpb.TCPFlags{{SYN: true, ACK: true}}}), want: []int{3, 6}},
	{name: "fields within a filter AND", white: ff(&flowpb.FlowFilter{SourcePod: []string{"default/frontend"}, Protocol: []string{"tcp"}}), want: []int{1, 2}},
	{name: "filters in a whitelist OR", white: []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}, {DestinationPort: []string{"443"}}}, want: []int{2, 6}},
	{name: "a blacklist excludes", black: ff(&flowpb.FlowFilter{Protocol: []string{"tcp"}}), want: []int{4, 5}},
	{name: "whitelist minus blacklist", white: ff(&flowpb.FlowFilter{SourcePod: []string{"default/"}}), black: ff(&flowpb.FlowFilter{DestinationPort: []string{"53"}}), want: []int{1, 2}},
	{name: "two blacklist filters exclude either", black: []*flowpb.FlowFilter{{Protocol: []string{"tcp"}}, {DestinationIp: []string{"10.0.1.3"}}}, want: []int{5}},
	{name: "traffic direction", white: ff(&flowpb.FlowFilter{TrafficDirection: []flowpb.TrafficDirection{flowpb.TrafficDirection_INGRESS}}), want: []int{2}},
	{name: "identity", white: ff(&flowpb.FlowFilter{SourceIdentity: []uint32{0}}), want: nil},
	{name: "node name", white: ff(&flowpb.FlowFilter{NodeName: []string{"node*"}}), want: []int{1, 2, 3, 4, 5, 6}},
	{name: "event type drop", white: ff(&flowpb.FlowFilter{EventType: []*flowpb.EventTypeFilter{{Type: 1}}}), want: []int{2}},
	{name: "last N counts matching flows", white: ff(&flowpb.FlowFilter{Protocol: []string{"tcp"}}), number: 2, want: []int{3, 6}, relayWant: []int{1, 2, 3, 6}},
	{name: "first N with a blacklist", black: ff(&flowpb.FlowFilter{SourcePod: []string{"default/"}}), number: 2, first: true, want: []int{3, 5}, relayWant: []int{3, 5, 6}},
}

func runFilterCases(t *testing.T, c observerpb.ObserverClient, throughRelay bool) {
	for _, tt := range filterCases {
		want := tt.want
		if throughRelay && tt.relayWant != nil {
			want = tt.relayWant
		}
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := flowIDs(t, c, &observerpb.GetFlowsRequest{Whitelist: tt.white, Blacklist: tt.black, Number: tt.number, First: tt.first})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestGetFlowsFromACollector(t *testing.T) { runFilterCases(t, collectorClient(t), false) }

func TestGetFlowsFromARelay(t *testing.T) {
	c, _, _ := relayClient(t)
	runFilterCases(t, c, true)
}

func TestGetFlowsSinceUntil(t *testing.T) {
	c := collectorClient(t)
	got, _, err := flowIDs(t, c, &observerpb.GetFlowsRequest{
		Since: timestamppb.New(t0.Add(2 * time.Second)), Until: timestamppb.New(t0.Add(4 * time.Second))})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{2, 3, 4}) {
		t.Errorf("got %v, want [2 3 4]", got)
	}
}

func TestUnsupportedFilterFieldsAreInvalidArguments(t *testing.T) {
	c := collectorClient(t)
	tests := []struct {
		name string
		req  *observerpb.GetFlowsRequest
		want string
	}{
		{"an HTTP field beside event types without L7", &observerpb.GetFlowsRequest{Whitelist: ff(&flowpb.FlowFilter{
			HttpMethod: []string{"GET"}, EventType: []*flowpb.EventTypeFilter{{Type: 1}, {Type: 4}}})},
			"whitelist[0].http_method: filtering by an HTTP field needs the event type filter to match l7 events"},
		{"a bad status code", &observerpb.GetFlowsRequest{Whitelist: ff(&flowpb.FlowFilter{HttpStatusCode: []string{"5xx"}})},
			"whitelist[0].http_status_code: filter \"http-status=5xx\": http-status must be"},
		{"a bad expression", &observerpb.GetFlowsRequest{Blacklist: ff(&flowpb.FlowFilter{DnsQuery: []string{"*.example"}})},
			"blacklist[0].dns_query: filter \"dns-query=*.example\": dns-query must be a regular expression"},
		{"a service", &observerpb.GetFlowsRequest{Blacklist: ff(&flowpb.FlowFilter{SourceService: []string{"x"}})}, "blacklist[0].source_service"},
		{"a bad port", &observerpb.GetFlowsRequest{Whitelist: ff(&flowpb.FlowFilter{DestinationPort: []string{"http"}})}, "destination_port"},
		{"first with follow", &observerpb.GetFlowsRequest{First: true, Follow: true, Number: 1}, "follow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := flowIDs(t, c, tt.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want InvalidArgument naming %s", err, tt.want)
			}
		})
	}
}

func TestGetFlowsFollow(t *testing.T) {
	col, src, _ := startCollector(t, "node1", testFlows())
	c := serve(t, NewCollectorBackend(col))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.GetFlows(ctx, &observerpb.GetFlowsRequest{Follow: true, Number: 1,
		Whitelist: ff(&flowpb.FlowFilter{Protocol: []string{"tcp"}})})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	live := testFlows()[0]
	live.UUID[15] = 7
	live.Time = time.Now()
	src.Live <- testFlows()[3] // UDP: filtered out
	src.Live <- live
	second, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := uuidID(t, first.GetFlow().GetUuid()), uuidID(t, second.GetFlow().GetUuid()); a != 6 || b != 7 {
		t.Errorf("got flows %d, %d; want 6 then 7", a, b)
	}
	if second.GetNodeName() != "node1" || second.GetTime() == nil {
		t.Errorf("response envelope: %v", second)
	}
}

func TestStatusAndNodesOfARelay(t *testing.T) {
	c, r, stops := relayClient(t)
	ctx := context.Background()
	st, err := c.ServerStatus(ctx, &observerpb.ServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetNumFlows() != 6 || st.GetSeenFlows() != 6 || st.GetMaxFlows() != 3*collector.DefaultRingSize ||
		st.GetNumConnectedNodes().GetValue() != 3 || st.GetNumUnavailableNodes().GetValue() != 0 || st.GetUptimeNs() == 0 {
		t.Errorf("status: %v", st)
	}

	stops[1]() // node2 goes away
	waitFor(t, "node2 down", func() bool { return r.Status().NumUnavailableNodes == 1 })
	st, err = c.ServerStatus(ctx, &observerpb.ServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetNumConnectedNodes().GetValue() != 2 || st.GetNumUnavailableNodes().GetValue() != 1 ||
		!slices.Equal(st.GetUnavailableNodes(), []string{"node2"}) || st.GetNumFlows() != 4 {
		t.Errorf("status with node2 down: %v", st)
	}
	nodes, err := c.GetNodes(ctx, &observerpb.GetNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, n := range nodes.GetNodes() {
		if n.GetAddress() == "" {
			t.Errorf("node %s has no address", n.GetName())
		}
		states = append(states, n.GetName()+"="+n.GetState().String())
	}
	want := []string{"node1=NODE_CONNECTED", "node2=NODE_UNAVAILABLE", "node3=NODE_CONNECTED"}
	if !slices.Equal(states, want) {
		t.Errorf("nodes %v, want %v", states, want)
	}
	// GetFlows goes on without node2 and says so.
	ids, events, err := flowIDs(t, c, &observerpb.GetFlowsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []int{1, 3, 4, 6}) {
		t.Errorf("flows %v, want [1 3 4 6]", ids)
	}
	if len(events) != 1 || events[0].GetStateChange() != relaypb.NodeState_NODE_UNAVAILABLE ||
		!slices.Equal(events[0].GetNodeNames(), []string{"node2"}) {
		t.Errorf("node status events %v", events)
	}
}

func TestStatusAndNodesOfACollector(t *testing.T) {
	c := collectorClient(t)
	st, err := c.ServerStatus(context.Background(), &observerpb.ServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetNumFlows() != 6 || st.GetMaxFlows() != collector.DefaultRingSize || st.GetNumConnectedNodes() != nil || st.GetVersion() != "test" {
		t.Errorf("status: %v", st)
	}
	nodes, err := c.GetNodes(context.Background(), &observerpb.GetNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.GetNodes()) != 1 || nodes.GetNodes()[0].GetName() != "node1" || nodes.GetNodes()[0].GetState() != relaypb.NodeState_NODE_CONNECTED {
		t.Errorf("nodes: %v", nodes)
	}
}
