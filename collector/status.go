package collector

import (
	"time"

	"github.com/periscope-dev/periscope/api/account"
)

// Status is the body of GET /api/v1/status. The events_* counts are the
// datapath's since its pinned maps were made (they go on across restarts
// that adopt them): events_read + events_lost + events_pending =
// events_emitted. Stages are the accounts of every stage of the flow path
// (the ring buffer, the decoder, each sink's queue), in = out + dropped +
// queued at each.
type Status struct {
	NodeName           string           `json:"node_name"`
	Version            string           `json:"version"`
	UptimeSeconds      float64          `json:"uptime_seconds"`
	EventsRead         uint64           `json:"events_read"`
	EventsLost         uint64           `json:"events_lost"`
	EventsEmitted      uint64           `json:"events_emitted"`
	EventsPending      uint64           `json:"events_pending"`
	FlowsEnded         uint64           `json:"flows_ended"`
	RecordsMerged      uint64           `json:"records_merged"`
	SocketsMerged      uint64           `json:"sockets_merged"`
	FlowTable          FlowTableStatus  `json:"flow_table"`
	MapMemoryBytes     uint64           `json:"map_memory_bytes"`
	Maps               []MapStatus      `json:"maps"`
	FlowsSeen          uint64           `json:"flows_seen"`
	FlowsStored        int              `json:"flows_stored"`
	RingSize           int              `json:"ring_size"`
	Followers          int              `json:"followers"`
	MaxFollowers       int              `json:"max_followers"`
	FollowSkipped      uint64           `json:"follow_skipped"`
	Stages             []account.Stage  `json:"stages"`
	AttachedInterfaces []string         `json:"attached_interfaces"`
	Endpoints          []EndpointStatus `json:"endpoints"`
	// Routes are the HTTP routes served (Routes).
	Routes []string `json:"routes"`
}

// FlowTableStatus is the kernel flow table's fill: entries at the
// sweeper's last pass, of capacity.
type FlowTableStatus struct {
	Entries  uint64 `json:"entries"`
	Capacity uint64 `json:"capacity"`
}

// Status reports the collector's counters and configuration.
func (c *Collector) Status() Status {
	st := Status{
		NodeName:      c.Registry().NodeName(),
		Version:       c.opts.Version,
		UptimeSeconds: time.Since(c.started).Seconds(),
		FlowsSeen:     c.store.Seen(),
		FlowsStored:   c.store.Stored(),
		RingSize:      c.store.Capacity(),
		Followers:     c.follows.InUse(),
		MaxFollowers:  c.follows.Max(),
		FollowSkipped: c.store.Skipped(),
		Endpoints:     c.Registry().Endpoints(),
		Routes:        c.Routes(),
	}
	if c.opts.Stats != nil {
		ds := c.opts.Stats()
		st.EventsRead, st.EventsLost, st.EventsEmitted, st.EventsPending, st.FlowsEnded =
			ds.EventsRead, ds.EventsLost, ds.EventsEmitted, ds.EventsPending, ds.FlowsEnded
		st.RecordsMerged, st.SocketsMerged = ds.RecordsMerged, ds.SocketsMerged
		st.FlowTable = FlowTableStatus{Entries: ds.FlowTableEntries, Capacity: ds.FlowTableSize}
		st.Maps = ds.Maps
		for _, m := range ds.Maps {
			st.MapMemoryBytes += m.Bytes
		}
	}
	if st.Maps == nil {
		st.Maps = []MapStatus{}
	}
	if c.opts.Stages != nil {
		st.Stages = c.opts.Stages()
	}
	st.Stages = append(st.Stages, c.Stages()...)
	if st.Stages == nil {
		st.Stages = []account.Stage{}
	}
	if c.opts.Interfaces != nil {
		st.AttachedInterfaces = c.opts.Interfaces()
	} else {
		c.mu.Lock()
		st.AttachedInterfaces = append([]string(nil), c.attached...)
		c.mu.Unlock()
	}
	if st.AttachedInterfaces == nil {
		st.AttachedInterfaces = []string{}
	}
	return st
}
