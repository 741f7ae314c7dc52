package metrics

import (
	"sync"

	"github.com/periscope-dev/periscope/collector/sink"
	"github.com/prometheus/client_golang/prometheus"
)

// lostCollector owns periscope_lost_events_total, read from its sources at
// scrape time.
type lostCollector struct {
	desc    *prometheus.Desc
	mu      sync.Mutex
	sources []lostSource
}

type lostSource struct {
	name string
	read func() uint64
}

func newLostCollector() *lostCollector {
	return &lostCollector{desc: prometheus.NewDesc("periscope_lost_events_total",
		"Events lost before they became flow records (for the datapath: ring-buffer reservations that failed), by source.",
		[]string{"source"}, nil)}
}

// AddLostEventsSource reports read() as periscope_lost_events_total{source}
// at every scrape. read must be cheap, safe for concurrent use, and return a
// value that never decreases (such as the datapath's lost-events counter).
func (m *Metrics) AddLostEventsSource(source string, read func() uint64) {
	m.lost.mu.Lock()
	defer m.lost.mu.Unlock()
	m.lost.sources = append(m.lost.sources, lostSource{source, read})
}

// Describe implements prometheus.Collector.
func (c *lostCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *lostCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sources {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(s.read()), s.name)
	}
}

// Queue is what the metrics read of a sink queue (*sink.Queue has it).
type Queue interface {
	Name() string
	Stats() sink.Stats
}

// queueCollector owns the periscope_sink_* families, read from the queues'
// stats at scrape time.
type queueCollector struct {
	length, dropped, written, failed *prometheus.Desc

	mu     sync.Mutex
	queues []Queue
}

func newQueueCollector() *queueCollector {
	l := []string{"sink"}
	return &queueCollector{
		length:  prometheus.NewDesc("periscope_sink_queue_length", "Flows held in the sink's queue, including the batch being written.", l, nil),
		dropped: prometheus.NewDesc("periscope_sink_dropped_total", "Flows the sink's queue refused because it was full.", l, nil),
		written: prometheus.NewDesc("periscope_sink_written_total", "Flows the sink accepted.", l, nil),
		failed:  prometheus.NewDesc("periscope_sink_failed_total", "Flows lost because the sink failed to write them (after retries, or at shutdown).", l, nil),
	}
}

// AddQueues reports the queues' stats as periscope_sink_* metrics labelled
// by sink name. Names must be unique.
func (m *Metrics) AddQueues(queues ...Queue) {
	m.queues.mu.Lock()
	defer m.queues.mu.Unlock()
	m.queues.queues = append(m.queues.queues, queues...)
}

// Describe implements prometheus.Collector.
func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.length
	ch <- c.dropped
	ch <- c.written
	ch <- c.failed
}

// Collect implements prometheus.Collector.
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.queues {
		st, name := q.Stats(), q.Name()
		ch <- prometheus.MustNewConstMetric(c.length, prometheus.GaugeValue, float64(st.Queued), name)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.Dropped), name)
		ch <- prometheus.MustNewConstMetric(c.written, prometheus.CounterValue, float64(st.Written), name)
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(st.Failed), name)
	}
}
