package dnsmatch

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/periscope-dev/periscope/api"
)

// Rule is one policy's DNS rule for one endpoint: the rules.dns list of one
// toPorts entry, with the ports and servers that entry applies to.
type Rule struct {
	// Policy names the policy in flows.
	Policy api.PolicyRef
	// Port is the DNS server's port; 0 means any port.
	Port uint16
	// Protocol is api.ProtoUDP or api.ProtoTCP; 0 means both.
	Protocol uint8
	// Servers are the server addresses the rule covers and
	// ServerIdentities the security identities of those servers (see
	// Rules.IdentityOf); a server in either is covered, and both empty
	// means any server.
	Servers          []netip.Prefix
	ServerIdentities []uint32
	// Names are the allowed query names; empty allows every name.
	Names []Selector
}

// Query is one DNS question as the proxy sees it.
type Query struct {
	// Endpoint is the local endpoint that asked (api.Endpoint.ID).
	Endpoint uint32
	// Server is the address the endpoint sent the query to.
	Server netip.AddrPort
	// Protocol is api.ProtoUDP or api.ProtoTCP.
	Protocol uint8
	// Name is the queried name, in any case, with or without the final dot.
	Name string
}

// Verdict is a Table's answer to a Query.
type Verdict struct {
	Allowed bool
	// Audit: the query is denied, but its endpoint is in audit mode
	// (Rules.Audit): the proxy forwards it and reports it AUDIT, naming
	// Policies.
	Audit bool
	// Policies name the rules that allowed the query, or, when it is
	// denied, the endpoint's rules that applied to its server and port and
	// allowed none (all the endpoint's DNS policies when none applied). It
	// is shared: never modify it.
	Policies []api.PolicyRef
}

// Rules are what a Table holds at once.
type Rules struct {
	// ByEndpoint are the rules of every endpoint whose queries the proxy
	// judges (by endpoint ID).
	ByEndpoint map[uint32][]Rule
	// Open endpoints are outside egress default deny: L3/L4 policy lets
	// their queries to a server no rule covers pass, and so does Check.
	Open map[uint32]bool
	// IdentityOf gives a server address's security identity, as the
	// datapath's ipcache does, for rules with ServerIdentities; nil: such
	// rules cover only their Servers.
	IdentityOf func(netip.Addr) uint32
	// Audit endpoints are in policy audit mode: a query their rules deny
	// is forwarded and reported (Verdict.Audit), never refused.
	Audit map[uint32]bool
}

// Table holds the compiled DNS rules of every endpoint. Check may run
// concurrently with Set: each Check sees one whole generation.
type Table struct {
	gen atomic.Pointer[generation]
}

type generation struct {
	endpoints  map[uint32]*endpointRules
	identityOf func(netip.Addr) uint32
	rules      Rules // as given, for Current
}

type endpointRules struct {
	rules    []compiledRule
	policies []api.PolicyRef // every policy of the endpoint, sorted, unique
	open     bool
	audit    bool
}

type compiledRule struct {
	policy     []api.PolicyRef // the one policy, shared by verdicts
	port       uint16
	protocol   uint8
	servers    []netip.Prefix
	identities []uint32
	matchers   []*Matcher
	all        bool // no names, or a name pattern of stars alone
}

// NewTable returns a table with no rules: every query is denied.
func NewTable() *Table {
	t := &Table{}
	t.gen.Store(&generation{endpoints: map[uint32]*endpointRules{}})
	return t
}

// Replace is Set with rules alone: no open endpoint, no identities.
func (t *Table) Replace(rules map[uint32][]Rule) error {
	return t.Set(Rules{ByEndpoint: rules})
}

// Current returns the Rules of the generation in force.
func (t *Table) Current() Rules { return t.gen.Load().rules }

// SetIdentityOf keeps the rules in force and looks servers' identities up
// with identityOf from now on (a policy whose ipcache grew, the rules the
// same), without compiling the rules again.
func (t *Table) SetIdentityOf(identityOf func(netip.Addr) uint32) {
	gen := *t.gen.Load()
	gen.identityOf = identityOf
	gen.rules.IdentityOf = identityOf
	t.gen.Store(&gen)
}

// Set compiles rs and puts it in force at once. On an error nothing
// changes.
func (t *Table) Set(rs Rules) error {
	gen := &generation{endpoints: make(map[uint32]*endpointRules, len(rs.ByEndpoint)), identityOf: rs.IdentityOf, rules: rs}
	for ep, rules := range rs.ByEndpoint {
		er := &endpointRules{open: rs.Open[ep], audit: rs.Audit[ep]}
		for i, r := range rules {
			cr, err := compileRule(r)
			if err != nil {
				return fmt.Errorf("endpoint %d: dns rule %d of policy %q: %w", ep, i, r.Policy.Ref(), err)
			}
			er.rules = append(er.rules, cr)
			er.policies = append(er.policies, r.Policy)
		}
		slices.SortFunc(er.policies, comparePolicies)
		er.policies = slices.Compact(er.policies)
		gen.endpoints[ep] = er
	}
	t.gen.Store(gen)
	return nil
}

func compileRule(r Rule) (compiledRule, error) {
	if r.Protocol != 0 && r.Protocol != protoUDP && r.Protocol != protoTCP {
		return compiledRule{}, fmt.Errorf("protocol %d: DNS runs over UDP (17) or TCP (6)", r.Protocol)
	}
	cr := compiledRule{
		policy: []api.PolicyRef{r.Policy}, port: r.Port, protocol: r.Protocol,
		servers: slices.Clone(r.Servers), identities: slices.Clone(r.ServerIdentities), all: len(r.Names) == 0,
	}
	for _, p := range cr.servers {
		if !p.IsValid() {
			return compiledRule{}, fmt.Errorf("server prefix %v is not valid", p)
		}
	}
	for _, s := range r.Names {
		m, err := Compile(s)
		if err != nil {
			return compiledRule{}, err
		}
		if m.MatchAll() {
			cr.all = true
		}
		cr.matchers = append(cr.matchers, m)
	}
	return cr, nil
}

// IP protocol numbers (api.ProtoUDP, api.ProtoTCP); dnsmatch does not
// import api.
const (
	protoTCP uint8 = 6
	protoUDP uint8 = 17
)

// Covers reports whether the endpoint has DNS rules (its queries are the
// proxy's to judge).
func (t *Table) Covers(endpoint uint32) bool {
	_, ok := t.gen.Load().endpoints[endpoint]
	return ok
}

// Check judges q against the rules of q.Endpoint: allowed when a rule that
// applies to the server and port selects the name, or, for an open
// endpoint, when none applies. An endpoint without rules is denied. A
// denial of an endpoint in audit mode says so (Verdict.Audit).
func (t *Table) Check(q Query) Verdict {
	gen := t.gen.Load()
	v := gen.check(q)
	if !v.Allowed {
		if er := gen.endpoints[q.Endpoint]; er != nil && er.audit {
			v.Audit = true
		}
	}
	return v
}

func (gen *generation) check(q Query) Verdict {
	er := gen.endpoints[q.Endpoint]
	if er == nil {
		return Verdict{}
	}
	name := Canonical(q.Name)
	var allowed, applied []api.PolicyRef
	nApplied := 0
	server := serverOf{addr: q.Server.Addr().Unmap(), identityOf: gen.identityOf}
	for i := range er.rules {
		r := &er.rules[i]
		if !r.applies(q, &server) {
			continue
		}
		nApplied++
		if !r.selects(name) {
			if !slices.Contains(applied, r.policy[0]) {
				applied = append(applied, r.policy[0])
			}
			continue
		}
		switch {
		case allowed == nil:
			allowed = r.policy
		case !slices.Contains(allowed, r.policy[0]):
			allowed = append(slices.Clip(allowed), r.policy[0])
		}
	}
	if allowed != nil {
		if len(allowed) > 1 { // a fresh slice, never the shared one
			slices.SortFunc(allowed, comparePolicies)
		}
		return Verdict{Allowed: true, Policies: allowed}
	}
	if nApplied == 0 {
		if er.open {
			return Verdict{Allowed: true}
		}
		return Verdict{Policies: er.policies}
	}
	slices.SortFunc(applied, comparePolicies)
	return Verdict{Policies: applied}
}

// serverOf is a query's server, its identity looked up once, when a rule
// asks.
type serverOf struct {
	addr       netip.Addr
	identityOf func(netip.Addr) uint32
	identity   uint32
	looked     bool
}

func (s *serverOf) id() (uint32, bool) {
	if s.identityOf == nil {
		return 0, false
	}
	if !s.looked {
		s.identity, s.looked = s.identityOf(s.addr), true
	}
	return s.identity, true
}

func (r *compiledRule) applies(q Query, server *serverOf) bool {
	if r.port != 0 && r.port != q.Server.Port() {
		return false
	}
	if r.protocol != 0 && r.protocol != q.Protocol {
		return false
	}
	if len(r.servers) == 0 && len(r.identities) == 0 {
		return true
	}
	for _, p := range r.servers {
		if p.Contains(server.addr) {
			return true
		}
	}
	if len(r.identities) > 0 {
		if id, ok := server.id(); ok && slices.Contains(r.identities, id) {
			return true
		}
	}
	return false
}

func (r *compiledRule) selects(name string) bool {
	if r.all {
		return true
	}
	for _, m := range r.matchers {
		if m.matchCanonical(name) {
			return true
		}
	}
	return false
}

// comparePolicies orders policies by namespace, name, kind and revision.
func comparePolicies(a, b api.PolicyRef) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Revision, b.Revision))
}
