package datapath

import (
	"bytes"
	"sync/atomic"

	"github.com/periscope-dev/periscope/api"
)

// merger turns the kernel's events into the records of connections. The
// flow table keys a connection per interface, so a connection between two
// local endpoints has two streams of events, one per observation point (the
// client's veth, where its packets enter the node, and the server's, where
// they leave it); a socket's close comes from the sock tracepoint beside
// them. The merger pairs the two points of a connection into one record
// (api.Flow.Other) and folds the socket events of a connection it knows into
// its records (Process, DestinationProcess). It never adds up counts: each
// point's exact counts stay its own, so a connection's packets are never
// merged with another's even when a 5-tuple comes back (port reuse: the old
// connection's End comes before the new one's START, and the two are kept
// apart as generations of the tuple).
//
// How long events wait for their companion's:
//   - a START or PERIODIC, until the end of the read batch in which it is at
//     least holdNs old (both points' events are submitted microseconds
//     apart, so the companion is usually in the same batch);
//   - an End from the sweeper, until the companion's End (usually in the
//     same sweep; in the next one when the sweep fell between the two
//     points' last packets), at most endHoldNs;
//   - a STATE (a verdict change) never: it is merged with the companion's
//     last event.
//
// A companion that comes too late is folded in silently when it agrees
// with what was emitted, reported as a STATE when its verdict differs. A
// point that cannot pair (a third interface, one at the same hook) gets
// records of its own, as without merging. The merger belongs to Run's
// goroutine.
type merger struct {
	dec  *Decoder
	emit func(*api.Flow)
	bad  func() // counts an event that does not decode
	f    api.Flow

	holdNs, endHoldNs, gcNs uint64

	conns    map[tuple]*conn // the current connection of each tuple
	retiring map[tuple]*conn // the previous one, while its End waits for its companion's
	held     []*conn         // connections with an event held
	free     []*conn
	stats    *mergeStats
}

// tuple is a connection's flow-table key without its interface: both
// observation points of a connection share it (addresses in key order).
type tuple struct {
	saddr, daddr  [16]byte
	sport, dport  uint16
	family, proto uint8
}

// point is one observation point of a connection.
type point struct {
	ifindex  uint32
	hook     uint8
	heldKind uint8  // the kind of the event held for the companion's; 0: none
	ended    bool   // its End was emitted or is held
	heldAt   uint64 // boot ns
	last     flowEvent
}

// sockProc is the process of one of a connection's sockets.
type sockProc struct {
	pid    uint32
	cgroup uint64
	comm   [16]int8
}

// conn is one connection: up to two observation points, the processes of
// its sockets ([0]: the initiator's, [1]: the responder's).
type conn struct {
	t      tuple
	pts    [2]point
	n      uint8
	procs  [2]sockProc
	lastTs uint64 // boot ns of its latest event
	inHeld bool   // listed in merger.held
	dead   bool   // forgotten, to be freed once off merger.held
}

const (
	kindStart    = uint8(tcFlowFlowKindFLOW_KIND_START)
	kindState    = uint8(tcFlowFlowKindFLOW_KIND_STATE)
	kindPeriodic = uint8(tcFlowFlowKindFLOW_KIND_PERIODIC)
	kindEnd      = uint8(tcFlowFlowKindFLOW_KIND_END)
	kindSock     = uint8(tcFlowFlowKindFLOW_KIND_SOCK)

	hookIngress = uint8(tcFlowFlowHookFLOW_HOOK_INGRESS)
	hookEgress  = uint8(tcFlowFlowHookFLOW_HOOK_EGRESS)
)

// startHold is how long a START or PERIODIC waits for its companion's.
const startHold = 1_000_000 // 1 ms

func newMerger(dec *Decoder, emit func(*api.Flow), bad func(), cfg Config, stats *mergeStats) *merger {
	if stats.folded == nil { // not pinned (tests)
		stats.folded = new(atomic.Uint64)
	}
	sweep := uint64(cfg.sweepEvery().Nanoseconds())
	return &merger{
		dec: dec, emit: emit, bad: bad, stats: stats,
		holdNs:    startHold,
		endHoldNs: 2*sweep + startHold,
		// Every live connection has an event at least every report
		// interval (PERIODIC) or is ended by the sweeper after the idle
		// timeout: one silent for longer was evicted.
		gcNs:     uint64((max(cfg.IdleTimeout, cfg.ReportInterval) + cfg.CloseGrace).Nanoseconds()) + 2*sweep,
		conns:    make(map[tuple]*conn),
		retiring: make(map[tuple]*conn),
	}
}

// event takes one kernel event (from the ring or the sweeper).
func (m *merger) event(ev *flowEvent) {
	if err := checkEvent(ev); err != nil {
		m.bad()
		return
	}
	switch ev.Kind {
	case kindStart:
		m.start(ev)
	case kindState, kindPeriodic:
		m.update(ev)
	case kindEnd:
		m.end(ev)
	case kindSock:
		m.sock(ev)
	}
}

func tupleOf(ev *flowEvent) tuple {
	return tuple{saddr: ev.Saddr, daddr: ev.Daddr, sport: ev.Sport, dport: ev.Dport, family: ev.Family, proto: ev.Proto}
}

// sockTuple is the tuple of a socket event (local address first) in the
// flow table's key order: the lower (address, port) is the source, as
// tc_flow.c's normalise orders it.
func sockTuple(ev *flowEvent) tuple {
	t := tupleOf(ev)
	if c := bytes.Compare(t.saddr[:], t.daddr[:]); c > 0 || c == 0 && t.sport > t.dport {
		t.saddr, t.daddr, t.sport, t.dport = t.daddr, t.saddr, t.dport, t.sport
	}
	return t
}

// find returns the index of the point at ifindex, -1 when none.
func (c *conn) find(ifindex uint32) int {
	for i := range int(c.n) {
		if c.pts[i].ifindex == ifindex {
			return i
		}
	}
	return -1
}

// pairs reports whether ev's point is p's companion: another interface,
// the other hook (one where the initiator's packets enter the node, one
// where they leave it).
func pairs(p *point, ev *flowEvent) bool {
	return p.ifindex != ev.Ifindex &&
		(p.hook == hookIngress && ev.Hook == hookEgress || p.hook == hookEgress && ev.Hook == hookIngress)
}

func (m *merger) start(ev *flowEvent) {
	t := tupleOf(ev)
	if c := m.conns[t]; c != nil {
		switch {
		case c.find(ev.Ifindex) >= 0:
			// The point starts again: a new connection on the tuple.
			m.retire(c)
		case c.n == 1 && pairs(&c.pts[0], ev):
			m.join(c, ev)
			return
		default:
			m.emitOne(nil, ev) // a point that does not pair: a record of its own
			return
		}
	}
	c := m.newConn(t)
	c.pts[0] = point{ifindex: ev.Ifindex, hook: ev.Hook, last: *ev}
	c.n = 1
	c.lastTs = ev.Ts
	m.hold(c, 0, ev.Ts)
}

// join adds ev's point, the companion of c's first, to c.
func (m *merger) join(c *conn, ev *flowEvent) {
	c.pts[1] = point{ifindex: ev.Ifindex, hook: ev.Hook, last: *ev}
	c.n = 2
	c.lastTs = max(c.lastTs, ev.Ts)
	first := &c.pts[0]
	switch {
	case first.heldKind == kindStart:
		m.unhold(first, true)
		m.emitPair(c, &first.last, ev, api.EventStart)
	case verdictOf(ev.Verdict) != verdictOf(first.last.Verdict) || ev.DropReason != first.last.DropReason:
		// The first point's START went out alone; what this one adds is
		// a verdict of its own.
		m.emitPair(c, &first.last, ev, api.EventState)
	default:
		m.stats.lateJoins.Add(1)
		m.stats.folded.Add(1)
	}
}

// update takes a STATE or PERIODIC.
func (m *merger) update(ev *flowEvent) {
	c := m.conns[tupleOf(ev)]
	i := -1
	if c != nil {
		i = c.find(ev.Ifindex)
	}
	if i < 0 {
		m.emitOne(nil, ev)
		return
	}
	p := &c.pts[i]
	if p.heldKind != 0 {
		m.release(c, i) // its earlier event goes first
	}
	p.last = *ev
	c.lastTs = max(c.lastTs, ev.Ts)
	if c.n == 1 {
		m.emitOne(c, ev)
		return
	}
	q := &c.pts[1-i]
	switch {
	case q.heldKind == ev.Kind:
		m.unhold(q, true)
		m.emitPair(c, &q.last, ev, api.EventKind(ev.Kind))
	case ev.Kind == kindState:
		m.emitPair(c, &q.last, ev, api.EventState)
	default:
		m.hold(c, i, ev.Ts)
	}
}

// end takes an End: the sweeper's, or the kernel's on a port reuse.
func (m *merger) end(ev *flowEvent) {
	c, i := m.endsAt(tupleOf(ev), ev.Ifindex)
	if c == nil {
		m.emitOne(nil, ev)
		return
	}
	p := &c.pts[i]
	if p.heldKind != 0 {
		m.release(c, i)
	}
	p.last = *ev
	p.ended = true
	c.lastTs = max(c.lastTs, ev.Ts)
	if c.n == 1 {
		m.emitOne(c, ev)
		m.drop(c)
		return
	}
	q := &c.pts[1-i]
	switch {
	case q.heldKind == kindEnd:
		m.unhold(q, true)
		m.emitPair(c, &q.last, ev, api.EventEnd)
		m.drop(c)
	case q.ended: // its End went out alone
		m.emitOne(c, ev)
		m.drop(c)
	default:
		if q.heldKind != 0 {
			m.release(c, 1-i)
		}
		m.hold(c, i, ev.Ts)
	}
}

// endsAt finds the connection whose point at ifindex an End of tuple t
// ends: the retiring one's first (a port reuse ends it before the new one
// starts), else the current one's.
func (m *merger) endsAt(t tuple, ifindex uint32) (*conn, int) {
	for _, c := range [2]*conn{m.retiring[t], m.conns[t]} {
		if c == nil {
			continue
		}
		if i := c.find(ifindex); i >= 0 && !c.pts[i].ended {
			return c, i
		}
	}
	return nil, -1
}

// sock folds a socket's close into its connection's records, or makes it
// a record of its own when the flow programs never saw the connection.
func (m *merger) sock(ev *flowEvent) {
	unmapV4(ev)
	t := sockTuple(ev)
	c := m.conns[t]
	if c == nil {
		c = m.retiring[t]
	}
	if c == nil {
		m.emitOne(nil, ev)
		return
	}
	side := 1
	if ev.SrcIsInitiator == 1 { // the local socket opened the connection
		side = 0
	}
	c.procs[side] = sockProc{pid: ev.Pid, cgroup: ev.CgroupId, comm: ev.Comm}
	m.stats.socksMerged.Add(1)
	m.stats.folded.Add(1)
}

// v4Mapped is the prefix of an IPv4-mapped IPv6 address (::ffff:a.b.c.d).
var v4Mapped = [12]byte{10: 0xff, 11: 0xff}

// unmapV4 turns the event of an IPv6 socket talking IPv4 (a dual-stack
// listener's accepted connection: both addresses IPv4-mapped) into the
// IPv4 event the flow programs key its connection by.
func unmapV4(ev *flowEvent) {
	if ev.Family != 6 || [12]byte(ev.Saddr[:12]) != v4Mapped || [12]byte(ev.Daddr[:12]) != v4Mapped {
		return
	}
	ev.Family = 4
	copy(ev.Saddr[:4], ev.Saddr[12:])
	copy(ev.Daddr[:4], ev.Daddr[12:])
	clear(ev.Saddr[4:])
	clear(ev.Daddr[4:])
}

// hold makes point i of c wait for its companion's event.
func (m *merger) hold(c *conn, i int, at uint64) {
	if c.pts[i].heldKind == 0 {
		m.stats.held.Add(1)
	}
	c.pts[i].heldKind = c.pts[i].last.Kind
	c.pts[i].heldAt = at
	if !c.inHeld {
		c.inHeld = true
		m.held = append(m.held, c)
	}
}

// unhold ends p's wait: its held event is about to be emitted, or is
// folded into its companion's record (counted as merged).
func (m *merger) unhold(p *point, folded bool) {
	p.heldKind = 0
	m.stats.held.Add(^uint64(0))
	if folded {
		m.stats.folded.Add(1)
	}
}

// release emits point i's held event without its companion's: merged
// with the companion's last event when there is one, except an End.
func (m *merger) release(c *conn, i int) {
	p := &c.pts[i]
	kind := p.heldKind
	m.unhold(p, false)
	if c.n == 2 && kind != kindEnd {
		m.emitPair(c, &p.last, &c.pts[1-i].last, api.EventKind(kind))
		return
	}
	m.emitOne(c, &p.last)
}

// endOfBatch releases the STARTs and PERIODICs that waited long enough;
// boot is the boot time now.
func (m *merger) endOfBatch(boot uint64) { m.releaseHeld(boot, false) }

// endOfSweep releases the Ends that waited long enough too, and forgets
// connections silent for too long (evicted from the flow table).
func (m *merger) endOfSweep(boot uint64) {
	m.releaseHeld(boot, true)
	for _, tab := range []map[tuple]*conn{m.conns, m.retiring} {
		for _, c := range tab {
			if !c.inHeld && boot > c.lastTs && boot-c.lastTs > m.gcNs {
				m.drop(c)
			}
		}
	}
}

// flush emits every held event: Run is ending.
func (m *merger) flush() {
	for _, c := range m.held {
		for i := range int(c.n) {
			if !c.dead && c.pts[i].heldKind != 0 {
				m.release(c, i)
			}
		}
		c.inHeld = false
	}
	clear(m.held)
	m.held = m.held[:0]
}

func (m *merger) releaseHeld(boot uint64, ends bool) {
	kept := m.held[:0]
	for _, c := range m.held {
		waiting := false
		for i := range int(c.n) {
			p := &c.pts[i]
			if c.dead || p.heldKind == 0 {
				continue
			}
			wait := m.holdNs
			if p.heldKind == kindEnd {
				if !ends {
					waiting = true
					continue
				}
				wait = m.endHoldNs
			}
			if boot < p.heldAt || boot-p.heldAt < wait {
				waiting = true
				continue
			}
			if p.heldKind == kindEnd {
				m.stats.endsAlone.Add(1)
			}
			m.release(c, i)
		}
		if waiting && !c.dead {
			kept = append(kept, c)
			continue
		}
		c.inHeld = false
		if c.dead {
			m.free = append(m.free, c)
		} else if c.allEnded() {
			m.drop(c)
		}
	}
	clear(m.held[len(kept):])
	m.held = kept
}

// allEnded reports whether every point of c has ended.
func (c *conn) allEnded() bool {
	for i := range int(c.n) {
		if !c.pts[i].ended {
			return false
		}
	}
	return true
}

// retire makes c the previous connection of its tuple, making room for a
// new one; one already retiring is released.
func (m *merger) retire(c *conn) {
	if old := m.retiring[c.t]; old != nil {
		for i := range int(old.n) {
			if old.pts[i].heldKind != 0 {
				m.release(old, i)
			}
		}
		m.drop(old)
	}
	delete(m.conns, c.t)
	m.retiring[c.t] = c
}

func (m *merger) newConn(t tuple) *conn {
	var c *conn
	if n := len(m.free); n > 0 {
		c = m.free[n-1]
		m.free = m.free[:n-1]
		*c = conn{}
	} else {
		c = &conn{}
	}
	c.t = t
	m.conns[t] = c
	return c
}

// drop forgets c; it is reused once off the held list.
func (m *merger) drop(c *conn) {
	if c.dead {
		return
	}
	if m.conns[c.t] == c {
		delete(m.conns, c.t)
	}
	if m.retiring[c.t] == c {
		delete(m.retiring, c.t)
	}
	c.dead = true
	if !c.inHeld {
		m.free = append(m.free, c)
	}
}

// severity orders verdicts: the more severe point speaks for a connection.
func severity(v uint8) int {
	switch v {
	case uint8(tcFlowFlowVerdictFLOW_VERDICT_DROPPED):
		return 3
	case uint8(tcFlowFlowVerdictFLOW_VERDICT_AUDIT):
		return 2
	}
	return 1
}

// emitPair emits the record of kind merging the events of c's two points:
// its own fields from the more severe one (the entry's when they agree),
// Other from the other.
func (m *merger) emitPair(c *conn, a, b *flowEvent, kind api.EventKind) {
	own, other := a, b
	if sa, sb := severity(a.Verdict), severity(b.Verdict); sb > sa || sb == sa && b.Hook == hookIngress && a.Hook != hookIngress {
		own, other = b, a
	}
	if err := m.dec.decodeEvent(own, &m.f); err != nil {
		m.bad()
		return
	}
	m.f.Event = kind
	m.dec.decodeOther(other, &m.f)
	m.withProcesses(c)
	m.stats.merged.Add(1)
	m.emit(&m.f)
}

// emitOne emits ev's record alone, with c's processes when c is known.
func (m *merger) emitOne(c *conn, ev *flowEvent) {
	if err := m.dec.decodeEvent(ev, &m.f); err != nil {
		m.bad()
		return
	}
	if c != nil {
		m.withProcesses(c)
	}
	m.emit(&m.f)
}

// withProcesses sets the record's processes from c's sockets.
func (m *merger) withProcesses(c *conn) {
	m.f.Process = m.process(&c.procs[0])
	m.f.DestinationProcess = m.process(&c.procs[1])
}

func (m *merger) process(p *sockProc) api.Process {
	if p.pid == 0 && p.cgroup == 0 {
		return api.Process{}
	}
	return api.Process{PID: p.pid, Comm: m.dec.comm(&p.comm), CgroupID: p.cgroup}
}
