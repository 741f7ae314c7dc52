package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
)

// demoPolicy is what the demo enforces: the database takes connections from
// the backend on 5432 and DNS-like datagrams from the frontend, nothing
// else; the outsider's attempts on it show up DROPPED (POLICY_DENIED), the
// allowed flows name the policy. Everything else is selected by no policy
// and forwarded.
const demoPolicy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: db-clients
  namespace: default
spec:
  endpointSelector:
    matchLabels: {app: db}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: backend}
    toPorts:
    - ports: [{port: "5432", protocol: TCP}]
  - fromEndpoints:
    - matchLabels: {app: frontend}
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
`

// startDemoPolicy applies demoPolicy through an in-memory policy store over
// dp and adds the policy and identity API to handlers, so `periscope
// policy list|apply|delete` work against the demo.
func startDemoPolicy(c *collector.Collector, dp *datapath.Datapath, handlers map[string]http.Handler, log *slog.Logger) error {
	store, err := startPolicyStore("", c, dp, handlers, log)
	if err != nil {
		return fmt.Errorf("demo policy: %w", err)
	}
	if _, _, err := store.Apply("demo-policy.yaml", []byte(demoPolicy)); err != nil {
		return fmt.Errorf("demo policy: %w", err)
	}
	return nil
}
