package hubble

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector"
	enforcercompile "github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// `hubble list namespaces` and `hubble observe agent-events`, run by the
// real CLI against a collector and a relay.

// recentFlows are the test flows stamped within the last minute, and one
// of namespace old's pod from two hours ago, which Hubble no longer lists.
func recentFlows() []api.Flow {
	now := time.Now()
	flows := testFlows()
	for i := range flows {
		flows[i].Time = now.Add(time.Duration(i-len(flows)) * time.Second)
	}
	old := flows[0]
	old.IP.Source, old.Time = ipLegacy, now.Add(-2*time.Hour)
	return append([]api.Flow{old}, flows...)
}

// cliNamespaces runs `hubble list namespaces -o json`.
func cliNamespaces(t *testing.T, h *hubbleCLI) []string {
	t.Helper()
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(h.mustRun(t, "list", "namespaces", "-o", "json")), &raw); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range raw {
		ns := &observerpb.Namespace{}
		if err := protojson.Unmarshal(r, ns); err != nil {
			t.Fatalf("namespace %s: %v", r, err)
		}
		out = append(out, ns.GetCluster()+"/"+ns.GetNamespace())
	}
	return out
}

func TestHubbleCLIListsNamespacesOfRecentFlows(t *testing.T) {
	h := newHubbleCLI(t)
	col, _, _ := startCollector(t, "node1", recentFlows())
	h.server = serveAddr(t, NewCollectorBackend(col))
	if got, want := cliNamespaces(t, h), []string{"default/default", "default/shop"}; !slices.Equal(got, want) {
		t.Errorf("hubble list namespaces: %v, want %v", got, want)
	}
	table := h.mustRun(t, "list", "namespaces", "-o", "wide")
	if !strings.Contains(table, "NAMESPACE") || !strings.Contains(table, "shop") || strings.Contains(table, "old") {
		t.Errorf("hubble list namespaces -o wide:\n%s", table)
	}
}

func TestHubbleCLIListsNamespacesThroughARelay(t *testing.T) {
	h := newHubbleCLI(t)
	flows := recentFlows()
	// node1 sees default and shop; node2, in cluster east, shop only.
	c1, _, _ := startCollector(t, "node1", flows[:2])
	c2, _, _ := startCollectorIn(t, "node2", "east", flows[3:4])
	h.server = serveAddr(t, NewRelayBackend(startRelay(t, []string{c1.Addr().String(), c2.Addr().String()})))
	if got, want := cliNamespaces(t, h), []string{"default/default", "default/shop", "east/shop"}; !slices.Equal(got, want) {
		t.Errorf("hubble list namespaces through a relay: %v, want %v", got, want)
	}
}

// nopApplier brings nothing into force: the policy store's events are
// what these tests look at.
type nopApplier struct{}

func (nopApplier) ApplyPolicy(*enforcercompile.Compiled) error { return nil }
func (nopApplier) SetPolicyAudit(uint32, bool) error           { return nil }
func (nopApplier) String() string                              { return "nop" }

func newPolicyStore(t *testing.T, c *collector.Collector) *policystore.Store {
	t.Helper()
	s, err := policystore.New(policystore.Options{Applier: nopApplier{}, Endpoints: c.Registry(), Events: c.Events()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const dbPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: db-clients, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: backend}}]
`

// agentEvent is one `hubble observe agent-events -o json` line, as a
// comparable summary: node, type and what the event names.
func agentEvents(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	for line := range strings.Lines(out) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		resp := &observerpb.GetAgentEventsResponse{}
		if err := protojson.Unmarshal([]byte(line), resp); err != nil {
			t.Fatalf("hubble output line %q: %v", line, err)
		}
		got = append(got, summary(resp))
	}
	return got
}

func summary(resp *observerpb.GetAgentEventsResponse) string {
	e := resp.GetAgentEvent()
	s := resp.GetNodeName() + " " + e.GetType().String()
	switch e.GetType() {
	case flowpb.AgentEventType_POLICY_UPDATED, flowpb.AgentEventType_POLICY_DELETED:
		p := e.GetPolicyUpdate()
		s += fmt.Sprintf(" %s rev=%d rules=%d", strings.Join(p.GetLabels(), ","), p.GetRevision(), p.GetRuleCount())
	case flowpb.AgentEventType_ENDPOINT_CREATED, flowpb.AgentEventType_ENDPOINT_DELETED:
		ep := e.GetEndpointUpdate()
		s += fmt.Sprintf(" %d %s/%s", ep.GetId(), ep.GetNamespace(), ep.GetPodName())
	case flowpb.AgentEventType_AGENT_STARTED:
		if e.GetAgentStart().GetTime().AsTime().IsZero() {
			s += " without a start time"
		}
	}
	return s
}

const dbPolicyLabels = "k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy,k8s:io.cilium.k8s.policy.name=db-clients,k8s:io.cilium.k8s.policy.namespace=shop"

func TestHubbleCLIObservesAgentEvents(t *testing.T) {
	h := newHubbleCLI(t)
	col, _, _ := startCollector(t, "node1", testFlows())
	h.server = serveAddr(t, NewCollectorBackend(col))
	store := newPolicyStore(t, col)
	if _, _, err := store.Apply("db.yaml", []byte(dbPolicy)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Delete("", "shop", "db-clients"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"node1 AGENT_STARTED",
		"node1 ENDPOINT_CREATED 10 default/frontend-7d4",
		"node1 ENDPOINT_CREATED 11 shop/backend-5c",
		"node1 ENDPOINT_CREATED 12 shop/db-0",
		"node1 ENDPOINT_CREATED 13 old/legacy-0",
		"node1 POLICY_UPDATED " + dbPolicyLabels + " rev=2 rules=1",
		"node1 POLICY_DELETED " + dbPolicyLabels + " rev=3 rules=1",
	}
	if got := agentEvents(t, h.mustRun(t, "observe", "agent-events", "-o", "json")); !slices.Equal(got, want) {
		t.Errorf("hubble observe agent-events:\n got %q\nwant %q", got, want)
	}
	if got := agentEvents(t, h.mustRun(t, "observe", "agent-events", "--last", "2", "-o", "json")); !slices.Equal(got, want[5:]) {
		t.Errorf("--last 2: %q, want %q", got, want[5:])
	}
	// The CLI sends no first for agent events; other clients may.
	stream, err := serve(t, NewCollectorBackend(col)).GetAgentEvents(context.Background(),
		&observerpb.GetAgentEventsRequest{Number: 1, First: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || summary(resp) != want[0] {
		t.Errorf("first 1: %v (%v), want %q", resp, err, want[0])
	}
	if got := agentEvents(t, h.mustRun(t, "observe", "agent-events", "--since", time.Now().Add(time.Hour).Format(time.RFC3339), "-o", "json")); len(got) != 0 {
		t.Errorf("--since in an hour: %q, want none", got)
	}
	// The compact printer shows what Hubble shows of a policy update.
	out := h.mustRun(t, "observe", "agent-events", "--last", "2")
	for _, w := range []string{"POLICY_UPDATED", "POLICY_DELETED", "labels: [" + dbPolicyLabels + "], revision: 2, count: 1"} {
		if !strings.Contains(out, w) {
			t.Errorf("compact output %q lacks %q", out, w)
		}
	}
}

func TestHubbleCLIFollowsAgentEventsThroughARelay(t *testing.T) {
	h := newHubbleCLI(t)
	c1, _, _ := startCollector(t, "node1", testFlows()[:1])
	c2, _, _ := startCollector(t, "node2", testFlows()[1:2])
	h.server = serveAddr(t, NewRelayBackend(startRelay(t, []string{c1.Addr().String(), c2.Addr().String()})))

	// Every node's events, by time.
	got := agentEvents(t, h.mustRun(t, "observe", "agent-events", "--all", "-o", "json"))
	var started []string
	for _, s := range got {
		if strings.HasSuffix(s, "AGENT_STARTED") {
			started = append(started, s)
		}
	}
	if len(got) != 10 || !slices.Equal(started, []string{"node1 AGENT_STARTED", "node2 AGENT_STARTED"}) {
		t.Errorf("hubble observe agent-events --all through a relay: %q, want 5 events of each node, node1's first", got)
	}

	follow := h.follow(t, "observe", "agent-events", "-f", "--last", "1", "-o", "json")
	next := func() string {
		t.Helper()
		return agentEvents(t, follow.next(t))[0]
	}
	replayed := []string{next(), next()} // the last event of each node
	slices.Sort(replayed)
	if want := []string{"node1 ENDPOINT_CREATED 13 old/legacy-0", "node2 ENDPOINT_CREATED 13 old/legacy-0"}; !slices.Equal(replayed, want) {
		t.Errorf("replayed %q, want %q", replayed, want)
	}
	if _, _, err := newPolicyStore(t, c2).Apply("db.yaml", []byte(dbPolicy)); err != nil {
		t.Fatal(err)
	}
	if got, want := next(), "node2 POLICY_UPDATED "+dbPolicyLabels+" rev=2 rules=1"; got != want {
		t.Errorf("live event %q, want %q", got, want)
	}
	follow.stop()
}
