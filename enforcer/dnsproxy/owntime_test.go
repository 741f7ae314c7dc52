package dnsproxy

import (
	"testing"
	"time"
)

// TestOwnTimeBuckets checks that each duration lands in the bucket whose
// bound is the first at least it, at the bounds and between them.
func TestOwnTimeBuckets(t *testing.T) {
	for _, tc := range []struct {
		d     time.Duration
		bound time.Duration
	}{
		{0, time.Microsecond},
		{time.Microsecond, time.Microsecond},
		{1100 * time.Nanosecond, 1250 * time.Nanosecond},
		{1250 * time.Nanosecond, 1250 * time.Nanosecond},
		{1300 * time.Nanosecond, 1500 * time.Nanosecond},
		{1750 * time.Nanosecond, 1750 * time.Nanosecond},
		{1800 * time.Nanosecond, 2 * time.Microsecond},
		{2 * time.Microsecond, 2 * time.Microsecond},
		{30 * time.Microsecond, 32 * time.Microsecond},
		{33 * time.Microsecond, 40 * time.Microsecond},
		{time.Millisecond, 1024 * time.Microsecond},
		{1100 * time.Microsecond, 1280 * time.Microsecond},
		{time.Hour, 4194304 * time.Microsecond}, // the last bucket
	} {
		i := ownTimeBucket(tc.d)
		if got := ownTimeBound(i); got != tc.bound {
			t.Errorf("%v: bucket %d bound %v, want %v", tc.d, i, got, tc.bound)
		}
		if i > 0 && tc.d <= time.Duration(4194304)*time.Microsecond && ownTimeBound(i-1) >= tc.d {
			t.Errorf("%v: the bucket before, %d (bound %v), holds it", tc.d, i-1, ownTimeBound(i-1))
		}
	}
}

// TestOwnTimesQuantiles checks quantiles and a phase's distribution
// (Sub) of what the proxy counted.
func TestOwnTimesQuantiles(t *testing.T) {
	var p Proxy
	for range 10 {
		p.ownTimes.observe(500 * time.Microsecond) // before the phase
	}
	before := p.OwnTimes()
	for i := range 100 {
		d := 20 * time.Microsecond
		if i == 99 {
			d = 3 * time.Millisecond
		}
		p.ownTimes.observe(d)
	}
	o := p.OwnTimes().Sub(before)
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 20 * time.Microsecond}, {0.99, 20 * time.Microsecond}, {1, 3072 * time.Microsecond}} {
		if got := o.Quantile(tc.q); got != tc.want {
			t.Errorf("q%v %v, want %v", tc.q, got, tc.want)
		}
	}
	if o.Total() != 100 {
		t.Errorf("%d counted in the phase, want 100", o.Total())
	}
	var none OwnTimes
	if none.Quantile(0.99) != 0 {
		t.Error("a quantile of nothing")
	}
}

// BenchmarkOwnTimeObserve is what counting a query's own time costs the
// proxy per query besides its two clock reads (BenchmarkClockRead).
func BenchmarkOwnTimeObserve(b *testing.B) {
	var p Proxy
	d := 37 * time.Microsecond
	for b.Loop() {
		p.ownTimes.observe(d)
		d++
	}
}

// BenchmarkClockRead is one time.Now, of which the proxy's own time adds
// two per forwarded UDP query (the third, when it was forwarded, is the
// one its deadline needed already).
func BenchmarkClockRead(b *testing.B) {
	var t time.Time
	for b.Loop() {
		t = time.Now()
	}
	_ = t
}
