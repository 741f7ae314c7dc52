package dnspolicy

import (
	"errors"
	"fmt"
	"sync"

	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// Applier returns the policystore.Applier that brings a compiled policy
// into force: the kernel's part through next (the datapath), the DNS part
// into the proxy's table and the redirect.
func (d *DNS) Applier(next policystore.Applier) policystore.Applier {
	return &applier{dns: d, next: next}
}

type applier struct {
	dns  *DNS
	next policystore.Applier

	mu   sync.Mutex
	last *compile.Compiled // in force, nil before the first
}

// ApplyPolicy puts c into force, atomically as the store needs: on an
// error the previous policy keeps enforcing, DNS part included. The order:
// the table first gets the new rules and, for endpoints whose queries stop
// being redirected, the old ones (a query redirected under the old policy
// is still judged); then the kernel's policy; then the redirects; then the
// table the new rules alone.
func (a *applier) ApplyPolicy(c *compile.Compiled) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.dns
	var next dnsmatch.Rules
	var redirects []compile.DNSRedirect
	if c != nil {
		next, redirects = c.DNS, c.DNSRedirects
	}
	if d.proxy == nil && len(redirects) > 0 {
		return fmt.Errorf("rules.dns needs the DNS proxy, which is off (--dns-proxy=false): endpoint %d's queries on port %d would not be judged",
			redirects[0].Endpoint, redirects[0].Port)
	}
	old := d.table.Current()
	if err := d.table.Set(bridge(old, next)); err != nil {
		return fmt.Errorf("dns rules: %w", err)
	}
	if err := a.next.ApplyPolicy(c); err != nil {
		return errors.Join(err, d.table.Set(old))
	}
	if d.proxy != nil {
		if err := d.opts.Redirects.SetRedirects(a.redirects(redirects)); err != nil {
			undo := d.table.Set(old)
			if a.last != nil || c != nil {
				undo = errors.Join(undo, a.next.ApplyPolicy(a.last))
			}
			return errors.Join(fmt.Errorf("redirect DNS to the proxy: %w", err), undo)
		}
	}
	if err := d.table.Set(next); err != nil {
		return fmt.Errorf("dns rules: %w", err)
	}
	a.last = c
	return nil
}

// AdmitPolicy adds a DNS answer's new entries (compile.Compiled.Admit)
// to the kernel's policy through next, when next is a policystore.Admitter,
// then gives the proxy's table next's rules when the delta changed them
// (new server identities), else has it look servers up in next's ipcache.
// On error the policy in force stays delta.Base.
func (a *applier) AdmitPolicy(next *compile.Compiled, delta *compile.Delta) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	admitter, ok := a.next.(policystore.Admitter)
	if !ok {
		return fmt.Errorf("%w: the datapath only applies whole policies", compile.ErrRecompile)
	}
	if a.last != delta.Base {
		return fmt.Errorf("%w: the DNS rules in force are not the delta's base", compile.ErrRecompile)
	}
	if err := admitter.AdmitPolicy(next, delta); err != nil {
		return err
	}
	switch {
	case delta.DNS:
		if err := a.dns.table.Set(next.DNS); err != nil {
			// The kernel has next, the table the base's rules, which
			// cover fewer servers: a recompile puts both in force.
			return fmt.Errorf("%w: dns rules: %w", compile.ErrRecompile, err)
		}
	case next.DNS.IdentityOf != nil:
		a.dns.table.SetIdentityOf(next.DNS.IdentityOf)
	}
	a.last = next
	return nil
}

// SetPolicyAudit is the datapath's.
func (a *applier) SetPolicyAudit(endpoint uint32, audit bool) error {
	return a.next.SetPolicyAudit(endpoint, audit)
}

// redirects are the datapath's redirects of the DNS ports.
func (a *applier) redirects(rs []compile.DNSRedirect) []datapath.Redirect {
	port := a.dns.proxy.Addrs()[0].Port()
	out := make([]datapath.Redirect, 0, len(rs))
	for _, r := range rs {
		out = append(out, datapath.Redirect{Endpoint: r.Endpoint, Direction: datapath.RedirectEgress,
			Proto: r.Proto, Port: r.Port, ProxyPort: port})
	}
	return out
}

// bridge is next plus the old rules of the endpoints next drops: the
// table while the redirects change.
func bridge(old, next dnsmatch.Rules) dnsmatch.Rules {
	out := dnsmatch.Rules{ByEndpoint: map[uint32][]dnsmatch.Rule{}, Open: map[uint32]bool{}, Audit: map[uint32]bool{}, IdentityOf: next.IdentityOf}
	if out.IdentityOf == nil {
		out.IdentityOf = old.IdentityOf
	}
	for ep, rs := range old.ByEndpoint {
		out.ByEndpoint[ep], out.Open[ep], out.Audit[ep] = rs, old.Open[ep], old.Audit[ep]
	}
	for ep, rs := range next.ByEndpoint {
		out.ByEndpoint[ep], out.Open[ep], out.Audit[ep] = rs, next.Open[ep], next.Audit[ep]
	}
	return out
}
