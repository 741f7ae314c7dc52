package kubernetes

import (
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/periscope-dev/periscope/discovery"
	"github.com/periscope-dev/periscope/discovery/hostveth"
)

// Options configure the watchers.
type Options struct {
	// NodeName is this node's name in the cluster (spec.nodeName of its
	// pods); required.
	NodeName string
	// ClusterName is the value of the io.cilium.k8s.policy.cluster label;
	// empty means DefaultClusterName.
	ClusterName string
	// Logger receives the watchers' logs; nil discards them.
	Logger *slog.Logger
	// Resync replays every object to the handlers this often; zero never.
	Resync time.Duration
	// FindInterface finds a pod's host-side veth from its addresses; nil
	// means hostveth.Find.
	FindInterface func([]netip.Addr) (discovery.Interface, error)
	// InterfaceRetries is how many times a pod whose veth is not found is
	// looked at again (with backoff from 10 ms to 2 s); zero means 20.
	InterfaceRetries int
}

func (o Options) withDefaults() (Options, error) {
	if o.NodeName == "" {
		return o, errors.New("kubernetes watcher: node name is required")
	}
	if o.ClusterName == "" {
		o.ClusterName = DefaultClusterName
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FindInterface == nil {
		o.FindInterface = hostveth.Find
	}
	if o.InterfaceRetries == 0 {
		o.InterfaceRetries = 20
	}
	return o, nil
}
