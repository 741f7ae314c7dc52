// Package dnsload generates DNS load from a lab pod for benchmarks: a
// closed loop (queries/s) and a paced rate (latencies), over UDP. It is
// for tests and benchmarks and must not be imported by the binary.
package dnsload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/datapath/netlab"
)

// Query packs a query for name (fully qualified) of type qtype.
func Query(name string, qtype uint16) ([]byte, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	b, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack query %s: %w", name, err)
	}
	return b, nil
}

// ClosedLoop runs workers clients in pod p that each send the next query
// when the last is answered, for d, and returns the answered queries per
// second.
func ClosedLoop(p *netlab.Pod, target netip.AddrPort, query []byte, workers int, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var answered atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		conn, err := p.DialUDP(ctx, target)
		if err != nil {
			return 0, err
		}
		wg.Go(func() {
			defer conn.Close()
			msg := slices.Clone(query)
			buf := make([]byte, 1500)
			for ctx.Err() == nil {
				if _, err := Ask(conn, msg, buf); err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						firstErr = errors.Join(firstErr, err)
						mu.Unlock()
					}
					return
				}
				answered.Add(1)
			}
		})
	}
	start := time.Now()
	wg.Wait()
	return float64(answered.Load()) / time.Since(start).Seconds(), firstErr
}

// Paced sends rate queries per second for d from pod p, each on a socket
// of a pool, and returns every query's latency.
func Paced(p *netlab.Pod, target netip.AddrPort, query []byte, rate int, d time.Duration) ([]time.Duration, error) {
	n := int(d.Seconds() * float64(rate))
	pool := make(chan *net.UDPConn, 64)
	for range cap(pool) {
		conn, err := p.DialUDP(context.Background(), target)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		pool <- conn
	}
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		conn := <-pool
		wg.Go(func() {
			defer func() { pool <- conn }()
			msg := slices.Clone(query)
			msg[0], msg[1] = byte(i>>8), byte(i)
			lat[i], errs[i] = Ask(conn, msg, make([]byte, 1500))
		})
	}
	wg.Wait()
	return lat, errors.Join(errs...)
}

// headerLen is a DNS header's length.
const headerLen = 12

// Ask sends one query on conn and waits (2 s at most) for the answer with
// its ID, which must be NOERROR.
func Ask(conn *net.UDPConn, msg, buf []byte) (time.Duration, error) {
	t0 := time.Now()
	conn.SetDeadline(t0.Add(2 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		return 0, err
	}
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return 0, err
		}
		if n >= headerLen && buf[0] == msg[0] && buf[1] == msg[1] {
			if rcode := buf[3] & 0xf; rcode != 0 {
				return 0, errors.New("answer is not NOERROR: " + dns.RcodeToString[int(rcode)])
			}
			return time.Since(t0), nil
		}
	}
}

// Percentile is the q quantile of d (0 ≤ q ≤ 1).
func Percentile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*q)]
}

// Mean is v's mean.
func Mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
