package sink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// The journal's encoding of one flow: compact, written without allocating
// on the pipeline goroutine, read back only when a queue recovers what a
// crashed run accepted. Fixed-size fields are little-endian, strings and
// lists are a uvarint length then their content; the L7 record is encoded
// the same way (flowcodec_l7.go). TestFlowCodecKeepsEveryField fails when
// api.Flow (or its L7 record) gains a field this encoding does not carry.

// flowCodecVersion is the first byte of every encoded flow. Version 2
// added the destination's process and the other observation point
// (api.Flow.Other), version 3 the L7 record's trace ID; flows of an
// earlier version (a journal of an earlier release) are read without what
// came later.
const flowCodecVersion = 3

// Time kinds: a zero time, a UTC one, or one in the local zone.
const (
	timeZero  = 0
	timeUTC   = 1
	timeLocal = 2
)

// appendFlow appends f's encoding to dst. It allocates only when dst must
// grow.
func appendFlow(dst []byte, f *api.Flow) []byte {
	dst = append(dst, flowCodecVersion)
	dst = appendTime(dst, f.Time)
	dst = append(dst, f.UUID[:]...)
	dst = append(dst, byte(f.Verdict))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(f.DropReason))
	dst = appendAddr(dst, f.IP.Source)
	dst = appendAddr(dst, f.IP.Destination)
	dst = append(dst, byte(f.IP.Version))
	dst = append(dst, f.L4.Protocol)
	dst = binary.LittleEndian.AppendUint16(dst, f.L4.SourcePort)
	dst = binary.LittleEndian.AppendUint16(dst, f.L4.DestinationPort)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(f.L4.TCPFlags))
	dst = append(dst, f.L4.ICMPType, f.L4.ICMPCode)
	dst = appendEndpoint(dst, &f.Source)
	dst = appendEndpoint(dst, &f.Destination)
	dst = append(dst, byte(f.Type), byte(f.TrafficDirection))
	dst = appendString(dst, f.NodeName)
	dst = append(dst, boolByte(f.IsReply))
	dst = binary.LittleEndian.AppendUint32(dst, f.Interface.Index)
	dst = appendString(dst, f.Interface.Name)
	dst = append(dst, byte(f.Event))
	dst = appendTime(dst, f.StartTime)
	dst = appendTime(dst, f.EndTime)
	dst = binary.LittleEndian.AppendUint64(dst, f.Counters.PacketsForward)
	dst = binary.LittleEndian.AppendUint64(dst, f.Counters.BytesForward)
	dst = binary.LittleEndian.AppendUint64(dst, f.Counters.PacketsReply)
	dst = binary.LittleEndian.AppendUint64(dst, f.Counters.BytesReply)
	dst = binary.LittleEndian.AppendUint32(dst, f.Process.PID)
	dst = appendString(dst, f.Process.Comm)
	dst = binary.LittleEndian.AppendUint64(dst, f.Process.CgroupID)
	dst = append(dst, byte(f.InitiatorHook))
	dst = binary.LittleEndian.AppendUint32(dst, f.DestinationProcess.PID)
	dst = appendString(dst, f.DestinationProcess.Comm)
	dst = binary.LittleEndian.AppendUint64(dst, f.DestinationProcess.CgroupID)
	dst = appendObservation(dst, &f.Other)
	dst = appendPolicyRefs(dst, f.IngressAllowedBy)
	dst = appendPolicyRefs(dst, f.EgressAllowedBy)
	dst = appendPolicyRefs(dst, f.IngressDeniedBy)
	dst = appendPolicyRefs(dst, f.EgressDeniedBy)
	dst = appendStrings(dst, f.SourceNames)
	dst = appendStrings(dst, f.DestinationNames)
	return appendL7(dst, f.L7)
}

// appendObservation appends an observation point's fields.
func appendObservation(dst []byte, o *api.Observation) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, o.Interface.Index)
	dst = appendString(dst, o.Interface.Name)
	dst = append(dst, byte(o.InitiatorHook), byte(o.TrafficDirection), byte(o.Verdict))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(o.DropReason))
	dst = binary.LittleEndian.AppendUint64(dst, o.Counters.PacketsForward)
	dst = binary.LittleEndian.AppendUint64(dst, o.Counters.BytesForward)
	dst = binary.LittleEndian.AppendUint64(dst, o.Counters.PacketsReply)
	return binary.LittleEndian.AppendUint64(dst, o.Counters.BytesReply)
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendTime(dst []byte, t time.Time) []byte {
	switch {
	case t.IsZero():
		return append(dst, timeZero)
	case t.Location() == time.UTC:
		dst = append(dst, timeUTC)
	default:
		dst = append(dst, timeLocal)
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(t.Unix()))
	return binary.LittleEndian.AppendUint32(dst, uint32(t.Nanosecond()))
}

// appendAddr writes an address as its length (0, 4 or 16), its bytes and,
// for 16, its zone.
func appendAddr(dst []byte, a netip.Addr) []byte {
	switch {
	case !a.IsValid():
		return append(dst, 0)
	case a.Is4():
		b := a.As4()
		return append(append(dst, 4), b[:]...)
	}
	b := a.As16()
	dst = append(append(dst, 16), b[:]...)
	return appendString(dst, a.Zone())
}

func appendEndpoint(dst []byte, e *api.Endpoint) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, e.ID)
	dst = binary.LittleEndian.AppendUint32(dst, e.Identity)
	dst = appendString(dst, e.Namespace)
	dst = appendStrings(dst, e.Labels)
	dst = appendString(dst, e.PodName)
	return appendString(dst, e.Workload)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendStrings writes a list as its length plus one, so that a nil list
// (0) and an empty one (1) stay apart.
func appendStrings(dst []byte, ss []string) []byte {
	if ss == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(ss))+1)
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// appendPolicyRefs writes a list of policies as appendStrings does, each
// as its name, namespace, kind and revision.
func appendPolicyRefs(dst []byte, refs []api.PolicyRef) []byte {
	if refs == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(refs))+1)
	for i := range refs {
		dst = appendString(dst, refs[i].Name)
		dst = appendString(dst, refs[i].Namespace)
		dst = appendString(dst, refs[i].Kind)
		dst = binary.AppendUvarint(dst, refs[i].Revision)
	}
	return dst
}

// errShortFlow: the encoding ends before the flow does.
var errShortFlow = errors.New("encoded flow cut short")

// flowReader reads an encoding written by appendFlow; the first error
// sticks and later reads return zeros.
type flowReader struct {
	b   []byte
	err error
}

// decodeFlow reads one flow encoded by appendFlow into f, which it resets.
func decodeFlow(b []byte, f *api.Flow) error {
	r := flowReader{b: b}
	v := r.byte()
	if r.err == nil && (v < 1 || v > flowCodecVersion) {
		return fmt.Errorf("encoded flow of version %d, want 1 to %d", v, flowCodecVersion)
	}
	*f = api.Flow{}
	f.Time = r.time()
	copy(f.UUID[:], r.take(16))
	f.Verdict = api.Verdict(r.byte())
	f.DropReason = api.DropReason(r.u16())
	f.IP.Source = r.addr()
	f.IP.Destination = r.addr()
	f.IP.Version = api.IPVersion(r.byte())
	f.L4.Protocol = r.byte()
	f.L4.SourcePort = r.u16()
	f.L4.DestinationPort = r.u16()
	f.L4.TCPFlags = api.TCPFlags(r.u16())
	f.L4.ICMPType = r.byte()
	f.L4.ICMPCode = r.byte()
	r.endpoint(&f.Source)
	r.endpoint(&f.Destination)
	f.Type = api.FlowType(r.byte())
	f.TrafficDirection = api.TrafficDirection(r.byte())
	f.NodeName = r.string()
	f.IsReply = r.byte() != 0
	f.Interface.Index = r.u32()
	f.Interface.Name = r.string()
	f.Event = api.EventKind(r.byte())
	f.StartTime = r.time()
	f.EndTime = r.time()
	f.Counters.PacketsForward = r.u64()
	f.Counters.BytesForward = r.u64()
	f.Counters.PacketsReply = r.u64()
	f.Counters.BytesReply = r.u64()
	f.Process.PID = r.u32()
	f.Process.Comm = r.string()
	f.Process.CgroupID = r.u64()
	f.InitiatorHook = api.TrafficDirection(r.byte())
	if v >= 2 {
		f.DestinationProcess.PID = r.u32()
		f.DestinationProcess.Comm = r.string()
		f.DestinationProcess.CgroupID = r.u64()
		r.observation(&f.Other)
	}
	f.IngressAllowedBy = r.policyRefs()
	f.EgressAllowedBy = r.policyRefs()
	f.IngressDeniedBy = r.policyRefs()
	f.EgressDeniedBy = r.policyRefs()
	f.SourceNames = r.strings()
	f.DestinationNames = r.strings()
	f.L7 = r.l7(v)
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("encoded flow has %d bytes past its end", len(r.b))
	}
	return nil
}

func (r *flowReader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = errShortFlow
		return make([]byte, max(n, 0))
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *flowReader) byte() byte     { return r.take(1)[0] }
func (r *flowReader) u16() uint16    { return binary.LittleEndian.Uint16(r.take(2)) }
func (r *flowReader) u32() uint32    { return binary.LittleEndian.Uint32(r.take(4)) }
func (r *flowReader) u64() uint64    { return binary.LittleEndian.Uint64(r.take(8)) }
func (r *flowReader) string() string { return string(r.take(int(r.uvarint()))) }

func (r *flowReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > uint64(len(r.b)) {
		r.err = errShortFlow
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *flowReader) time() time.Time {
	kind := r.byte()
	if kind == timeZero || r.err != nil {
		return time.Time{}
	}
	t := time.Unix(int64(r.u64()), int64(r.u32()))
	if kind == timeUTC {
		t = t.UTC()
	}
	return t
}

func (r *flowReader) addr() netip.Addr {
	switch n := r.byte(); n {
	case 0:
		return netip.Addr{}
	case 4:
		return netip.AddrFrom4([4]byte(r.take(4)))
	case 16:
		a := netip.AddrFrom16([16]byte(r.take(16)))
		if zone := r.string(); zone != "" {
			a = a.WithZone(zone)
		}
		return a
	default:
		if r.err == nil {
			r.err = fmt.Errorf("encoded address of %d bytes", n)
		}
		return netip.Addr{}
	}
}

// observation reads what appendObservation wrote.
func (r *flowReader) observation(o *api.Observation) {
	o.Interface.Index = r.u32()
	o.Interface.Name = r.string()
	o.InitiatorHook = api.TrafficDirection(r.byte())
	o.TrafficDirection = api.TrafficDirection(r.byte())
	o.Verdict = api.Verdict(r.byte())
	o.DropReason = api.DropReason(r.u16())
	o.Counters.PacketsForward = r.u64()
	o.Counters.BytesForward = r.u64()
	o.Counters.PacketsReply = r.u64()
	o.Counters.BytesReply = r.u64()
}

func (r *flowReader) endpoint(e *api.Endpoint) {
	e.ID = r.u32()
	e.Identity = r.u32()
	e.Namespace = r.string()
	e.Labels = r.strings()
	e.PodName = r.string()
	e.Workload = r.string()
}

func (r *flowReader) strings() []string {
	n := r.uvarint()
	if n == 0 || r.err != nil {
		return nil
	}
	ss := make([]string, 0, min(n-1, uint64(len(r.b))))
	for range n - 1 {
		ss = append(ss, r.string())
		if r.err != nil {
			return nil
		}
	}
	return ss
}

func (r *flowReader) policyRefs() []api.PolicyRef {
	n := r.uvarint()
	if n == 0 || r.err != nil {
		return nil
	}
	refs := make([]api.PolicyRef, 0, min(n-1, uint64(len(r.b))))
	for range n - 1 {
		refs = append(refs, api.PolicyRef{Name: r.string(), Namespace: r.string(), Kind: r.string(), Revision: r.number()})
		if r.err != nil {
			return nil
		}
	}
	return refs
}

// number reads a uvarint that is a value, not a length (which uvarint
// bounds by the bytes left).
func (r *flowReader) number() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortFlow
		return 0
	}
	r.b = r.b[n:]
	return v
}
