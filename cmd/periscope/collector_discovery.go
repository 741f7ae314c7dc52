package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/discovery"
	"github.com/periscope-dev/periscope/discovery/docker"
	"github.com/periscope-dev/periscope/discovery/hostveth"
	k8s "github.com/periscope-dev/periscope/discovery/kubernetes"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// discoveryFlags choose the watchers that feed the collector's endpoints
// and policies: the Kubernetes API server, container engines.
type discoveryFlags struct {
	kubernetes     bool
	kubeconfig     string
	k8sPolicies    bool
	runtimeSockets []string
}

func (d *discoveryFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&d.kubernetes, "kubernetes", false,
		"learn this node's pods (spec.nodeName = --node-name) and the cluster's policies from the Kubernetes API server; "+
			"without --kubeconfig, with the pod's service account (in-cluster: $KUBERNETES_SERVICE_HOST)")
	f.StringVar(&d.kubeconfig, "kubeconfig", "", "kubeconfig of the Kubernetes API server to learn pods and policies from (implies --kubernetes)")
	f.BoolVar(&d.k8sPolicies, "kubernetes-policies", true,
		"with --kubernetes, enforce the cluster's CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and NetworkPolicy objects")
	f.StringSliceVar(&d.runtimeSockets, "container-runtime-socket", nil,
		"Docker Engine API socket (dockerd: /run/docker.sock, Podman: /run/podman/podman.sock) whose containers on bridge networks become endpoints (repeatable)")
}

func (d discoveryFlags) enabled() bool {
	return d.kubernetes || d.kubeconfig != "" || len(d.runtimeSockets) > 0
}

// watcher runs until ctx ends; an error ends the collector.
type watcher struct {
	name string
	run  func(ctx context.Context) error
}

// attribution is the collector's hold of the records of workloads not yet
// discovered, with discovery on (nil otherwise: an endpoints file's
// endpoints are in force before their workloads talk), and the watcher
// that keeps its workload networks current.
func (d discoveryFlags) attribution(logger *slog.Logger) (*collector.Attribution, *watcher, error) {
	if !d.enabled() {
		return nil, nil, nil
	}
	nets, err := hostveth.NewNetworks(logger)
	if err != nil {
		return nil, nil, err
	}
	return &collector.Attribution{Networks: nets}, &watcher{"workload networks", nets.Run}, nil
}

// newWatchers builds the watchers the flags ask for, feeding c's endpoints
// and store's policies; more run beside them.
func newWatchers(d discoveryFlags, nodeName, clusterName string, c *collector.Collector, store *policystore.Store,
	logger *slog.Logger, more ...*watcher) ([]watcher, error) {
	var out []watcher
	for _, w := range more {
		if w != nil {
			out = append(out, *w)
		}
	}
	if d.kubernetes || d.kubeconfig != "" {
		if d.kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
			return nil, errors.New("--kubernetes: no --kubeconfig, and not in a pod ($KUBERNETES_SERVICE_HOST is not set)")
		}
		cfg, err := k8s.RESTConfig(d.kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubernetes: %w", err)
		}
		cfg.UserAgent = "periscope/" + version
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("--kubernetes: client: %w", err)
		}
		opts := k8s.Options{NodeName: nodeName, ClusterName: clusterName, Logger: logger}
		pods, err := k8s.NewPods(cs, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, watcher{"kubernetes pods", func(ctx context.Context) error { return pods.Run(ctx, c) }})
		if d.k8sPolicies {
			dyn, err := dynamic.NewForConfig(cfg)
			if err != nil {
				return nil, fmt.Errorf("--kubernetes: dynamic client: %w", err)
			}
			policies, err := k8s.NewPolicies(dyn, cs, opts)
			if err != nil {
				return nil, err
			}
			out = append(out, watcher{"kubernetes policies", func(ctx context.Context) error { return policies.Run(ctx, store) }})
		}
	}
	for _, sock := range d.runtimeSockets {
		w, err := docker.New(docker.Options{Socket: sock, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("--container-runtime-socket %s: %w", sock, err)
		}
		out = append(out, watcher{"containers of " + sock, func(ctx context.Context) error { return w.Run(ctx, c) }})
	}
	return out, nil
}

// runWatchers starts the watchers and returns a function that waits for
// them to end after ctx does. They may start before the collector runs:
// what they put in force before it attaches is attached with the rest. A
// watcher that fails calls fail (which ends the collector).
func runWatchers(ctx context.Context, ws []watcher, fail func(error), logger *slog.Logger) (wait func()) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			logger.Info("discovery started", "watcher", w.name)
			if err := w.run(ctx); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("discovery: %s: %w", w.name, err))
			}
		})
	}
	return wg.Wait
}

// The collector is the watchers' endpoint sink, the policy store their
// policy sink.
var (
	_ discovery.EndpointSink = (*collector.Collector)(nil)
	_ discovery.PolicySink   = (*policystore.Store)(nil)
)
