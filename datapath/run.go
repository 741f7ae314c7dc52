package datapath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/periscope-dev/periscope/api"
)

// lossLogEvery bounds how often Run logs lost events and decode errors;
// they are counted always (Stats).
const lossLogEvery = 10 * time.Second

// drainMax bounds the events Run reads before it looks at the clock: a ring
// that never empties still gets swept.
const drainMax = 4096

// Name names the datapath as a flow source of the collector.
func (d *Datapath) Name() string { return "datapath" }

// Run reads the ring buffer until ctx is done or the Datapath is closed
// (both return nil) and emits the records of connections: the events of a
// connection's two observation points on this node merged into one record,
// the close of a socket folded into its connection's records (see merger).
// Every record is decoded into one reused api.Flow passed to emit: the
// pointer is valid only during the call, and decoding allocates nothing.
// The ring is drained every Config.ReadInterval, at once when the programs
// wake the reader (a quarter of it filled); the idle-flow sweeper runs in
// the same goroutine, so emit is never called concurrently. Only one Run
// may be active at a time.
func (d *Datapath) Run(ctx context.Context, emit func(*api.Flow)) error {
	if !d.runMu.TryLock() {
		return errors.New("run datapath: already running or closed")
	}
	defer d.runMu.Unlock()

	dec := NewDecoder(d.clock, uint64(time.Now().UnixNano()))
	dec.names = &d.names
	emitted := func(f *api.Flow) {
		d.records.Add(1)
		emit(f)
	}
	m := newMerger(dec, emitted, func() { d.decodeErrors.Add(1) }, d.cfg, &d.merge)
	defer m.flush()
	sw := newSweeper(d)
	wake, err := newWaker(d.objs.Events.FD())
	if err != nil {
		return err
	}
	defer wake.Close()

	// A deadline in the past: ReadInto returns what the ring holds and
	// never blocks (Run waits on timers, see waker).
	d.reader.SetDeadline(time.Unix(1, 0))
	sweepEvery, readEvery := d.cfg.sweepEvery(), d.cfg.ReadInterval
	tick := time.NewTicker(readEvery)
	defer tick.Stop()
	nextSweep := time.Now().Add(sweepEvery)
	var (
		rec        ringbuf.Record
		ev         flowEvent
		lastLog    time.Time
		loggedLost uint64
		loggedErrs uint64
	)
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&ev)), EventSize)
	for {
		drained := false
		for range drainMax {
			err := d.reader.ReadInto(&rec)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				drained = true
				break
			}
			if errors.Is(err, ringbuf.ErrClosed) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read ring buffer: %w", err)
			}
			d.eventsRead.Add(1)
			if len(rec.RawSample) < EventSize {
				d.decodeErrors.Add(1)
				continue
			}
			copy(raw, rec.RawSample)
			m.event(&ev)
		}
		m.endOfBatch(bootNow())
		if now := time.Now(); !now.Before(nextSweep) {
			if err := sw.sweep(m.event); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			m.endOfSweep(bootNow())
			nextSweep = now.Add(sweepEvery)
			if now.Sub(lastLog) >= lossLogEvery {
				s := d.Stats()
				if s.EventsLost != loggedLost || s.DecodeErrors != loggedErrs {
					d.log.Warn("flow events lost", "lost_total", s.EventsLost, "emitted_total", s.EventsEmitted,
						"decode_errors_total", s.DecodeErrors, "hint", "raise RingBufferSize or ReportInterval")
					loggedLost, loggedErrs = s.EventsLost, s.DecodeErrors
				}
				lastLog = now
			}
		}
		if !drained {
			if ctx.Err() != nil {
				return nil
			}
			continue // more waiting: read on
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-wake.C:
		}
	}
}
