package sink

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/api"
)

// seqSink stores the numbers (seqOf) of the flows written to it, and says
// through which call; it fails while down.
type seqSink struct {
	mu        sync.Mutex
	down      bool
	seqs      []uint64
	uncertain []uint64 // written with WriteUncertain
}

func (s *seqSink) Name() string { return "seq" }

func (s *seqSink) Write(_ context.Context, batch []api.Flow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errSinkDown
	}
	for i := range batch {
		s.seqs = append(s.seqs, seqOf(&batch[i]))
	}
	return nil
}

func (s *seqSink) WriteUncertain(ctx context.Context, batch []api.Flow) error {
	s.mu.Lock()
	for i := range batch {
		s.uncertain = append(s.uncertain, seqOf(&batch[i]))
	}
	s.mu.Unlock()
	return s.Write(ctx, batch)
}

func (s *seqSink) got() (seqs, uncertain []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seqs), slices.Clone(s.uncertain)
}

var errSinkDown = os.ErrDeadlineExceeded

// journalOptions: a spool in dir, small batches, no background sync.
func journalOptions(dir string) QueueOptions {
	return QueueOptions{Capacity: 1000, BatchSize: 50, FlushInterval: 5 * time.Millisecond,
		RetryBackoff: 5 * time.Millisecond, SpoolDir: dir, Logger: quietLogger()}
}

// crash abandons q as a killed process would: nothing drained or synced,
// and what the kernel releases at exit (the mapping, the files, the
// spool's lock) released.
func crash(t *testing.T, q *Queue) {
	t.Helper()
	if err := unix.Munmap(q.journal.mem); err != nil {
		t.Fatal(err)
	}
	q.journal.mem = nil
	q.journal.file.Close()
	q.spool.close()
}

// offerSeqs offers flows numbered [from, to) and fails on a refusal.
func offerSeqs(t *testing.T, q *Queue, from, to uint64) {
	t.Helper()
	for i := from; i < to; i++ {
		f := testFlow(i)
		if !q.Offer(&f) {
			t.Fatalf("flow %d refused: %+v", i, q.Stats())
		}
	}
}

// drainAll runs q until it holds nothing, then stops and closes it.
func drainAll(t *testing.T, q *Queue) Stats {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	deadline := time.Now().Add(time.Minute) // spool segments are fsynced: slow on a loaded disk
	for st := q.Stats(); st.Queued != 0 || st.Spooled != 0; st = q.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("not drained within a minute: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	<-done
	if err := q.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	st := q.Stats()
	if err := st.Stage("q").Check(); err != nil {
		t.Error(err)
	}
	return st
}

// wantSeqs checks that the sink got exactly [from, to), in order, once.
func wantSeqs(t *testing.T, got []uint64, from, to uint64) {
	t.Helper()
	if uint64(len(got)) != to-from {
		t.Fatalf("sink got %d flows, want %d (%d...%d)", len(got), to-from, from, to-1)
	}
	for i, s := range got {
		if s != from+uint64(i) {
			t.Fatalf("flow %d is number %d, want %d: lost, repeated or out of order", i, s, from+uint64(i))
		}
	}
}

func TestACrashLosesNothingTheQueueAccepted(t *testing.T) {
	dir := t.TempDir()
	q1 := newTestQueue(t, &seqSink{down: true}, journalOptions(dir))
	offerSeqs(t, q1, 0, 700)
	crash(t, q1)

	s := &seqSink{}
	q2 := newTestQueue(t, s, journalOptions(dir))
	if st := q2.Stats(); st != (Stats{Recovered: 700, Spooled: 700}) {
		t.Fatalf("after the crash: %+v, want the 700 accepted flows recovered into the spool", st)
	}
	offerSeqs(t, q2, 700, 800)
	st := drainAll(t, q2)
	seqs, unc := s.got()
	wantSeqs(t, seqs, 0, 800)
	if len(unc) != 0 {
		t.Errorf("%d flows written as uncertain, want none (nothing was being written)", len(unc))
	}
	if st != (Stats{Offered: 100, Recovered: 700, Written: 800}) {
		t.Errorf("stats %+v", st)
	}
}

func TestACrashWhileSpillingSpoolsNoFlowTwice(t *testing.T) {
	dir := t.TempDir()
	q1 := newTestQueue(t, &seqSink{down: true}, journalOptions(dir))
	offerSeqs(t, q1, 0, 300)
	// A spill wrote its segment, and the process died before the journal
	// let go of the batch.
	if err := q1.spool.append(q1.ring[:50], q1.journal.headSeq, false, false); err != nil {
		t.Fatal(err)
	}
	crash(t, q1)
	s := &seqSink{}
	q2 := newTestQueue(t, s, journalOptions(dir))
	drainAll(t, q2)
	seqs, _ := s.got()
	wantSeqs(t, seqs, 0, 300)
}

func TestFlowsBeingWrittenAtACrashAreWrittenAsUncertain(t *testing.T) {
	dir := t.TempDir()
	q1 := newTestQueue(t, &seqSink{down: true}, journalOptions(dir))
	offerSeqs(t, q1, 0, 100)
	q1.spill(true) // all of it spooled, as at a shutdown
	offerSeqs(t, q1, 100, 300)
	// The oldest segment was being written, and then a batch of the ring.
	q1.journal.writingSegment(q1.spool.segs[0].seq)
	q1.mu.Lock()
	q1.journal.writing(40)
	q1.mu.Unlock()
	crash(t, q1)

	s := &seqSink{}
	q2 := newTestQueue(t, s, journalOptions(dir))
	drainAll(t, q2)
	seqs, unc := s.got()
	wantSeqs(t, seqs, 0, 300)
	var want []uint64
	for i := range uint64(50) { // the first segment: one batch
		want = append(want, i)
	}
	for i := range uint64(40) {
		want = append(want, 100+i)
	}
	if !slices.Equal(unc, want) {
		t.Errorf("written as uncertain: %v\nwant %v", unc, want)
	}
}

func TestAFailedWriteSpilledLaterStaysUncertain(t *testing.T) {
	dir := t.TempDir()
	q1 := newTestQueue(t, &seqSink{down: true}, journalOptions(dir))
	offerSeqs(t, q1, 0, 100)
	q1.mu.Lock()
	q1.journal.writing(50) // a write that failed: it may have stored them
	q1.mu.Unlock()
	q1.spill(true)
	crash(t, q1)
	s := &seqSink{}
	q2 := newTestQueue(t, s, journalOptions(dir))
	drainAll(t, q2)
	seqs, unc := s.got()
	wantSeqs(t, seqs, 0, 100)
	wantSeqs(t, unc, 0, 50)
}

func TestUnreadableJournalRecordsAreCountedAsUnrecovered(t *testing.T) {
	dir := t.TempDir()
	q1 := newTestQueue(t, &seqSink{down: true}, journalOptions(dir))
	offerSeqs(t, q1, 0, 200)
	// A power loss: the record of flow 120 reached the disk torn.
	torn := q1.journal.ends[119] % q1.journal.size
	crash(t, q1)
	p := filepath.Join(dir, journalName)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[journalHeaderSize+torn+journalRecordHead+3] ^= 0xff
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	s := &seqSink{}
	q2 := newTestQueue(t, s, journalOptions(dir))
	st := drainAll(t, q2)
	seqs, _ := s.got()
	wantSeqs(t, seqs, 0, 120)
	if st != (Stats{Recovered: 200, Written: 120, Unrecovered: 80}) {
		t.Errorf("stats %+v, want the 80 unreadable flows counted", st)
	}
}

func TestJournalRecoversAcrossItsWrapAndAfterAResize(t *testing.T) {
	dir := t.TempDir()
	o := journalOptions(dir)
	o.JournalBytes = minJournalBytes // ≈ 2,700 of these flows
	s1 := &seqSink{}
	q1 := newTestQueue(t, s1, o)
	ctx := context.Background()
	var next uint64
	for range 20 { // ten times round the ring
		offerSeqs(t, q1, next, next+500)
		next += 500
		q1.pump(ctx, ctx, false)
	}
	offerSeqs(t, q1, next, next+900)
	crash(t, q1)
	seqs, _ := s1.got()
	wantSeqs(t, seqs, 0, next)

	o.JournalBytes = 2 * minJournalBytes
	s2 := &seqSink{}
	q2 := newTestQueue(t, s2, o)
	if info, err := os.Stat(filepath.Join(dir, journalName)); err != nil || info.Size() != journalHeaderSize+2*minJournalBytes {
		t.Errorf("journal after a resize: %v, %v", info, err)
	}
	st := drainAll(t, q2)
	seqs, _ = s2.got()
	wantSeqs(t, seqs, next, next+900)
	if st.Recovered != 900 || st.Unrecovered != 0 {
		t.Errorf("stats %+v", st)
	}
	// The numbering went on: a third run's journal does not take the new
	// flows for spooled ones.
	q3 := newTestQueue(t, &seqSink{down: true}, o)
	offerSeqs(t, q3, 0, 10)
	crash(t, q3)
	s4 := &seqSink{}
	drainAll(t, newTestQueue(t, s4, o))
	seqs, _ = s4.got()
	wantSeqs(t, seqs, 0, 10)
}

func TestAFullJournalDropsAndCounts(t *testing.T) {
	o := journalOptions(t.TempDir())
	o.Capacity, o.JournalBytes = 10000, minJournalBytes
	q := newTestQueue(t, &seqSink{}, o)
	accepted := 0
	for i := range uint64(5000) {
		f := testFlow(i)
		if q.Offer(&f) {
			accepted++
		}
	}
	st := q.Stats()
	if accepted == 5000 || accepted < 2000 || st.Dropped != uint64(5000-accepted) || st.Queued != accepted {
		t.Errorf("%d accepted, stats %+v: want the journal's bytes to bound what is held", accepted, st)
	}
	if err := st.Stage("q").Check(); err != nil {
		t.Error(err)
	}
	q.Close()
}

func TestAJournalOfAnotherKindIsRefusedByName(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, journalName)
	junk := make([]byte, journalHeaderSize+minJournalBytes)
	binary.LittleEndian.PutUint64(junk, 42)
	if err := os.WriteFile(p, junk, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := NewQueue(&seqSink{}, journalOptions(dir))
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("NewQueue over a foreign journal: %v, want an error naming %s", err, p)
	}
}

func TestAnOfferAfterCloseIsRefusedAndCounted(t *testing.T) {
	q := newTestQueue(t, &seqSink{}, journalOptions(t.TempDir()))
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	f := testFlow(1)
	if q.Offer(&f) {
		t.Error("a closed queue accepted a flow")
	}
	if st := q.Stats(); st != (Stats{Offered: 1, Dropped: 1}) {
		t.Errorf("stats %+v", st)
	}
}

func TestJournalSyncsAnyRangeOfRecords(t *testing.T) {
	q := newTestQueue(t, &seqSink{}, journalOptions(t.TempDir()))
	defer q.Close()
	j := q.journal
	for _, r := range [][2]uint64{
		{0, 0}, {10, 5}, {0, 1}, {100, 5000}, {j.size - 100, j.size + 100}, {j.size, 2 * j.size},
		{3*j.size + 8, 3*j.size + 16}, {5, 5 + 3*j.size},
	} {
		if err := j.syncRange(r[0], r[1]); err != nil {
			t.Errorf("syncRange(%d, %d) over a ring of %d: %v", r[0], r[1], j.size, err)
		}
	}
}
