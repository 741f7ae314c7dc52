package collector

import (
	"hash/fnv"
	"sort"
)

// Placeholder identities live in 256..65535: below 256 are Cilium's reserved
// identities (host, world, ...), and 16 bits keep them readable.
const (
	minPlaceholderIdentity = 256
	maxPlaceholderIdentity = 65535
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

// placeholderIdentity is a stable numeric identity for a label set, until the
// enforcer allocates real identities: an FNV-1a hash of the sorted labels
// folded into 256..65535. It depends only on the labels, so it is the same
// across restarts and nodes; distinct label sets may collide (rarely).
func placeholderIdentity(sortedLabels []string) uint32 {
	h := fnv.New64a()
	for _, l := range sortedLabels {
		h.Write([]byte(l))
		h.Write([]byte{0})
	}
	span := uint64(maxPlaceholderIdentity - minPlaceholderIdentity + 1)
	return uint32(minPlaceholderIdentity + h.Sum64()%span)
}
