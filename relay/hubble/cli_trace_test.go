package hubble

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// tracePointFlows are one record of each trace observation point Periscope
// has, each a connection seen at two points: frontend → backend between two
// local veths (from-endpoint at veth-fe, to-endpoint at veth-be); the world
// → db through host interface 2 (from-network there, to-endpoint at
// veth-db); db → the world (from-endpoint at veth-db, to-network at
// interface 2); and a socket record, which has no point. Record n has n as
// the last byte of its UUID, its second point n|0x80.
func tracePointFlows() []api.Flow {
	mk := func(n byte, src, dst string, at api.Observation, other api.Observation) api.Flow {
		f := api.Flow{
			Time: t0.Add(time.Duration(n) * time.Second), Type: api.FlowTypeL3L4, Event: api.EventEnd, Verdict: api.VerdictForwarded,
			L4:        api.L4{Protocol: api.ProtoTCP, SourcePort: 41000 + uint16(n), DestinationPort: 443, TCPFlags: api.TCPFlagSYN},
			Interface: at.Interface, InitiatorHook: at.InitiatorHook,
			Other: other,
		}
		f.IP = api.IP{Source: addr(src), Destination: addr(dst), Version: api.IPv4}
		f.UUID[15] = n
		return f
	}
	in := func(ifindex uint32) api.Observation {
		return api.Observation{Interface: api.Interface{Index: ifindex}, InitiatorHook: api.TrafficDirectionIngress, Verdict: api.VerdictForwarded}
	}
	out := func(ifindex uint32) api.Observation {
		return api.Observation{Interface: api.Interface{Index: ifindex}, InitiatorHook: api.TrafficDirectionEgress, Verdict: api.VerdictForwarded}
	}
	sock := api.Flow{Time: t0.Add(4 * time.Second), Type: api.FlowTypeSock, Event: api.EventSock, Verdict: api.VerdictTraced,
		IP: api.IP{Source: ipFrontend, Destination: ipWorld, Version: api.IPv4},
		L4: api.L4{Protocol: api.ProtoTCP, SourcePort: 41004, DestinationPort: 443}}
	sock.UUID[15] = 4
	return []api.Flow{
		mk(1, "frontend", "backend", in(10), out(11)),
		mk(2, "world", "db", in(2), out(12)),
		mk(3, "db", "world", in(12), out(2)),
		sock,
	}
}

func addr(name string) netip.Addr {
	return map[string]netip.Addr{"frontend": ipFrontend, "backend": ipBackend, "db": ipDB, "world": ipWorld}[name]
}

// `hubble observe --type trace:<point>` selects the flows Hubble reports at
// that trace observation point: each point of a record is served as a flow
// of its own (as with --interface), carrying its point as its event's
// sub-type and its trace_observation_point; Cilium's points Periscope has
// no hook at select nothing; a bare --type trace keeps one flow per record.
func TestHubbleCLITraceObservationPoints(t *testing.T) {
	h := newHubbleCLI(t)
	col, _, _ := startCollector(t, "node1", tracePointFlows())
	h.server = serveAddr(t, NewCollectorBackend(col))
	type seen struct {
		id    int
		iface string
		point string // trace_observation_point
		sub   int32  // event_type.sub_type
	}
	fromFE := seen{1, "veth-fe", "FROM_ENDPOINT", 5}
	toBE := seen{0x81, "veth-be", "TO_ENDPOINT", 0}
	fromNet := seen{2, "", "FROM_NETWORK", 10}
	toDB := seen{0x82, "veth-db", "TO_ENDPOINT", 0}
	fromDB := seen{3, "veth-db", "FROM_ENDPOINT", 5}
	toNet := seen{0x83, "", "TO_NETWORK", 11}
	sock := seen{4, "", "UNKNOWN_POINT", 0}
	for _, c := range []struct {
		name string
		args []string
		want []seen
	}{
		{"from-endpoint", []string{"--type", "trace:from-endpoint"}, []seen{fromFE, fromDB}},
		{"to-endpoint", []string{"--type", "trace:to-endpoint"}, []seen{toBE, toDB}},
		{"from-network", []string{"--type", "trace:from-network"}, []seen{fromNet}},
		{"to-network", []string{"--type", "trace:to-network"}, []seen{toNet}},
		{"two points, either", []string{"--type", "trace:to-endpoint", "--type", "trace:from-network"}, []seen{toBE, fromNet, toDB}},
		{"a point and a pod", []string{"--type", "trace:to-endpoint", "--to-pod", "shop/db-0"}, []seen{toDB}},
		{"a point Periscope has no hook at", []string{"--type", "trace:to-stack"}, nil},
		{"trace alone is one flow per record", []string{"--type", "trace"}, []seen{fromFE, fromNet, fromDB, sock}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []seen
			for _, r := range parseFlowsJSON(t, h.mustRun(t, append([]string{"observe", "--all", "-o", "json"}, c.args...)...)) {
				f := r.GetFlow()
				got = append(got, seen{uuidID(t, f.GetUuid()), f.GetInterface().GetName(), f.GetTraceObservationPoint().String(), f.GetEventType().GetSubType()})
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("hubble printed %+v, want %+v", got, c.want)
			}
		})
	}
	t.Run("the compact output names the point", func(t *testing.T) {
		out := h.mustRun(t, "observe", "--all", "--type", "trace:to-network")
		if !strings.Contains(out, "to-network FORWARDED") {
			t.Errorf("hubble printed %q, want its to-network trace", out)
		}
	})
}
