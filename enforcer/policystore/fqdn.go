package policystore

import (
	"errors"
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
	// AddrNames is AllNames' entries of addrs alone.
	AddrNames(addrs []netip.Addr) map[netip.Addr][]string
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
	// admitted and recompiled count the answers AdmitNames brought into
	// force by adding entries, and by a recompile.
	admitted, recompiled atomic.Uint64
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
// its name or they are selected already; else, when the applier is an
// Admitter, after the entries of its new addresses were added to the
// policy in force (admitIncrementally); else, or when that cannot be done,
// after a recompile that read the answer from Names and was applied.
// Admissions waiting meanwhile are admitted by one recompile. The answer
// must be in Names before the call.
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
	v := f.view.Load()
	if v != nil && !v.changes(a) {
		return nil // a commit or an admission since covered it
	}
	// What a recompile now would cover, read before the incremental try
	// (which covers this answer alone).
	covers := f.wanted.Load()
	err := s.admitIncrementally(v, a)
	if err == nil {
		f.admitted.Add(1)
		return nil
	}
	f.recompiled.Add(1)
	s.log.Debug("dns answer admitted by a recompile", "name", a.Name, "reason", err)
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

// admitIncrementally brings the new addresses of a into force by adding
// their entries to the policy in force (v's), when the applier can
// (Admitter) and compile.Compiled.Admit proves the result equal to a full
// compile; the caller holds s.mu. Any error means nothing changed and a
// recompile must admit a. Expiries never come here: removing entries from
// the slot in force could remove what a lookup is using, so they stay a
// (batched) recompile, RefreshNames.
func (s *Store) admitIncrementally(v *fqdnView, a fqdn.Admission) error {
	f := &s.fqdn
	admitter, ok := s.applier.(Admitter)
	if !ok {
		return errors.New("the applier only applies whole policies")
	}
	if v == nil || v.seq != f.commits.Load() || f.names == nil {
		// A commit failed after compiling (or none was made): what is in
		// force may not be the view's policy.
		return errors.New("the policy in force is not the last compiled")
	}
	next, delta, err := v.compiled.Admit(f.names.AddrNames(a.Addrs))
	if err != nil {
		return err
	}
	if next == v.compiled {
		return errors.New("the answer adds nothing the view lacks") // changes said it does: recompile
	}
	if err := admitter.AdmitPolicy(next, delta); err != nil {
		return fmt.Errorf("add the entries: %w", err)
	}
	f.view.Store(&fqdnView{seq: v.seq, compiled: next, matchers: v.matchers})
	return nil
}

// Admissions counts the DNS answers AdmitNames brought into force since
// New: by adding their entries to the policy in force (incremental), and
// by a recompile (every answer when the applier is no Admitter).
func (s *Store) Admissions() (incremental, recompiled uint64) {
	return s.fqdn.admitted.Load(), s.fqdn.recompiled.Load()
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
