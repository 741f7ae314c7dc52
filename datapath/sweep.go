package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/periscope-dev/periscope/api"
)

// sweepBatch is how many flow-table entries one batch lookup reads.
const sweepBatch = 1024

// sweeper ends flows whose connection closed or went idle. It belongs to the
// Run goroutine and reuses its buffers.
type sweeper struct {
	d       *Datapath
	flows   *ebpf.Map
	keys    []tcFlowFlowKey
	values  []tcFlowFlowValue
	ended   []tcFlowFlowKey
	idleNs  uint64
	closeNs uint64
	proxyNs uint64 // idle limit of a redirect's open TCP connections
}

func newSweeper(d *Datapath) *sweeper {
	return &sweeper{
		d:       d,
		flows:   d.objs.Flows,
		keys:    make([]tcFlowFlowKey, sweepBatch),
		values:  make([]tcFlowFlowValue, sweepBatch),
		idleNs:  uint64(d.cfg.IdleTimeout.Nanoseconds()),
		closeNs: uint64(d.cfg.CloseGrace.Nanoseconds()),
		proxyNs: uint64(max(d.cfg.ProxyIdleTimeout, d.cfg.IdleTimeout).Nanoseconds()),
	}
}

// closed reports whether the TCP connection saw FIN both ways or an RST.
func closed(k *tcFlowFlowKey, v *tcFlowFlowValue) bool {
	if k.Proto != api.ProtoTCP {
		return false
	}
	const fins = uint32(tcFlowFlowStateFLOW_STATE_FIN_FWD | tcFlowFlowStateFLOW_STATE_FIN_REV)
	return v.State&uint32(tcFlowFlowStateFLOW_STATE_RST) != 0 || v.State&fins == fins
}

// expired reports whether the flow is over at boot time now.
func (s *sweeper) expired(k *tcFlowFlowKey, v *tcFlowFlowValue, now uint64) bool {
	if now < v.LastSeen {
		return false
	}
	idle := now - v.LastSeen
	if closed(k, v) {
		return idle >= s.closeNs
	}
	if k.Proto == api.ProtoTCP && v.Proxy != uint8(tcFlowFlowProxyFLOW_PROXY_NONE) {
		return idle >= s.proxyNs
	}
	return idle >= s.idleNs
}

// sweep finds the ended flows, deletes each from the table (reading its
// final counts in the same syscall) and calls end with its End event. On
// the way it refreshes the estimate of evicted flows (Stats.FlowsEvicted).
func (s *sweeper) sweep(end func(*flowEvent)) error {
	now := bootNow()
	// Snapshot of the counters before reading the table: entries created
	// after it are not counted live (their first_seen is later).
	k, kerr := s.d.kernelStats()
	swept := s.d.flowsEnded.Load()
	var live uint64
	s.ended = s.ended[:0]
	var cursor ebpf.MapBatchCursor
	for {
		n, err := s.flows.BatchLookup(&cursor, s.keys, s.values, nil)
		for i := range n {
			if s.values[i].FirstSeen <= now {
				live++
			}
			if s.expired(&s.keys[i], &s.values[i], now) {
				s.ended = append(s.ended, s.keys[i])
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("sweep flow table: %w", err)
		}
	}
	s.d.flowsLive.Store(live)
	if kerr == nil {
		// Every entry started was ended (by the sweeper or by a port
		// reuse), is live, or was evicted.
		var evicted uint64
		if gone := k.ended + swept + live; k.started > gone {
			evicted = k.started - gone
		}
		s.d.flowsEvicted.Store(evicted)
	}
	var ev flowEvent
	var v tcFlowFlowValue
	for i := range s.ended {
		k := &s.ended[i]
		if err := s.flows.LookupAndDelete(k, &v); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				continue // evicted meanwhile
			}
			return fmt.Errorf("delete ended flow: %w", err)
		}
		endEvent(&ev, k, &v, now)
		s.d.flowsEnded.Add(1)
		end(&ev)
	}
	return nil
}

// endEvent builds the End event of a flow from its final table entry, the
// way the kernel builds its events (tc_flow.c emit()).
func endEvent(ev *flowEvent, k *tcFlowFlowKey, v *tcFlowFlowValue, now uint64) {
	f := 1
	if v.SrcIsInitiator != 0 {
		f = 0
	}
	ifindex := k.Ifindex
	if v.ObservedAt != 0 { // a local destination's record, kept at the source
		ifindex = v.ObservedAt
	}
	*ev = flowEvent{
		Ts:             now,
		FirstSeen:      v.FirstSeen,
		LastSeen:       v.LastSeen,
		PacketsFwd:     v.Packets[f],
		BytesFwd:       v.Bytes[f],
		PacketsRev:     v.Packets[f^1],
		BytesRev:       v.Bytes[f^1],
		Saddr:          k.Saddr,
		Daddr:          k.Daddr,
		Ifindex:        ifindex,
		Sport:          k.Sport,
		Dport:          k.Dport,
		TcpFlags:       uint16(v.TcpFlags),
		Kind:           uint8(tcFlowFlowKindFLOW_KIND_END),
		Family:         k.Family,
		Proto:          k.Proto,
		Hook:           v.Hook,
		SrcIsInitiator: v.SrcIsInitiator,
		IcmpType:       v.IcmpType,
		IcmpCode:       v.IcmpCode,
		Verdict:        v.Verdict,
		DropReason:     v.DropReason,
		PolicySet:      v.PolicySet,
		Revision:       v.Revision,
	}
}
