package datapath

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/api"
)

// flowEvent is the ring-buffer event, generated from bpf/flow.h.
type flowEvent = tcFlowFlowEvent

// EventSize is the size in bytes of one kernel flow event.
const EventSize = int(unsafe.Sizeof(flowEvent{}))

// ErrMalformed is wrapped by every Decode error about the event's content.
var ErrMalformed = errors.New("malformed flow event")

// Clock converts the kernel's CLOCK_BOOTTIME nanoseconds to wall-clock time.
// The offset is computed once, so a wall-clock step after NewClock shifts
// every converted time by the step; the collector restarts rarely enough.
type Clock struct {
	offset int64 // wall-clock ns minus boot-time ns
}

// NewClock measures the offset between the wall clock and CLOCK_BOOTTIME.
func NewClock() (Clock, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return Clock{}, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	return Clock{offset: time.Now().UnixNano() - ts.Nano()}, nil
}

// FixedClock returns a Clock whose boot time 0 is the given wall-clock time:
// for tests and replays.
func FixedClock(boot time.Time) Clock { return Clock{offset: boot.UnixNano()} }

// Time converts a bpf_ktime_get_boot_ns value to wall-clock time.
func (c Clock) Time(bootNs uint64) time.Time {
	return time.Unix(0, c.offset+int64(bootNs))
}

// bootNow returns the current CLOCK_BOOTTIME in nanoseconds.
func bootNow() uint64 {
	var ts unix.Timespec
	// CLOCK_BOOTTIME cannot fail on Linux once NewClock succeeded.
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano())
}

// Decoder turns raw kernel events into api.Flow records without allocating:
// it owns a PRNG for flow UUIDs and a small cache of process names. It is not
// safe for concurrent use; give each reader its own.
type Decoder struct {
	Clock Clock
	rng   *rand.PCG
	comms map[[16]byte]string
	names *atomic.Pointer[nameTables] // policy names by revision; nil: none
}

// maxComms bounds the process-name cache; it is emptied when full.
const maxComms = 4096

// NewDecoder returns a Decoder using clock, with UUIDs seeded from seed.
func NewDecoder(clock Clock, seed uint64) *Decoder {
	return &Decoder{
		Clock: clock,
		rng:   rand.NewPCG(seed, seed^0x9e3779b97f4a7c15),
		comms: make(map[[16]byte]string),
	}
}

// Decode checks raw (one ring-buffer sample) and fills f from it, resetting
// every field of f first. It never panics on bad input: a short sample or an
// unknown kind, family or protocol is an error wrapping ErrMalformed.
func (d *Decoder) Decode(raw []byte, f *api.Flow) error {
	if len(raw) < EventSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(raw), EventSize)
	}
	var ev flowEvent
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&ev)), EventSize), raw)
	return d.decodeEvent(&ev, f)
}

// checkEvent reports what is wrong with an event whose fields decodeEvent
// could not turn into a flow, wrapping ErrMalformed.
func checkEvent(ev *flowEvent) error {
	kind := api.EventKind(ev.Kind)
	switch {
	case kind < api.EventStart || kind > api.EventSock:
		return fmt.Errorf("%w: kind %d", ErrMalformed, ev.Kind)
	case ev.SrcIsInitiator > 1:
		return fmt.Errorf("%w: src_is_initiator %d", ErrMalformed, ev.SrcIsInitiator)
	case ev.Family != 4 && ev.Family != 6:
		return fmt.Errorf("%w: family %d", ErrMalformed, ev.Family)
	case ev.Hook > 2:
		return fmt.Errorf("%w: hook %d", ErrMalformed, ev.Hook)
	case kind == api.EventSock && ev.Proto != api.ProtoTCP:
		return fmt.Errorf("%w: sock event for protocol %d", ErrMalformed, ev.Proto)
	}
	switch ev.Verdict {
	case 0, uint8(tcFlowFlowVerdictFLOW_VERDICT_FORWARDED), uint8(tcFlowFlowVerdictFLOW_VERDICT_DROPPED),
		uint8(tcFlowFlowVerdictFLOW_VERDICT_AUDIT):
		return nil
	}
	return fmt.Errorf("%w: verdict %d", ErrMalformed, ev.Verdict)
}

// decodeEvent fills f from an event (from the ring buffer or the sweeper).
func (d *Decoder) decodeEvent(ev *flowEvent, f *api.Flow) error {
	*f = api.Flow{}
	if err := checkEvent(ev); err != nil {
		return err
	}
	kind := api.EventKind(ev.Kind)
	src, dst := ev.Saddr, ev.Daddr
	sport, dport := ev.Sport, ev.Dport
	if ev.SrcIsInitiator == 0 {
		src, dst = dst, src
		if ev.Proto != api.ProtoICMPv4 && ev.Proto != api.ProtoICMPv6 {
			sport, dport = dport, sport
		}
	}
	switch ev.Family {
	case 4:
		f.IP.Source = netip.AddrFrom4([4]byte(src[:4]))
		f.IP.Destination = netip.AddrFrom4([4]byte(dst[:4]))
		f.IP.Version = api.IPv4
	default:
		f.IP.Source = netip.AddrFrom16(src)
		f.IP.Destination = netip.AddrFrom16(dst)
		f.IP.Version = api.IPv6
	}

	f.L4.Protocol = ev.Proto
	switch ev.Proto {
	case api.ProtoICMPv4, api.ProtoICMPv6:
		f.L4.ICMPType, f.L4.ICMPCode = ev.IcmpType, ev.IcmpCode
	case api.ProtoTCP:
		f.L4.SourcePort, f.L4.DestinationPort = sport, dport
		f.L4.TCPFlags = api.TCPFlags(ev.TcpFlags)
	default:
		f.L4.SourcePort, f.L4.DestinationPort = sport, dport
	}

	f.Time = d.Clock.Time(ev.Ts)
	d.uuid(&f.UUID)
	f.Verdict = verdictOf(ev.Verdict)
	f.DropReason = api.DropReason(ev.DropReason)
	f.Event = kind
	f.StartTime = d.Clock.Time(ev.FirstSeen)
	f.EndTime = d.Clock.Time(ev.LastSeen)
	f.Counters = api.Counters{
		PacketsForward: ev.PacketsFwd,
		BytesForward:   ev.BytesFwd,
		PacketsReply:   ev.PacketsRev,
		BytesReply:     ev.BytesRev,
	}
	f.Interface.Index = ev.Ifindex
	if kind == api.EventSock {
		f.Type = api.FlowTypeSock
		// A socket's state change is no verdict: the connection's is its
		// L3_L4 record's (a connect policy dropped also reaches
		// ESTABLISHED or CLOSE here). TRACED, as Hubble's SOCK events.
		f.Verdict = api.VerdictTraced
		f.Process = api.Process{PID: ev.Pid, Comm: d.comm(&ev.Comm), CgroupID: ev.CgroupId}
		return nil
	}
	f.Type = api.FlowTypeL3L4
	f.InitiatorHook = api.TrafficDirection(ev.Hook)
	d.policyNames(ev, f)
	return nil
}

// decodeOther fills f.Other from ev, the event of the connection's other
// observation point, and that point's policy names. f is ev's connection,
// decoded from the event of its own point (decodeEvent).
func (d *Decoder) decodeOther(ev *flowEvent, f *api.Flow) {
	o := &f.Other
	o.Interface.Index = ev.Ifindex
	o.InitiatorHook = api.TrafficDirection(ev.Hook)
	o.Verdict = verdictOf(ev.Verdict)
	o.DropReason = api.DropReason(ev.DropReason)
	o.Counters = api.Counters{
		PacketsForward: ev.PacketsFwd,
		BytesForward:   ev.BytesFwd,
		PacketsReply:   ev.PacketsRev,
		BytesReply:     ev.BytesRev,
	}
	if ev.Proto == api.ProtoTCP {
		f.L4.TCPFlags |= api.TCPFlags(ev.TcpFlags)
	}
	if first := d.Clock.Time(ev.FirstSeen); first.Before(f.StartTime) {
		f.StartTime = first
	}
	if last := d.Clock.Time(ev.LastSeen); last.After(f.EndTime) {
		f.EndTime = last
	}
	d.policyNames(ev, f)
}

// verdictOf is the api.Verdict of a kernel verdict that decodeEvent
// accepted.
func verdictOf(v uint8) api.Verdict {
	switch v {
	case uint8(tcFlowFlowVerdictFLOW_VERDICT_DROPPED):
		return api.VerdictDropped
	case uint8(tcFlowFlowVerdictFLOW_VERDICT_AUDIT):
		return api.VerdictAudit
	}
	return api.VerdictForwarded
}

// policyNames fills the deciding policies' names: from the name-set table
// of the revision that judged (shared slices, no allocation). The direction
// is the local endpoint's: EGRESS when the initiator's packets enter the
// host at a pod's interface (they leave the pod), INGRESS when they enter
// it at a host device.
func (d *Decoder) policyNames(ev *flowEvent, f *api.Flow) {
	if ev.PolicySet == 0 || d.names == nil {
		return
	}
	t := d.names.Load()
	if t == nil {
		return
	}
	names, host := t.lookup(ev.Revision, ev.PolicySet, ev.Ifindex) // the endpoint that judged
	if names == nil {
		return
	}
	deny := ev.DropReason == uint16(tcFlowDropReasonDROP_POLICY_DENY)
	// On a host device the initiator's packets entering the host are the
	// host endpoint's ingress.
	egress := (ev.Hook == uint8(tcFlowFlowHookFLOW_HOOK_INGRESS)) != host
	switch {
	case egress && deny:
		f.EgressDeniedBy = names
	case egress:
		f.EgressAllowedBy = names
	case deny:
		f.IngressDeniedBy = names
	default:
		f.IngressAllowedBy = names
	}
}

// uuid writes a random (version 4) UUID without allocating.
func (d *Decoder) uuid(u *[16]byte) {
	a, b := d.rng.Uint64(), d.rng.Uint64()
	for i := range 8 {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
}

// comm returns the process name, interned so a known name costs no allocation.
func (d *Decoder) comm(c *[16]int8) string {
	var key [16]byte
	n := 0
	for i, ch := range c {
		if ch == 0 {
			break
		}
		key[i] = byte(ch)
		n = i + 1
	}
	if s, ok := d.comms[key]; ok {
		return s
	}
	if len(d.comms) >= maxComms {
		clear(d.comms)
	}
	s := string(key[:n])
	d.comms[key] = s
	return s
}
