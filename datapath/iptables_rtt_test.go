package datapath

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/xdpflood"
)

// rttP99 measures vsRTTs round trips of 32 bytes from the client to an
// echo server in the server pod, both on blocking sockets on threads
// pinned to pl.rtt (no Go netpoller between a packet and its reader), with
// the flooder flooding from pl.flood when f is not nil, and returns their
// 99th percentile in nanoseconds.
func (l *vsLab) rttP99(b *testing.B, ctx context.Context, f *xdpflood.Generator, pl vsPlacement) float64 {
	b.Helper()
	var flood func(context.Context) error
	if f != nil {
		flood = func(ctx context.Context) error {
			_, err := l.runFlood(ctx, f, pl.flood)
			return err
		}
	}
	return l.rttP99During(b, ctx, flood, pl.rtt, vsRTTs)
}

// rttP99During measures n round trips as rttP99 does, on threads
// pinned to cpu, while flood (when not nil) runs from 200 ms before the
// first until the last, and returns their 99th percentile in nanoseconds.
func (l *vsLab) rttP99During(b *testing.B, ctx context.Context, flood func(context.Context) error, cpu, n int) float64 {
	b.Helper()
	return l.rttDuring(b, ctx, flood, vsRTTRun{from: l.client, cpu: cpu, n: n}).p99()
}

// vsRTTRun is a run of allowed round trips to the server's echo server.
type vsRTTRun struct {
	from *netlab.Pod // the client's pod
	cpu  int         // the CPU of the client's and the server's threads
	nice int         // their nice value meanwhile; 0 leaves it
	n    int         // round trips
	// limit, if not 0, ends the run early: no round trip starts after it.
	limit time.Duration
}

// vsRTTResult is what a run measured.
type vsRTTResult struct {
	rtts    []time.Duration // sorted
	retrans uint32          // TCP retransmissions by the client (TCP_INFO)
	elapsed time.Duration   // from the first round trip to the end of the last
}

// p99 is the 99th percentile round trip in nanoseconds.
func (r vsRTTResult) p99() float64 {
	return float64(r.rtts[(len(r.rtts)-1)*99/100].Nanoseconds())
}

// rate is round trips completed per second.
func (r vsRTTResult) rate() float64 { return float64(len(r.rtts)) / r.elapsed.Seconds() }

// rttDuring connects from run.from to an echo server in the server pod
// and times run's round trips of 32 bytes over the connection, on
// blocking sockets on threads pinned to run.cpu (no Go netpoller between
// a packet and its reader), while flood (when not nil) runs from 200 ms
// before the first until the last.
func (l *vsLab) rttDuring(b *testing.B, ctx context.Context, flood func(context.Context) error, run vsRTTRun) vsRTTResult {
	b.Helper()
	lfd, port, err := listenBlocking(l.server)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- onCPUNice(run.cpu, run.nice, func() error { return echoOnce(lfd) }) })
	fd, err := dialBlocking(run.from, l.server.IPv4, port)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)

	fctx, cancel := context.WithCancel(ctx)
	if flood != nil {
		wg.Go(func() {
			if err := flood(fctx); err != nil {
				b.Errorf("flood: %v", err)
			}
		})
		time.Sleep(200 * time.Millisecond) // the flood is under way
	}
	var res vsRTTResult
	err = onCPUNice(run.cpu, run.nice, func() error {
		var err error
		res, err = roundTrips(fd, run)
		return err
	})
	unix.Shutdown(fd, unix.SHUT_RDWR)
	cancel()
	wg.Wait()
	if err != nil {
		b.Fatal(err)
	}
	if err := <-serveErr; err != nil {
		b.Fatalf("echo server: %v", err)
	}
	return res
}

// listenBlocking opens a blocking TCP listener on an ephemeral port of the
// pod's IPv4 address.
func listenBlocking(p *netlab.Pod) (fd, port int, err error) {
	err = p.Do(func() error {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		sa := &unix.SockaddrInet4{Addr: p.IPv4.As4()}
		if err = unix.Bind(fd, sa); err == nil {
			err = unix.Listen(fd, 1)
		}
		var got unix.Sockaddr
		if err == nil {
			got, err = unix.Getsockname(fd)
		}
		if err != nil {
			unix.Close(fd)
			return err
		}
		port = got.(*unix.SockaddrInet4).Port
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("listen in %s: %w", p.Name, err)
	}
	return fd, port, nil
}

// echoOnce accepts one connection on lfd, closes lfd, and echoes until
// the peer closes.
func echoOnce(lfd int) error {
	setTimeout(lfd, 10*time.Second)
	c, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	for errors.Is(err, unix.EINTR) {
		c, _, err = unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	}
	unix.Close(lfd)
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	defer unix.Close(c)
	setTimeout(c, 10*time.Second)
	unix.SetsockoptInt(c, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(c, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if n <= 0 || err != nil {
			return ignoreEOF(n, err)
		}
		if _, err := writeAll(c, buf[:n]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
}

func ignoreEOF(n int, err error) error {
	if n == 0 && err == nil {
		return nil
	}
	return fmt.Errorf("read: %w", err)
}

// dialBlocking connects a blocking TCP socket from the pod to dst:port.
func dialBlocking(p *netlab.Pod, dst netip.Addr, port int) (int, error) {
	var fd int
	err := p.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("socket in %s: %w", p.Name, err)
	}
	setTimeout(fd, 10*time.Second)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.As4(), Port: port}); err != nil {
		unix.Close(fd)
		return 0, fmt.Errorf("connect from %s to %v:%d: %w", p.Name, dst, port, err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return fd, nil
}

// roundTrips times run's request/response exchanges on the connected fd.
func roundTrips(fd int, run vsRTTRun) (vsRTTResult, error) {
	var res vsRTTResult
	req := make([]byte, 32)
	resp := make([]byte, len(req))
	res.rtts = make([]time.Duration, 0, run.n)
	before, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return res, fmt.Errorf("tcp_info: %w", err)
	}
	first := time.Now()
	for len(res.rtts) < run.n && (run.limit == 0 || time.Since(first) < run.limit) {
		start := time.Now()
		if _, err := writeAll(fd, req); err != nil {
			return res, fmt.Errorf("request: %w", err)
		}
		for n := 0; n < len(resp); {
			k, err := unix.Read(fd, resp[n:])
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if k <= 0 || err != nil {
				return res, fmt.Errorf("response after %d bytes: %w", n, errors.Join(err, errors.New("closed")))
			}
			n += k
		}
		res.rtts = append(res.rtts, time.Since(start))
	}
	res.elapsed = time.Since(first)
	after, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return res, fmt.Errorf("tcp_info: %w", err)
	}
	res.retrans = after.Total_retrans - before.Total_retrans
	slices.Sort(res.rtts)
	return res, nil
}

// writeAll writes b on a blocking socket: a signal can interrupt a
// socket call that has a timeout (signal(7)).
func writeAll(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := unix.Write(fd, b[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// setTimeout bounds every blocking receive and send on fd.
func setTimeout(fd int, d time.Duration) {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
}
