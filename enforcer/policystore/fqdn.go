package policystore

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// Names is where toFQDNs rules get their addresses: every address with
// the names DNS answers gave it, node-wide (the slices read-only);
// *fqdn.Cache implements it. The store reads it on every compile, so a
// change of it is a change of the policy.
type Names interface {
	AllNames() map[netip.Addr][]string
}

// fqdnView is what the policy in force was compiled from, for telling
// without a lock whether a DNS answer changes it.
type fqdnView struct {
	seq      uint64 // the commit that made it (Store.commits)
	compiled *compile.Compiled
	matchers *dnsmatch.Index // the toFQDNs selectors
}

// changes reports whether admitting a would change the compiled policy:
// some toFQDNs selector selects its name but not yet one of its addresses.
func (v *fqdnView) changes(a fqdn.Admission) bool {
	var buf [4]*dnsmatch.Matcher
	for _, m := range v.matchers.Select(a.Name, buf[:0]) {
		for _, addr := range a.Addrs {
			if !v.compiled.FQDNSelects(addr, m.Selector()) {
				return true
			}
		}
	}
	return false
}

// fqdnState is the store's part for toFQDNs.
type fqdnState struct {
	names Names
	view  atomic.Pointer[fqdnView]
	// commits counts commits begun: a view of another count is stale (a
	// commit is in progress, or failed).
	commits atomic.Uint64
	// wanted counts admissions that needed a recompile; done (under the
	// store's mutex) is the count the last successful recompile covered.
	wanted atomic.Uint64
	done   uint64
}

// input reads Names for the compiler.
func (f *fqdnState) input() map[netip.Addr][]string {
	if f.names == nil {
		return nil
	}
	return f.names.AllNames()
}

// AdmitNames returns once the policy in force admits the addresses of a
// DNS answer (fqdn.Options.Admit): at once when no toFQDNs selector selects
// its name or they are selected already, else after a recompile that read
// the answer from Names and was applied. Admissions waiting meanwhile are
// admitted by one recompile. The answer must be in Names before the call.
func (s *Store) AdmitNames(a fqdn.Admission) error {
	if s.NamesAdmitted(a) {
		return nil
	}
	f := &s.fqdn
	mine := f.wanted.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.done >= mine {
		return nil // a recompile that began after the answer was cached covered it
	}
	if v := f.view.Load(); v != nil && !v.changes(a) {
		return nil // a commit since covered it
	}
	covers := f.wanted.Load()
	if err := s.recompile(); err != nil {
		return fmt.Errorf("admit the addresses of %s: %w", a.Name, err)
	}
	f.done = covers
	return nil
}

// NamesAdmitted reports, without a lock, whether the policy in force
// admits the addresses of a DNS answer already, with no commit in
// progress (fqdn.Options.Admitted): then AdmitNames would return at once.
// False while a commit is in progress (it may have read Names before the
// answer was cached), so its caller waits in AdmitNames instead. The
// answer must be in Names before the call.
func (s *Store) NamesAdmitted(a fqdn.Admission) bool {
	f := &s.fqdn
	v := f.view.Load()
	return v != nil && v.seq == f.commits.Load() && !v.changes(a)
}

// NamesInForce reports whether the policy in force selects one of addrs
// by a name: when they leave Names, RefreshNames changes the policy.
func (s *Store) NamesInForce(addrs []netip.Addr) bool {
	v := s.fqdn.view.Load()
	if v == nil {
		return false
	}
	for _, a := range addrs {
		if len(v.compiled.FQDNAddrs[a.Unmap()]) > 0 {
			return true
		}
	}
	return false
}

// RefreshNames recompiles the applied policies against Names as they are
// now (after expiries) and applies the result.
func (s *Store) RefreshNames() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recompile()
}

// recompile compiles and applies the applied set again, with the names of
// now; the caller holds s.mu. It changes neither the revision nor the
// persisted set.
func (s *Store) recompile() error {
	c, seq, err := s.compileSet(s.policies)
	if err != nil {
		return err
	}
	if err := s.applier.ApplyPolicy(c); err != nil {
		return fmt.Errorf("apply policy: %w", err)
	}
	s.setView(c, seq, s.policies)
	s.log.Debug("policies recompiled for DNS names", "fqdn_addresses", len(c.FQDNAddrs))
	return nil
}

// setView records what the policy in force was compiled from.
func (s *Store) setView(c *compile.Compiled, seq uint64, policies map[string]*Applied) {
	parsed := make([]*policy.Policy, 0, len(policies))
	for _, p := range policies {
		parsed = append(parsed, p.parsed)
	}
	s.fqdn.view.Store(&fqdnView{seq: seq, compiled: c, matchers: dnsmatch.NewIndex(policy.FQDNMatchers(parsed))})
}
