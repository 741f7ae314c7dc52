package dnsproxy

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
)

// TestProxyWithARealServerAndRealClients runs dig and getent in a pod
// against dnsmasq in another, through the transparent proxy.
func TestProxyWithARealServerAndRealClients(t *testing.T) {
	l := newDNSLab(t)
	state := statePathIn(t)
	cfg := childConfig{
		Listen: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:0"), netip.MustParseAddrPort("[::]:0")},
		Endpoints: map[netip.Addr]api.Endpoint{
			l.client.IPv4: {ID: 7, Identity: 1234, Namespace: "default", PodName: "client"},
			l.client.IPv6: {ID: 7, Identity: 1234, Namespace: "default", PodName: "client"},
			l.vip:         {ID: 9, Identity: 4321, Namespace: "kube-system", PodName: "dns"},
		},
		Rules: map[uint32][]dnsmatch.Rule{7: {{Policy: testRef("default/client-dns"), Port: 53,
			Names: []dnsmatch.Selector{{MatchPattern: "*.example.com"}}}}},
		Timeout:   time.Second,
		StatePath: state,
	}
	px := startChildProxy(t, l.router, cfg)
	l.divert(t, px.addrs[0].Port(), px.addrs[1].Port())
	vip := "@" + l.vip.String()

	t.Run("an A query over UDP is answered and recorded both ways", func(t *testing.T) {
		r := l.dig(t, l.client, "+tries=1", "+timeout=5", vip, "www.example.com", "A")
		if r.status != "NOERROR" || len(r.answers) != 1 || !strings.HasSuffix(r.answers[0], "A 198.18.250.1") {
			t.Fatalf("dig: %+v", r)
		}
		req := px.waitFlow(t, "the request", dnsRecord("www.example.com.", api.L7TypeRequest, api.ProtoUDP))
		if req.Verdict != api.VerdictForwarded || req.IP.Source != l.client.IPv4 || req.IP.Destination != l.vip ||
			req.L4.DestinationPort != 53 || !slices.Equal(req.L7.DNS.Qtypes, []string{"A"}) || req.L7.DNS.ObservationSource != "proxy" {
			t.Errorf("request record %+v %+v", req, req.L7.DNS)
		}
		resp := px.waitFlow(t, "the response", dnsRecord("www.example.com.", api.L7TypeResponse, api.ProtoUDP))
		if !slices.Equal(resp.L7.DNS.IPs, []string{"198.18.250.1"}) || resp.L7.DNS.TTL != 300 || !resp.IsReply ||
			resp.L7.LatencyNs == 0 || resp.IP.Source != l.vip || !slices.Equal(resp.EgressAllowedBy, testRefs("default/client-dns")) {
			t.Errorf("response record %+v %+v", resp, resp.L7.DNS)
		}
	})
	t.Run("an AAAA query over TCP", func(t *testing.T) {
		r := l.dig(t, l.client, "+tcp", "+tries=1", "+timeout=5", vip, "www.example.com", "AAAA")
		if r.status != "NOERROR" || len(r.answers) != 1 || !strings.HasSuffix(r.answers[0], "AAAA fd00:250::1") {
			t.Fatalf("dig +tcp: %+v", r)
		}
		resp := px.waitFlow(t, "the TCP response", dnsRecord("www.example.com.", api.L7TypeResponse, api.ProtoTCP))
		if !slices.Equal(resp.L7.DNS.IPs, []string{"fd00:250::1"}) || !slices.Equal(resp.L7.DNS.RRtypes, []string{"AAAA"}) {
			t.Errorf("TCP response record %+v", resp.L7.DNS)
		}
	})
	t.Run("over IPv6, UDP and TCP", func(t *testing.T) {
		for _, transport := range []string{"+notcp", "+tcp"} {
			r := l.dig(t, l.client, transport, "+tries=1", "+timeout=5", "@"+l.vip6.String(), "www2.example.com", "A")
			if r.status != "NOERROR" || len(r.answers) != 1 || !strings.HasSuffix(r.answers[0], "A 198.18.250.2") {
				t.Fatalf("dig %s over IPv6: %+v", transport, r)
			}
		}
		for _, proto := range []uint8{api.ProtoUDP, api.ProtoTCP} {
			req := px.waitFlow(t, "the IPv6 request", dnsRecord("www2.example.com.", api.L7TypeRequest, proto))
			if req.IP.Version != api.IPv6 || req.IP.Source != l.client.IPv6 || req.IP.Destination != l.vip6 || req.Source.PodName != "client" {
				t.Errorf("IPv6 request record %+v", req)
			}
		}
	})
	t.Run("a CNAME chain", func(t *testing.T) {
		r := l.dig(t, l.client, "+tries=1", "+timeout=5", vip, "alias.example.com", "A")
		if r.status != "NOERROR" || len(r.answers) != 2 || !strings.Contains(r.answers[0], "CNAME target.example.net.") {
			t.Fatalf("dig: %+v", r)
		}
		resp := px.waitFlow(t, "the CNAME response", dnsRecord("alias.example.com.", api.L7TypeResponse, api.ProtoUDP))
		if !slices.Equal(resp.L7.DNS.CNAMEs, []string{"target.example.net."}) || !slices.Equal(resp.L7.DNS.IPs, []string{"198.18.250.3"}) ||
			resp.L7.DNS.TTL != 30 || !slices.Equal(resp.L7.DNS.RRtypes, []string{"CNAME", "A"}) {
			t.Errorf("CNAME response record %+v", resp.L7.DNS)
		}
	})
	t.Run("NXDOMAIN passes through", func(t *testing.T) {
		r := l.dig(t, l.client, "+tries=1", "+timeout=5", vip, "nope.example.com", "A")
		if r.status != "NXDOMAIN" {
			t.Fatalf("dig: %+v", r)
		}
		resp := px.waitFlow(t, "the NXDOMAIN response", dnsRecord("nope.example.com.", api.L7TypeResponse, api.ProtoUDP))
		if resp.L7.DNS.Rcode != 3 || resp.Verdict != api.VerdictForwarded {
			t.Errorf("NXDOMAIN record %+v %+v", resp, resp.L7.DNS)
		}
	})
	t.Run("a truncated UDP answer makes dig retry over TCP", func(t *testing.T) {
		r := l.dig(t, l.client, "+tries=1", "+timeout=5", vip, "big.example.com", "TXT")
		if !strings.Contains(r.output, "Truncated, retrying in TCP mode") || r.status != "NOERROR" || len(r.answers) != 1 ||
			!strings.Contains(r.answers[0], strings.Repeat("l", 250)) {
			t.Fatalf("dig: %+v", r)
		}
		px.waitFlow(t, "the truncated UDP response", dnsRecord("big.example.com.", api.L7TypeResponse, api.ProtoUDP))
		px.waitFlow(t, "the TCP retry's response", dnsRecord("big.example.com.", api.L7TypeResponse, api.ProtoTCP))
	})
	t.Run("a name no rule allows is REFUSED and the record names the policy", func(t *testing.T) {
		r := l.dig(t, l.client, "+tries=1", "+timeout=5", vip, "evil.example.org", "A")
		if r.status != "REFUSED" || len(r.answers) != 0 {
			t.Fatalf("dig: %+v", r)
		}
		req := px.waitFlow(t, "the denied request", dnsRecord("evil.example.org.", api.L7TypeRequest, api.ProtoUDP))
		if req.Verdict != api.VerdictDropped || !slices.Equal(req.EgressDeniedBy, testRefs("default/client-dns")) {
			t.Errorf("denied record %+v", req)
		}
	})
	t.Run("a server that never answers: SERVFAIL after the timeout, nothing hangs", func(t *testing.T) {
		start := time.Now()
		r := l.dig(t, l.client, "+tries=1", "+timeout=5", "@"+l.silentVIP.String(), "www.example.com", "A")
		if took := time.Since(start); r.status != "SERVFAIL" || took > 4*time.Second {
			t.Fatalf("dig took %v: %+v", took, r)
		}
		resp := px.waitFlow(t, "the timed-out response", func(f *api.Flow) bool {
			return dnsRecord("www.example.com.", api.L7TypeResponse, api.ProtoUDP)(f) && f.IP.Source == l.silentVIP
		})
		if resp.Verdict != api.VerdictError || resp.L7.DNS.Rcode != 2 {
			t.Errorf("timeout record %+v %+v", resp, resp.L7.DNS)
		}
	})
	t.Run("getent resolves through the pod's resolv.conf", func(t *testing.T) {
		dir := filepath.Join("/etc/netns", l.client.NetNSName)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		conf := "nameserver " + l.vip.String() + "\noptions timeout:3 attempts:1\n"
		if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := l.client.Command(context.Background(), "getent", "ahosts", "www.example.com").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "198.18.250.1") || !strings.Contains(string(out), "fd00:250::1") {
			t.Fatalf("getent ahosts: %v\n%s", err, out)
		}
		out, err = l.client.Command(context.Background(), "getent", "hosts", "evil.example.org").CombinedOutput()
		if err == nil {
			t.Fatalf("getent resolved a denied name:\n%s", out)
		}
	})

	px.stop(t)
	if s := px.stats; s.Denied == 0 || s.Timeouts == 0 || s.Queries < 10 {
		t.Errorf("proxy counters %+v", s)
	}
	t.Run("a restart keeps the cache", func(t *testing.T) {
		c, err := fqdn.New(fqdn.Options{StatePath: state})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.NamesOf(7, netip.MustParseAddr("198.18.250.1")); !slices.Equal(got, []string{"www.example.com"}) {
			t.Errorf("names of 198.18.250.1 after the restart: %q", got)
		}
		if got := c.NamesOf(7, netip.MustParseAddr("198.18.250.66")); got != nil {
			t.Errorf("a denied name's address was cached: %q", got)
		}
	})
}
