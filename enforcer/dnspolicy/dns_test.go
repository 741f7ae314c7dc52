package dnspolicy

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
	"github.com/periscope-dev/periscope/enforcer/policy"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// steps records what the applier did, in order, with what the proxy's
// table covered at each step.
type steps struct {
	log   []string
	table *dnsmatch.Table
	fail  map[string]bool
}

func (s *steps) covered() string {
	var eps []string
	for ep := range s.table.Current().ByEndpoint {
		eps = append(eps, string(rune('0'+ep)))
	}
	slices.Sort(eps)
	return strings.Join(eps, "")
}

type kernel struct{ *steps }

func (k kernel) ApplyPolicy(c *compile.Compiled) error {
	if k.fail["kernel"] {
		return errors.New("kernel says no")
	}
	name := "nil"
	if c != nil {
		name = c.PolicySets[0][0].Name
	}
	k.log = append(k.log, "kernel "+name+" table "+k.covered())
	return nil
}

func (kernel) SetPolicyAudit(uint32, bool) error { return nil }

type redirector struct{ *steps }

func (r redirector) SetRedirects(rs []datapath.Redirect) error {
	if r.fail["redirect"] {
		return errors.New("redirect map full")
	}
	var eps []string
	for _, x := range rs {
		eps = append(eps, string(rune('0'+x.Endpoint)))
	}
	r.log = append(r.log, "redirect "+strings.Join(eps, "")+" table "+r.covered())
	return nil
}

// compiled is a policy named name whose DNS part covers endpoints eps.
func compiled(name string, eps ...uint32) *compile.Compiled {
	c := &compile.Compiled{PolicySets: [][]policy.ID{{{Name: name}}}, DNS: dnsmatch.Rules{ByEndpoint: map[uint32][]dnsmatch.Rule{}}}
	for _, ep := range eps {
		c.DNS.ByEndpoint[ep] = []dnsmatch.Rule{{Policy: api.PolicyRef{Name: name}, Port: 53}}
		c.DNSRedirects = append(c.DNSRedirects, compile.DNSRedirect{Endpoint: ep, Proto: 17, Port: 53})
	}
	return c
}

func newTestDNS(t *testing.T, opts Options) (*DNS, *steps) {
	t.Helper()
	s := &steps{fail: map[string]bool{}}
	if !opts.Disabled {
		labtest.RequireRoot(t) // the proxy's raw reply socket
		opts.Redirects = redirector{s}
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	s.table = d.Table()
	return d, s
}

func TestTheTableCoversBothPoliciesWhileTheRedirectsChange(t *testing.T) {
	d, s := newTestDNS(t, Options{})
	a := d.Applier(kernel{s})
	if err := a.ApplyPolicy(compiled("p1", 1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := a.ApplyPolicy(compiled("p2", 2, 3)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel p1 table 12", "redirect 12 table 12",
		// Endpoint 1 is still redirected until the redirect changes: its old rules stay.
		"kernel p2 table 123", "redirect 23 table 123",
	}
	if !slices.Equal(s.log, want) {
		t.Fatalf("steps\n got %q\nwant %q", s.log, want)
	}
	if got := s.covered(); got != "23" {
		t.Fatalf("the table covers %s at the end, want 23", got)
	}
}

func TestAFailedRedirectPutsThePreviousPolicyBack(t *testing.T) {
	d, s := newTestDNS(t, Options{})
	a := d.Applier(kernel{s})
	if err := a.ApplyPolicy(compiled("p1", 1)); err != nil {
		t.Fatal(err)
	}
	s.fail["redirect"] = true
	err := a.ApplyPolicy(compiled("p2", 2))
	if err == nil || !strings.Contains(err.Error(), "redirect map full") {
		t.Fatalf("err = %v", err)
	}
	if last := s.log[len(s.log)-1]; !strings.HasPrefix(last, "kernel p1") || s.covered() != "1" {
		t.Fatalf("after the failure: last step %q, table %s; want p1 back", last, s.covered())
	}
	s.fail["redirect"], s.fail["kernel"] = false, true
	if err := a.ApplyPolicy(compiled("p3", 3)); err == nil || s.covered() != "1" {
		t.Fatalf("a kernel failure: err %v, table %s; want an error and p1's table", err, s.covered())
	}
}

func TestWithoutTheProxyDNSRulesAreRefused(t *testing.T) {
	d, s := newTestDNS(t, Options{Disabled: true})
	a := d.Applier(kernel{s})
	err := a.ApplyPolicy(compiled("p1", 4))
	if err == nil || !strings.Contains(err.Error(), "--dns-proxy=false") || len(s.log) != 0 {
		t.Fatalf("err = %v, steps %q: want a refusal before anything is applied", err, s.log)
	}
	if err := a.ApplyPolicy(compiled("p2")); err != nil {
		t.Fatalf("a policy without DNS rules: %v", err)
	}
}

func TestTheProxyPortIsKeptForTheNextRun(t *testing.T) {
	dir := t.TempDir()
	opts := Options{PortFile: filepath.Join(dir, "dns-proxy.port"), Cache: fqdn.Options{StatePath: filepath.Join(dir, "fqdn.json")}}
	d1, _ := newTestDNS(t, opts)
	port := d1.Proxy().Addrs()[0].Port()
	if got := d1.Proxy().Addrs(); len(got) != 2 || got[0].Addr() != netip.MustParseAddr("127.0.0.1") || got[1].Addr() != netip.IPv6Loopback() || got[1].Port() != port {
		t.Fatalf("proxy addresses %v, want 127.0.0.1 and ::1 at one port", got)
	}
	d1.Close()
	d2, _ := newTestDNS(t, opts)
	if got := d2.Proxy().Addrs()[0].Port(); got != port {
		t.Fatalf("the next run took port %d, want the kept %d", got, port)
	}
	// The kept port taken: another one, kept in turn.
	d3, _ := newTestDNS(t, opts)
	if got := d3.Proxy().Addrs()[0].Port(); got == port || readPort(opts.PortFile) != got {
		t.Fatalf("with the kept port taken: port %d, file %d", got, readPort(opts.PortFile))
	}
}

// A removed endpoint's names go with it; the others' stay.
func TestARemovedEndpointsNamesAreForgotten(t *testing.T) {
	d, _ := newTestDNS(t, Options{Disabled: true})
	addr := netip.MustParseAddr("198.18.7.7")
	for _, ep := range []uint32{1, 2} {
		if err := d.Cache().Record(fqdn.Answer{Endpoint: ep, Name: "api.example.com.", Addrs: []netip.Addr{addr}, TTL: 300}); err != nil {
			t.Fatal(err)
		}
	}
	d.ForgetGone([]policystore.Endpoint{{ID: 1}, {ID: 3}})
	if got := d.Cache().Lookup(1, "api.example.com."); !slices.Equal(got, []netip.Addr{addr}) {
		t.Errorf("endpoint 1 (present) resolves to %v, want %v", got, addr)
	}
	if got := d.Cache().Lookup(2, "api.example.com."); len(got) != 0 {
		t.Errorf("endpoint 2 (removed) still resolves to %v", got)
	}
}

// admittingKernel is a kernel that admits deltas of the policy it holds.
type admittingKernel struct {
	kernel
	inForce **compile.Compiled
}

func (k admittingKernel) ApplyPolicy(c *compile.Compiled) error {
	*k.inForce = c
	return k.kernel.ApplyPolicy(c)
}

func (k admittingKernel) AdmitPolicy(next *compile.Compiled, d *compile.Delta) error {
	if d.Base != *k.inForce {
		return compile.ErrRecompile
	}
	*k.inForce = next
	k.log = append(k.log, "admit table "+k.covered())
	return nil
}

// An admission goes to the kernel when it holds the delta's base, and the
// table then looks servers up in the new policy's ipcache (or takes its
// rules, when the delta changed them); a delta of
// another policy, or a kernel that cannot admit, is refused with
// ErrRecompile and changes nothing.
func TestAnAdmissionReachesTheKernelAndTheTablesIdentities(t *testing.T) {
	d, s := newTestDNS(t, Options{})
	var inForce *compile.Compiled
	a := d.Applier(admittingKernel{kernel{s}, &inForce}).(policystore.Admitter)
	base := compiled("p1", 1)
	base.DNS.IdentityOf = func(netip.Addr) uint32 { return 2 }
	if err := a.ApplyPolicy(base); err != nil {
		t.Fatal(err)
	}
	next := compiled("p1", 1)
	next.DNS.IdentityOf = func(netip.Addr) uint32 { return 16777300 }
	stale := &compile.Delta{Base: compiled("p0", 1)}
	if err := a.AdmitPolicy(next, stale); !errors.Is(err, compile.ErrRecompile) || inForce != base {
		t.Fatalf("a delta of another policy: %v, kernel has the base: %v", err, inForce == base)
	}
	if err := a.AdmitPolicy(next, &compile.Delta{Base: base}); err != nil {
		t.Fatal(err)
	}
	if inForce != next || s.table.Current().IdentityOf(netip.MustParseAddr("198.51.100.1")) != 16777300 {
		t.Fatalf("after the admission the kernel has next: %v, the table's identities are next's: %v",
			inForce == next, s.table.Current().IdentityOf(netip.MustParseAddr("198.51.100.1")))
	}
	// A delta that changed the DNS rules puts next's into the table.
	wider := compiled("p1", 1, 2)
	if err := a.AdmitPolicy(wider, &compile.Delta{Base: next, DNS: true}); err != nil {
		t.Fatal(err)
	}
	if inForce != wider || s.covered() != "12" {
		t.Fatalf("after an admission that changed the DNS rules the table covers %s, want 12", s.covered())
	}
	plain := d.Applier(kernel{s}).(policystore.Admitter)
	if err := plain.ApplyPolicy(base); err != nil {
		t.Fatal(err)
	}
	if err := plain.AdmitPolicy(next, &compile.Delta{Base: base}); !errors.Is(err, compile.ErrRecompile) {
		t.Fatalf("a kernel that cannot admit: %v, want ErrRecompile", err)
	}
}
