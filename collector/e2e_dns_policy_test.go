package collector_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// The DNS connectivity suite: rules.dns and toFQDNs policies on the real
// datapath, the DNS proxy behind its redirect and dnsmasq in a pod, asked by
// dig and glibc (getent); connections to the answers' addresses.

// dnsRule is a client's (app) egress allow of DNS to kube-dns on port 53
// (UDP and TCP) with rules.dns names (YAML flow list).
func dnsRule(names string) string {
	return "  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}]\n" +
		"    toPorts: [{ports: [{port: \"53\", protocol: ANY}], rules: {dns: " + names + "}}]\n"
}

// fqdnRule is an egress allow of toFQDNs selectors on TCP port.
func fqdnRule(selectors string, port int) string {
	return fmt.Sprintf("  - toFQDNs: %s\n    toPorts: [{ports: [{port: \"%d\", protocol: TCP}]}]\n", selectors, port)
}

// egressPolicy is a CNP in default selecting app with egress rules.
func egressPolicy(name, app string, rules ...string) string {
	return cnp("default", name, "  endpointSelector: {matchLabels: {app: "+app+"}}\n  egress:\n"+strings.Join(rules, ""))
}

const anyName = `[{matchPattern: "*"}]`

type dnsScenario struct {
	name   string
	policy string
	run    func(t *testing.T, l *dnsLab)
}

func dnsScenarios() []dnsScenario {
	return []dnsScenario{
		{"rules.dns matchName: the name is answered, another REFUSED naming the policy, never asked upstream",
			egressPolicy("dns-name", "client", dnsRule("[{matchName: api.example.com}]")),
			func(t *testing.T, l *dnsLab) {
				l.wantAnswer(t, "client", "api.example.com", []netip.Addr{l.pods["web1"].IPv4}, "default/dns-name")
				mark := len(l.dnsmasq.String())
				l.wantRefused(t, "client", "www.example.com", "default/dns-name")
				if strings.Contains(l.dnsmasq.String()[mark:], "www.example.com") {
					t.Error("the denied name reached the server")
				}
			}},
		{"matchPattern *.example.com is one label deep",
			egressPolicy("dns-star", "client", dnsRule(`[{matchPattern: "*.example.com"}]`)),
			func(t *testing.T, l *dnsLab) {
				l.wantAnswer(t, "client", "www.example.com", []netip.Addr{l.pods["web2"].IPv4}, "default/dns-star")
				l.wantRefused(t, "client", "a.b.example.com", "default/dns-star")
				l.wantRefused(t, "client", "example.com", "default/dns-star")
			}},
		{"matchPattern **.example.com is any depth, not the domain itself",
			egressPolicy("dns-deep", "client", dnsRule(`[{matchPattern: "**.example.com"}]`)),
			func(t *testing.T, l *dnsLab) {
				l.wantAnswer(t, "client", "a.b.example.com", []netip.Addr{l.pods["web3"].IPv4}, "default/dns-deep")
				l.wantAnswer(t, "client", "WWW.Example.COM", []netip.Addr{l.pods["web2"].IPv4}, "default/dns-deep")
				l.wantRefused(t, "client", "example.com", "default/dns-deep")
			}},
		{"audit mode: a query the rules deny is answered, its records AUDIT naming the policy; an allowed one FORWARDED",
			egressPolicy("dns-audit", "audited", dnsRule("[{matchName: api.example.com}]")),
			func(t *testing.T, l *dnsLab) {
				l.wantAnswer(t, "audited", "api.example.com", []netip.Addr{l.pods["web1"].IPv4}, "default/dns-audit")
				l.wantAudited(t, "audited", "www.example.com", []netip.Addr{l.pods["web2"].IPv4}, "default/dns-audit")
				l.wantAudited(t, "audited", "api.example.com", []netip.Addr{l.pods["web1"].IPv4}, "", "+tcp")
				l.wantAudited(t, "audited", "a.b.example.com", []netip.Addr{l.pods["web3"].IPv4}, "default/dns-audit", "+tcp")
			}},
		{"the same rules over TCP",
			egressPolicy("dns-tcp", "client", dnsRule("[{matchName: api.example.com}]")),
			func(t *testing.T, l *dnsLab) {
				l.wantAnswer(t, "client", "api.example.com", []netip.Addr{l.pods["web1"].IPv4}, "default/dns-tcp", "+tcp")
				l.wantRefused(t, "client", "other.org", "default/dns-tcp", "+tcp")
			}},
		{"AAAA over IPv6 to the server's IPv6 address",
			egressPolicy("dns-v6", "client", dnsRule("[{matchName: api.example.com}]")),
			func(t *testing.T, l *dnsLab) {
				r := dig(t, l.pods["client"], "+tries=1", "+timeout=3", "@"+l.pods["dns"].IPv6.String(), "api.example.com", "AAAA")
				if r.status != "NOERROR" || !slices.Equal(r.addrs(), []netip.Addr{l.pods["web1"].IPv6}) {
					t.Fatalf("AAAA over IPv6: %s %v\n%s", r.status, r.addrs(), r.output)
				}
			}},
		{"glibc resolves through the pod's resolv.conf, the proxy in between",
			egressPolicy("dns-glibc", "client", dnsRule("[{matchName: api.example.com}]")),
			func(t *testing.T, l *dnsLab) {
				if got, err := l.getent("client", "api.example.com"); err != nil || !slices.Equal(got, []netip.Addr{l.pods["web1"].IPv4}) {
					t.Fatalf("getent api.example.com: %v %v", got, err)
				}
				if got, err := l.getent("client", "other.org"); err == nil {
					t.Fatalf("getent other.org resolved %v through a policy allowing only api.example.com", got)
				}
			}},
		{"NXDOMAIN and CNAME chains pass through unchanged",
			egressPolicy("dns-any", "client", dnsRule(anyName)),
			func(t *testing.T, l *dnsLab) {
				if r := l.lookup(t, "client", "nosuch.example.com"); r.status != "NXDOMAIN" {
					t.Fatalf("nosuch.example.com: %s\n%s", r.status, r.output)
				}
				r := l.lookup(t, "client", "cdn.example.net")
				if r.status != "NOERROR" || len(r.answers) != 2 || !strings.Contains(r.answers[0], "CNAME edge.example.net.") ||
					!slices.Equal(r.addrs(), []netip.Addr{l.pods["web3"].IPv4}) {
					t.Fatalf("cdn.example.net: %s %v\n%s", r.status, r.answers, r.output)
				}
				resp := l.dnsRecord(t, "client", "cdn.example.net", api.L7TypeResponse)
				if d := resp.L7.DNS; !slices.Equal(d.CNAMEs, []string{"edge.example.net."}) || !slices.Equal(d.IPs, []string{l.pods["web3"].IPv4.String()}) {
					t.Fatalf("response record %+v", d)
				}
			}},
		{"a truncated UDP answer is retried over TCP",
			egressPolicy("dns-big", "client", dnsRule(anyName)),
			func(t *testing.T, l *dnsLab) {
				r := l.lookup(t, "client", "big.example.com", "TXT", "+noedns")
				if r.status != "NOERROR" || len(r.answers) != 1 || !strings.Contains(r.output, "retrying in TCP mode") {
					t.Fatalf("big TXT: %s %d answers\n%s", r.status, len(r.answers), r.output)
				}
			}},
		{"a server that never answers gets SERVFAIL within the proxy's timeout",
			egressPolicy("dns-silent", "client", dnsRule(anyName), "  - toEntities: [world]\n    toPorts: [{ports: [{port: \"53\", protocol: UDP}], rules: {dns: "+anyName+"}}]\n"),
			func(t *testing.T, l *dnsLab) {
				r := dig(t, l.pods["client"], "+tries=1", "+timeout=4", "@"+l.pods["silent"].IPv4.String(), "www.example.com")
				if r.status != "SERVFAIL" || r.took > 3*time.Second {
					t.Fatalf("silent server: status %q after %v\n%s", r.status, r.took, r.output)
				}
				if resp := l.dnsRecord(t, "client", "www.example.com", api.L7TypeResponse); resp.Verdict != api.VerdictError {
					t.Fatalf("response record verdict %v, want ERROR", resp.Verdict)
				}
			}},
		{"DNS to a server L3/L4 policy does not allow is dropped before the proxy",
			egressPolicy("dns-kube-only", "client", dnsRule(anyName)),
			func(t *testing.T, l *dnsLab) {
				seq := l.node.c.Store().Seen()
				r := dig(t, l.pods["client"], "+tries=1", "+timeout=1", "@"+l.pods["web2"].IPv4.String(), "www.example.com")
				if r.status != "" {
					t.Fatalf("a query to a server no rule allows got %q", r.status)
				}
				fs := l.flows(seq, func(f *api.Flow) bool {
					return f.Type == api.FlowTypeL3L4 && f.IP.Destination == l.pods["web2"].IPv4 && f.L4.DestinationPort == 53
				})
				if v, reason, _ := verdictOf(fs); v != api.VerdictDropped || reason != api.DropReasonPolicyDenied {
					t.Fatalf("the query's flow: %v %v (%d records)", v, reason, len(fs))
				}
			}},
		{"an L3/L4 allow of the same server and port lifts the DNS rules, as Cilium merges them",
			egressPolicy("dns-name", "client", dnsRule("[{matchName: api.example.com}]")) +
				egressPolicy("dns-l4", "client", "  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}}]\n    toPorts: [{ports: [{port: \"53\", protocol: UDP}]}]\n"),
			func(t *testing.T, l *dnsLab) {
				l.wantAnswer(t, "client", "other.org", []netip.Addr{l.pods["web2"].IPv4}, "default/dns-l4")
				l.wantRefused(t, "client", "other.org", "default/dns-name", "+tcp")
			}},
		{"toFQDNs: nothing before the lookup, then the answer's address on the port, nothing else",
			egressPolicy("fqdn", "client", dnsRule(anyName), fqdnRule("[{matchName: api.example.com}]", 80)),
			func(t *testing.T, l *dnsLab) {
				w1 := l.pods["web1"].IPv4
				l.wantDropped(t, "client", netip.AddrPortFrom(w1, 80), nil)
				l.wantAnswer(t, "client", "api.example.com", []netip.Addr{w1}, "default/fqdn")
				l.wantConnect(t, "client", netip.AddrPortFrom(w1, 80), []string{"api.example.com"}, "default/fqdn")
				l.wantDropped(t, "client", netip.AddrPortFrom(w1, 443), []string{"api.example.com"})
				l.wantDropped(t, "client", netip.AddrPortFrom(l.pods["web2"].IPv4, 80), nil)
			}},
		{"toFQDNs over IPv6: the AAAA answer's address",
			egressPolicy("fqdn6", "client", dnsRule(anyName), fqdnRule("[{matchName: api.example.com}]", 80)),
			func(t *testing.T, l *dnsLab) {
				w1 := l.pods["web1"].IPv6
				l.wantDropped(t, "client", netip.AddrPortFrom(w1, 80), nil)
				l.wantAnswer(t, "client", "api.example.com", []netip.Addr{w1}, "default/fqdn6", "AAAA")
				l.wantConnect(t, "client", netip.AddrPortFrom(w1, 80), []string{"api.example.com"}, "default/fqdn6")
			}},
		{"toFQDNs *.example.com admits one label deep only",
			egressPolicy("fqdn-star", "client", dnsRule(anyName), fqdnRule(`[{matchPattern: "*.example.com"}]`, 80)),
			func(t *testing.T, l *dnsLab) {
				l.wantAnswer(t, "client", "www.example.com", []netip.Addr{l.pods["web2"].IPv4}, "default/fqdn-star")
				l.wantConnect(t, "client", netip.AddrPortFrom(l.pods["web2"].IPv4, 80), []string{"www.example.com"}, "default/fqdn-star")
				l.wantAnswer(t, "client", "a.b.example.com", []netip.Addr{l.pods["web3"].IPv4}, "default/fqdn-star")
				l.wantDropped(t, "client", netip.AddrPortFrom(l.pods["web3"].IPv4, 80), []string{"a.b.example.com"})
			}},
		{"toFQDNs **.example.com admits any depth",
			egressPolicy("fqdn-deep", "client", dnsRule(anyName), fqdnRule(`[{matchPattern: "**.example.com"}]`, 80)),
			func(t *testing.T, l *dnsLab) {
				l.wantAnswer(t, "client", "a.b.example.com", []netip.Addr{l.pods["web3"].IPv4}, "default/fqdn-deep")
				l.wantConnect(t, "client", netip.AddrPortFrom(l.pods["web3"].IPv4, 80), []string{"a.b.example.com"}, "default/fqdn-deep")
			}},
		{"toFQDNs admits the end of a CNAME chain under the name asked",
			egressPolicy("fqdn-cname", "client", dnsRule(anyName), fqdnRule("[{matchName: cdn.example.net}]", 80)),
			func(t *testing.T, l *dnsLab) {
				l.wantAnswer(t, "client", "cdn.example.net", []netip.Addr{l.pods["web3"].IPv4}, "default/fqdn-cname")
				l.wantConnect(t, "client", netip.AddrPortFrom(l.pods["web3"].IPv4, 80), []string{"cdn.example.net"}, "default/fqdn-cname")
			}},
		{"toFQDNs admits what glibc resolved, before getent returns",
			egressPolicy("fqdn-glibc", "client", dnsRule(anyName), fqdnRule("[{matchName: api.example.com}]", 443)),
			func(t *testing.T, l *dnsLab) {
				got, err := l.getent("client", "api.example.com")
				if err != nil || len(got) != 1 {
					t.Fatalf("getent: %v %v", got, err)
				}
				l.wantConnect(t, "client", netip.AddrPortFrom(got[0], 443), []string{"api.example.com"}, "default/fqdn-glibc")
			}},
		{"TTL expiry closes the access, a new lookup opens it again",
			egressPolicy("fqdn-ttl", "client", dnsRule(anyName), fqdnRule("[{matchName: short.example.com}]", 80)),
			func(t *testing.T, l *dnsLab) {
				w3 := netip.AddrPortFrom(l.pods["web3"].IPv4, 80)
				l.wantAnswer(t, "client", "short.example.com", []netip.Addr{w3.Addr()}, "default/fqdn-ttl")
				l.wantConnect(t, "client", w3, []string{"short.example.com"}, "default/fqdn-ttl")
				deadline := time.Now().Add(shortTTL*time.Second + 5*time.Second)
				for {
					if ok, _ := l.connect("client", w3); !ok {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("still allowed %v after the %ds TTL", shortTTL*time.Second+5*time.Second, shortTTL)
					}
					time.Sleep(100 * time.Millisecond)
				}
				l.wantDropped(t, "client", w3, nil)
				l.wantAnswer(t, "client", "short.example.com", []netip.Addr{w3.Addr()}, "default/fqdn-ttl")
				l.wantConnect(t, "client", w3, []string{"short.example.com"}, "default/fqdn-ttl")
			}},
		{"two endpoints with different rules each reach their own name",
			egressPolicy("client-api", "client", dnsRule(anyName), fqdnRule("[{matchName: api.example.com}]", 80)) +
				egressPolicy("client2-www", "client2", dnsRule(anyName), fqdnRule("[{matchName: www.example.com}]", 80)),
			func(t *testing.T, l *dnsLab) {
				w1, w2 := netip.AddrPortFrom(l.pods["web1"].IPv4, 80), netip.AddrPortFrom(l.pods["web2"].IPv4, 80)
				l.wantAnswer(t, "client", "api.example.com", []netip.Addr{w1.Addr()}, "default/client-api")
				l.wantAnswer(t, "client2", "www.example.com", []netip.Addr{w2.Addr()}, "default/client2-www")
				l.wantConnect(t, "client", w1, []string{"api.example.com"}, "default/client-api")
				l.wantDropped(t, "client", w2, nil)
				l.wantConnect(t, "client2", w2, []string{"www.example.com"}, "default/client2-www")
				l.wantDropped(t, "client2", w1, nil)
			}},
		{"names are the node's: one endpoint's answer opens another's toFQDNs (as Cilium)",
			egressPolicy("client-dns", "client", dnsRule(anyName)) +
				egressPolicy("client2-api", "client2", fqdnRule("[{matchName: api.example.com}]", 80)),
			func(t *testing.T, l *dnsLab) {
				w1 := netip.AddrPortFrom(l.pods["web1"].IPv4, 80)
				l.wantDropped(t, "client2", w1, nil)
				l.wantAnswer(t, "client", "api.example.com", []netip.Addr{w1.Addr()}, "default/client-dns")
				// client2 resolved nothing: its flow has no names of its own.
				l.wantConnect(t, "client2", w1, nil, "default/client2-api")
			}},
		{"a restart keeps the cache and the access it grants",
			egressPolicy("fqdn-restart", "client", dnsRule(anyName), fqdnRule("[{matchName: api.example.com}]", 80)),
			func(t *testing.T, l *dnsLab) {
				w1 := netip.AddrPortFrom(l.pods["web1"].IPv4, 80)
				l.wantAnswer(t, "client", "api.example.com", []netip.Addr{w1.Addr()}, "default/fqdn-restart")
				l.wantConnect(t, "client", w1, []string{"api.example.com"}, "default/fqdn-restart")
				// A clean stop: the datapath leaves its programs, maps and
				// redirects pinned (one Datapath per pin path: the next
				// start's Load needs this one closed).
				l.node.stop(t)
				if err := l.node.dp.Close(); err != nil {
					t.Fatalf("close the datapath: %v", err)
				}
				if ok, _ := l.connect("client", w1); !ok {
					t.Error("the kept policy dropped the connection while no collector ran")
				}
				l.start(t)
				l.wantConnect(t, "client", w1, []string{"api.example.com"}, "default/fqdn-restart")
				l.wantAnswer(t, "client", "api.example.com", []netip.Addr{w1.Addr()}, "default/fqdn-restart")
			}},
	}
}

func TestE2EDNSPolicyConnectivity(t *testing.T) {
	l := newDNSLab(t)
	l.start(t)
	for _, sc := range dnsScenarios() {
		ok := t.Run(sc.name, func(t *testing.T) {
			l.reset(t, sc.policy)
			sc.run(t, l)
		})
		if !ok && testing.Short() {
			break
		}
	}
}

// wantAnswer asks for name (dig; extra args after the name) and wants the
// addresses, and the query's L7 record FORWARDED naming policies.
func (l *dnsLab) wantAnswer(t *testing.T, from, name string, want []netip.Addr, policies string, extra ...string) {
	t.Helper()
	seq := l.node.c.Store().Seen()
	r := l.lookup(t, from, name, extra...)
	if r.status != "NOERROR" || !slices.Equal(r.addrs(), want) {
		t.Fatalf("%s asks %s %v: %s %v, want NOERROR %v\n%s", from, name, extra, r.status, r.addrs(), want, r.output)
	}
	req := l.dnsRecordAfter(t, seq, from, name, api.L7TypeRequest)
	if req.Verdict != api.VerdictForwarded || !slices.Equal(refsOf(req.EgressAllowedBy), strings.Split(policies, ",")) {
		t.Fatalf("%s asks %s: request record %v allowed by %v, want FORWARDED by %s", from, name, req.Verdict, req.EgressAllowedBy, policies)
	}
}

// wantRefused asks for name and wants REFUSED, and the query's L7 record
// DROPPED naming policies.
func (l *dnsLab) wantRefused(t *testing.T, from, name string, policies string, extra ...string) {
	t.Helper()
	seq := l.node.c.Store().Seen()
	if r := l.lookup(t, from, name, extra...); r.status != "REFUSED" {
		t.Fatalf("%s asks %s %v: %s, want REFUSED\n%s", from, name, extra, r.status, r.output)
	}
	req := l.dnsRecordAfter(t, seq, from, name, api.L7TypeRequest)
	if req.Verdict != api.VerdictDropped || !slices.Equal(refsOf(req.EgressDeniedBy), strings.Split(policies, ",")) {
		t.Fatalf("%s asks %s: request record %v denied by %v, want DROPPED by %s", from, name, req.Verdict, req.EgressDeniedBy, policies)
	}
}

// wantAudited asks for name (from an endpoint in audit mode) and wants the
// server's answer (NOERROR with want's addresses), and the
// query's and the answer's L7 records AUDIT (POLICY_DENIED) naming
// policies; an empty policies wants FORWARDED records instead.
func (l *dnsLab) wantAudited(t *testing.T, from, name string, want []netip.Addr, policies string, extra ...string) {
	t.Helper()
	seq := l.node.c.Store().Seen()
	mark := len(l.dnsmasq.String())
	r := l.lookup(t, from, name, extra...)
	if r.status != "NOERROR" || !slices.Equal(r.addrs(), want) {
		t.Fatalf("%s asks %s %v in audit mode: %s %v, want the server's answer %v\n%s", from, name, extra, r.status, r.addrs(), want, r.output)
	}
	if !strings.Contains(l.dnsmasq.String()[mark:], strings.ToLower(name)) {
		t.Errorf("%s asks %s in audit mode: the query did not reach the server", from, name)
	}
	for _, typ := range []api.L7FlowType{api.L7TypeRequest, api.L7TypeResponse} {
		rec := l.dnsRecordAfter(t, seq, from, name, typ)
		switch {
		case policies == "":
			if rec.Verdict != api.VerdictForwarded || len(rec.EgressDeniedBy) != 0 {
				t.Errorf("%s asks %s: %v record %v denied by %v, want FORWARDED", from, name, typ, rec.Verdict, rec.EgressDeniedBy)
			}
		case rec.Verdict != api.VerdictAudit || rec.DropReason != api.DropReasonPolicyDenied ||
			!slices.Equal(refsOf(rec.EgressDeniedBy), strings.Split(policies, ",")) || len(rec.EgressAllowedBy) != 0:
			t.Errorf("%s asks %s: %v record %v (%v) denied by %v allowed by %v, want AUDIT (POLICY_DENIED) denied by %s",
				from, name, typ, rec.Verdict, rec.DropReason, rec.EgressDeniedBy, rec.EgressAllowedBy, policies)
		}
	}
}

// refsOf are the policies' refs ("namespace/name").
func refsOf(ps []api.PolicyRef) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Ref())
	}
	return out
}

// dnsRecord is the last L7 DNS record of typ about name asked by from.
func (l *dnsLab) dnsRecord(t *testing.T, from, name string, typ api.L7FlowType) api.Flow {
	t.Helper()
	return l.dnsRecordAfter(t, 0, from, name, typ)
}

func (l *dnsLab) dnsRecordAfter(t *testing.T, seq uint64, from, name string, typ api.L7FlowType) api.Flow {
	t.Helper()
	q := strings.ToLower(strings.TrimSuffix(name, ".")) + "."
	fs := l.flows(seq, func(f *api.Flow) bool {
		return f.Type == api.FlowTypeL7 && f.L7 != nil && f.L7.Type == typ && f.L7.DNS != nil && f.L7.DNS.Query == q &&
			(f.Source.PodName == from || f.Destination.PodName == from)
	})
	if len(fs) == 0 {
		t.Fatalf("no L7 %v record of %s asking %s", typ, from, q)
	}
	return fs[len(fs)-1]
}

// wantConnect wants a TCP connection from a pod to dst to get through, its
// records FORWARDED naming policies, the client's naming dst's names.
func (l *dnsLab) wantConnect(t *testing.T, from string, dst netip.AddrPort, names []string, policies ...string) {
	t.Helper()
	seq := l.node.c.Store().Seen()
	ok, src := l.connect(from, dst)
	if !ok {
		t.Fatalf("%s -> %v: no connection", from, dst)
	}
	l.checkConnection(t, seq, from, src, dst, api.VerdictForwarded, names, policies)
}

// wantDropped wants a TCP connection attempt to dst dropped by policy,
// the client's record naming dst's names.
func (l *dnsLab) wantDropped(t *testing.T, from string, dst netip.AddrPort, names []string) {
	t.Helper()
	seq := l.node.c.Store().Seen()
	ok, src := l.connect(from, dst)
	if ok {
		t.Fatalf("%s -> %v: connected, want dropped", from, dst)
	}
	l.checkConnection(t, seq, from, src, dst, api.VerdictDropped, names, nil)
}

func (l *dnsLab) checkConnection(t *testing.T, seq uint64, from string, src, dst netip.AddrPort, want api.Verdict, names, policies []string) {
	t.Helper()
	fs := l.flows(seq, func(f *api.Flow) bool {
		return f.Type == api.FlowTypeL3L4 && f.IP.Source == src.Addr() && f.L4.SourcePort == src.Port() &&
			f.IP.Destination == dst.Addr() && f.L4.DestinationPort == dst.Port()
	})
	if len(fs) == 0 {
		t.Fatalf("%s -> %v: no flow record", from, dst)
	}
	v, reason, got := verdictOf(fs)
	if want == api.VerdictDropped && reason != api.DropReasonPolicyDenied {
		t.Errorf("%s -> %v: drop reason %v, want POLICY_DENIED", from, dst, reason)
	}
	if v != want || !slices.Equal(got, append([]string{}, policies...)) {
		t.Errorf("%s -> %v: %v by %v, want %v by %v", from, dst, v, got, want, policies)
	}
	for _, f := range fs {
		if f.Source.PodName == from && !slices.Equal(f.DestinationNames, names) {
			t.Errorf("%s -> %v: destination_names %v, want %v", from, dst, f.DestinationNames, names)
		}
	}
}
