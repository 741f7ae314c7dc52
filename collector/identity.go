package collector

import (
	"fmt"
	"log/slog"
	"sort"
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
