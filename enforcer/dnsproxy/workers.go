package dnsproxy

import (
	"context"
	"net"
	"sync"
	"time"
)

// workerIdle ends a UDP worker that has had no query for that long.
const workerIdle = 10 * time.Second

// udpJob is one UDP query to handle and answer on its listener.
type udpJob struct {
	conn *net.UDPConn
	q    query
}

// workers run the UDP queries: long-lived goroutines, each taking the
// next query when it is done with one, so a query costs neither a new
// goroutine nor the growth of a fresh stack (handle's stack is deeper
// than a new goroutine's). There are at most as many busy as MaxInFlight
// allows; idle ones end after workerIdle.
type workers struct {
	jobs chan udpJob // unbuffered: a send succeeds only into an idle worker
}

func newWorkers() *workers { return &workers{jobs: make(chan udpJob)} }

// dispatch hands j to an idle worker, or starts one (tracked by wg). The
// caller holds j's MaxInFlight slot; run releases it.
func (w *workers) dispatch(ctx context.Context, wg *sync.WaitGroup, j udpJob, run func(context.Context, udpJob)) {
	select {
	case w.jobs <- j:
		return
	default:
	}
	wg.Go(func() {
		idle := time.NewTimer(workerIdle)
		defer idle.Stop()
		for {
			run(ctx, j)
			idle.Reset(workerIdle)
			select {
			case j = <-w.jobs:
			case <-idle.C:
				return
			case <-ctx.Done():
				return
			}
		}
	})
}
