package collector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/periscope-dev/periscope/api/agentevent"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// PolicyApplier loads a compiled policy set into the kernel;
// *datapath.Datapath satisfies it. ApplyPolicy must be atomic: on error the
// previous policy keeps enforcing.
type PolicyApplier interface {
	ApplyPolicy(c *compile.Compiled) error
	SetPolicyAudit(endpoint uint32, audit bool) error
}

// StoredPolicy is one applied policy as the store keeps it.
type StoredPolicy struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Revision is the store's revision that last applied the policy.
	Revision uint64 `json:"revision"`
	// YAML is the policy's document as applied.
	YAML string `json:"-"`

	parsed *policy.Policy
}

func (p *StoredPolicy) key() string { return p.Kind + "/" + p.Namespace + "/" + p.Name }

// PolicyStore holds the applied policies, recompiles them on every change
// against the node's endpoints and identities, hands the result to the
// applier and persists the set in a directory so a restarted collector
// applies the same set. A change that does not parse or compile is refused
// whole and the policy in force stays.
type PolicyStore struct {
	mu       sync.Mutex
	dir      string
	applier  PolicyApplier
	reg      *Registry
	log      *slog.Logger
	policies map[string]*StoredPolicy
	revision uint64
	events   agentevent.Appender
}

// PolicyStoreOptions configure a PolicyStore.
type PolicyStoreOptions struct {
	// Dir persists applied policies; empty keeps them in memory only.
	Dir string
	// Applier loads compiled policy into the kernel; required.
	Applier PolicyApplier
	// Registry gives the local endpoints and the identity allocator; required.
	Registry *Registry
	// Logger is the parent logger; nil discards logs.
	Logger *slog.Logger
	// Events, when set, gets a POLICY_UPDATED or POLICY_DELETED agent
	// event for every policy an Apply or Delete changes.
	Events agentevent.Appender
}

// NewPolicyStore builds a store, loads the policies persisted in Dir, puts
// the endpoints declared with audit: true in audit mode and applies the
// persisted set (an empty set too: it replaces whatever a previous run left
// pinned).
func NewPolicyStore(opts PolicyStoreOptions) (*PolicyStore, error) {
	if opts.Applier == nil || opts.Registry == nil {
		return nil, errors.New("policy store: applier and registry are required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &PolicyStore{dir: opts.Dir, applier: opts.Applier, reg: opts.Registry,
		log: log.With("component", "policy"), policies: map[string]*StoredPolicy{}, events: opts.Events}
	for _, e := range s.reg.endpoints {
		if e.audit {
			if err := s.applier.SetPolicyAudit(e.hostIfIndex, true); err != nil {
				return nil, fmt.Errorf("policy store: audit mode of %s: %w", e.endpoint.PodName, err)
			}
		}
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
func (s *PolicyStore) List() []StoredPolicy {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]StoredPolicy, 0, len(s.policies))
	for _, p := range s.policies {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// Get returns the policies named namespace/name (one per kind).
func (s *PolicyStore) Get(namespace, name string) []StoredPolicy {
	var out []StoredPolicy
	for _, p := range s.List() {
		if p.Namespace == namespace && p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

// Apply parses data (one or more YAML documents; file names it in errors)
// and adds or replaces its policies. On any error nothing changes.
func (s *PolicyStore) Apply(file string, data []byte) ([]StoredPolicy, error) {
	docs, err := splitPolicies(file, data)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: no policy in input", file)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*StoredPolicy, len(s.policies)+len(docs))
	for k, p := range s.policies {
		next[k] = p
	}
	var changed []*StoredPolicy
	for _, d := range docs {
		next[d.key()] = d
		changed = append(changed, d)
	}
	rev := s.revision
	err = s.commit(next, changed)
	s.announce(rev, agentevent.PolicyUpdated, changed)
	if err != nil {
		return nil, err
	}
	out := make([]StoredPolicy, len(changed))
	for i, p := range changed {
		out[i] = *p
	}
	return out, nil
}

// Delete removes the policies named namespace/name (every kind, or only
// kind when not empty); it reports how many it removed.
func (s *PolicyStore) Delete(kind, namespace, name string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*StoredPolicy, len(s.policies))
	var removed []*StoredPolicy
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
func (s *PolicyStore) Revision() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revision
}

// commit compiles next, applies it and persists it; the caller holds s.mu.
// changed get the new revision.
func (s *PolicyStore) commit(next map[string]*StoredPolicy, changed []*StoredPolicy) error {
	c, err := s.compile(next)
	if err != nil {
		return err
	}
	if err := s.applier.ApplyPolicy(c); err != nil {
		return fmt.Errorf("apply policy: %w", err)
	}
	s.revision++
	for _, p := range changed {
		p.Revision = s.revision
	}
	prev := s.policies
	s.policies = next
	s.log.Info("policies applied", "revision", s.revision, "policies", len(next))
	return s.persist(prev)
}

// compile builds the kernel's form of policies against the local endpoints
// and every known identity.
func (s *PolicyStore) compile(policies map[string]*StoredPolicy) (*compile.Compiled, error) {
	in := compile.Input{Identities: s.reg.ids.List()}
	keys := make([]string, 0, len(policies))
	for k := range policies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in.Policies = append(in.Policies, policies[k].parsed)
	}
	for _, e := range s.reg.endpoints {
		if e.hostIfIndex == 0 {
			continue
		}
		in.Endpoints = append(in.Endpoints, compile.Endpoint{
			ID: e.hostIfIndex, Identity: e.endpoint.Identity, Namespace: e.endpoint.Namespace,
			Labels: e.endpoint.Labels, IPs: e.ips,
		})
	}
	for _, a := range s.reg.hostAddrList {
		a = a.Unmap()
		in.IPCache = append(in.IPCache, compile.IPEntry{Prefix: netip.PrefixFrom(a, a.BitLen()), Identity: uint32(identity.Host)})
	}
	c, err := compile.Compile(in)
	if err != nil {
		return nil, fmt.Errorf("compile policies: %w", err)
	}
	return c, nil
}

// splitPolicies parses data whole (errors name file:line:column) and
// returns each policy with the text of its own document, as applied.
func splitPolicies(file string, data []byte) ([]*StoredPolicy, error) {
	all, err := policy.Parse(file, data)
	if err != nil {
		return nil, err
	}
	var out []*StoredPolicy
	for _, chunk := range splitDocuments(data) {
		pols, err := policy.Parse(file, chunk)
		if err != nil {
			out = nil // a separator inside a block scalar: fall back below
			break
		}
		for _, p := range pols {
			out = append(out, &StoredPolicy{Kind: string(p.Kind), Namespace: p.Namespace, Name: p.Name,
				YAML: string(chunk), parsed: p})
		}
	}
	if len(out) == len(all) {
		return out, nil
	}
	return reencoded(file, data)
}

// splitDocuments cuts YAML text at its "---" document separators.
func splitDocuments(data []byte) [][]byte {
	var out [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		t := bytes.TrimRight(line, "\r\n")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) {
			out = append(out, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	out = append(out, cur)
	return out
}

// reencoded splits data with the YAML decoder and re-encodes each document.
func reencoded(file string, data []byte) ([]*StoredPolicy, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*StoredPolicy
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(doc.Content) == 0 {
			continue
		}
		text, err := yaml.Marshal(&doc)
		if err != nil {
			return nil, fmt.Errorf("%s: encode document: %w", file, err)
		}
		pols, err := policy.Parse(file, text)
		if err != nil {
			return nil, err
		}
		for _, p := range pols {
			out = append(out, &StoredPolicy{Kind: string(p.Kind), Namespace: p.Namespace, Name: p.Name,
				YAML: string(text), parsed: p})
		}
	}
	return out, nil
}

// fileName is the persisted file of p.
func (p *StoredPolicy) fileName() string {
	ns := p.Namespace
	if ns == "" {
		ns = "_cluster"
	}
	return p.Kind + "_" + ns + "_" + p.Name + ".yaml"
}

// persist writes the applied set to s.dir and removes the files of
// policies no longer applied.
func (s *PolicyStore) persist(prev map[string]*StoredPolicy) error {
	if s.dir == "" {
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return fmt.Errorf("persist policies: %w", err)
	}
	var errs []error
	for k, p := range prev {
		if _, ok := s.policies[k]; !ok {
			if err := os.Remove(filepath.Join(s.dir, p.fileName())); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
	}
	for k, p := range s.policies {
		if prev[k] == p {
			continue
		}
		errs = append(errs, writeAtomic(filepath.Join(s.dir, p.fileName()), []byte(p.YAML)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("persist policies (applied, not persisted): %w", err)
	}
	return nil
}

// load reads the policies persisted in s.dir.
func (s *PolicyStore) load() (map[string]*StoredPolicy, error) {
	out := map[string]*StoredPolicy{}
	if s.dir == "" {
		return out, nil
	}
	entries, err := os.ReadDir(s.dir)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("policy store: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("policy store: %w", err)
		}
		docs, err := splitPolicies(path, data)
		if err != nil {
			return nil, fmt.Errorf("policy store: %w", err)
		}
		for _, d := range docs {
			out[d.key()] = d
		}
	}
	return out, nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
