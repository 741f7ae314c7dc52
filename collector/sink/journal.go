package sink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/api"
)

// A journal is a spooled Queue's write-ahead log: Offer encodes every flow
// it accepts into a file mapped shared into memory before it returns, so
// that the flows a queue holds in memory are also in the page cache, which
// outlives the process. A process that crashes (kill -9, a panic, the OOM
// killer) therefore loses nothing it accepted: the next Queue on the
// directory finds the flows in the journal and spools them before anything
// else. Writing is a copy into memory, no system call; a goroutine of Run
// msyncs, every JournalSyncInterval, the header and the records held since
// the previous interval, which bounds what a power loss or kernel crash can
// lose (see QueueOptions.JournalSyncInterval) without writing the records
// a sink that keeps up has taken already.
//
// The file is a header page, then a ring of records in the same order as
// the queue's ring of flows: a record is a uint32 payload length, a uint32
// CRC-32C of its sequence number and payload, the uint64 sequence number,
// the payload (appendFlow's encoding), padded to 8 bytes; the checksum
// covers the number and the payload, which follow each other. A record that does
// not fit before the end of the ring goes to its start; a zero length marks
// the skipped end. Positions are logical (they only grow; the offset in the
// ring is the position modulo its size), so "used" is tail minus head.
//
// Every accepted flow has a sequence number, the journal's own count of
// accepted flows, which keeps growing across runs. The header holds the
// head (the oldest flow still held: not yet written, spooled or counted)
// and the tail (the next flow's position and number), updated as flows
// come and go; recovery reads records from the head while their numbers
// follow each other, so a stale header or a torn record costs only what
// cannot be read, and those flows, accepted (the tail says so) but not
// readable, are counted. The header also says which flows a write was
// sending when the process stopped (they may be stored already) and which
// spool segment was being written.
type journal struct {
	file *os.File
	mem  []byte // the whole file, mapped shared
	data []byte // mem[journalHeaderSize:]: the ring of records
	size uint64 // len(data)

	head, tail       uint64 // logical positions of the oldest record and of the next one
	headSeq, tailSeq uint64 // their sequence numbers
	inflightEnd      uint64 // flows numbered from headSeq below it are being written
	ends             []uint64
	endsHead, endsN  int // ends[endsHead...] are the held records' end positions, oldest first

	scratch []byte // one flow's encoding
}

const (
	journalName       = "journal"
	journalMagic      = "PJOURN1\n"
	journalHeaderSize = 4096
	journalRecordHead = 16
	// Header fields, at these offsets of the header page (uint64 each).
	hdrMagic       = 0
	hdrSize        = 8
	hdrHead        = 16
	hdrHeadSeq     = 24
	hdrTail        = 32
	hdrTailSeq     = 40
	hdrInflightEnd = 48 // flows with numbers below it (from the head) were being written
	hdrInflightSeg = 56 // the spool segment being written; 0: none
	// minJournalBytes is the smallest ring a journal has.
	minJournalBytes = 1 << 20
	// maxInPlace is the room a record is encoded into in place: a flow
	// bigger than that (labels without end) is encoded aside and copied.
	maxInPlace = 64 << 10
)

// errJournalFull: the record does not fit in the journal's free space.
var errJournalFull = errors.New("journal full")

// recovered is what a journal held when it was opened.
type recovered struct {
	flows     []api.Flow // readable flows, oldest first, numbered from firstSeq
	firstSeq  uint64
	uncertain int    // flows[:uncertain] were being written: the sink may hold them already
	lost      uint64 // flows accepted but not readable
	segment   uint64 // the spool segment being written; 0: none
	next      uint64 // the number the journal goes on from
}

// openJournal opens (creating) the journal of dir with a ring of size
// bytes for at most capacity flows, and returns what an earlier run left in
// it. Flows numbered below covered are in spool segments already and are
// not returned. The returned journal is empty: the caller spools what was
// recovered, then calls reset.
func openJournal(dir string, size uint64, capacity int, covered uint64) (*journal, recovered, error) {
	size = max(size, minJournalBytes) &^ 7
	p := filepath.Join(dir, journalName)
	var rec recovered
	old, err := mapJournal(p)
	switch {
	case err == nil:
		rec = old.recover(covered)
		if old.size != size {
			// Another geometry: what it held is recovered, a new file
			// continues its numbering.
			if err := old.close(); err != nil {
				return nil, rec, err
			}
			if err := os.Remove(p); err != nil {
				return nil, rec, fmt.Errorf("journal: replace %s: %w", p, err)
			}
			j, err := createJournal(p, size, capacity, rec.next)
			return j, rec, err
		}
		old.ends = make([]uint64, capacity)
		return old, rec, nil
	case errors.Is(err, os.ErrNotExist):
		rec.next = max(covered, 1)
		j, err := createJournal(p, size, capacity, rec.next)
		return j, rec, err
	default:
		return nil, rec, err
	}
}

// createJournal creates the file filled with zeros: its blocks are
// allocated and written, so that writing into the mapping never finds the
// disk full (which would be a SIGBUS) nor has to allocate or convert
// extents (a page fault that waits for the file system's journal), as
// databases prepare their write-ahead logs.
func createJournal(p string, size uint64, capacity int, seq uint64) (*journal, error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("journal: create %s: %w", p, err)
	}
	if err := zeroFill(f, journalHeaderSize+size); err != nil {
		f.Close()
		os.Remove(p)
		return nil, fmt.Errorf("journal: allocate %d bytes for %s: %w", journalHeaderSize+size, p, err)
	}
	j, err := mapFile(f, p)
	if err != nil {
		os.Remove(p)
		return nil, err
	}
	copy(j.mem[hdrMagic:], journalMagic)
	j.store(hdrSize, size)
	j.head, j.tail, j.headSeq, j.tailSeq = 0, 0, seq, seq
	j.store(hdrHead, 0)
	j.store(hdrTail, 0)
	j.store(hdrHeadSeq, seq)
	j.store(hdrTailSeq, seq)
	j.ends = make([]uint64, capacity)
	if err := j.sync(); err != nil {
		j.close()
		os.Remove(p)
		return nil, err
	}
	return j, nil
}

// zeroFill writes n zero bytes to f and syncs them.
func zeroFill(f *os.File, n uint64) error {
	zeros := make([]byte, 1<<20)
	for off := uint64(0); off < n; off += uint64(len(zeros)) {
		if _, err := f.Write(zeros[:min(uint64(len(zeros)), n-off)]); err != nil {
			return err
		}
	}
	return f.Sync()
}

// mapJournal maps an existing journal file.
func mapJournal(p string) (*journal, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	j, err := mapFile(f, p)
	if err != nil {
		return nil, err
	}
	if string(j.mem[hdrMagic:hdrMagic+8]) != journalMagic || j.load(hdrSize) != j.size {
		j.close()
		return nil, fmt.Errorf("journal: %s is not a journal of this version (move it away to start afresh)", p)
	}
	return j, nil
}

func mapFile(f *os.File, p string) (*journal, error) {
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: stat %s: %w", p, err)
	}
	n := info.Size()
	if n <= journalHeaderSize || (n-journalHeaderSize)%8 != 0 {
		f.Close()
		return nil, fmt.Errorf("journal: %s has %d bytes: not a journal", p, n)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: map %s: %w", p, err)
	}
	return &journal{file: f, mem: mem, data: mem[journalHeaderSize:], size: uint64(n - journalHeaderSize)}, nil
}

// store and load access the header's uint64 at off. Nothing reads the
// header while the queue runs (recovery reads it in the next process), so
// plain aligned stores do: a crash does not tear one.
func (j *journal) store(off int, v uint64) { binary.LittleEndian.PutUint64(j.mem[off:], v) }
func (j *journal) load(off int) uint64     { return binary.LittleEndian.Uint64(j.mem[off:]) }

// reset empties the journal once what recover returned is spooled:
// numbering goes on from next.
func (j *journal) reset(next uint64) error {
	j.head, j.tail = 0, 0
	j.headSeq, j.tailSeq = next, next
	j.endsHead, j.endsN = 0, 0
	j.inflightEnd = 0
	j.store(hdrInflightEnd, 0)
	j.store(hdrInflightSeg, 0)
	j.store(hdrTail, 0)
	j.store(hdrTailSeq, next)
	j.store(hdrHead, 0)
	j.store(hdrHeadSeq, next)
	return j.sync()
}

// append writes f as the newest record. It fails, writing nothing, when
// the journal has no room for it (errJournalFull). The caller holds the
// queue's lock.
func (j *journal) append(f *api.Flow) error {
	if j.endsN == len(j.ends) {
		return errJournalFull
	}
	off := j.tail % j.size
	// The room at off: up to the end of the ring, or to the head.
	room := min(j.size-off, j.size-(j.tail-j.head))
	var b []byte
	inPlace := room >= journalRecordHead+maxInPlace
	if inPlace {
		// Encoded straight into the mapping: no copy.
		dst := j.data[off+journalRecordHead : off+journalRecordHead : off+room]
		b = appendFlow(dst, f)
		inPlace = cap(b) == cap(dst)
	} else {
		b = appendFlow(j.scratch[:0], f)
		j.scratch = b[:0]
	}
	n := uint64(len(b))
	need := recordLen(n)
	skip := uint64(0)
	if !inPlace {
		if need > j.size-off {
			skip = j.size - off // to the start of the ring
		}
		if j.tail+skip+need-j.head > j.size {
			return errJournalFull
		}
		if skip >= journalRecordHead {
			binary.LittleEndian.PutUint32(j.data[off:], 0)
		}
		off = (j.tail + skip) % j.size
		copy(j.data[off+journalRecordHead:], b)
	}
	r := j.data[off : off+journalRecordHead+n]
	binary.LittleEndian.PutUint32(r, uint32(n))
	binary.LittleEndian.PutUint64(r[8:], j.tailSeq)
	binary.LittleEndian.PutUint32(r[4:], crc32.Checksum(r[8:], crcTable))
	j.tail += skip + need
	j.tailSeq++
	j.ends[(j.endsHead+j.endsN)%len(j.ends)] = j.tail
	j.endsN++
	j.store(hdrTailSeq, j.tailSeq)
	j.store(hdrTail, j.tail)
	return nil
}

// advance drops the k oldest records (written, spooled or counted); the
// caller holds the queue's lock.
func (j *journal) advance(k int) {
	if k <= 0 {
		return
	}
	j.endsHead = (j.endsHead + k - 1) % len(j.ends)
	j.head = j.ends[j.endsHead]
	j.endsHead = (j.endsHead + 1) % len(j.ends)
	j.endsN -= k
	j.headSeq += uint64(k)
	// The position first: recovery skips records numbered below the head's
	// number, so a crash between the two stores repeats nothing.
	j.store(hdrHead, j.head)
	j.store(hdrHeadSeq, j.headSeq)
	if j.inflightEnd != 0 && j.headSeq >= j.inflightEnd {
		j.inflightEnd = 0
		j.store(hdrInflightEnd, 0)
	}
}

// writing records that the k oldest flows are being written to the sink.
// A write that failed may have stored them nonetheless, so they stay
// uncertain until they leave the journal (advance): a crash meanwhile, or
// a spill of them (see Queue.spill), marks them so.
func (j *journal) writing(k int) {
	j.inflightEnd = max(j.inflightEnd, j.headSeq+uint64(k))
	j.store(hdrInflightEnd, j.inflightEnd)
}

// writingSegment records that spool segment seq is being written (0: none).
func (j *journal) writingSegment(seq uint64) { j.store(hdrInflightSeg, seq) }

// used is the share of the ring the held records take, in [0, 1].
func (j *journal) used() float64 { return float64(j.tail-j.head) / float64(j.size) }

// syncRange writes to the disk the pages of the records between logical
// positions from and to (nothing when from >= to), and the header page,
// and waits for them. The queue's lock need not be held: other records
// may be written meanwhile.
func (j *journal) syncRange(from, to uint64) error {
	page := uint64(os.Getpagesize())
	ranges := [][2]uint64{{0, journalHeaderSize}}
	if from < to {
		to = min(to, from+j.size)
		a, b := from%j.size, to%j.size
		if b == 0 {
			b = j.size
		}
		if a < b {
			ranges = append(ranges, [2]uint64{a, b})
		} else {
			ranges = append(ranges, [2]uint64{a, j.size}, [2]uint64{0, b})
		}
		for i := 1; i < len(ranges); i++ {
			ranges[i][0] += journalHeaderSize
			ranges[i][1] += journalHeaderSize
		}
	}
	for _, r := range ranges {
		lo, hi := r[0]&^(page-1), min((r[1]+page-1)&^(page-1), uint64(len(j.mem)))
		if err := unix.Msync(j.mem[lo:hi], unix.MS_SYNC); err != nil {
			return fmt.Errorf("journal: sync: %w", err)
		}
	}
	return nil
}

// sync writes the mapping's dirty pages to the disk and waits for them.
func (j *journal) sync() error {
	if err := unix.Msync(j.mem, unix.MS_SYNC); err != nil {
		return fmt.Errorf("journal: sync: %w", err)
	}
	return nil
}

// close syncs, unmaps and closes the file; later calls do nothing.
func (j *journal) close() error {
	if j.mem == nil {
		return nil
	}
	err := j.sync()
	if uerr := unix.Munmap(j.mem); err == nil && uerr != nil {
		err = fmt.Errorf("journal: unmap: %w", uerr)
	}
	j.mem, j.data = nil, nil
	if cerr := j.file.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal: close: %w", cerr)
	}
	return err
}
