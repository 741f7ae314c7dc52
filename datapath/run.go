package datapath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/periscope-dev/periscope/api"
)

// lossLogEvery bounds how often Run logs lost events and decode errors;
// they are counted always (Stats).
const lossLogEvery = 10 * time.Second

// Name names the datapath as a flow source of the collector.
func (d *Datapath) Name() string { return "datapath" }

// Run reads the ring buffer until ctx is done or the Datapath is closed
// (both return nil), decoding every event into one reused api.Flow passed to
// emit: the pointer is valid only during the call and decoding allocates
// nothing. The idle-flow sweeper runs in the same goroutine, so emit is
// never called concurrently. Only one Run may be active at a time.
func (d *Datapath) Run(ctx context.Context, emit func(*api.Flow)) error {
	if !d.runMu.TryLock() {
		return errors.New("run datapath: already running or closed")
	}
	defer d.runMu.Unlock()

	dec := NewDecoder(d.clock, uint64(time.Now().UnixNano()))
	dec.names = &d.names
	sw := newSweeper(d)
	var f api.Flow
	emitted := func() {
		d.records.Add(1)
		emit(&f)
	}
	end := func(ev *flowEvent) {
		if err := dec.decodeEvent(ev, &f); err != nil {
			d.decodeErrors.Add(1)
			return
		}
		emitted()
	}

	// Wake a blocked read as soon as ctx is done.
	stop := context.AfterFunc(ctx, func() { d.reader.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	every := d.cfg.sweepEvery()
	nextSweep := time.Now().Add(every)
	d.reader.SetDeadline(nextSweep)
	var (
		rec        ringbuf.Record
		sinceCheck int
		lastLog    time.Time
		loggedLost uint64
		loggedErrs uint64
	)
	for {
		if ctx.Err() != nil {
			return nil
		}
		err := d.reader.ReadInto(&rec)
		switch {
		case err == nil:
			d.eventsRead.Add(1)
			if err := dec.Decode(rec.RawSample, &f); err != nil {
				d.decodeErrors.Add(1)
			} else {
				emitted()
			}
			// A busy ring never times out: look at the clock now and then.
			if sinceCheck++; sinceCheck < 256 {
				continue
			}
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
		sinceCheck = 0
		now := time.Now()
		if now.Before(nextSweep) {
			continue
		}
		if err := sw.sweep(end); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		nextSweep = now.Add(every)
		d.reader.SetDeadline(nextSweep)
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
}
