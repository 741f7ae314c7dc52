package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// Where the collector keeps its state by default.
const (
	defaultIdentityState = "/var/lib/periscope/identities.json"
	defaultPolicyDir     = "/var/lib/periscope/policies"
	defaultEndpointState = "/var/lib/periscope/endpoints.json"
)

// newIdentityAllocator opens the identity state file, creating its directory.
func newIdentityAllocator(path string) (*identity.Allocator, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("identity state: %w", err)
	}
	return identity.NewAllocator(path)
}

// startPolicyStore builds a policy store applying through applier (the
// DNS part's, over the datapath) and l7 (the L7 proxy; nil without
// --envoy), over c's endpoints (and their changes) and the DNS names of
// names, that persists in dir ("": in memory only; else it re-applies
// what dir holds), and adds the policy and identity API to handlers.
func startPolicyStore(dir string, c *collector.Collector, applier policystore.Applier, l7 policystore.L7Applier,
	names policystore.Names, handlers map[string]http.Handler, logger *slog.Logger) (*policystore.Store, error) {
	store, err := policystore.New(policystore.Options{
		Dir: dir, Applier: applier, L7: l7, Endpoints: c, Names: names, Logger: logger, Events: c.Events(),
	})
	if err != nil {
		return nil, err
	}
	// A removed endpoint leaves the compiled policy (and audit mode).
	c.OnEndpointsChange(store.Refresh)
	for pattern, h := range store.Handlers() {
		handlers[pattern] = h
	}
	return store, nil
}
