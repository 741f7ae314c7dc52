package otel

import (
	"context"
	"fmt"
	"sync"

	"github.com/periscope-dev/periscope/collector/sink"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Queue is what the metrics read of a sink queue (*sink.Queue has it).
type Queue interface {
	Name() string
	Stats() sink.Stats
}

// sources owns the instruments read at collection time: lost events, sink
// queues and the traffic table.
type sources struct {
	lost                     metric.Int64ObservableCounter
	length                   metric.Int64ObservableGauge
	dropped, written, failed metric.Int64ObservableCounter
	tracked                  metric.Int64ObservableGauge
	evicted                  metric.Int64ObservableCounter
	traffic                  *traffic

	mu     sync.Mutex
	reads  []lostSource
	queues []queueSource
}

type lostSource struct {
	attrs metric.ObserveOption
	read  func() uint64
}

type queueSource struct {
	attrs metric.ObserveOption
	q     Queue
}

func newSources(meter metric.Meter, t *traffic) (*sources, error) {
	s := &sources{traffic: t}
	var err error
	counter := func(dst *metric.Int64ObservableCounter, name, unit, desc string) {
		if err == nil {
			*dst, err = meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
			if err != nil {
				err = fmt.Errorf("create %s: %w", name, err)
			}
		}
	}
	gauge := func(dst *metric.Int64ObservableGauge, name, unit, desc string) {
		if err == nil {
			*dst, err = meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
			if err != nil {
				err = fmt.Errorf("create %s: %w", name, err)
			}
		}
	}
	counter(&s.lost, "periscope.lost_events", "{event}",
		"Events lost before they became flow records (for the datapath: ring-buffer reservations that failed), by source.")
	gauge(&s.length, "periscope.sink.queue_length", "{flow}", "Flows held in the sink's queue, including the batch being written.")
	counter(&s.dropped, "periscope.sink.dropped", "{flow}", "Flows the sink's queue refused because it was full.")
	counter(&s.written, "periscope.sink.written", "{flow}", "Flows the sink accepted.")
	counter(&s.failed, "periscope.sink.failed", "{flow}", "Flows lost because the sink failed to write them (after retries, or at shutdown).")
	gauge(&s.tracked, "periscope.traffic.tracked_connections", "{connection}",
		"Connections whose last counters are kept to count bytes and packets exactly.")
	counter(&s.evicted, "periscope.traffic.evicted_connections", "{connection}",
		"Tracked connections forgotten because the table was full; their next record may be counted twice.")
	if err != nil {
		return nil, err
	}
	// The registration lives as long as the meter provider: Shutdown ends it.
	if _, err := meter.RegisterCallback(s.observe, s.lost, s.length, s.dropped, s.written, s.failed, s.tracked, s.evicted); err != nil {
		return nil, fmt.Errorf("register metrics callback: %w", err)
	}
	return s, nil
}

// observe reports every source's current values.
func (s *sources) observe(_ context.Context, o metric.Observer) error {
	n, ev := s.traffic.stats()
	o.ObserveInt64(s.tracked, int64(n))
	o.ObserveInt64(s.evicted, toInt64(ev))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.reads {
		o.ObserveInt64(s.lost, toInt64(l.read()), l.attrs)
	}
	for _, q := range s.queues {
		st := q.q.Stats()
		o.ObserveInt64(s.length, int64(st.Queued), q.attrs)
		o.ObserveInt64(s.dropped, toInt64(st.Dropped), q.attrs)
		o.ObserveInt64(s.written, toInt64(st.Written), q.attrs)
		o.ObserveInt64(s.failed, toInt64(st.Failed), q.attrs)
	}
	return nil
}

// AddLostEventsSource reports read() as periscope.lost_events with
// periscope.lost_events.source=source at every collection. read must be
// cheap, safe for concurrent use, and never decrease (such as the datapath's
// lost-events counter).
func (m *Metrics) AddLostEventsSource(source string, read func() uint64) {
	m.sources.mu.Lock()
	defer m.sources.mu.Unlock()
	m.sources.reads = append(m.sources.reads, lostSource{
		attrs: metric.WithAttributeSet(attribute.NewSet(KeyLostSource.String(source))),
		read:  read,
	})
}

// AddQueues reports the queues' stats as periscope.sink.* metrics with
// periscope.sink=name. Names must be unique.
func (m *Metrics) AddQueues(queues ...Queue) {
	m.sources.mu.Lock()
	defer m.sources.mu.Unlock()
	for _, q := range queues {
		m.sources.queues = append(m.sources.queues, queueSource{
			attrs: metric.WithAttributeSet(attribute.NewSet(KeySink.String(q.Name()))),
			q:     q,
		})
	}
}
