package flowquery

import (
	"errors"
	"testing"
)

func TestLimitRefusesBeyondItsBoundAndTakesBackReleases(t *testing.T) {
	l := NewLimit("live followers", 2)
	r1, err1 := l.Acquire()
	r2, err2 := l.Acquire()
	if err1 != nil || err2 != nil || l.InUse() != 2 {
		t.Fatalf("two places of two: %v %v, in use %d", err1, err2, l.InUse())
	}
	_, err := l.Acquire()
	var busy *BusyError
	if !errors.Is(err, ErrBusy) || !errors.As(err, &busy) || busy.Limit != 2 || busy.What != "live followers" {
		t.Fatalf("a third: %v, want a BusyError of live followers at 2", err)
	}
	if want := "too many live followers: at most 2 at once; try again later"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	r1()
	r1() // a second release gives back nothing more
	if l.InUse() != 1 {
		t.Errorf("in use %d after one release (twice), want 1", l.InUse())
	}
	r2()
	var none *Limit
	if rel, err := none.Acquire(); err != nil || none.InUse() != 0 || none.Max() != 0 {
		t.Errorf("a nil Limit bounds something: %v", err)
	} else {
		rel()
	}
	if NewLimit("x", 0) != nil {
		t.Error("NewLimit with no bound is not nil")
	}
}
