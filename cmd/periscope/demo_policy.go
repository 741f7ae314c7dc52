package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/enforcer/dnspolicy"
)

// demoPolicy is what the demo enforces: the database takes connections from
// the backend on 5432 and datagrams on 5353 from the frontend, nothing
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
    - ports: [{port: "5353", protocol: UDP}]
`

// startDemoPolicy applies demoPolicy and demoFrontendEgress through an
// in-memory policy store over dp and dns (the DNS names and rules) and
// adds the policy and identity API to handlers, so `periscope policy
// list|apply|delete` work against the demo.
func startDemoPolicy(c *collector.Collector, dp *datapath.Datapath, dns *dnspolicy.DNS, handlers map[string]http.Handler, log *slog.Logger) error {
	store, err := startPolicyStore("", c, dns.Applier(dp), dns.Cache(), handlers, log)
	if err != nil {
		return fmt.Errorf("demo policy: %w", err)
	}
	bindDNS(dns, store, c)
	if _, _, err := store.Apply("demo-policy.yaml", []byte(demoPolicy+"---\n"+demoFrontendEgress)); err != nil {
		return fmt.Errorf("demo policy: %w", err)
	}
	return nil
}
