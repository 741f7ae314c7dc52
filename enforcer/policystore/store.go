package policystore

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/periscope-dev/periscope/api/agentevent"
	"github.com/periscope-dev/periscope/api/policyapi"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// Applied is one applied policy as the store keeps it.
type Applied struct {
	// Policy is its API form: kind, namespace, name, and the store's
	// revision that last applied it.
	policyapi.Policy
	// YAML is the policy's document as applied.
	YAML string
	// Origin says who applied it: a client (zero) or a watcher of an
	// orchestrator's objects.
	Origin Origin

	parsed *policy.Policy
}

func (p *Applied) key() string { return p.Kind + "/" + p.Namespace + "/" + p.Name }

// Store holds the applied policies, recompiles them on every change
// against the node's endpoints and identities, hands the result to the
// applier and persists the set in a directory so a restarted collector
// applies the same set. A change that does not parse or compile is refused
// whole and the policy in force stays.
type Store struct {
	mu        sync.Mutex
	dir       string
	applier   Applier
	endpoints Endpoints
	log       *slog.Logger
	policies  map[string]*Applied
	revision  uint64
	l7        L7Applier
	l7Ports   []compile.L7Port // in force
	fqdn      fqdnState
	events    agentevent.Appender
	audited   map[uint32]bool // endpoint ids put in audit mode
}

// Options configure a Store.
type Options struct {
	// Dir persists applied policies; empty keeps them in memory only.
	Dir string
	// Applier brings compiled policy into force; required.
	Applier Applier
	// Endpoints are the node's endpoints and identities; required.
	Endpoints Endpoints
	// L7 enforces L7 rules (rules.http); nil: a policy with some is
	// refused.
	L7 L7Applier
	// Names are the DNS names toFQDNs rules select addresses by; nil: none
	// (toFQDNs selects nothing).
	Names Names
	// Logger is the parent logger; nil discards logs.
	Logger *slog.Logger
	// Events, when set, gets a POLICY_UPDATED or POLICY_DELETED agent
	// event for every policy an Apply or Delete changes.
	Events agentevent.Appender
}

// New builds a store, loads the policies persisted in Dir, puts the
// endpoints in audit mode that ask for it and applies the persisted set (an
// empty set too: it replaces whatever a previous run left pinned).
func New(opts Options) (*Store, error) {
	if opts.Applier == nil || opts.Endpoints == nil {
		return nil, errors.New("policy store: applier and endpoints are required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{dir: opts.Dir, applier: opts.Applier, endpoints: opts.Endpoints,
		log: log.With("component", "policy"), policies: map[string]*Applied{}, l7: opts.L7, events: opts.Events}
	s.fqdn.names = opts.Names
	if err := s.syncAudit(); err != nil {
		return nil, fmt.Errorf("policy store: %w", err)
	}
	loaded, err := s.load()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.commit(loaded, nil); err != nil {
		return nil, fmt.Errorf("policy store: apply persisted policies: %w", err)
	}
	return s, nil
}

// List returns the applied policies by kind, namespace and name.
func (s *Store) List() []Applied {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Applied, 0, len(s.policies))
	for _, p := range s.policies {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// Get returns the policies named namespace/name (one per kind).
func (s *Store) Get(namespace, name string) []Applied {
	var out []Applied
	for _, p := range s.List() {
		if p.Namespace == namespace && p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

// Apply parses data (one or more YAML documents; file names it in errors)
// and adds or replaces its policies. Documents of other Kubernetes objects
// are skipped and returned. On any error nothing changes.
func (s *Store) Apply(file string, data []byte) ([]Applied, []policy.Skipped, error) {
	return s.apply(file, data, Origin{})
}

// apply is Apply of policies of origin.
func (s *Store) apply(file string, data []byte, origin Origin) ([]Applied, []policy.Skipped, error) {
	docs, skipped, err := parse(file, data)
	if err != nil {
		return nil, nil, err
	}
	if len(docs) == 0 {
		if len(skipped) > 0 {
			return nil, skipped, fmt.Errorf("%s: no policy in input (%d other object(s) skipped)", file, len(skipped))
		}
		return nil, nil, fmt.Errorf("%s: no policy in input", file)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*Applied, len(s.policies)+len(docs))
	for k, p := range s.policies {
		next[k] = p
	}
	for _, d := range docs {
		d.Origin = origin
		next[d.key()] = d
	}
	rev := s.revision
	err = s.commit(next, docs)
	s.announce(rev, agentevent.PolicyUpdated, docs)
	if err != nil {
		return nil, nil, err
	}
	out := make([]Applied, len(docs))
	for i, p := range docs {
		out[i] = *p
	}
	return out, skipped, nil
}

// Delete removes the policies named namespace/name (every kind, or only
// kind when not empty); it reports how many it removed.
func (s *Store) Delete(kind, namespace, name string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*Applied, len(s.policies))
	var removed []*Applied
	for k, p := range s.policies {
		if p.Namespace == namespace && p.Name == name && (kind == "" || kind == p.Kind) {
			removed = append(removed, p)
			continue
		}
		next[k] = p
	}
	if len(removed) == 0 {
		return 0, nil
	}
	rev := s.revision
	err := s.commit(next, nil)
	s.announce(rev, agentevent.PolicyDeleted, removed)
	return len(removed), err
}

// Revision is the store's revision: the number of changes applied.
func (s *Store) Revision() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revision
}

// commit compiles next, applies it and persists it; the caller holds s.mu.
// changed get the new revision.
func (s *Store) commit(next map[string]*Applied, changed []*Applied) error {
	rev := s.revision + 1
	for _, p := range changed { // new objects: dropped if the change is refused
		p.Revision, p.parsed.Revision = rev, rev
	}
	c, seq, err := s.compileSet(next)
	if err != nil {
		return err
	}
	if err := s.applyPolicy(c); err != nil {
		return err
	}
	s.setView(c, seq, next)
	s.revision = rev
	prev := s.policies
	s.policies = next
	s.log.Info("policies applied", "revision", s.revision, "policies", len(next))
	return s.persist(prev)
}

// parse parses data (errors name file:line:column) into policies, each
// with the text of its own document, and the documents skipped.
func parse(file string, data []byte) ([]*Applied, []policy.Skipped, error) {
	docs, skipped, err := policy.ParseDocuments(file, data)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*Applied, len(docs))
	for i, d := range docs {
		p := d.Policy
		out[i] = &Applied{Policy: policyapi.Policy{Kind: string(p.Kind), Namespace: p.Namespace, Name: p.Name},
			YAML: d.Text, parsed: p}
	}
	return out, skipped, nil
}
