package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"

	"github.com/periscope-dev/periscope/datapath/netlab"
)

// churnRequest and churnReply are the bytes each churn connection carries.
const (
	churnRequest = 32
	churnReply   = 64
)

// churnServer accepts churn connections in a pod: it reads a request,
// answers and closes once the client has closed.
type churnServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startChurnServer(pod *netlab.Pod, port uint16) (*churnServer, error) {
	ln, err := pod.ListenTCP(port)
	if err != nil {
		return nil, err
	}
	s := &churnServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { serveChurn(c) })
		}
	})
	return s, nil
}

func serveChurn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, churnReply)
	if _, err := io.ReadFull(c, buf[:churnRequest]); err != nil {
		return
	}
	if _, err := c.Write(buf); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, c) // until the client closes
}

func (s *churnServer) Close() {
	s.ln.Close()
	s.wg.Wait()
}

// churnResult is what a churn run made.
type churnResult struct {
	Made, Failed uint64
	Elapsed      time.Duration
}

// tuneChurnClient lets the client pod open connections at this rate for
// long: the whole unprivileged port range, and ports in TIME_WAIT reused
// after a second (net.ipv4.tcp_tw_reuse), so 5-tuples do come back.
func tuneChurnClient(pod *netlab.Pod) error {
	return pod.Do(func() error {
		for file, value := range map[string]string{
			"/proc/sys/net/ipv4/ip_local_port_range": "1024 65535",
			"/proc/sys/net/ipv4/tcp_tw_reuse":        "1",
		} {
			if err := os.WriteFile(file, []byte(value), 0o644); err != nil {
				return fmt.Errorf("set %s in pod %s: %w", file, pod.Name, err)
			}
		}
		return nil
	})
}

// runChurn opens rate new TCP connections per second from client to
// server:port for d, each a request and a reply, closed by the client.
// Connections are paced (each is due at start + i/rate) and made by
// workers whose threads stay in the client pod's network namespace.
func runChurn(ctx context.Context, client *netlab.Pod, server netip.AddrPort, rate int, d time.Duration) (churnResult, error) {
	const workers = 32
	total := int(float64(rate) * d.Seconds())
	due := make(chan struct{}, workers*4)
	var made, failed atomic.Uint64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			// The thread enters the pod's namespace and stays locked: it is
			// discarded with the goroutine, never reused elsewhere.
			runtime.LockOSThread()
			if err := enterNetNS(client); err != nil {
				errc <- err
				return
			}
			buf := make([]byte, churnReply)
			dialer := net.Dialer{Timeout: 5 * time.Second}
			for range due {
				if err := churnOnce(ctx, &dialer, server, buf); err != nil {
					failed.Add(1)
				} else {
					made.Add(1)
				}
			}
		})
	}
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent := 0
pace:
	for sent < total {
		select {
		case <-ctx.Done():
			break pace
		case now := <-tick.C:
			for want := min(total, int(now.Sub(start).Seconds()*float64(rate))); sent < want; sent++ {
				due <- struct{}{}
			}
		}
	}
	tick.Stop()
	close(due)
	wg.Wait()
	close(errc)
	res := churnResult{Made: made.Load(), Failed: failed.Load(), Elapsed: time.Since(start)}
	return res, errors.Join(collectErrs(errc)...)
}

func collectErrs(c <-chan error) []error {
	var errs []error
	for err := range c {
		errs = append(errs, err)
	}
	return errs
}

// churnOnce makes one connection: request, reply, close.
func churnOnce(ctx context.Context, d *net.Dialer, server netip.AddrPort, buf []byte) error {
	c, err := d.DialContext(ctx, "tcp", server.String())
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(buf[:churnRequest]); err != nil {
		return err
	}
	_, err = io.ReadFull(c, buf[:churnReply])
	return err
}

// enterNetNS moves the calling (locked) thread into the pod's network
// namespace for good.
func enterNetNS(p *netlab.Pod) error {
	h, err := netns.GetFromPath(p.NetNSPath)
	if err != nil {
		return fmt.Errorf("open netns of %s: %w", p.Name, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return fmt.Errorf("enter netns of %s: %w", p.Name, err)
	}
	return nil
}
