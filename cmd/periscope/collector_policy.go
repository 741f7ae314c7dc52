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

// startPolicyStore builds the policy store over dp (re-applying the
// persisted policies) and adds the policy and identity API to handlers.
func startPolicyStore(fl collectorFlags, c *collector.Collector, dp *datapath.Datapath,
	handlers map[string]http.Handler, logger *slog.Logger) error {
	store, err := collector.NewPolicyStore(collector.PolicyStoreOptions{
		Dir: fl.policyDir, Applier: dp, Registry: c.Registry(), Logger: logger, Events: c.Events(),
	})
	if err != nil {
		return err
	}
	for pattern, h := range store.Handlers() {
		handlers[pattern] = h
	}
	handlers["GET /api/v1/identities"] = collector.IdentitiesHandler(c.Registry().Identities())
	return nil
}
