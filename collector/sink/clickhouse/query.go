package clickhouse

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// rowDecoder scans one row of flowColumns and rebuilds the flow.
type rowDecoder struct {
	ptrs []any

	t                                time.Time
	tns                              uint32
	uuid, node                       string
	event, typ, verdict              uint8
	dropReason                       uint16
	direction, isReply, hook, ipVer  uint8
	srcIP, dstIP                     string
	proto                            uint8
	sport, dport                     uint16
	icmpType, icmpCode               uint8
	tcpFlags                         uint16
	src, dst                         epRow
	ifIndex                          uint32
	ifName                           string
	startNs, endNs                   int64
	pf, bf, pr, br                   uint64
	pid                              uint32
	comm                             string
	cgroup                           uint64
	inAllow, egAllow, inDeny, egDeny []string
	l7                               l7Row
	kinds                            [4][]string // of inAllow, egAllow, inDeny, egDeny
	revisions                        [4][]uint64
	srcNames, dstNames               []string
	other                            pointRow
	dstPID                           uint32
	dstComm                          string
	dstCgroup                        uint64
	traceID                          string
}

// pointRow is a row's second observation point (pointColumns).
type pointRow struct {
	ifIndex                  uint32
	ifName                   string
	hook, direction, verdict uint8
	dropReason               uint16
	pf, bf, pr, br           uint64
}

func (p *pointRow) observation() api.Observation {
	return api.Observation{
		Interface: api.Interface{Index: p.ifIndex, Name: p.ifName}, InitiatorHook: api.TrafficDirection(p.hook),
		TrafficDirection: api.TrafficDirection(p.direction), Verdict: api.Verdict(p.verdict), DropReason: api.DropReason(p.dropReason),
		Counters: api.Counters{PacketsForward: p.pf, BytesForward: p.bf, PacketsReply: p.pr, BytesReply: p.br},
	}
}

type epRow struct {
	id, identity      uint32
	ns, pod, workload string
	keys, values      []string
}

func (d *rowDecoder) init() {
	d.ptrs = []any{
		&d.t, &d.tns, &d.uuid, &d.node,
		&d.event, &d.typ, &d.verdict, &d.dropReason,
		&d.direction, &d.isReply, &d.hook, &d.ipVer,
		&d.srcIP, &d.dstIP,
		&d.proto, &d.sport, &d.dport, &d.icmpType, &d.icmpCode, &d.tcpFlags,
		&d.src.id, &d.src.identity, &d.src.ns, &d.src.pod, &d.src.workload, &d.src.keys, &d.src.values,
		&d.dst.id, &d.dst.identity, &d.dst.ns, &d.dst.pod, &d.dst.workload, &d.dst.keys, &d.dst.values,
		&d.ifIndex, &d.ifName, &d.startNs, &d.endNs,
		&d.pf, &d.bf, &d.pr, &d.br,
		&d.pid, &d.comm, &d.cgroup,
		&d.inAllow, &d.egAllow, &d.inDeny, &d.egDeny,
	}
	d.ptrs = append(d.ptrs, d.l7.ptrs()...)
	d.ptrs = append(d.ptrs, &d.kinds[0], &d.kinds[1], &d.kinds[2], &d.kinds[3],
		&d.revisions[0], &d.revisions[1], &d.revisions[2], &d.revisions[3])
	d.ptrs = append(d.ptrs, &d.srcNames, &d.dstNames)
	o := &d.other
	d.ptrs = append(d.ptrs, &o.ifIndex, &o.ifName, &o.hook, &o.direction, &o.verdict, &o.dropReason,
		&o.pf, &o.bf, &o.pr, &o.br, &d.dstPID, &d.dstComm, &d.dstCgroup)
	d.ptrs = append(d.ptrs, &d.traceID)
	if len(d.ptrs) != len(flowColumns) {
		panic(fmt.Sprintf("clickhouse: decoder has %d fields for %d columns", len(d.ptrs), len(flowColumns)))
	}
}

func (d *rowDecoder) flow() api.Flow {
	f := api.Flow{
		Time:             time.Unix(d.t.Unix(), int64(d.tns)).UTC(),
		NodeName:         d.node,
		Event:            api.EventKind(d.event),
		Type:             api.FlowType(d.typ),
		Verdict:          api.Verdict(d.verdict),
		DropReason:       api.DropReason(d.dropReason),
		TrafficDirection: api.TrafficDirection(d.direction),
		IsReply:          d.isReply != 0,
		InitiatorHook:    api.TrafficDirection(d.hook),
		IP:               api.IP{Source: addr16(d.srcIP), Destination: addr16(d.dstIP), Version: api.IPVersion(d.ipVer)},
		L4: api.L4{Protocol: d.proto, SourcePort: d.sport, DestinationPort: d.dport,
			ICMPType: d.icmpType, ICMPCode: d.icmpCode, TCPFlags: api.TCPFlags(d.tcpFlags)},
		Source:      d.src.endpoint(),
		Destination: d.dst.endpoint(),
		Interface:   api.Interface{Index: d.ifIndex, Name: d.ifName},
		StartTime:   fromNanos(d.startNs),
		EndTime:     fromNanos(d.endNs),
		Counters:    api.Counters{PacketsForward: d.pf, BytesForward: d.bf, PacketsReply: d.pr, BytesReply: d.br},
		Process:     api.Process{PID: d.pid, Comm: d.comm, CgroupID: d.cgroup},

		IngressAllowedBy: policyRefsOf(d.inAllow, d.kinds[0], d.revisions[0]),
		EgressAllowedBy:  policyRefsOf(d.egAllow, d.kinds[1], d.revisions[1]),
		IngressDeniedBy:  policyRefsOf(d.inDeny, d.kinds[2], d.revisions[2]),
		EgressDeniedBy:   policyRefsOf(d.egDeny, d.kinds[3], d.revisions[3]),
		SourceNames:      nilIfEmpty(d.srcNames),
		DestinationNames: nilIfEmpty(d.dstNames),

		DestinationProcess: api.Process{PID: d.dstPID, Comm: d.dstComm, CgroupID: d.dstCgroup},
		Other:              d.other.observation(),
	}
	copy(f.UUID[:], d.uuid)
	f.L7 = d.l7.record()
	if f.L7 != nil {
		f.L7.TraceID = d.traceID
	}
	return f
}

// policyRefsOf reads a row's policies: refs ("namespace/name") with the
// kinds and revisions beside them (rows older than migration 4 have none).
func policyRefsOf(refs, kinds []string, revisions []uint64) []api.PolicyRef {
	if len(refs) == 0 {
		return nil
	}
	out := make([]api.PolicyRef, len(refs))
	for i, r := range refs {
		kind := ""
		if i < len(kinds) {
			kind = kinds[i]
		}
		out[i] = api.ParsePolicyRef(r, kind)
		if i < len(revisions) {
			out[i].Revision = revisions[i]
		}
	}
	return out
}

func (e *epRow) endpoint() api.Endpoint {
	ep := api.Endpoint{ID: e.id, Identity: e.identity, Namespace: e.ns, PodName: e.pod, Workload: e.workload}
	if len(e.keys) > 0 {
		ep.Labels = make([]string, len(e.keys))
		for i, k := range e.keys {
			if i < len(e.values) && e.values[i] != "" {
				k += "=" + e.values[i]
			}
			ep.Labels[i] = k
		}
	}
	return ep
}

// addr16 reads a FixedString(16) address: mapped IPv4 comes back as IPv4,
// zero bytes as no address.
func addr16(b string) netip.Addr {
	if len(b) != 16 || b == string(zeroIP) {
		return netip.Addr{}
	}
	var a [16]byte
	copy(a[:], b)
	return netip.AddrFrom16(a).Unmap()
}

func fromNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
