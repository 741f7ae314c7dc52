package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// Where the collector keeps its state by default.
const (
	defaultIdentityState = "/var/lib/periscope/identities.json"
	defaultPolicyDir     = "/var/lib/periscope/policies"
)

// newIdentityAllocator opens the identity state file, creating its directory.
func newIdentityAllocator(path string) (*identity.Allocator, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("identity state: %w", err)
	}
	return identity.NewAllocator(path)
}

// startPolicyStore builds a policy store over dp and c's endpoints that
// persists in dir ("": in memory only; else it re-applies what dir holds)
// and adds the policy and identity API to handlers.
func startPolicyStore(dir string, c *collector.Collector, dp *datapath.Datapath,
	handlers map[string]http.Handler, logger *slog.Logger) (*policystore.Store, error) {
	store, err := policystore.New(policystore.Options{
		Dir: dir, Applier: dp, Endpoints: c.Registry(), Logger: logger, Events: c.Events(),
	})
	if err != nil {
		return nil, err
	}
	for pattern, h := range store.Handlers() {
		handlers[pattern] = h
	}
	return store, nil
}
