package datapath

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// waker tells Run when the programs wake the reader: they do only when the
// ring fills (events.h, submit_event), so Run can drain it at once instead
// of at its next tick. It waits in a goroutine of its own, edge-triggered on
// the ring buffer's file descriptor: Run itself never blocks in a system
// call, which the Go runtime would answer by handing its processor off and
// polling for the next such call every 20µs (sysmon), a cost paid per read.
type waker struct {
	C    chan struct{} // receives after a wakeup; capacity 1
	epfd int
	stop int // eventfd that ends the wait
	done sync.WaitGroup
}

func newWaker(ringFD int) (*waker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll for ring buffer wakeups: %w", err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd for ring buffer wakeups: %w", err)
	}
	w := &waker{C: make(chan struct{}, 1), epfd: epfd, stop: stop}
	err = errors.Join(
		unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, ringFD, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(ringFD)}),
		unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, stop, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(stop)}))
	if err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("watch ring buffer wakeups: %w", err)
	}
	w.done.Go(w.wait)
	return w, nil
}

func (w *waker) wait() {
	events := make([]unix.EpollEvent, 2)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == w.stop {
				return
			}
			select {
			case w.C <- struct{}{}:
			default: // one pending is enough
			}
		}
	}
}

// Close ends the wait and releases the descriptors.
func (w *waker) Close() {
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(w.stop, one[:])
	w.done.Wait()
	w.closeFDs()
}

func (w *waker) closeFDs() {
	unix.Close(w.stop)
	unix.Close(w.epfd)
}
