package metrics

import (
	"net/netip"
	"sync"

	"github.com/periscope-dev/periscope/api"
)

// Deltas turns the cumulative per-connection counters of flow records into
// the traffic since the connection's previous record, so that the traffic
// metrics count every packet and byte exactly once. It remembers at most
// max connections; beyond that it forgets one at random and counts it
// (that connection's next record then counts from zero again). Safe for
// concurrent use.
type Deltas struct {
	mu      sync.Mutex
	max     int
	last    map[connKey]api.Counters
	evicted uint64
}

// connKey identifies a connection on one interface, as the datapath's flow
// table does: that of the connection's entry point (api.Flow.Entry), whose
// counts a record of two observation points is counted by.
type connKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
	ifindex      uint32
}

// NewDeltas tracks at most limit connections (at least one).
func NewDeltas(limit int) *Deltas {
	return &Deltas{max: max(limit, 1), last: make(map[connKey]api.Counters)}
}

// Delta returns the counters of f's entry point (api.Flow.Entry: a
// connection seen at two interfaces counts once) minus those of the
// connection's previous record, and remembers f's (or forgets the
// connection when f ends it). Records without traffic counters (socket
// events) give zero.
func (d *Deltas) Delta(f *api.Flow) api.Counters {
	switch f.Event {
	case api.EventStart, api.EventState, api.EventPeriodic, api.EventEnd:
	default:
		return api.Counters{}
	}
	entry := f.Entry()
	k := connKey{f.IP.Source, f.IP.Destination, f.L4.SourcePort, f.L4.DestinationPort, f.L4.Protocol, entry.Interface.Index}
	cur := entry.Counters
	d.mu.Lock()
	defer d.mu.Unlock()
	last, seen := d.last[k]
	switch {
	case f.Event == api.EventEnd:
		delete(d.last, k)
	case seen || len(d.last) < d.max:
		d.last[k] = cur
	default:
		for old := range d.last { // map iteration starts at a random entry
			delete(d.last, old)
			d.evicted++
			break
		}
		d.last[k] = cur
	}
	return api.Counters{
		PacketsForward: since(cur.PacketsForward, last.PacketsForward),
		BytesForward:   since(cur.BytesForward, last.BytesForward),
		PacketsReply:   since(cur.PacketsReply, last.PacketsReply),
		BytesReply:     since(cur.BytesReply, last.BytesReply),
	}
}

// Stats returns how many connections are tracked and how many were
// forgotten because the table was full.
func (d *Deltas) Stats() (tracked int, evicted uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.last), d.evicted
}

// since is cur-last for a cumulative counter; a smaller cur means the
// connection's entry was recreated, so cur counts from zero.
func since(cur, last uint64) uint64 {
	if cur < last {
		return cur
	}
	return cur - last
}
