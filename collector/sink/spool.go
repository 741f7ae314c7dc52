package sink

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/periscope-dev/periscope/api"
)

// A spool is a directory of append-only segment files, each holding one
// batch of flows a Queue moved out of memory while its sink was failing.
// Segments are read back oldest first and removed once the sink took them.
//
// One batch per segment makes "taken" a file removal: no read offset has to
// be kept, and a restarted Queue resends exactly the batches the previous one
// did not confirm. A segment is named <seq>-<flows>[-j<first>][-u].seg so
// that opening a spool needs no reading: -j<first> gives the journal number
// of its first flow (its flows are <first>...<first>+<flows>-1, which the
// journal then need not give back), -u marks a batch that may be stored
// already (a write of it was in flight when a process stopped). Its content
// is segmentMagic, then records framed as a little-endian uint32 payload
// length, a uint32 CRC-32C of the payload, and the payload (a gob-encoded
// []api.Flow). A record that is cut short or fails its checksum ends the
// segment: the flows before it are kept, the rest are counted as lost.
type spool struct {
	dir      string
	maxBytes int64
	lock     *os.File // flock'ed: one Queue per directory

	segs    []segment // oldest first
	bytes   int64     // sum of segs' sizes
	flows   int       // sum of segs' flows
	nextSeq uint64

	buf bytes.Buffer // encode scratch
}

type segment struct {
	seq       uint64
	flows     int
	size      int64
	first     uint64 // journal number of its first flow; 0: none
	uncertain bool   // the sink may hold its flows already
}

const (
	segmentMagic  = "PSPOOL1\n"
	segmentSuffix = ".seg"
	tempSuffix    = ".tmp" // a segment being written
	recordHeader  = 8
	// maxRecord bounds a record's claimed length, so a corrupt length never
	// makes the reader allocate gigabytes.
	maxRecord = 1 << 30
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	// errSpoolFull: the batch would take the spool beyond its bound.
	errSpoolFull = errors.New("spool full")
)

// openSpool opens (creating) dir and takes its lock. Segments left by a
// previous run are kept, to be replayed first.
func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: open lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool: %s is in use by another queue: %w", dir, err)
	}
	sp := &spool{dir: dir, maxBytes: maxBytes, lock: lock, nextSeq: 1}
	entries, err := os.ReadDir(dir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool: list %s: %w", dir, err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), segmentSuffix+tempSuffix) {
			_ = os.Remove(filepath.Join(dir, e.Name())) // a segment a crash cut short
			continue
		}
		seg, ok := parseSegmentName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue // not ours (an editor's backup, the lock): leave it
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		seg.size = info.Size()
		sp.segs = append(sp.segs, seg)
		sp.bytes += seg.size
		sp.flows += seg.flows
	}
	slices.SortFunc(sp.segs, func(a, b segment) int { return cmpU64(a.seq, b.seq) })
	if n := len(sp.segs); n > 0 {
		sp.nextSeq = sp.segs[n-1].seq + 1
	}
	return sp, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func parseSegmentName(name string) (segment, bool) {
	base, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok {
		return segment{}, false
	}
	parts := strings.Split(base, "-")
	if len(parts) < 2 {
		return segment{}, false
	}
	seq, err1 := strconv.ParseUint(parts[0], 10, 64)
	flows, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || flows < 0 {
		return segment{}, false
	}
	seg := segment{seq: seq, flows: flows}
	for _, p := range parts[2:] {
		switch {
		case p == "u":
			seg.uncertain = true
		case strings.HasPrefix(p, "j"):
			first, err := strconv.ParseUint(p[1:], 10, 64)
			if err != nil {
				return segment{}, false
			}
			seg.first = first
		default:
			return segment{}, false
		}
	}
	return seg, true
}

func (sp *spool) path(seg segment) string {
	name := fmt.Sprintf("%020d-%d", seg.seq, seg.flows)
	if seg.first != 0 {
		name += "-j" + strconv.FormatUint(seg.first, 10)
	}
	if seg.uncertain {
		name += "-u"
	}
	return filepath.Join(sp.dir, name+segmentSuffix)
}

// covered is the journal number after the last flow the segments hold: the
// journal's flows below it are spooled already.
func (sp *spool) covered() uint64 {
	var c uint64
	for _, seg := range sp.segs {
		if seg.first != 0 {
			c = max(c, seg.first+uint64(seg.flows))
		}
	}
	return c
}

// markUncertain renames segment seq, if the spool holds it, as one whose
// flows the sink may hold already.
func (sp *spool) markUncertain(seq uint64) error {
	for i, seg := range sp.segs {
		if seg.seq != seq || seg.uncertain {
			continue
		}
		marked := seg
		marked.uncertain = true
		if err := os.Rename(sp.path(seg), sp.path(marked)); err != nil {
			return fmt.Errorf("spool: mark segment %d uncertain: %w", seq, err)
		}
		sp.segs[i] = marked
		return syncDir(sp.dir)
	}
	return nil
}

// empty says whether the spool holds no segment.
func (sp *spool) empty() bool { return len(sp.segs) == 0 }

// append writes batch as a new segment and syncs it (and the directory) before
// returning: once it returns nil the flows survive a crash. It returns
// errSpoolFull, writing nothing, when the segment would exceed maxBytes,
// unless force. first is the journal number of the batch's first flow (0:
// none); uncertain marks a batch the sink may hold already.
func (sp *spool) append(batch []api.Flow, first uint64, uncertain, force bool) error {
	sp.buf.Reset()
	sp.buf.WriteString(segmentMagic)
	sp.buf.Write(make([]byte, recordHeader))
	if err := gob.NewEncoder(&sp.buf).Encode(batch); err != nil {
		return fmt.Errorf("spool: encode %d flows: %w", len(batch), err)
	}
	b := sp.buf.Bytes()
	payload := b[len(segmentMagic)+recordHeader:]
	binary.LittleEndian.PutUint32(b[len(segmentMagic):], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[len(segmentMagic)+4:], crc32.Checksum(payload, crcTable))
	if !force && sp.bytes+int64(len(b)) > sp.maxBytes {
		return errSpoolFull
	}
	seg := segment{seq: sp.nextSeq, flows: len(batch), size: int64(len(b)), first: first, uncertain: uncertain}
	// Written aside, then renamed: a segment's name promises its flows (and
	// that the journal need not give them back), so it appears whole or
	// not at all.
	p := sp.path(seg)
	tmp := p + tempSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("spool: create segment: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err == nil {
		err = syncDir(sp.dir)
	}
	if err != nil {
		os.Remove(tmp)
		os.Remove(p)
		return fmt.Errorf("spool: write segment %s: %w", p, err)
	}
	sp.nextSeq++
	sp.segs = append(sp.segs, seg)
	sp.bytes += seg.size
	sp.flows += seg.flows
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readHead reads the oldest segment. It returns the flows it could read
// (appended to dst[:0]) and how many of the flows its name promises were
// lost to a truncated or corrupt record. It never fails on bad content;
// err is for a segment that cannot be read at all (its flows count as lost).
func (sp *spool) readHead(dst []api.Flow) (flows []api.Flow, lost int, err error) {
	seg := sp.segs[0]
	data, err := os.ReadFile(sp.path(seg))
	if err != nil {
		return dst[:0], seg.flows, fmt.Errorf("spool: read segment: %w", err)
	}
	flows = decodeSegment(data, dst[:0])
	return flows, max(seg.flows-len(flows), 0), nil
}

// decodeSegment decodes the records of a segment until the first bad one.
func decodeSegment(data []byte, dst []api.Flow) []api.Flow {
	rest, ok := bytes.CutPrefix(data, []byte(segmentMagic))
	if !ok {
		return dst
	}
	for len(rest) >= recordHeader {
		n := binary.LittleEndian.Uint32(rest)
		sum := binary.LittleEndian.Uint32(rest[4:])
		if n > maxRecord || uint64(n) > uint64(len(rest)-recordHeader) {
			return dst // truncated
		}
		payload := rest[recordHeader : recordHeader+int(n)]
		if crc32.Checksum(payload, crcTable) != sum {
			return dst // corrupt
		}
		var batch []api.Flow
		if err := gob.NewDecoder(bytes.NewReader(payload)).Decode(&batch); err != nil && !errors.Is(err, io.EOF) {
			return dst
		}
		dst = append(dst, batch...)
		rest = rest[recordHeader+int(n):]
	}
	return dst
}

// pop removes the oldest segment (its flows were written, or counted lost).
func (sp *spool) pop() error {
	seg := sp.segs[0]
	sp.segs = sp.segs[1:]
	sp.bytes -= seg.size
	sp.flows -= seg.flows
	if err := os.Remove(sp.path(seg)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("spool: remove segment: %w", err)
	}
	return nil
}

// close releases the directory's lock; later calls do nothing.
func (sp *spool) close() error {
	if sp.lock == nil {
		return nil
	}
	err := sp.lock.Close()
	sp.lock = nil
	return err
}
