package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
)

// IP protocol numbers of the transports (api.ProtoUDP, api.ProtoTCP).
const (
	protoTCP = api.ProtoTCP
	protoUDP = api.ProtoUDP
)

// headerLen is a DNS header's length.
const headerLen = 12

// query is one DNS message a client sent, as received.
type query struct {
	client   netip.AddrPort // the endpoint's address
	server   netip.AddrPort // where it sent the query (original destination)
	proto    uint8
	msg      []byte
	received time.Time
}

// outcome is what handle decided: the reply to send (nil: none) and the
// response record to emit once it is sent; of a forwarded query that was
// answered, how long the proxy held it before forwarding it (held) and
// when the answer came (answered; zero: none), for ownTimes.
type outcome struct {
	reply    []byte
	response *api.Flow
	held     time.Duration
	answered time.Time
}

// handle judges and answers one query, forwarding it through p.exchange
// (the TCP path and the tests; UDP queries go through the shared upstream
// sockets, udpExchanges, with the same steps). It never panics on
// malformed input and returns within the upstream timeout.
func (p *Proxy) handle(ctx context.Context, q query) outcome {
	out, fw := p.open(q)
	if fw == nil {
		return out
	}
	xctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	forwarded := time.Now()
	raw, err := p.exchange(xctx, q.proto, fw.from(p.opts.FromClient), q.server, q.msg)
	cancel()
	var answered time.Time
	if err == nil {
		answered = time.Now()
	}
	out, ans := p.settle(fw, raw, err)
	out = p.admit(fw, out, ans)
	out.held, out.answered = forwarded.Sub(q.received), answered
	return out
}

// forward is a query that policy allowed, on its way to the server: what
// settle and admit need of it.
type forward struct {
	q      query
	req    *dns.Msg
	ep     uint32 // the asking endpoint's ID
	resp   *api.Flow
	qname  string
	qtypes []string
	// forwarded and answered are when a UDP query was sent upstream and
	// its answer read (zero: not, or over TCP), for ownTimes.
	forwarded, answered time.Time
}

// from is the source address of the forwarded query: the client's when
// fromClient, else zero (the host's).
func (fw *forward) from(fromClient bool) netip.Addr {
	if fromClient {
		return fw.q.client.Addr().Unmap()
	}
	return netip.Addr{}
}

// open parses and judges a query and queues its REQUEST record. A query
// to forward comes back as a forward; any other gets its outcome (the
// reply: FORMERR, REFUSED, SERVFAIL, ...; nil for none).
func (p *Proxy) open(q query) (outcome, *forward) {
	req := new(dns.Msg)
	if err := req.Unpack(q.msg); err != nil {
		p.stats.malformed.Add(1)
		return outcome{reply: formErr(q.msg)}, nil
	}
	if req.Response {
		p.stats.malformed.Add(1)
		return outcome{}, nil // a response sent to a resolver: drop it
	}
	if req.Opcode != dns.OpcodeQuery {
		return outcome{reply: p.rcodeReply(req, dns.RcodeNotImplemented)}, nil
	}
	if len(req.Question) != 1 {
		p.stats.malformed.Add(1)
		return outcome{reply: p.rcodeReply(req, dns.RcodeFormatError)}, nil
	}
	ep, ok := p.opts.Endpoints.LookupIP(q.client.Addr().Unmap())
	if !ok {
		p.stats.unknownEndpoint.Add(1)
		return outcome{reply: p.rcodeReply(req, dns.RcodeServerFailure)}, nil
	}
	qname := dnsmatch.Canonical(req.Question[0].Name)
	qtypes := []string{typeName(req.Question[0].Qtype)}
	verdict := p.opts.Policy.Check(dnsmatch.Query{Endpoint: ep.ID, Server: q.server, Protocol: q.proto, Name: qname})

	rec := p.newRecord(q, ep, false)
	rec.L7 = &api.L7{Type: api.L7TypeRequest, DNS: &api.DNS{Query: qname, Qtypes: qtypes, ObservationSource: observationSource}}
	if !verdict.Allowed && !verdict.Audit {
		rec.Verdict, rec.DropReason = api.VerdictDropped, api.DropReasonPolicyDenied
		rec.EgressDeniedBy = verdict.Policies
		p.stats.denied.Add(1)
		p.queue(rec)
		return outcome{reply: p.rcodeReply(req, dns.RcodeRefused)}, nil
	}
	judge(rec, verdict)
	if verdict.Audit {
		p.stats.audited.Add(1)
	}
	p.queue(rec)

	resp := p.newRecord(q, ep, true)
	judge(resp, verdict)
	return outcome{}, &forward{q: q, req: req, ep: ep.ID, resp: resp, qname: qname, qtypes: qtypes}
}

// settle reads the server's answer (raw, or the exchange's error): the
// outcome to release once the cache admitted ans (nil: nothing to
// admit). The outcome's reply is raw itself, so raw must stay unchanged
// until the reply is sent.
func (p *Proxy) settle(fw *forward, raw []byte, err error) (outcome, *fqdn.Answer) {
	qname, q := fw.qname, fw.q
	if err != nil {
		return p.fail(fw, fmt.Errorf("forward %s to %s: %w", qname, q.server, err)), nil
	}
	ans := new(dns.Msg)
	if err := ans.Unpack(raw); err != nil {
		return p.fail(fw, fmt.Errorf("answer to %s from %s: %w", qname, q.server, err)), nil
	}
	if err := sameQuestion(fw.req, ans); err != nil {
		return p.fail(fw, fmt.Errorf("answer from %s: %w", q.server, err)), nil
	}
	details := answerDetails(ans)
	details.Query, details.Qtypes = qname, fw.qtypes
	fw.resp.L7 = &api.L7{Type: api.L7TypeResponse, DNS: &details.DNS}
	out := outcome{reply: raw, response: fw.resp}
	if p.opts.Cache != nil && ans.Rcode == dns.RcodeSuccess && len(details.IPs) > 0 {
		return out, &fqdn.Answer{Endpoint: fw.ep, Name: qname, Addrs: details.addrs, TTL: details.TTL}
	}
	return out, nil
}

// admit records ans (when not nil) in the cache, whose Admit hook returns
// once the policy admits its addresses, and returns out, or SERVFAIL when
// that failed.
func (p *Proxy) admit(fw *forward, out outcome, ans *fqdn.Answer) outcome {
	if ans == nil {
		return out
	}
	if err := p.opts.Cache.Record(*ans); err != nil {
		return p.fail(fw, err)
	}
	return out
}

// judge sets the verdict of a forwarded query's record (or its answer's):
// FORWARDED naming the policies that allowed it, or, when the rules denied
// it and the endpoint is in audit mode, AUDIT (POLICY_DENIED) naming those
// that would have denied it, as the kernel and the HTTP proxy report an
// audited connection or request.
func judge(f *api.Flow, v dnsmatch.Verdict) {
	if v.Allowed {
		f.Verdict, f.EgressAllowedBy = api.VerdictForwarded, v.Policies
		return
	}
	f.Verdict, f.DropReason, f.EgressDeniedBy = api.VerdictAudit, api.DropReasonPolicyDenied, v.Policies
}

// fail answers SERVFAIL and makes the response record an ERROR.
func (p *Proxy) fail(fw *forward, err error) outcome {
	if errors.Is(err, errNoAnswer) {
		p.stats.timeouts.Add(1)
	} else {
		p.stats.upstreamErrors.Add(1)
	}
	p.logErr(err)
	fw.resp.Verdict = api.VerdictError
	fw.resp.L7 = &api.L7{Type: api.L7TypeResponse, DNS: &api.DNS{
		Query: fw.qname, Qtypes: fw.qtypes, Rcode: dns.RcodeServerFailure, ObservationSource: observationSource,
	}}
	return outcome{reply: p.rcodeReply(fw.req, dns.RcodeServerFailure), response: fw.resp}
}

// rcodeReply packs an empty answer to req with rcode.
func (p *Proxy) rcodeReply(req *dns.Msg, rcode int) []byte {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	b, err := m.Pack()
	if err != nil { // only an unpackable question: answer with the header
		return headerReply(req.Id, req.Opcode, req.RecursionDesired, rcode)
	}
	return b
}

// formErr answers a query that does not parse: FORMERR from its header, or
// nothing when it has no header.
func formErr(msg []byte) []byte {
	if len(msg) < headerLen || msg[2]&0x80 != 0 {
		return nil
	}
	id := uint16(msg[0])<<8 | uint16(msg[1])
	return headerReply(id, int(msg[2]>>3&0xf), msg[2]&1 != 0, dns.RcodeFormatError)
}

// headerReply is a reply that is a header alone.
func headerReply(id uint16, opcode int, rd bool, rcode int) []byte {
	b := make([]byte, headerLen)
	b[0], b[1] = byte(id>>8), byte(id)
	b[2] = 0x80 | byte(opcode&0xf)<<3
	if rd {
		b[2] |= 1
	}
	b[3] = 0x80 | byte(rcode&0xf) // RA
	return b
}

// sameQuestion checks that the answer is about the question asked.
func sameQuestion(req, ans *dns.Msg) error {
	if len(ans.Question) != 1 {
		return fmt.Errorf("answer has %d questions, want 1", len(ans.Question))
	}
	q, a := req.Question[0], ans.Question[0]
	if !strings.EqualFold(q.Name, a.Name) || q.Qtype != a.Qtype || q.Qclass != a.Qclass {
		return fmt.Errorf("answer is about %s %s, the query was %s %s", a.Name, typeName(a.Qtype), q.Name, typeName(q.Qtype))
	}
	return nil
}

// details is an answer's L7 record plus its addresses as values.
type details struct {
	api.DNS
	addrs []netip.Addr
}

// answerDetails reads the answer section as Cilium does: every A and AAAA
// address, the CNAME targets, the lowest TTL of those records (0 when there
// are none), and the type of every record.
func answerDetails(m *dns.Msg) details {
	d := details{DNS: api.DNS{Rcode: uint32(m.Rcode), ObservationSource: observationSource}}
	ttl, seen := uint32(0), false
	lower := func(t uint32) {
		if !seen || t < ttl {
			ttl, seen = t, true
		}
	}
	for _, rr := range m.Answer {
		h := rr.Header()
		d.RRtypes = append(d.RRtypes, typeName(h.Rrtype))
		switch rr := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
				d.addrs = append(d.addrs, a)
				lower(h.Ttl)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok {
				d.addrs = append(d.addrs, a)
				lower(h.Ttl)
			}
		case *dns.CNAME:
			d.CNAMEs = append(d.CNAMEs, rr.Target)
			lower(h.Ttl)
		}
	}
	d.TTL = ttl
	for _, a := range d.addrs {
		d.IPs = append(d.IPs, a.String())
	}
	return d
}

// typeName is a record type's name ("A", "AAAA"), or "TYPE<n>".
func typeName(t uint16) string {
	if n, ok := dns.TypeToString[t]; ok {
		return n
	}
	return fmt.Sprintf("TYPE%d", t)
}

// observationSource is Hubble's DNS observation_source of a proxy record.
const observationSource = "proxy"
