package dnsproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
)

// endpointMap is an Endpoints of fixed addresses.
type endpointMap map[netip.Addr]api.Endpoint

func (m endpointMap) LookupIP(ip netip.Addr) (api.Endpoint, bool) {
	ep, ok := m[ip]
	return ep, ok
}

var (
	client    = netip.MustParseAddrPort("198.18.0.2:40000")
	server    = netip.MustParseAddrPort("198.18.0.53:53")
	clientEP  = api.Endpoint{ID: 7, Identity: 1234, Namespace: "default", PodName: "client"}
	serverEP  = api.Endpoint{ID: 9, Identity: 4321, Namespace: "kube-system", PodName: "dns"}
	endpoints = endpointMap{client.Addr(): clientEP, server.Addr(): serverEP}
)

func testTable(t testing.TB) *dnsmatch.Table {
	t.Helper()
	tab := dnsmatch.NewTable()
	err := tab.Replace(map[uint32][]dnsmatch.Rule{7: {{
		Policy: testRef("default/dns"), Port: 53,
		Names: []dnsmatch.Selector{{MatchPattern: "*.example.com"}, {MatchName: "example.com"}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// newTestProxy is a proxy with no sockets whose upstream is ex.
func newTestProxy(t testing.TB, cache Cache, ex exchangeFunc) *Proxy {
	t.Helper()
	return &Proxy{
		opts: Options{Endpoints: endpoints, Policy: testTable(t), Cache: cache, Timeout: time.Second, RecordQueue: 16},
		log:  slog.New(slog.DiscardHandler), exchange: ex,
		records: newRecordQueue(16),
	}
}

func packQuery(t testing.TB, name string, qtype uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x1234
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// answerWith answers a query with records given in zone-file syntax.
func answerWith(rcode int, rrs ...string) exchangeFunc {
	return func(_ context.Context, _ uint8, _ netip.Addr, _ netip.AddrPort, q []byte) ([]byte, error) {
		req := new(dns.Msg)
		if err := req.Unpack(q); err != nil {
			return nil, err
		}
		m := new(dns.Msg)
		m.SetRcode(req, rcode)
		for _, s := range rrs {
			rr, err := dns.NewRR(s)
			if err != nil {
				return nil, err
			}
			m.Answer = append(m.Answer, rr)
		}
		return m.Pack()
	}
}

func drain(p *Proxy) []*api.Flow {
	return p.records.take(nil)
}

func TestAnAllowedQueryIsForwardedCachedAndRecorded(t *testing.T) {
	var admitted []fqdn.Admission
	cache, err := fqdn.New(fqdn.Options{Admit: func(a fqdn.Admission) error {
		admitted = append(admitted, a)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	up := answerWith(dns.RcodeSuccess,
		"WWW.example.com. 300 IN CNAME web.example.net.",
		"web.example.net. 60 IN A 198.18.7.1",
		"web.example.net. 120 IN A 198.18.7.2")
	var upstreamAnswer []byte
	p := newTestProxy(t, cache, func(ctx context.Context, proto uint8, from netip.Addr, s netip.AddrPort, q []byte) ([]byte, error) {
		if s != server || proto != protoUDP {
			t.Errorf("forwarded to %v over %d, want %v over UDP", s, proto, server)
		}
		b, err := up(ctx, proto, from, s, q)
		upstreamAnswer = b
		return b, err
	})
	q := query{client: client, server: server, proto: protoUDP, msg: packQuery(t, "WWW.Example.com.", dns.TypeA), received: time.Now()}
	out := p.handle(context.Background(), q)
	if !bytes.Equal(out.reply, upstreamAnswer) {
		t.Fatal("the reply is not the server's answer byte for byte")
	}
	if len(admitted) != 1 || admitted[0].Name != "www.example.com." || admitted[0].TTL != 60*time.Second ||
		!slices.Equal(admitted[0].Addrs, []netip.Addr{netip.MustParseAddr("198.18.7.1"), netip.MustParseAddr("198.18.7.2")}) {
		t.Fatalf("admitted %+v before the reply, want www.example.com. -> 198.18.7.1, 198.18.7.2 for 60s", admitted)
	}
	p.finish(q, out)
	recs := drain(p)
	if len(recs) != 2 {
		t.Fatalf("%d records, want a request and a response", len(recs))
	}
	req, resp := recs[0], recs[1]
	wantReq := api.DNS{Query: "www.example.com.", Qtypes: []string{"A"}, ObservationSource: "proxy"}
	if req.Verdict != api.VerdictForwarded || req.L7.Type != api.L7TypeRequest || fmt.Sprint(*req.L7.DNS) != fmt.Sprint(wantReq) ||
		req.IP.Source != client.Addr() || req.L4.DestinationPort != 53 || req.Source.PodName != "client" ||
		req.Destination.PodName != "dns" || req.IsReply || !slices.Equal(req.EgressAllowedBy, testRefs("default/dns")) {
		t.Errorf("request record %+v / %+v", req, req.L7.DNS)
	}
	wantResp := api.DNS{Query: "www.example.com.", IPs: []string{"198.18.7.1", "198.18.7.2"}, TTL: 60,
		CNAMEs: []string{"web.example.net."}, ObservationSource: "proxy", Rcode: 0,
		Qtypes: []string{"A"}, RRtypes: []string{"CNAME", "A", "A"}}
	if resp.Verdict != api.VerdictForwarded || resp.L7.Type != api.L7TypeResponse || fmt.Sprint(*resp.L7.DNS) != fmt.Sprint(wantResp) ||
		resp.IP.Source != server.Addr() || resp.L4.SourcePort != 53 || !resp.IsReply || resp.L7.LatencyNs == 0 ||
		resp.Type != api.FlowTypeL7 || resp.TrafficDirection != api.TrafficDirectionEgress {
		t.Errorf("response record %+v\n dns %+v\nwant dns %+v", resp, resp.L7.DNS, wantResp)
	}
	if got := cache.NamesOf(7, netip.MustParseAddr("198.18.7.2")); !slices.Equal(got, []string{"www.example.com"}) {
		t.Errorf("cache names %q", got)
	}
}

func TestHandleAnswersEveryKindOfQuery(t *testing.T) {
	never := func(context.Context, uint8, netip.Addr, netip.AddrPort, []byte) ([]byte, error) {
		t.Error("forwarded a query that must not be")
		return nil, errors.New("no")
	}
	timeout := func(ctx context.Context, _ uint8, _ netip.Addr, _ netip.AddrPort, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("udp: %w", errNoAnswer)
	}
	otherQuestion := func(ctx context.Context, proto uint8, from netip.Addr, s netip.AddrPort, q []byte) ([]byte, error) {
		return answerWith(dns.RcodeSuccess, "evil.example.org. 60 IN A 198.18.7.66")(ctx, proto, from, s, packQuery(t, "evil.example.org.", dns.TypeA))
	}
	garbage := func(context.Context, uint8, netip.Addr, netip.AddrPort, []byte) ([]byte, error) {
		return []byte{0x12, 0x34, 0x80, 0, 0, 1, 0, 1, 0xff, 0xff}, nil
	}
	tests := []struct {
		name    string
		from    netip.AddrPort
		msg     []byte
		up      exchangeFunc
		rcode   int // -1: no reply at all
		verdict api.Verdict
		denied  []api.PolicyRef
	}{
		{"a name no rule allows is REFUSED and DROPPED naming the policy",
			client, packQuery(t, "evil.example.org.", dns.TypeA), never, dns.RcodeRefused, api.VerdictDropped, testRefs("default/dns")},
		{"two labels below a one-star pattern is REFUSED",
			client, packQuery(t, "a.b.example.com.", dns.TypeAAAA), never, dns.RcodeRefused, api.VerdictDropped, testRefs("default/dns")},
		{"NXDOMAIN passes through",
			client, packQuery(t, "nope.example.com.", dns.TypeA), answerWith(dns.RcodeNameError), dns.RcodeNameError, api.VerdictForwarded, nil},
		{"a server that never answers costs a SERVFAIL",
			client, packQuery(t, "slow.example.com.", dns.TypeA), timeout, dns.RcodeServerFailure, api.VerdictError, nil},
		{"an answer about another name is a SERVFAIL",
			client, packQuery(t, "www.example.com.", dns.TypeA), otherQuestion, dns.RcodeServerFailure, api.VerdictError, nil},
		{"an answer that does not parse is a SERVFAIL",
			client, packQuery(t, "www.example.com.", dns.TypeA), garbage, dns.RcodeServerFailure, api.VerdictError, nil},
		{"a query from an address no endpoint owns is a SERVFAIL",
			netip.MustParseAddrPort("198.18.0.99:5000"), packQuery(t, "www.example.com.", dns.TypeA), never, dns.RcodeServerFailure, 0, nil},
		{"a query with a header but garbage after is FORMERR",
			client, []byte{0xab, 0xcd, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0}, never, dns.RcodeFormatError, 0, nil},
		{"less than a header gets nothing",
			client, []byte{0xab, 0xcd, 0x01}, never, -1, 0, nil},
		{"a response sent to the proxy gets nothing",
			client, func() []byte { b := packQuery(t, "www.example.com.", dns.TypeA); b[2] |= 0x80; return b }(), never, -1, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestProxy(t, nil, tt.up)
			out := p.handle(context.Background(), query{client: tt.from, server: server, proto: protoUDP, msg: tt.msg, received: time.Now()})
			if tt.rcode < 0 {
				if out.reply != nil {
					t.Fatalf("replied %x, want nothing", out.reply)
				}
				return
			}
			m := new(dns.Msg)
			if err := m.Unpack(out.reply); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if m.Rcode != tt.rcode || !m.Response || m.Id != uint16(tt.msg[0])<<8|uint16(tt.msg[1]) {
				t.Fatalf("reply rcode %s id %#x response %v, want %s id %#x", dns.RcodeToString[m.Rcode], m.Id, m.Response,
					dns.RcodeToString[tt.rcode], uint16(tt.msg[0])<<8|uint16(tt.msg[1]))
			}
			p.finish(query{received: time.Now()}, out)
			recs := drain(p)
			if tt.verdict == 0 {
				if len(recs) != 0 {
					t.Fatalf("%d records for a query that is not an endpoint's question", len(recs))
				}
				return
			}
			last := recs[len(recs)-1]
			if last.Verdict != tt.verdict || !slices.Equal(last.EgressDeniedBy, tt.denied) {
				t.Fatalf("last record verdict %v denied by %v, want %v by %v", last.Verdict, last.EgressDeniedBy, tt.verdict, tt.denied)
			}
			if tt.verdict == api.VerdictError && last.L7.DNS.Rcode != dns.RcodeServerFailure {
				t.Fatalf("error record rcode %d, want SERVFAIL", last.L7.DNS.Rcode)
			}
		})
	}
}

func TestAFailedAdmissionHoldsTheAnswerBack(t *testing.T) {
	cache, _ := fqdn.New(fqdn.Options{Admit: func(fqdn.Admission) error { return errors.New("policy map full") }})
	p := newTestProxy(t, cache, answerWith(dns.RcodeSuccess, "www.example.com. 60 IN A 198.18.7.1"))
	out := p.handle(context.Background(), query{client: client, server: server, proto: protoUDP, msg: packQuery(t, "www.example.com.", dns.TypeA)})
	m := new(dns.Msg)
	if err := m.Unpack(out.reply); err != nil || m.Rcode != dns.RcodeServerFailure || len(m.Answer) != 0 {
		t.Fatalf("reply %v (err %v), want an empty SERVFAIL: the addresses were not admitted", m, err)
	}
}

// policyFunc adapts a function to Policy.
type policyFunc func(dnsmatchQuery) dnsmatchVerdict

func (f policyFunc) Check(q dnsmatchQuery) dnsmatchVerdict { return f(q) }

type (
	dnsmatchQuery   = dnsmatch.Query
	dnsmatchVerdict = dnsmatch.Verdict
)

func TestAuditModeForwardsADeniedQueryAndReportsIt(t *testing.T) {
	p := newTestProxy(t, nil, answerWith(dns.RcodeSuccess, "evil.example.org. 60 IN A 198.18.7.66"))
	tab := testTable(t)
	p.opts.Policy = policyFunc(func(q dnsmatchQuery) dnsmatchVerdict {
		v := tab.Check(q)
		v.Audit = !v.Allowed // the endpoint in audit mode
		return v
	})
	out := p.handle(context.Background(), query{client: client, server: server, proto: protoUDP, msg: packQuery(t, "evil.example.org.", dns.TypeA), received: time.Now()})
	m := new(dns.Msg)
	if err := m.Unpack(out.reply); err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("reply %v (err %v), want the server's answer", m, err)
	}
	p.finish(query{received: time.Now()}, out)
	recs := drain(p)
	if len(recs) != 2 {
		t.Fatalf("%d records, want the query's and the answer's", len(recs))
	}
	for _, r := range recs {
		if r.Verdict != api.VerdictAudit || r.DropReason != api.DropReasonPolicyDenied ||
			!slices.Equal(r.EgressDeniedBy, testRefs("default/dns")) || len(r.EgressAllowedBy) != 0 {
			t.Errorf("%v record: %v (%v) denied by %v allowed by %v, want AUDIT (POLICY_DENIED) denied by default/dns",
				r.L7.Type, r.Verdict, r.DropReason, r.EgressDeniedBy, r.EgressAllowedBy)
		}
	}
	if s := p.Stats(); s.Audited != 1 || s.Denied != 0 {
		t.Errorf("stats %+v, want 1 audited, 0 denied", s)
	}
}

// BenchmarkHandle is one allowed query's work in the proxy, without the
// network: parse, policy, records, the answer's details and the cache.
// Its allocations are the hot path's (-benchmem).
func BenchmarkHandle(b *testing.B) {
	cache, err := fqdn.New(fqdn.Options{})
	if err != nil {
		b.Fatal(err)
	}
	answer, err := answerWith(dns.RcodeSuccess, "www.example.com. 300 IN A 198.18.250.1")(context.Background(), protoUDP, netip.Addr{}, server, packQuery(b, "www.example.com.", dns.TypeA))
	if err != nil {
		b.Fatal(err)
	}
	p := newTestProxy(b, cache, func(context.Context, uint8, netip.Addr, netip.AddrPort, []byte) ([]byte, error) {
		return answer, nil
	})
	msg := packQuery(b, "www.example.com.", dns.TypeA)
	b.ReportAllocs()
	for b.Loop() {
		out := p.handle(context.Background(), query{client: client, server: server, proto: protoUDP, msg: msg, received: time.Now()})
		if out.response == nil || out.response.Verdict != api.VerdictForwarded {
			b.Fatalf("outcome %+v", out)
		}
		drain(p)
	}
}
