package collector

import (
	"fmt"
	"sort"

	"github.com/periscope-dev/periscope/enforcer/identity"
)

// endpointLabels builds an endpoint's labels the way Cilium does for pods:
// "k8s:key=value" for each label plus
// "k8s:io.kubernetes.pod.namespace=<namespace>", sorted.
func endpointLabels(namespace string, labels map[string]string) []string {
	out := make([]string, 0, len(labels)+1)
	for k, v := range labels {
		out = append(out, "k8s:"+k+"="+v)
	}
	out = append(out, "k8s:io.kubernetes.pod.namespace="+namespace)
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
