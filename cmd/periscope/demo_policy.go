package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/enforcer/dnspolicy"
	"github.com/periscope-dev/periscope/enforcer/policystore"
	"github.com/periscope-dev/periscope/proxy"
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

// startDemoPolicy applies demoPolicy and demoFrontendEgress, and with an
// L7 proxy demoL7Policy, through an in-memory policy store over dp, dns
// (the DNS names and rules) and l7, and adds the policy and identity API
// to handlers, so `periscope policy list|apply|delete` work against the
// demo.
func startDemoPolicy(c *collector.Collector, dp *datapath.Datapath, dns *dnspolicy.DNS, l7 *proxy.Manager,
	handlers map[string]http.Handler, log *slog.Logger) error {
	var applier policystore.L7Applier
	yaml := demoPolicy + "---\n" + demoFrontendEgress
	if l7 != nil {
		applier = l7
		yaml += "---\n" + demoL7Policy
	}
	store, err := startPolicyStore("", c, dns.Applier(dp), applier, dns.Cache(), handlers, log)
	if err != nil {
		return fmt.Errorf("demo policy: %w", err)
	}
	bindDNS(dns, store, c)
	if _, _, err := store.Apply("demo-policy.yaml", []byte(yaml)); err != nil {
		return fmt.Errorf("demo policy: %w", err)
	}
	return nil
}
