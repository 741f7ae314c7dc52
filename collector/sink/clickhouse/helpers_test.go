package clickhouse

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink/clickhouse/chtest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openStore starts a server (unless srv is given) and opens a store on db.
func openStore(t testing.TB, srv *chtest.Server, db string) (*Store, *chtest.Server) {
	t.Helper()
	if srv == nil {
		srv = chtest.Start(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn := srv.DSN(db)
	if c := os.Getenv("PERISCOPE_BENCH_COMPRESS"); c != "" {
		dsn += "&compress=" + c
	}
	s, err := Open(ctx, Options{DSN: dsn, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, srv
}

var (
	namespaces = []string{"default", "kube-system", "shop", "it's; DROP TABLE flows; --"}
	pods       = []string{"frontend-7d9f", "backend-55c1", "db-0", `we\ird'pod`, "frontend-abc"}
	nodes      = []string{"node-a", "node-b", "worker-1"}
)

// genFlows makes n varied synthetic flows with distinct UUIDs around base.
func genFlows(seed uint64, n int, base time.Time) []api.Flow {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]api.Flow, n)
	for i := range out {
		f := &out[i]
		f.Time = base.Add(time.Duration(i)*time.Millisecond + time.Duration(r.IntN(1000)))
		binary.LittleEndian.PutUint64(f.UUID[:8], seed)
		binary.LittleEndian.PutUint64(f.UUID[8:], uint64(i)+1)
		f.NodeName = nodes[r.IntN(len(nodes))]
		f.Event = api.EventKind(1 + r.IntN(5))
		f.Type = api.FlowType(1 + r.IntN(3))
		f.Verdict = api.Verdict(1 + r.IntN(4))
		if f.Verdict == api.VerdictDropped {
			f.DropReason = api.DropReasonPolicyDenied
		}
		f.TrafficDirection = api.TrafficDirection(r.IntN(3))
		f.IsReply = r.IntN(4) == 0
		switch r.IntN(6) {
		case 0:
			f.IP = api.IP{Source: netip.MustParseAddr(fmt.Sprintf("fd00::%x", r.IntN(300))), Destination: netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", r.IntN(300))), Version: api.IPv6}
		case 1: // no address (a SOCK flow without IP)
		default:
			f.IP = api.IP{Source: netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(4)), byte(r.IntN(256))}), Destination: netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(2)), byte(r.IntN(256))}), Version: api.IPv4}
		}
		protos := []uint8{api.ProtoTCP, api.ProtoUDP, api.ProtoICMPv4, api.ProtoICMPv6, api.ProtoSCTP, 0}
		f.L4.Protocol = protos[r.IntN(len(protos))]
		f.L4.SourcePort = uint16(1024 + r.IntN(60000))
		f.L4.DestinationPort = []uint16{80, 443, 53, 8080, 5432}[r.IntN(5)]
		f.L4.TCPFlags = api.TCPFlags(r.IntN(512))
		f.L4.ICMPType, f.L4.ICMPCode = uint8(r.IntN(10)), uint8(r.IntN(3))
		f.Source = genEndpoint(r)
		f.Destination = genEndpoint(r)
		f.Interface = api.Interface{Index: uint32(r.IntN(10)), Name: fmt.Sprintf("veth%d", r.IntN(10))}
		f.InitiatorHook = api.TrafficDirection(i % 3)
		switch i % 5 { // a local endpoint seen at its veth: with the hooks, every trace point
		case 0:
			f.Source.ID = f.Interface.Index
		case 1:
			f.Destination.ID = f.Interface.Index
		}
		f.StartTime = f.Time.Add(-time.Duration(r.IntN(1e9)))
		f.EndTime = f.Time
		f.Counters = api.Counters{PacketsForward: uint64(r.IntN(1000)), BytesForward: uint64(r.IntN(1 << 30)), PacketsReply: uint64(r.IntN(1000)), BytesReply: r.Uint64() >> 20}
		if f.Type == api.FlowTypeSock {
			f.Process = api.Process{PID: uint32(r.IntN(1 << 20)), Comm: "curl", CgroupID: r.Uint64()}
		}
		if r.IntN(3) == 0 {
			f.IngressAllowedBy = []api.PolicyRef{{Name: "allow-web", Kind: "CiliumClusterwideNetworkPolicy", Revision: 3}}
			f.EgressDeniedBy = []api.PolicyRef{{Name: "deny-egress", Namespace: "shop", Kind: "CiliumNetworkPolicy", Revision: 9}, {Name: "it's", Namespace: "o'neil", Kind: "NetworkPolicy"}}
		}
		f.SourceNames, f.DestinationNames = genNames(i)
		if f.Type == api.FlowTypeL3L4 && r.IntN(2) == 0 { // seen at two veths of the node
			f.Other = api.Observation{Interface: api.Interface{Index: uint32(10 + r.IntN(10)), Name: fmt.Sprintf("veth%d", r.IntN(10))},
				InitiatorHook: api.TrafficDirection(1 + r.IntN(2)), TrafficDirection: api.TrafficDirection(r.IntN(3)),
				Verdict: api.Verdict(1 + r.IntN(4)), DropReason: api.DropReason(r.IntN(200)),
				Counters: api.Counters{PacketsForward: uint64(r.IntN(1000)), BytesForward: uint64(r.IntN(1 << 30)), PacketsReply: uint64(r.IntN(1000)), BytesReply: r.Uint64() >> 20}}
			f.Process = api.Process{PID: uint32(r.IntN(1 << 20)), Comm: "curl", CgroupID: r.Uint64()}
			f.DestinationProcess = api.Process{PID: uint32(r.IntN(1 << 20)), Comm: "nginx", CgroupID: r.Uint64()}
		}
	}
	return out
}

// genNames are a flow's DNS names, by its index (not drawn from the
// generator, whose stream the other fields keep).
func genNames(i int) (src, dst []string) {
	switch i % 7 {
	case 1:
		return nil, []string{"api.example.com"}
	case 2:
		return nil, []string{"a.b.example.com", "www.example.com"}
	case 3:
		return []string{"db.internal"}, nil
	case 4:
		return []string{"it's.example.com"}, []string{"api.example.org"}
	case 5:
		return []string{"api.example.com"}, []string{"db.internal"}
	}
	return nil, nil
}

func genEndpoint(r *rand.Rand) api.Endpoint {
	if r.IntN(5) == 0 {
		return api.Endpoint{} // world: nothing known
	}
	ns := namespaces[r.IntN(len(namespaces))]
	pod := pods[r.IntN(len(pods))]
	labels := []string{"k8s:app=" + []string{"web", "api", "db", "o'neil"}[r.IntN(4)], "k8s:io.kubernetes.pod.namespace=" + ns}
	if r.IntN(3) == 0 {
		labels = append(labels, "reserved:host")
	}
	if r.IntN(4) == 0 {
		labels = append(labels, "custom:tier=backend")
	}
	return api.Endpoint{ID: uint32(r.IntN(100)), Identity: uint32(r.IntN(5) * 1000), Namespace: ns, PodName: pod, Workload: pod[:min(len(pod), 4)], Labels: labels}
}

// tableChecksum returns count, distinct uuids and the checksum of db.flows.
func tableChecksum(t testing.TB, s *Store) (n, distinct, sum uint64) {
	t.Helper()
	if err := s.conn.QueryRow(context.Background(), chtest.ChecksumSQL+"`"+s.db+"`.flows").Scan(&n, &distinct, &sum); err != nil {
		t.Fatalf("checksum query: %v", err)
	}
	return n, distinct, sum
}

// sqlRows reads the flows a query of flowColumns selects, with no filter
// in Go.
func sqlRows(ctx context.Context, s *Store, query string, args []any) ([]api.Flow, error) {
	var out []api.Flow
	err := s.read(ctx, query, args, func() error { return nil }, func(f *api.Flow) (bool, error) {
		out = append(out, *f)
		return true, nil
	})
	return out, err
}
