package dnsproxy

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The buckets of OwnTimes: four a power of two of nanoseconds (each
// about 19% wider than the one before), from 1µs (bucket 0: up to it)
// to about 4.3s (the last: beyond too).
const (
	ownTimeMin     = time.Microsecond
	ownTimeBuckets = 4*22 + 1
)

// ownTimes counts the proxy's own time of the queries it forwarded and
// answered, in logarithmic buckets updated without locks: one atomic
// add per query.
type ownTimes struct {
	buckets [ownTimeBuckets]atomic.Uint64
}

// observe counts d.
func (o *ownTimes) observe(d time.Duration) {
	o.buckets[ownTimeBucket(d)].Add(1)
}

// ownTimeBucket is the bucket of d: the first whose upper bound is at
// least d.
func ownTimeBucket(d time.Duration) int {
	if d <= ownTimeMin {
		return 0
	}
	// 16ths of a microsecond, rounded up, so that quarters of an octave
	// resolve: bounds are exact to 1/16µs.
	us := (uint64(d)*16 + uint64(ownTimeMin) - 1) / uint64(ownTimeMin)
	octave := bits.Len64(us) - 1       // us is in [2^octave, 2^(octave+1)), octave >= 4
	quarter := int(us>>(octave-2)) & 3 // the two bits after the leading one
	i := 4*(octave-4) + quarter + 1    // octave 4 is 1µs..2µs
	if us&(1<<(octave-2)-1) == 0 {
		i-- // exactly a bound: the bucket it bounds
	}
	return min(max(i, 0), ownTimeBuckets-1)
}

// ownTimeBound is the upper bound of bucket i.
func ownTimeBound(i int) time.Duration {
	octave, quarter := i/4, i%4
	return time.Duration(float64(ownTimeMin<<octave) * [4]float64{1, 1.25, 1.5, 1.75}[quarter])
}

// OwnTimes is how many forwarded queries took the proxy how long itself:
// from reading the query to sending it upstream, plus from reading the
// answer to sending the reply (a wait for the FQDN cache's admission
// included; the system calls that read and send are the kernel's share,
// not counted, and so is a TCP query's upstream connection). Counts[i] are the queries of at most
// Bound(i) (and more than Bound(i-1)); the last counts the longer ones
// too. Cumulative since the proxy started: Sub gives a phase's.
type OwnTimes struct {
	Counts [ownTimeBuckets]uint64
}

// Bound is the upper bound of bucket i of Counts.
func (o *OwnTimes) Bound(i int) time.Duration { return ownTimeBound(i) }

// Sub is what o counted since before.
func (o OwnTimes) Sub(before OwnTimes) OwnTimes {
	for i := range o.Counts {
		o.Counts[i] -= before.Counts[i]
	}
	return o
}

// Total is how many queries o counted.
func (o *OwnTimes) Total() uint64 {
	var n uint64
	for _, c := range o.Counts {
		n += c
	}
	return n
}

// Quantile is the upper bound of the bucket that holds the q-quantile
// (0 < q <= 1; 1 is the maximum's bucket); 0 when o counted nothing.
func (o *OwnTimes) Quantile(q float64) time.Duration {
	total := o.Total()
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = min(max(rank, 1), total)
	var n uint64
	for i, c := range o.Counts {
		n += c
		if n >= rank {
			return ownTimeBound(i)
		}
	}
	return ownTimeBound(ownTimeBuckets - 1)
}

// OwnTimes returns the distribution of the proxy's own time per forwarded
// query so far.
func (p *Proxy) OwnTimes() OwnTimes {
	var o OwnTimes
	for i := range o.Counts {
		o.Counts[i] = p.ownTimes.buckets[i].Load()
	}
	return o
}
