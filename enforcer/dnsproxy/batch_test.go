package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/api"
)

// TestBatchedReadsAnswerEveryQueryOfABurst sends a burst of queries from
// many sockets at once (so that one recvmmsg reads several), plus a
// datagram longer than a read buffer, and wants every query answered
// (the server's answer) under its own ID, and the long one FORMERR.
func TestBatchedReadsAnswerEveryQueryOfABurst(t *testing.T) {
	server := answeringServer(t)
	p := loopbackProxy(t, Options{Timeout: 5 * time.Second}, server)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func(*api.Flow) {}) }()
	defer func() { cancel(); <-done }()
	addr := p.Addrs()[0]

	const clients = 3 * listenBatch
	conns := make([]*net.UDPConn, clients)
	for i := range conns {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		m := new(dns.Msg)
		m.SetQuestion("www.example.com.", dns.TypeA)
		m.Id = uint16(1000 + i)
		b, _ := m.Pack()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(buf[:n]); err != nil || r.Id != uint16(1000+i) || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("client %d: answer %v (%v), want NOERROR with one record, ID %d", i, r, err, 1000+i)
		}
	}

	long := make([]byte, queryBufSize+100)
	long[0], long[1], long[2], long[5] = 0xbe, 0xef, 0x01, 1 // ID, RD, one question
	if _, err := conns[0].Write(long); err != nil {
		t.Fatal(err)
	}
	conns[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, err := conns[0].Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if r := new(dns.Msg); r.Unpack(buf[:n]) != nil || r.Id != 0xbeef || r.Rcode != dns.RcodeFormatError {
		t.Fatalf("a %d-byte query: %x, want FORMERR with its ID", len(long), buf[:n])
	}
	if s := p.Stats(); s.Queries != clients+1 || s.Malformed != 1 {
		t.Errorf("stats %+v, want %d queries, 1 malformed", s, clients+1)
	}
}

// answeringServer answers every UDP query on loopback with one A record.
func answeringServer(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 {
				continue
			}
			r := new(dns.Msg)
			r.SetReply(q)
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 198.18.7.1")
			r.Answer = append(r.Answer, rr)
			b, _ := r.Pack()
			pc.WriteTo(b, from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}
