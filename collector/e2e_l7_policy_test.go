package collector_test

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/proxy/envoy"
)

// l7Probe is one HTTP request of the L7 connectivity suite and what it
// must give.
type l7Probe struct {
	from, to string
	v6       bool
	port     int
	req      l7Request

	// status is the HTTP status the client must get; 0: none (the kernel
	// drops the connection).
	status int
	// record is the verdict of the request's REQUEST record (its RESPONSE,
	// when it got one, is FORWARDED, as Cilium's proxy reports it); 0: no
	// record (it never reached Envoy).
	record api.Verdict
	// names are the policies the record names (denied by, for DROPPED and
	// AUDIT).
	names []string
	// sees is the request target the server must get (status 200); the
	// probe's own target when empty.
	sees string
	// hostile: refused (400, 403 or 404, the server never sees it), or
	// passed with the server seeing a canonical /public/ path.
	hostile bool
}

func l7get(from, to, target string) l7Probe {
	return l7Probe{from: from, to: to, port: l7Port, req: l7Request{method: "GET", target: target}}
}

func (p l7Probe) method(m string) l7Probe { p.req.method = m; return p }
func (p l7Probe) host(h string) l7Probe   { p.req.host = h; return p }
func (p l7Probe) six() l7Probe            { p.v6 = true; return p }
func (p l7Probe) h2c() l7Probe            { p.req.h2c = true; return p }
func (p l7Probe) on(port int) l7Probe     { p.port = port; return p }
func (p l7Probe) header(hs ...string) l7Probe {
	p.req.headers = append(slices.Clone(p.req.headers), hs...)
	return p
}

// passes: 200 through Envoy (a FORWARDED record); direct: 200 without
// Envoy (no record).
func (p l7Probe) passes() l7Probe { p.status, p.record = 200, api.VerdictForwarded; return p }
func (p l7Probe) direct() l7Probe { p.status, p.record = 200, 0; return p }
func (p l7Probe) seen(target string) l7Probe {
	p.sees = target
	return p.passes()
}

// denied: 403 "Access denied" from Envoy, a DROPPED record naming names.
func (p l7Probe) denied(names ...string) l7Probe {
	p.status, p.record, p.names = 403, api.VerdictDropped, names
	return p
}

// audited: passes, the record AUDIT naming what would have denied it.
func (p l7Probe) audited(names ...string) l7Probe {
	p.status, p.record, p.names = 200, api.VerdictAudit, names
	return p
}

// dropped: the kernel drops the connection; no request, no L7 record.
func (p l7Probe) dropped() l7Probe { p.status, p.record = 0, 0; return p }

// rejected: Envoy refuses the request as malformed (400, before any
// policy), the server never sees it; the record is its answer.
func (p l7Probe) rejected() l7Probe { p.status, p.record = 400, api.VerdictForwarded; return p }

func (p l7Probe) hostileShape() l7Probe { p.hostile = true; return p }

func (p l7Probe) String() string {
	fam := "v4"
	if p.v6 {
		fam = "v6"
	}
	proto := "HTTP/1.1"
	if p.req.h2c {
		proto = "h2c"
	}
	return fmt.Sprintf("%s -> %s:%d %s %s %q %s host=%q headers=%q", p.from, p.to, p.port, fam, proto, p.req.method, p.req.target, p.req.host, p.req.headers)
}

// l7Scenario applies policies (replacing those in force unless keep) or
// deletes some, then runs its probes.
type l7Scenario struct {
	name   string
	yaml   string
	keep   bool
	delete []string // namespace/name
	probes []l7Probe
	// bypass: the datapath must count connections that bypassed Envoy.
	bypass bool
}

// serverL7 lets app=client send the server's port 8080 what rules allows.
func serverL7(name, rules string) string {
	return cnp("default", name, "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n"+
		"    toPorts: [{ports: [{port: '8080', protocol: TCP}], rules: {http: "+rules+"}}]\n")
}

func l7Scenarios(outsider netip.Addr) []l7Scenario {
	getPublic := serverL7("get-public", "[{method: GET, path: '/public/.*'}]")
	gp := "default/get-public"
	hostile := func(name, target string) l7Scenario {
		return l7Scenario{name: "hostile path: " + name, keep: true, probes: []l7Probe{l7get("client", "server", target).hostileShape()}}
	}
	return []l7Scenario{
		{name: "no policy: the port is not redirected", probes: []l7Probe{
			l7get("client", "server", "/admin").direct(), l7get("client2", "server", "/x").direct(),
			l7get("stray", "server", "/x").direct()}},
		{name: "GET /public/.* allowed, anything else 403", yaml: getPublic, probes: []l7Probe{
			l7get("client", "server", "/public/index.html").passes(),
			l7get("client", "server", "/public/a?q=1").passes(),
			l7get("client", "server", "/admin").denied(gp),
			l7get("client", "server", "/public").denied(gp),
			l7get("client", "server", "/public/x").method("POST").denied(gp),
			l7get("client", "server", "/public/index.html").six().passes(),
			l7get("client", "server", "/admin").six().denied(gp),
			l7get("client", "server", "/public/h2").h2c().passes(),
			l7get("client", "server", "/admin").h2c().denied(gp),
			l7get("client", "server", "/public/x").on(l7OtherPort).dropped(),
			l7get("client2", "server", "/public/x").dropped(),
		}},
		{name: "method case: get is not GET (Envoy refuses an unknown method)", keep: true, probes: []l7Probe{l7get("client", "server", "/public/x").method("get").rejected()}},
		{name: "path case: /PUBLIC is not /public", keep: true, probes: []l7Probe{l7get("client", "server", "/PUBLIC/x").denied(gp)}},
		hostile("dot-dot resolved before the rule", "/public/../admin"),
		hostile("encoded dot-dot", "/public/%2e%2e/admin"),
		hostile("encoded slash", "/public/..%2fadmin"),
		hostile("encoded slash, upper case", "/public/%2F..%2Fadmin"),
		hostile("encoded backslash", "/public/..%5cadmin"),
		hostile("double slash", "//admin"),
		hostile("dot-dot with ;params (Tomcat's ..;)", "/public/..;/admin"),
		hostile("dot with ;params", "/public/.;/../admin"),
		hostile("encoded p", "/%70ublic/x"),
		{name: "double slash inside an allowed path is merged", keep: true, probes: []l7Probe{l7get("client", "server", "/public//x").seen("/public/x")}},
		{name: ";params on a plain segment pass as they are", keep: true, probes: []l7Probe{
			l7get("client", "server", "/public/x;jsessionid=1").passes()}},
		{name: "absolute URI: its path is judged", keep: true, probes: []l7Probe{
			l7get("client", "server", "http://server.example/admin").denied(gp),
			l7get("client", "server", "http://server.example/public/x").seen("/public/x"),
			l7get("client", "server", "http://server.example/public/../admin").hostileShape(),
		}},
		{name: "host rule matches the whole authority", yaml: serverL7("host", `[{host: 'shop\.example'}]`), probes: []l7Probe{
			l7get("client", "server", "/x").host("shop.example").passes(),
			l7get("client", "server", "/x").host("other.example").denied("default/host"),
			l7get("client", "server", "/x").host("shop.example.evil").denied("default/host"),
			l7get("client", "server", "/x").host("shop.example:8080").denied("default/host"),
			l7get("client", "server", "http://other.example/x").host("shop.example").denied("default/host"),
		}},
		{name: "header rule: present with the value, repeats joined", yaml: serverL7("env", `[{headers: ['X-Env: prod']}]`), probes: []l7Probe{
			l7get("client", "server", "/x").header("X-Env: prod").passes(),
			l7get("client", "server", "/x").header("x-env: prod").passes(),
			l7get("client", "server", "/x").denied("default/env"),
			l7get("client", "server", "/x").header("X-Env: dev").denied("default/env"),
			l7get("client", "server", "/x").header("X-Env: prod", "X-Env: dev").denied("default/env"),
			l7get("client", "server", "/x").header("X-Env: dev", "X-Env: prod").denied("default/env"),
			l7get("client", "server", "/x").header("X-Env: prod").h2c().passes(),
		}},
		{name: "headerMatches: a value, or presence", yaml: serverL7("token", `[{headerMatches: [{name: X-Token, value: s3cret}]}, {headerMatches: [{name: X-Trace}]}]`), probes: []l7Probe{
			l7get("client", "server", "/x").header("X-Token: s3cret").passes(),
			l7get("client", "server", "/x").header("X-Token: other").denied("default/token"),
			l7get("client", "server", "/x").header("X-Token: s3cret", "X-Token: other").denied("default/token"),
			l7get("client", "server", "/x").header("X-Trace: 1").passes(),
			l7get("client", "server", "/x").denied("default/token"),
		}},
		{name: "method regexp matched whole", yaml: serverL7("read", `[{method: 'GET|HEAD'}]`), probes: []l7Probe{
			l7get("client", "server", "/x").method("HEAD").passes(),
			l7get("client", "server", "/x").method("GETX").rejected(),
			l7get("client", "server", "/x").method("PATCH").denied("default/read"),
			l7get("client", "server", "/x").method("DELETE").denied("default/read"),
		}},
		{name: "two policies' rules union", yaml: getPublic + serverL7("post-submit", "[{method: POST, path: /submit}]"), probes: []l7Probe{
			l7get("client", "server", "/public/x").passes(),
			l7get("client", "server", "/submit").method("POST").passes(),
			l7get("client", "server", "/submit").denied("default/get-public", "default/post-submit"),
		}},
		{name: "an L3/L4 allow of the same peer and port lets every request pass", yaml: getPublic +
			cnp("default", "l4", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: '8080', protocol: TCP}]}]\n"),
			probes: []l7Probe{l7get("client", "server", "/admin").passes(), l7get("client2", "server", "/admin").dropped()}},
		{name: "L3/L4 deny beats the L7 allow: the peer never reaches Envoy", yaml: getPublic +
			cnp("default", "deny-client", "  endpointSelector: {matchLabels: {app: server}}\n  ingressDeny:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n"),
			probes: []l7Probe{l7get("client", "server", "/public/x").dropped(), l7get("client", "server", "/public/x").six().dropped()}},
		{name: "rules for every peer (fromEntities all)", yaml: cnp("default", "all-get", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEntities: [all]\n"+
			"    toPorts: [{ports: [{port: '8080', protocol: TCP}], rules: {http: [{method: GET}]}}]\n"), probes: []l7Probe{
			l7get("client2", "server", "/x").passes(),
			l7get("client2", "server", "/x").method("PUT").denied("default/all-get"),
			l7get("outsider", "server", "/x").passes(),
			l7get("outsider", "server", "/x").method("PUT").denied("default/all-get"),
			l7get("outsider", "server", "/x").six().method("PUT").denied("default/all-get"),
		}},
		{name: "a peer no hook can steer to Envoy cannot bypass it", keep: true, bypass: true, probes: []l7Probe{
			l7get("stray", "server", "/x").dropped(), l7get("stray", "server", "/x").six().dropped()}},
		{name: "a world peer by CIDR with its own rules", yaml: cnp("default", "outside-post", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromCIDR: ["+outsider.String()+"/32]\n"+
			"    toPorts: [{ports: [{port: '8080', protocol: TCP}], rules: {http: [{method: POST}]}}]\n") + getPublic, probes: []l7Probe{
			l7get("outsider", "server", "/x").method("POST").passes(),
			l7get("outsider", "server", "/public/x").denied("default/outside-post"),
			l7get("client", "server", "/public/x").passes(),
			l7get("client", "server", "/x").method("POST").denied(gp),
		}},
		{name: "egress L7 rule at the client", yaml: cnp("default", "client-out", "  endpointSelector: {matchLabels: {app: client}}\n  egress:\n  - toEndpoints: [{matchLabels: {app: server}}]\n"+
			"    toPorts: [{ports: [{port: '8080', protocol: TCP}], rules: {http: [{method: GET, path: '/public/.*'},\n"+
			"      {method: POST, host: 'submit\\.example', headers: ['X-Env: prod'], headerMatches: [{name: X-Token, value: s3cret}]}]}}]\n"), probes: []l7Probe{
			l7get("client", "server", "/public/x").passes(),
			l7get("client", "server", "/admin").denied("default/client-out"),
			l7get("client", "server", "/x").method("POST").host("submit.example").header("X-Env: prod", "X-Token: s3cret").passes(),
			l7get("client", "server", "/x").method("POST").host("submit.example").header("X-Env: prod").denied("default/client-out"),
			l7get("client", "audited", "/public/x").dropped(),
			l7get("client2", "server", "/admin").direct(),
		}},
		{name: "audit mode judges and reports, never denies", yaml: cnp("default", "audited-get", "  endpointSelector: {matchLabels: {app: audited}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n"+
			"    toPorts: [{ports: [{port: '8080', protocol: TCP}], rules: {http: [{path: '/public/.*'}]}}]\n"), probes: []l7Probe{
			l7get("client", "audited", "/public/x").passes(),
			l7get("client", "audited", "/admin").audited("default/audited-get"),
		}},
		{name: "an empty rule is visibility: every request passes, recorded", yaml: serverL7("visible", "[{}]"), probes: []l7Probe{
			l7get("client", "server", "/anything").passes(), l7get("client", "server", "/x").method("DELETE").passes()}},
		{name: "clusterwide policy with L7 rules", yaml: ccnp("cw-get", "  endpointSelector: {matchLabels: {app: server}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n"+
			"    toPorts: [{ports: [{port: '8080', protocol: TCP}], rules: {http: [{method: GET, path: '/public/.*'}]}}]\n"), probes: []l7Probe{
			l7get("client", "server", "/public/x").passes(), l7get("client", "server", "/admin").denied("cw-get")}},
		{name: "default deny off: unselected peers pass, the selected one is restricted", yaml: cnp("default", "soft", "  endpointSelector: {matchLabels: {app: server}}\n  enableDefaultDeny: {ingress: false}\n"+
			"  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    toPorts: [{ports: [{port: '8080', protocol: TCP}], rules: {http: [{path: '/public/.*'}]}}]\n"), probes: []l7Probe{
			l7get("client", "server", "/admin").denied("default/soft"),
			l7get("client2", "server", "/admin").passes(),
		}},
		{name: "the L7 rule removed: the port goes direct again", yaml: getPublic, probes: []l7Probe{l7get("client", "server", "/admin").denied(gp)}},
		{name: "(removed)", keep: true, delete: []string{"default/get-public"}, probes: []l7Probe{
			l7get("client", "server", "/admin").direct(), l7get("client", "server", "/admin").six().direct()}},
	}
}

// TestE2EL7PolicyConnectivity is the L7 connectivity suite: real HTTP
// between netns pods through the datapath's redirect and the real Envoy,
// policies applied through the policy store, every request checked at the
// client, at the server and in its L7 record.
func TestE2EL7PolicyConnectivity(t *testing.T) {
	l := newL7Lab(t, l7LabOptions{})
	count := 0
	for _, sc := range l7Scenarios(l.addr("outsider", false)) {
		t.Run(sc.name, func(t *testing.T) {
			l.applyScenario(t, sc)
			before, _ := l.dp.RedirectStats()
			l.runProbes(t, sc.probes)
			if after, _ := l.dp.RedirectStats(); sc.bypass && after.Bypass == before.Bypass {
				t.Error("the datapath counted no connection bypassing the proxy")
			}
		})
		count++
	}
	t.Logf("%d scenarios", count)
}

// applyScenario brings a scenario's policies into force.
func (l *l7Lab) applyScenario(t *testing.T, sc l7Scenario) {
	t.Helper()
	if !sc.keep {
		for _, p := range l.store.List() {
			if _, err := l.store.Delete(p.Kind, p.Namespace, p.Name); err != nil {
				t.Fatalf("delete %s: %v", p.Name, err)
			}
		}
	}
	for _, ref := range sc.delete {
		ns, name, _ := strings.Cut(ref, "/")
		if n, err := l.store.Delete("", ns, name); err != nil || n == 0 {
			t.Fatalf("delete %s: %d, %v", ref, n, err)
		}
	}
	if sc.yaml != "" {
		if _, _, err := l.store.Apply(sc.name+".yaml", []byte(sc.yaml)); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
}

// canonicalPublic is what a hostile request may reach the server as.
var canonicalPublic = regexp.MustCompile(`^/public/[^/;%\\]+([/?][^;%\\]*)?$`)

// runProbes sends every probe, checks the answers, then waits for the L7
// records and checks each probe's.
func (l *l7Lab) runProbes(t *testing.T, probes []l7Probe) {
	t.Helper()
	seq := l.c.Store().Seen()
	type sent struct {
		p      l7Probe
		client netip.AddrPort
		id     string
		a      answer
	}
	var all []sent
	for _, p := range probes {
		sport := l.nextPort()
		id := strconv.FormatUint(l.probe.Add(1), 10)
		dst := netip.AddrPortFrom(l.addr(p.to, p.v6), uint16(p.port))
		a := l.send(p.from, dst, sport, id, p.req)
		all = append(all, sent{p, netip.AddrPortFrom(l.addr(p.from, p.v6), sport), id, a})
		saw := l.serverSaw(id)
		switch {
		case p.hostile:
			t.Logf("%s: %d %q, the server saw %v", p, a.status, strings.TrimSpace(a.body), saw)
			if a.status == 200 {
				if len(saw) != 1 || !canonicalPublic.MatchString(saw[0].URI) || strings.Contains(saw[0].URI, "/../") {
					t.Errorf("%s: passed, and the server saw %+v: want only a canonical /public/ path", p, saw)
				}
			} else if a.status != 400 && a.status != 403 && a.status != 404 || len(saw) != 0 {
				t.Errorf("%s: %d %q (%v), the server saw %+v: want it refused before the server", p, a.status, a.body, a.err, saw)
			}
		case a.status != p.status:
			t.Errorf("%s: status %d %q (%v), want %d", p, a.status, a.body, a.err, p.status)
		case p.status == 403 && a.body != "Access denied\r\n":
			t.Errorf("%s: 403 with body %q, want Access denied", p, a.body)
		case p.status == 200:
			want := p.sees
			if want == "" {
				want = p.req.target
			}
			if len(saw) != 1 || saw[0].URI != want || saw[0].Client != l.addr(p.from, p.v6) {
				t.Errorf("%s: the server saw %+v, want one request for %s from %s", p, saw, want, l.addr(p.from, p.v6))
			}
		case len(saw) != 0:
			t.Errorf("%s: refused, yet the server saw %+v", p, saw)
		}
	}
	// Every record expected, then a flush interval more for extra ones.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		missing := 0
		for _, s := range all {
			if (s.p.record != 0 || s.p.hostile && s.a.status != 0) && len(l.l7Records(seq, s.client)) == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	for _, s := range all {
		recs := l.l7Records(seq, s.client)
		slices.SortStableFunc(recs, func(a, b api.Flow) int { return int(a.L7.Type) - int(b.L7.Type) }) // the request first
		if s.p.hostile {
			if s.a.status != 0 && (len(recs) != 2 || recs[0].L7.Type != api.L7TypeRequest || recs[1].L7.Type != api.L7TypeResponse ||
				recs[1].L7.HTTP.Code != uint32(s.a.status)) {
				t.Errorf("%s: %d L7 records %v for its %d, want its request and response", s.p, len(recs), recs, s.a.status)
			}
			continue
		}
		if s.p.record == 0 {
			if len(recs) != 0 {
				t.Errorf("%s: %d L7 records, want none (Envoy never saw it): %+v", s.p, len(recs), recs[0])
			}
			if s.p.status == 0 {
				l.checkKernelDrop(t, s.p, seq, s.client)
			}
			continue
		}
		wantRecs := 2 // a REQUEST and its RESPONSE, as Hubble shows an exchange
		if s.p.status == 0 {
			wantRecs = 1
		}
		if len(recs) != wantRecs {
			t.Errorf("%s: %d L7 records, want %d", s.p, len(recs), wantRecs)
			continue
		}
		f := recs[0]
		var names []string
		for _, r := range append(slices.Clone(f.IngressDeniedBy), f.EgressDeniedBy...) {
			if r.Revision == 0 || r.Kind == "" {
				t.Errorf("%s: policy %+v without its kind or revision", s.p, r)
			}
			names = append(names, r.Ref())
		}
		sort.Strings(names)
		want := slices.Clone(s.p.names)
		sort.Strings(want)
		if f.Verdict != s.p.record || !slices.Equal(names, want) || f.L7.Type != api.L7TypeRequest || f.IsReply {
			t.Errorf("%s: request record %v %v names %v (reply %v), want REQUEST %v names %v", s.p, f.L7.Type, f.Verdict, names,
				f.IsReply, s.p.record, want)
		}
		if f.Source.PodName != podName(s.p.from) || f.Destination.PodName != podName(s.p.to) {
			t.Errorf("%s: request record %s -> %s, want %s -> %s", s.p, f.Source.PodName, f.Destination.PodName, podName(s.p.from), podName(s.p.to))
		}
		if wantRecs == 2 {
			r := recs[1]
			if r.Verdict != api.VerdictForwarded || r.L7.Type != api.L7TypeResponse || r.L7.HTTP.Code != uint32(s.p.status) || !r.IsReply ||
				r.Destination.PodName != podName(s.p.from) || r.Source.PodName != podName(s.p.to) {
				t.Errorf("%s: response record %v %v code %d (reply %v) %s <- %s, want a FORWARDED RESPONSE %d %s <- %s", s.p, r.L7.Type, r.Verdict,
					r.L7.HTTP.Code, r.IsReply, r.Destination.PodName, r.Source.PodName, s.p.status, podName(s.p.from), podName(s.p.to))
			}
		}
	}
}

// checkKernelDrop checks that the datapath dropped a probe's connection.
func (l *l7Lab) checkKernelDrop(t *testing.T, p l7Probe, seq uint64, client netip.AddrPort) {
	t.Helper()
	server := netip.AddrPortFrom(l.addr(p.to, p.v6), uint16(p.port))
	fs := l.kernelRecords(seq, client, server)
	if !slices.ContainsFunc(fs, func(f api.Flow) bool { return f.Verdict == api.VerdictDropped }) {
		t.Errorf("%s: no DROPPED record of the datapath among %d", p, len(fs))
	}
}

// TestE2EL7EnvoyKilledWithPolicy: with an L7 policy in force, Envoy killed
// mid-traffic; while it is down the policy's port fails closed (no request
// reaches the server), then the restarted Envoy gets the policy again
// over xDS and enforces it.
func TestE2EL7EnvoyKilledWithPolicy(t *testing.T) {
	l := newL7Lab(t, l7LabOptions{envoy: envoy.Options{MinBackoff: 3 * time.Second, MaxBackoff: 3 * time.Second}})
	l.applyScenario(t, l7Scenario{name: "get-public", yaml: serverL7("get-public", "[{method: GET, path: '/public/.*'}]")})
	l.runProbes(t, []l7Probe{l7get("client", "server", "/public/x").passes(), l7get("client", "server", "/admin").denied("default/get-public")})
	sup := l.proxy.Supervisor()
	starts := sup.Starts()
	before, _ := l.dp.RedirectStats()
	if err := killEnvoy(sup); err != nil {
		t.Fatal(err)
	}
	for sup.PID() != 0 && sup.Starts() == starts {
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 3 {
		id := "down-" + strconv.Itoa(i)
		a := l.send("client", netip.AddrPortFrom(l.addr("server", false), l7Port), l.nextPort(), id, l7Request{target: "/public/x"})
		if a.err == nil || len(l.serverSaw(id)) != 0 {
			t.Fatalf("with Envoy down: %d %q, the server saw %v: want the connection to fail closed", a.status, a.body, l.serverSaw(id))
		}
	}
	if sup.Starts() != starts {
		t.Fatal("Envoy restarted within its backoff: the check above proves nothing")
	}
	if after, _ := l.dp.RedirectStats(); after.NoProxy == before.NoProxy {
		t.Error("the datapath counted no connection without its proxy")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := l.send("client", netip.AddrPortFrom(l.addr("server", false), l7Port), l.nextPort(), "up", l7Request{target: "/public/x"})
		if a.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request served after the restart: %v", a.err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.runProbes(t, []l7Probe{l7get("client", "server", "/public/y").passes(), l7get("client", "server", "/admin").denied("default/get-public")})
	if sup.Starts() != starts+1 {
		t.Fatalf("Envoy started %d times, want one restart", sup.Starts()-starts)
	}
}

func killEnvoy(sup *envoy.Supervisor) error {
	if err := syscall.Kill(sup.PID(), syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill Envoy: %w", err)
	}
	return nil
}

// podName is the endpoint name a lab pod has in records: none for those
// that are not endpoints (world).
func podName(pod string) string {
	if pod == "outsider" || pod == "stray" {
		return ""
	}
	return pod
}
