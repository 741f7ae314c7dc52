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

// Name names the datapath as a flow source of the collector.
func (d *Datapath) Name() string { return "datapath" }

// Run reads the ring buffer until ctx is done or the Datapath is closed
// (both return nil) and emits the records of connections: the events of a
// connection's two observation points on this node merged into one record,
// the close of a socket folded into its connection's records (see merger).
// Every record is decoded into one reused api.Flow passed to emit: the
// pointer is valid only during the call, and decoding allocates nothing.
// The ring is drained every Config.ReadInterval (sooner when a quarter of
// it fills); the idle-flow sweeper runs in the same goroutine, so emit is
// never called concurrently. Only one Run may be active at a time.
func (d *Datapath) Run(ctx context.Context, emit func(*api.Flow)) error {
	if !d.runMu.TryLock() {
		return errors.New("run datapath: already running or closed")
	}
	defer d.runMu.Unlock()

	dec := NewDecoder(d.clock, uint64(time.Now().UnixNano()))
	dec.names = &d.names
	m := newMerger(dec, emit, func() { d.decodeErrors.Add(1) }, d.cfg, &d.merge)
	defer m.flush()
	sw := newSweeper(d)
	end := m.event

	// Wake a blocked read as soon as ctx is done.
	stop := context.AfterFunc(ctx, func() { d.reader.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	sweepEvery, readEvery := d.cfg.sweepEvery(), d.cfg.ReadInterval
	now := time.Now()
	nextSweep, nextRead := now.Add(sweepEvery), now.Add(readEvery)
	d.reader.SetDeadline(nextRead)
	var (
		rec        ringbuf.Record
		ev         flowEvent
		sinceCheck int
		lastLog    time.Time
		loggedLost uint64
		loggedErrs uint64
	)
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&ev)), EventSize)
	for {
		if ctx.Err() != nil {
			return nil
		}
		err := d.reader.ReadInto(&rec)
		drained := false
		switch {
		case err == nil:
			d.eventsRead.Add(1)
			if len(rec.RawSample) < EventSize {
				d.decodeErrors.Add(1)
			} else {
				copy(raw, rec.RawSample)
				m.event(&ev)
			}
			// A busy ring never times out: look at the clock now and then.
			if sinceCheck++; sinceCheck < 256 {
				continue
			}
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			drained = true // every event up to the deadline was read
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
		sinceCheck = 0
		now := time.Now()
		if drained || !now.Before(nextRead) {
			m.endOfBatch(bootNow())
			nextRead = now.Add(readEvery)
		}
		if !now.Before(nextSweep) {
			if err := sw.sweep(end); err != nil {
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
		d.reader.SetDeadline(earliest(nextRead, nextSweep))
	}
}

// earliest is the earlier of two times.
func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
