package sink

import "fmt"

// openSpool opens the queue's spool and journal, and spools what an
// earlier run's journal holds: after it, the journal is empty and the
// spool holds, oldest first, every flow an earlier run accepted and did
// not write, save those its journal could not give back (counted as
// Unrecovered).
func (q *Queue) openSpool() (err error) {
	o := q.opts
	sp, err := openSpool(o.SpoolDir, o.SpoolMaxBytes)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			sp.close()
		}
	}()
	j, rec, err := openJournal(o.SpoolDir, uint64(o.JournalBytes), o.Capacity, sp.covered())
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			j.close()
		}
	}()
	if err := spoolRecovered(sp, rec, o.BatchSize); err != nil {
		return err
	}
	if err := j.reset(rec.next); err != nil {
		return err
	}
	q.spool, q.journal = sp, j
	q.spooled, q.spoolSz = sp.flows, sp.bytes
	q.recovered = uint64(sp.flows) + rec.lost
	q.unrecovered = rec.lost
	if len(rec.flows) > 0 {
		o.Logger.Info("the journal held flows an earlier run accepted and did not write; spooled to be written first",
			"flows", len(rec.flows), "possibly_written", rec.uncertain)
	}
	if rec.lost > 0 {
		o.Logger.Warn("flows an earlier run accepted are not readable in its journal (a power loss?); counted as unrecovered",
			"flows", rec.lost)
	}
	if sp.flows > 0 {
		o.Logger.Info("spool holds flows of an earlier run; writing them first",
			"flows", sp.flows, "segments", len(sp.segs), "bytes", sp.bytes)
	}
	return nil
}

// spoolRecovered writes the flows recovered from a journal into spool
// segments (whatever the spool's bound: they were accepted already), each
// naming the journal number of its first flow, so that a crash before the
// journal is reset does not spool them twice. Flows a write was sending
// go first, in a segment marked uncertain, as does the segment the earlier
// run was writing.
func spoolRecovered(sp *spool, rec recovered, batch int) error {
	if rec.segment != 0 {
		if err := sp.markUncertain(rec.segment); err != nil {
			return err
		}
	}
	flows, first := rec.flows, rec.firstSeq
	for len(flows) > 0 {
		n := min(len(flows), batch)
		uncertain := rec.uncertain > 0
		if uncertain {
			n = min(len(flows), rec.uncertain)
			rec.uncertain -= n
		}
		if err := sp.append(flows[:n], first, uncertain, true); err != nil {
			return fmt.Errorf("spool the journal's flows: %w", err)
		}
		flows, first = flows[n:], first+uint64(n)
	}
	return nil
}
