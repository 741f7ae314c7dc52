package netlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// TrafficKind is a pattern of repeating traffic between two pods.
type TrafficKind int

// Traffic kinds.
const (
	// Requests are HTTP-like requests over TCP, each on a new connection.
	Requests TrafficKind = iota + 1
	// Stream is one long-lived TCP connection with a write every interval
	// (redialled if it breaks).
	Stream
	// Datagrams are DNS-like UDP request/response pairs from one socket.
	Datagrams
	// Echo is ICMP (ICMPv6) echo, one request every interval.
	Echo
	// HTTP is real HTTP/1.1 requests (Traffic.Method and Path), each on a
	// new connection, to a real HTTP server (net/http) that answers 200
	// after a few milliseconds; any answer is an exchange.
	HTTP
)

// String names the kind.
func (k TrafficKind) String() string {
	switch k {
	case Requests:
		return "requests"
	case Stream:
		return "stream"
	case Datagrams:
		return "datagrams"
	case Echo:
		return "echo"
	case HTTP:
		return "http"
	}
	return fmt.Sprintf("TrafficKind(%d)", int(k))
}

// Traffic is one repeating exchange from a pod to another.
type Traffic struct {
	Kind     TrafficKind
	From, To *Pod
	// Port is the server's port (ignored for Echo).
	Port uint16
	// IPv6 sends to To's IPv6 address instead of its IPv4 one.
	IPv6 bool
	// Every is the interval between exchanges; 0 means 500ms.
	Every time.Duration
	// Method and Path are an HTTP request's (HTTP only; GET and / when
	// empty).
	Method, Path string
	// Name, for Requests, is a DNS name each exchange first resolves (A,
	// or AAAA with IPv6) by asking the DNS server at Resolver from the
	// From pod, then requests at the answer's first address and Port (To
	// is the pod that serves Port).
	Name     string
	Resolver netip.AddrPort
}

// String describes the traffic, e.g. "frontend->backend tcp 198.18.3.3:8080 requests".
func (t Traffic) String() string {
	if t.Name != "" {
		return fmt.Sprintf("%s->%s:%d %s", t.From.Name, t.Name, t.Port, t.Kind)
	}
	return fmt.Sprintf("%s->%s %s %s", t.From.Name, t.To.Name, t.dst(), t.Kind)
}

func (t Traffic) dst() netip.AddrPort { return netip.AddrPortFrom(t.To.Addr(t.IPv6), t.Port) }

// TrafficOptions configure RunTraffic.
type TrafficOptions struct {
	// Logger receives failed exchanges at debug level; nil discards them.
	Logger *slog.Logger
	// Report, when set, is called after every exchange with its outcome,
	// from several goroutines at once.
	Report func(Traffic, error)
}

// exchangeTimeout bounds one exchange, so a lost packet never stalls a loop.
const exchangeTimeout = 2 * time.Second

// RunTraffic starts the servers the traffic needs (one per pod, protocol and
// port) and runs every client loop until ctx ends, then stops them all and
// returns. Only setting up a server fails it; failed exchanges are reported
// and retried at the next interval.
func RunTraffic(ctx context.Context, opts TrafficOptions, traffic ...Traffic) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	report := func(t Traffic, err error) {
		if ending(ctx) {
			return // the exchange was cut short, not failed
		}
		if err != nil {
			log.Debug("exchange failed", "traffic", t.String(), "err", err)
		}
		if opts.Report != nil {
			opts.Report(t, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which runs first

	type key struct {
		pod  *Pod
		udp  bool
		port uint16
	}
	served := map[key]bool{}
	for _, t := range traffic {
		if t.Kind == Echo {
			continue
		}
		k := key{t.To, t.Kind == Datagrams, t.Port}
		if served[k] {
			continue
		}
		served[k] = true
		var err error
		switch {
		case k.udp:
			err = serveUDP(ctx, &wg, t.To, t.Port)
		case t.Kind == HTTP:
			err = serveHTTP(ctx, &wg, t.To, t.Port)
		default:
			err = serveTCP(ctx, &wg, t.To, t.Port)
		}
		if err != nil {
			return fmt.Errorf("run traffic %s: %w", t, err)
		}
	}
	for _, t := range traffic {
		if t.Every <= 0 {
			t.Every = 500 * time.Millisecond
		}
		wg.Go(func() { clientLoop(ctx, t, report) })
	}
	<-ctx.Done()
	return nil
}

// ending reports whether ctx is done or about to be: a socket deadline taken
// from ctx can fire just before ctx's own timer does.
func ending(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// clientLoop runs t's exchanges every t.Every until ctx ends.
func clientLoop(ctx context.Context, t Traffic, report func(Traffic, error)) {
	var stream net.Conn
	var dgram *net.UDPConn
	defer func() {
		if stream != nil {
			stream.Close()
		}
		if dgram != nil {
			dgram.Close()
		}
	}()
	tick := time.NewTicker(t.Every)
	defer tick.Stop()
	for {
		var err error
		switch t.Kind {
		case Requests:
			err = request(ctx, t)
		case Stream:
			if stream == nil {
				stream, err = t.From.DialTCP(ctx, t.dst())
			}
			if err == nil {
				err = exchange(stream, "SELECT now();\n")
			}
			if err != nil && stream != nil {
				stream.Close()
				stream = nil
			}
		case Datagrams:
			if dgram == nil {
				dgram, err = t.From.DialUDP(ctx, t.dst())
			}
			if err == nil {
				err = exchange(dgram, dnsQuery)
			}
		case Echo:
			_, err = t.From.Ping(ctx, t.To.Addr(t.IPv6), 1)
		case HTTP:
			err = httpRequest(ctx, t)
		default:
			err = fmt.Errorf("unknown traffic kind %d", t.Kind)
		}
		report(t, err)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// request makes one HTTP-like request on a new connection, to the
// address Name resolves to when it is set.
func request(ctx context.Context, t Traffic) error {
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	dst := t.dst()
	if t.Name != "" {
		a, err := t.From.Resolve(ctx, t.Resolver, t.Name, t.IPv6)
		if err != nil {
			return err
		}
		dst = netip.AddrPortFrom(a, t.Port)
	}
	c, err := t.From.DialTCP(ctx, dst)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(exchangeTimeout))
	req := fmt.Sprintf("GET /api/v1/items HTTP/1.1\r\nHost: %s\r\nUser-Agent: periscope-demo\r\n\r\n", t.To.Name)
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("write request: %w", err)
	}
	resp, err := io.ReadAll(c) // the server closes after its response
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if !strings.HasPrefix(string(resp), "HTTP/1.1 200") {
		return fmt.Errorf("unexpected response %q", resp)
	}
	return nil
}

// exchange writes msg on c and reads the echoed reply.
func exchange(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(exchangeTimeout))
	if _, err := io.WriteString(c, msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	return nil
}

// dnsQuery is a DNS query for db.default.svc (A); the server echoes it.
const dnsQuery = "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" +
	"\x02db\x07default\x03svc\x00\x00\x01\x00\x01"

// serveTCP serves on port in pod until ctx ends: an HTTP-like request
// ("GET ...") gets a response and the connection closes; anything else is
// echoed.
func serveTCP(ctx context.Context, wg *sync.WaitGroup, pod *Pod, port uint16) error {
	ln, err := pod.ListenTCP(port)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed with ctx (or broken: nothing to serve then)
			}
			stop := context.AfterFunc(ctx, func() { c.Close() })
			wg.Go(func() {
				defer stop()
				defer c.Close()
				handleTCP(c)
			})
		}
	})
	return nil
}

func handleTCP(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if !strings.HasPrefix(line, "GET ") {
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
			continue
		}
		for line != "\r\n" && line != "\n" { // skip the headers
			if line, err = r.ReadString('\n'); err != nil {
				return
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"+
			"Content-Length: 3\r\nConnection: close\r\n\r\n[]\n")
		return
	}
}

// serveUDP echoes datagrams on port in pod until ctx ends.
func serveUDP(ctx context.Context, wg *sync.WaitGroup, pod *Pod, port uint16) error {
	conn, err := pod.ListenUDP(port)
	if err != nil {
		return err
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
					return
				}
				continue
			}
			conn.WriteToUDPAddrPort(buf[:n], from)
		}
	})
	return nil
}
