package hubble

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/periscope-dev/periscope/collector"
)

// These tests run the real hubble CLI, built from the cilium module go.mod
// names (scripts/hubble-cli.sh), against Periscope's Observer server: what
// the Go client tests in server_test.go cannot show is that the CLI's own
// requests, filters and printers work unchanged.

// rfc3339 writes a time the way `hubble observe --since` reads it.
func rfc3339(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }

var cliObserveCases = []struct {
	name string
	args []string
	want []int
	// relayWant, when set, is the answer through the relay: --first and
	// --last count per node there, as the CLI documents for hubble-relay.
	relayWant []int
}{
	{name: "a bare observe returns the last 20", want: []int{1, 2, 3, 4, 5, 6}},
	{name: "all returns every flow", args: []string{"--all"}, want: []int{1, 2, 3, 4, 5, 6}},
	{name: "last returns the last N", args: []string{"--last", "2"}, want: []int{5, 6}, relayWant: []int{1, 2, 3, 4, 5, 6}},
	{name: "last 1 is one flow of each node through a relay", args: []string{"--last", "1"}, want: []int{6}, relayWant: []int{4, 5, 6}},
	{name: "first returns the first N", args: []string{"--first", "2"}, want: []int{1, 2}, relayWant: []int{1, 2, 3, 4, 5, 6}},
	{name: "since and until bound the time", args: []string{"--since", rfc3339(2 * time.Second), "--until", rfc3339(4 * time.Second)}, want: []int{2, 3, 4}},
	{name: "a relative since excludes older flows", args: []string{"--since", "1h"}, want: nil},
	{name: "from-pod selects a pod name prefix", args: []string{"--from-pod", "default/frontend"}, want: []int{1, 2, 4}},
	{name: "to-pod selects the destination pod", args: []string{"--to-pod", "shop/db"}, want: []int{3, 4}},
	{name: "pod selects either side", args: []string{"--pod", "shop/db"}, want: []int{3, 4, 6}},
	{name: "from-namespace selects the source namespace", args: []string{"--from-namespace", "shop"}, want: []int{3, 5, 6}},
	{name: "verdict DROPPED selects drops", args: []string{"--verdict", "DROPPED"}, want: []int{2}},
	{name: "to-port selects the destination port", args: []string{"--to-port", "8080"}, want: []int{1, 2}},
	{name: "port selects either port", args: []string{"--port", "40006"}, want: []int{6}},
	{name: "protocols OR", args: []string{"--protocol", "udp", "--protocol", "icmp"}, want: []int{4, 5}},
	{name: "not protocol excludes", args: []string{"--not", "--protocol", "tcp"}, want: []int{4, 5}},
	{name: "label selects either side", args: []string{"--label", "app=backend"}, want: []int{1, 2, 3, 5}},
	{name: "from-label selects the source", args: []string{"--from-label", "k8s:app=backend"}, want: []int{3, 5}},
	{name: "to-label selects the destination", args: []string{"--to-label", "app=frontend"}, want: []int{5}},
	{name: "a set-based from-label selects either value", args: []string{"--from-label", "app in (backend, db)"}, want: []int{3, 5, 6}},
	{name: "notin holds where the value is another or the key absent", args: []string{"--to-label", "k8s:app notin (backend)"}, want: []int{3, 4, 5, 6}},
	{name: "from-ip and to-ip as a CIDR", args: []string{"--from-ip", "10.0.0.1", "--to-ip", "10.0.1.0/24"}, want: []int{4}},
	{name: "flags of different kinds AND", args: []string{"--from-pod", "default/frontend", "--protocol", "tcp"}, want: []int{1, 2}},
	{name: "a filter minus a not", args: []string{"--from-pod", "default/", "--not", "--to-port", "53"}, want: []int{1, 2}},
	{name: "tcp-flags needs every flag", args: []string{"--tcp-flags", "SYN,ACK"}, want: []int{3, 6}},
	{name: "traffic-direction", args: []string{"--traffic-direction", "ingress"}, want: []int{2}},
	{name: "type drop", args: []string{"--type", "drop"}, want: []int{2}},
	{name: "uuid selects one flow", args: []string{"--uuid", "00000000-0000-0000-0000-000000000003"}, want: []int{3}},
	{name: "node-name with a wildcard", args: []string{"--node-name", "node*"}, want: []int{1, 2, 3, 4, 5, 6}},
	{name: "last counts matching flows", args: []string{"--protocol", "tcp", "--last", "2"}, want: []int{3, 6}, relayWant: []int{1, 2, 3, 6}},
	{name: "a CEL expression on the verdict", args: []string{"--cel-expression", "_flow.verdict == Verdict.DROPPED"}, want: []int{2}},
	{name: "a CEL expression on ports and pod names", args: []string{"--cel-expression",
		"_flow.l4.TCP.destination_port == 8080u || _flow.source.pod_name.startsWith('db')"}, want: []int{1, 2, 6}},
	{name: "CEL expressions OR", args: []string{"--cel-expression", "_flow.l4.UDP.destination_port == 53u",
		"--cel-expression", "has(_flow.l4.ICMPv4)"}, want: []int{4, 5}},
	{name: "a CEL expression ANDs with the other flags", args: []string{"--protocol", "tcp",
		"--cel-expression", "_flow.destination.namespace == 'shop'"}, want: []int{1, 2, 3}},
	{name: "a CEL expression with --not excludes", args: []string{"--not", "--cel-expression", "_flow.source.namespace == 'shop'"},
		want: []int{1, 2, 4}},
	{name: "a CEL expression with last counts matching flows", args: []string{"--cel-expression", "_flow.IP.source == '10.0.0.1'",
		"--last", "1"}, want: []int{4}, relayWant: []int{2, 4}},
}

func runCLIObserveCases(t *testing.T, h *hubbleCLI, throughRelay bool) {
	for _, tt := range cliObserveCases {
		want := tt.want
		if throughRelay && tt.relayWant != nil {
			want = tt.relayWant
		}
		t.Run(tt.name, func(t *testing.T) {
			out := h.mustRun(t, append([]string{"observe", "-o", "jsonpb"}, tt.args...)...)
			if got := cliFlowIDs(t, out); !slices.Equal(got, want) {
				t.Errorf("hubble observe %s: got flows %v, want %v", strings.Join(tt.args, " "), got, want)
			}
		})
	}
}

func TestHubbleCLIObserveACollector(t *testing.T) {
	h := newHubbleCLI(t)
	col, _, _ := startCollector(t, "node1", testFlows())
	h.server = serveAddr(t, NewCollectorBackend(col))
	runCLIObserveCases(t, h, false)
}

func TestHubbleCLIObserveARelay(t *testing.T) {
	h := newHubbleCLI(t)
	_, r, _ := relayClient(t)
	h.server = serveAddr(t, NewRelayBackend(r))
	runCLIObserveCases(t, h, true)
}

// The CLI's JSON carries exactly what the server sent, and the fields a
// reader of `hubble observe` looks at are where Hubble puts them.
func TestHubbleCLIPrintsTheServersFlows(t *testing.T) {
	h := newHubbleCLI(t)
	col, _, _ := startCollector(t, "node1", testFlows())
	h.server = serveAddr(t, NewCollectorBackend(col))
	got := parseFlowsJSON(t, h.mustRun(t, "observe", "--all", "-o", "json"))

	c := serve(t, NewCollectorBackend(col))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.GetFlows(ctx, &observerpb.GetFlowsRequest{Number: 100})
	if err != nil {
		t.Fatal(err)
	}
	var want []*observerpb.GetFlowsResponse
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, resp)
	}
	if len(got) != len(want) {
		t.Fatalf("hubble printed %d flows, the server has %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("flow %d:\nhubble printed %v\nthe server sent %v", i, got[i], want[i])
		}
	}

	drop := got[1]
	f := drop.GetFlow()
	checks := []struct {
		what      string
		got, want any
	}{
		{"node_name", drop.GetNodeName(), "node1"},
		{"time", drop.GetTime().AsTime(), t0.Add(2 * time.Second)},
		{"verdict", f.GetVerdict(), flowpb.Verdict_DROPPED},
		{"drop_reason_desc", f.GetDropReasonDesc(), flowpb.DropReason_POLICY_DENY},
		{"ingress_denied_by", fmt.Sprint(f.GetIngressDeniedBy()[0].GetNamespace(), "/", f.GetIngressDeniedBy()[0].GetName(), " ",
			f.GetIngressDeniedBy()[0].GetKind(), " ", f.GetIngressDeniedBy()[0].GetRevision()), "shop/no-frontend CiliumNetworkPolicy 17"},
		{"event_type", f.GetEventType().GetType(), int32(monitorDrop)},
		{"source", f.GetSource().GetNamespace() + "/" + f.GetSource().GetPodName(), "default/frontend-7d4"},
		{"destination", f.GetDestination().GetNamespace() + "/" + f.GetDestination().GetPodName(), "shop/backend-5c"},
		{"source labels", slices.Contains(f.GetSource().GetLabels(), "k8s:app=frontend"), true},
		{"IP", f.GetIP().GetSource() + ">" + f.GetIP().GetDestination(), "10.0.0.1>10.0.0.2"},
		{"TCP ports", fmt.Sprint(f.GetL4().GetTCP().GetSourcePort(), ">", f.GetL4().GetTCP().GetDestinationPort()), "40002>8080"},
		{"TCP SYN", f.GetL4().GetTCP().GetFlags().GetSYN(), true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("flow 2 %s: got %v, want %v", c.what, c.got, c.want)
		}
	}

	// The default compact printer reads the same fields.
	out := h.mustRun(t, "observe", "--last", "1", "--color", "never")
	for _, want := range []string{"shop/db-0:40006", "192.0.2.9:443", "FORWARDED", "SYN, ACK"} {
		if !strings.Contains(out, want) {
			t.Errorf("compact output %q lacks %q", out, want)
		}
	}
}

func TestHubbleCLIRejectsUnsupportedFilters(t *testing.T) {
	h := newHubbleCLI(t)
	col, _, _ := startCollector(t, "node1", testFlows())
	h.server = serveAddr(t, NewCollectorBackend(col))
	_, err := h.run(t, "observe", "--from-service", "shop/api")
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "source_service: not supported by Periscope") {
		t.Errorf("got %v, want InvalidArgument naming source_service", err)
	}
}

// A CEL expression that does not compile, or is not a condition, is
// refused naming it, as Hubble refuses it.
func TestHubbleCLIRejectsBadCELExpressions(t *testing.T) {
	h := newHubbleCLI(t)
	col, _, _ := startCollector(t, "node1", testFlows())
	h.server = serveAddr(t, NewCollectorBackend(col))
	for _, expr := range []string{"_flow.verdict ==", "_flow.no_such_field == 1", "_flow.source.namespace"} {
		_, err := h.run(t, "observe", "--cel-expression", expr)
		want := fmt.Sprintf("whitelist[0].experimental.cel_expression[0] %q", expr)
		if err == nil || !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), want) {
			t.Errorf("--cel-expression %q: got %v, want InvalidArgument naming %s", expr, err, want)
		}
	}
}

func TestHubbleCLIFollow(t *testing.T) {
	tests := []struct {
		name  string
		serve func(t *testing.T, col *collector.Collector) string
	}{
		{"from a collector", func(t *testing.T, col *collector.Collector) string {
			return serveAddr(t, NewCollectorBackend(col))
		}},
		{"through a relay", func(t *testing.T, col *collector.Collector) string {
			return serveAddr(t, NewRelayBackend(startRelay(t, []string{col.Addr().String()})))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHubbleCLI(t)
			col, src, _ := startCollector(t, "node1", testFlows())
			h.server = tt.serve(t, col)
			before := col.Store().Followers()

			follow := h.follow(t, "observe", "-f", "--last", "1", "--protocol", "tcp", "-o", "json")
			next := func() int {
				t.Helper()
				return cliFlowIDs(t, follow.next(t))[0]
			}

			if got := next(); got != 6 {
				t.Errorf("replayed flow %d, want the last TCP flow, 6", got)
			}
			waitFor(t, "the follow to reach the collector", func() bool { return col.Store().Followers() > before })
			udp, tcp := testFlows()[3], testFlows()[0]
			udp.UUID[15], udp.Time = 8, time.Now()
			tcp.UUID[15], tcp.Time = 7, time.Now()
			src.Live <- udp // filtered out by --protocol tcp
			src.Live <- tcp
			if got := next(); got != 7 {
				t.Errorf("live flow %d, want 7", got)
			}

			for _, line := range follow.stop() {
				t.Errorf("unexpected output after the live flow: %s", line)
			}
		})
	}
}

func TestHubbleCLIStatusAndNodesOfACollector(t *testing.T) {
	h := newHubbleCLI(t)
	col, _, _ := startCollector(t, "node1", testFlows())
	h.server = serveAddr(t, NewCollectorBackend(col))

	out := h.mustRun(t, "status")
	for _, want := range []string{"Healthcheck (via " + h.server + "): Ok", fmt.Sprintf("Current/Max Flows: 6/%s ", grouped(collector.DefaultRingSize))} {
		if !strings.Contains(out, want) {
			t.Errorf("hubble status %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "Connected Nodes") {
		t.Errorf("hubble status of a collector shows nodes: %q", out)
	}
	st := &observerpb.ServerStatusResponse{}
	if err := protojson.Unmarshal([]byte(h.mustRun(t, "status", "-o", "json")), st); err != nil {
		t.Fatal(err)
	}
	if st.GetNumFlows() != 6 || st.GetSeenFlows() != 6 || st.GetMaxFlows() != collector.DefaultRingSize ||
		st.GetVersion() != "test" || st.GetUptimeNs() == 0 {
		t.Errorf("hubble status -o json: %v", st)
	}

	nodes := cliNodes(t, h)
	if len(nodes) != 1 || nodes[0].GetName() != "node1" || nodes[0].GetState() != relaypb.NodeState_NODE_CONNECTED ||
		nodes[0].GetNumFlows() != 6 || nodes[0].GetAddress() != col.Addr().String() {
		t.Errorf("hubble list nodes -o json: %v", nodes)
	}
}

func TestHubbleCLIStatusAndNodesOfARelay(t *testing.T) {
	h := newHubbleCLI(t)
	_, r, stops := relayClient(t)
	h.server = serveAddr(t, NewRelayBackend(r))

	out := h.mustRun(t, "status")
	for _, want := range []string{"Current/Max Flows: 6/" + grouped(3*collector.DefaultRingSize), "Connected Nodes: 3/3"} {
		if !strings.Contains(out, want) {
			t.Errorf("hubble status %q lacks %q", out, want)
		}
	}
	table := h.mustRun(t, "list", "nodes")
	if n := strings.Count(table, "Connected"); n != 3 {
		t.Errorf("hubble list nodes shows %d connected nodes, want 3:\n%s", n, table)
	}

	stops[1]() // node2 goes away
	waitFor(t, "node2 down", func() bool { return r.Status().NumUnavailableNodes == 1 })
	out = h.mustRun(t, "status")
	for _, want := range []string{"Current/Max Flows: 4/", "Connected Nodes: 2/3", "Unavailable Nodes: 1\n  - node2"} {
		if !strings.Contains(out, want) {
			t.Errorf("hubble status with node2 down %q lacks %q", out, want)
		}
	}
	var states []string
	for _, n := range cliNodes(t, h) {
		states = append(states, n.GetName()+"="+n.GetState().String())
	}
	if want := []string{"node1=NODE_CONNECTED", "node2=NODE_UNAVAILABLE", "node3=NODE_CONNECTED"}; !slices.Equal(states, want) {
		t.Errorf("hubble list nodes: %v, want %v", states, want)
	}
	// observe goes on without node2 and says so on stderr.
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := h.command(ctx, "observe", "-o", "json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hubble observe with node2 down: %v: %s", err, stderr.String())
	}
	if got := cliFlowIDs(t, stdout.String()); !slices.Equal(got, []int{1, 3, 4, 6}) {
		t.Errorf("flows %v, want [1 3 4 6]", got)
	}
	if !strings.Contains(stderr.String(), "NODE_UNAVAILABLE") || !strings.Contains(stderr.String(), "node2") {
		t.Errorf("stderr %q does not report node2 unavailable", stderr.String())
	}

	// A relay with no node is not healthy, as hubble-relay is not.
	stops[0]()
	stops[2]()
	waitFor(t, "every node down", func() bool { return r.Status().NumUnavailableNodes == 3 })
	out, err := h.run(t, "status")
	if err == nil || !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("hubble status of a relay without nodes: %v, output %q; want a NOT_SERVING failure", err, out)
	}
}
