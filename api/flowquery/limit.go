package flowquery

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
)

// ErrBusy is what a reader or server at a bound of concurrent answers
// refuses one more with (errors.Is; the error is a *BusyError naming the
// bound). HTTP answers it 503 with Retry-After, gRPC ResourceExhausted.
var ErrBusy = errors.New("busy")

// BusyError says which bound refused an answer.
type BusyError struct {
	What  string // what is bounded: "live followers", "history queries"
	Limit int
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("too many %s: at most %d at once; try again later", e.What, e.Limit)
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// RetryAfter is the Retry-After, in seconds, of a busy answer.
const RetryAfter = "1"

// WriteBusy answers err, an ErrBusy, with 503 and Retry-After.
func WriteBusy(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", RetryAfter)
	http.Error(w, err.Error(), http.StatusServiceUnavailable)
}

// Limit bounds how many answers of one kind run at once: live followers
// of a collector (over HTTP, WebSocket and Hubble's gRPC API alike),
// history queries. A nil *Limit bounds nothing. It is safe for concurrent
// use.
type Limit struct {
	what string
	max  int

	mu    sync.Mutex
	inUse int
}

// NewLimit bounds what to max at once; max <= 0 returns nil: no bound.
func NewLimit(what string, max int) *Limit {
	if max <= 0 {
		return nil
	}
	return &Limit{what: what, max: max}
}

// Acquire takes a place, or refuses with a *BusyError when all are taken.
// release gives the place back; it may be called more than once.
func (l *Limit) Acquire() (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inUse >= l.max {
		return nil, &BusyError{What: l.what, Limit: l.max}
	}
	l.inUse++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.inUse--
			l.mu.Unlock()
		})
	}, nil
}

// InUse is how many places are taken.
func (l *Limit) InUse() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inUse
}

// Max is the bound; 0 for none.
func (l *Limit) Max() int {
	if l == nil {
		return 0
	}
	return l.max
}
