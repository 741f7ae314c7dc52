package sink

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/periscope-dev/periscope/api"
)

// Reading a journal back, when a queue opens on a directory an earlier run
// left (see journal).

// recover reads the records from the header's head while their numbers
// follow each other. Records numbered below the header's head number (a
// head whose position was stored but not its number) or below covered
// (spooled already) are skipped.
func (j *journal) recover(covered uint64) recovered {
	headSeq, tailSeq := j.load(hdrHeadSeq), j.load(hdrTailSeq)
	from := max(headSeq, covered)
	rec := recovered{firstSeq: from, segment: j.load(hdrInflightSeg)}
	inflightEnd := j.load(hdrInflightEnd)
	pos, next := j.load(hdrHead), uint64(0)
	for scanned := uint64(0); scanned < j.size; {
		payload, seq, adv, ok := j.readAt(pos)
		if !ok {
			break
		}
		if adv > 0 && payload == nil { // the skipped end of the ring
			pos, scanned = pos+adv, scanned+adv
			continue
		}
		if next != 0 && seq != next {
			break // an older record: the end of what was written
		}
		next = seq + 1
		pos, scanned = pos+adv, scanned+adv
		if seq < from {
			continue
		}
		var f api.Flow
		if err := decodeFlow(payload, &f); err != nil {
			break
		}
		if len(rec.flows) == 0 {
			rec.firstSeq = seq
		}
		rec.flows = append(rec.flows, f)
		if seq < inflightEnd {
			rec.uncertain++
		}
	}
	end := rec.firstSeq + uint64(len(rec.flows))
	if tailSeq > end {
		rec.lost = tailSeq - end
	}
	rec.next = max(tailSeq, end, next, 1)
	return rec
}

// readAt reads the record at logical position pos: its payload, number and
// length in the ring. A skipped end returns a nil payload and the bytes to
// skip; ok is false when there is no valid record.
func (j *journal) readAt(pos uint64) (payload []byte, seq, adv uint64, ok bool) {
	off := pos % j.size
	rem := j.size - off
	if rem < journalRecordHead {
		return nil, 0, rem, true
	}
	n := uint64(binary.LittleEndian.Uint32(j.data[off:]))
	if n == 0 {
		return nil, 0, rem, true
	}
	rlen := recordLen(n)
	if rlen > rem {
		return nil, 0, 0, false
	}
	sum := binary.LittleEndian.Uint32(j.data[off+4:])
	seq = binary.LittleEndian.Uint64(j.data[off+8:])
	payload = j.data[off+journalRecordHead : off+journalRecordHead+n]
	if crc32.Checksum(j.data[off+8:off+journalRecordHead+n], crcTable) != sum {
		return nil, 0, 0, false
	}
	return payload, seq, rlen, true
}

func recordLen(payload uint64) uint64 { return (journalRecordHead + payload + 7) &^ 7 }
