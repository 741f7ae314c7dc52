package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/proxy"
	"github.com/periscope-dev/periscope/proxy/envoy"
)

// demoL7Policy is the demo's L7 rule: the backend's port 8080 takes the
// frontend's GET /public/... and nothing else; Envoy answers anything else
// 403 "Access denied" and the request's record is DROPPED, naming the policy.
const demoL7Policy = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: backend-l7
  namespace: default
spec:
  endpointSelector:
    matchLabels: {app: backend}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: frontend}
    toPorts:
    - ports: [{port: "8080", protocol: TCP}]
      rules:
        http:
        - {method: GET, path: "/public/.*"}
`

// newDemoProxy builds the demo's L7 proxy (Envoy, supervised, configured
// over a socket in a directory of its own, its admin on a free loopback
// port); nil with --envoy=false. The caller runs it before the policy.
func newDemoProxy(opts demoOptions, dp datapath.RedirectSetter, log *slog.Logger) (*proxy.Manager, func(), error) {
	if !opts.envoy {
		return nil, func() {}, nil
	}
	if _, err := os.Stat(opts.envoyBinary); err != nil {
		return nil, nil, fmt.Errorf("demo: no Envoy at %s (run scripts/deps.sh, or --envoy=false for no L7): %w", opts.envoyBinary, err)
	}
	dir, err := os.MkdirTemp("", "periscope-demo-envoy-")
	if err != nil {
		return nil, nil, fmt.Errorf("demo: %w", err)
	}
	m, err := proxy.New(proxy.Options{Datapath: dp, NodeID: "periscope-demo", Socket: filepath.Join(dir, "envoy.sock"),
		Envoy: envoy.Options{Binary: opts.envoyBinary}, Logger: log})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("demo: %w", err)
	}
	return m, func() { os.RemoveAll(dir) }, nil
}
