package collector

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// NamespaceNameLabel is the label Kubernetes gives every namespace: its
// name.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// endpointLabels builds an endpoint's labels the way Cilium does for pods:
// "k8s:key=value" for each label, "k8s:io.kubernetes.pod.namespace=<ns>",
// "k8s:io.cilium.k8s.namespace.labels.<key>=<value>" for each label of the
// namespace (kubernetes.io/metadata.name=<ns> always) and
// "k8s:io.cilium.k8s.policy.cluster=<cluster>", sorted.
func endpointLabels(cluster, namespace string, nsLabels, labels map[string]string) []string {
	out := make([]string, 0, len(labels)+len(nsLabels)+3)
	for k, v := range labels {
		out = append(out, "k8s:"+k+"="+v)
	}
	out = append(out, "k8s:"+policy.NamespaceLabel+"="+namespace,
		"k8s:"+policy.ClusterLabel+"="+cluster,
		"k8s:"+policy.NamespaceLabelsPrefix+NamespaceNameLabel+"="+namespace)
	for k, v := range nsLabels {
		if k != NamespaceNameLabel {
			out = append(out, "k8s:"+policy.NamespaceLabelsPrefix+k+"="+v)
		}
	}
	sort.Strings(out)
	return out
}

// endpointIdentityLabels are an endpoint's identity labels, sorted, and
// the workload flows name it by: a discovered endpoint's labels as its
// watcher made them (the workload its "app" label, of whatever source),
// else built from its declaration (endpointLabels).
func endpointIdentityLabels(re ResolvedEndpoint, cluster string, nsLabels map[string]string) ([]string, string) {
	if d := re.Discovered; d != nil {
		labels := d.Labels
		// Every endpoint is in its namespace for policy (a namespaced
		// policy selects by this label), a container too; and no label
		// set is empty.
		nsLabel := "k8s:" + policy.NamespaceLabel + "=" + re.Config.namespace()
		if !slices.Contains(labels, nsLabel) {
			labels = append(slices.Clone(labels), nsLabel)
			slices.Sort(labels)
		}
		workload := re.Config.Name
		for _, l := range d.Labels {
			if _, kv, ok := strings.Cut(l, ":"); ok {
				if v, ok := strings.CutPrefix(kv, "app="); ok && v != "" {
					workload = v
					break
				}
			}
		}
		return labels, workload
	}
	workload := re.Config.Labels["app"]
	if workload == "" {
		workload = re.Config.Name
	}
	return endpointLabels(cluster, re.Config.namespace(), nsLabels, re.Config.Labels), workload
}

// hostLabels are the host endpoint's labels, as Cilium's: reserved:host
// and the node's labels as "k8s:key=value", sorted.
func hostLabels(nodeLabels map[string]string) []string {
	out := make([]string, 0, len(nodeLabels)+1)
	for k, v := range nodeLabels {
		out = append(out, "k8s:"+k+"="+v)
	}
	out = append(out, "reserved:host")
	sort.Strings(out)
	return out
}

// allocateIdentity gives an endpoint's label set its security identity from
// the allocator (persisted in its state file, so a restart keeps it).
func allocateIdentity(ids *identity.Allocator, sortedLabels []string) (uint32, error) {
	id, err := ids.Allocate(identity.NewLabels(sortedLabels...))
	if err != nil {
		return 0, fmt.Errorf("identity of %v: %w", sortedLabels, err)
	}
	return uint32(id), nil
}

// releaseIdentities counts the identities of reg's endpoints as used now and
// lets ids forget those unused for longer than grace (negative: never). A
// failure is logged, not returned: the state file then keeps them all.
func releaseIdentities(ids *identity.Allocator, reg *Registry, grace time.Duration, log *slog.Logger) {
	if grace < 0 {
		return
	}
	inUse := make([]identity.ID, 0, len(reg.endpoints))
	for _, e := range reg.endpoints {
		inUse = append(inUse, identity.ID(e.endpoint.Identity))
	}
	released, err := ids.Release(inUse, grace, time.Now())
	if err != nil {
		log.Warn("identities not released", "err", err)
		return
	}
	for _, r := range released {
		log.Info("identity released: no endpoint used it", "identity", uint32(r.ID), "labels", r.Labels.String(), "grace", grace)
	}
}

// releaseUnusedIdentities releases, until ctx ends, the identities no
// endpoint used for Options.IdentityGrace (those of endpoints removed
// since), looking every half grace (at least every minute, at most ten
// times a second).
func (c *Collector) releaseUnusedIdentities(ctx context.Context) {
	every := min(max(c.opts.IdentityGrace/2, 100*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			releaseIdentities(c.opts.Identities, c.Registry(), c.opts.IdentityGrace, c.log)
		}
	}
}
