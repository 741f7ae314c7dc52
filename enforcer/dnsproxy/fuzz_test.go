package dnsproxy

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
)

// FuzzHandle feeds the proxy a query and an upstream answer, both arbitrary
// bytes (seeds in testdata/fuzz/FuzzHandle, run by every go test). Whatever
// they hold, the proxy must not panic, must answer nothing or a parsable
// reply with the query's ID, and must cache only addresses of an answer to
// the question asked.
func FuzzHandle(f *testing.F) {
	f.Add(mustPack(f, "www.example.com.", dns.TypeA), mustAnswer(f, "www.example.com.", dns.TypeA, "www.example.com. 60 IN A 198.18.7.1"))
	f.Fuzz(func(t *testing.T, q, answer []byte) {
		cache, err := fqdn.New(fqdn.Options{MaxPerEndpoint: 64, MaxEntries: 64})
		if err != nil {
			t.Fatal(err)
		}
		tab := dnsmatch.NewTable()
		if err := tab.Replace(map[uint32][]dnsmatch.Rule{7: {{Policy: testRef("p"), Names: []dnsmatch.Selector{{MatchPattern: "**.example.com"}, {MatchPattern: "*"}}}}}); err != nil {
			t.Fatal(err)
		}
		p := &Proxy{
			opts: Options{Endpoints: endpoints, Policy: tab, Cache: cache, Timeout: time.Second},
			log:  slog.New(slog.DiscardHandler), records: newRecordQueue(4),
			exchange: func(_ context.Context, _ uint8, _ netip.Addr, _ netip.AddrPort, query []byte) ([]byte, error) {
				if !answers(answer, query) { // what the network exchange filters
					return nil, errors.New("not an answer")
				}
				return answer, nil
			},
		}
		out := p.handle(context.Background(), query{client: client, server: server, proto: protoUDP, msg: q, received: time.Now()})
		p.finish(query{received: time.Now()}, out)
		if out.reply == nil {
			return
		}
		m := new(dns.Msg)
		if err := m.Unpack(out.reply); err != nil {
			// Only a FORMERR of a query we could not parse is a bare header.
			if len(out.reply) != headerLen {
				t.Fatalf("reply %x does not parse: %v", out.reply, err)
			}
		}
		if len(q) < 2 || out.reply[0] != q[0] || out.reply[1] != q[1] {
			t.Fatalf("reply ID %x, query ID %x", out.reply[:2], q[:min(2, len(q))])
		}
		for _, e := range cache.Entries() {
			req := new(dns.Msg)
			if req.Unpack(q) != nil || len(req.Question) != 1 || dnsmatch.Canonical(req.Question[0].Name) != e.Name {
				t.Fatalf("cached %+v for a query that did not ask for it", e)
			}
		}
	})
}

func mustPack(tb testing.TB, name string, qtype uint16) []byte {
	tb.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x4242
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustAnswer(tb testing.TB, name string, qtype uint16, rrs ...string) []byte {
	tb.Helper()
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	req.Id = 0x4242
	m := new(dns.Msg)
	m.SetReply(req)
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			tb.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
