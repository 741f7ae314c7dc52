package kubernetes

import (
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/periscope-dev/periscope/discovery"
)

// Cilium's label keys for what a pod's own labels do not say (Cilium's
// pkg/k8s/apis/cilium.io); all carry the source "k8s".
const (
	labelSource = "k8s"
	// ciliumLabelPrefix starts the keys Cilium owns: a pod's own labels
	// with it are dropped, so a pod cannot claim another's identity.
	ciliumLabelPrefix = "io.cilium.k8s"
	// NamespaceLabel carries the pod's namespace.
	NamespaceLabel = "io.kubernetes.pod.namespace"
	// NamespaceLabelsPrefix starts the copies of the namespace's labels.
	NamespaceLabelsPrefix = "io.cilium.k8s.namespace.labels."
	// ServiceAccountLabel carries the pod's service account.
	ServiceAccountLabel = "io.cilium.k8s.policy.serviceaccount"
	// ClusterLabel carries the cluster's name.
	ClusterLabel = "io.cilium.k8s.policy.cluster"
)

// DefaultClusterName is the cluster's name when none is configured, as in
// Cilium.
const DefaultClusterName = "default"

// podLabels returns the pod's labels as Cilium gives them to its endpoint,
// sorted: the pod's own labels (less those in Cilium's namespace), its
// namespace, its namespace's labels, its service account (when it has one)
// and the cluster. ns may be nil when the namespace is not known (yet).
func podLabels(pod *corev1.Pod, ns *corev1.Namespace, cluster string) []string {
	m := make(map[string]string, len(pod.Labels)+4)
	for k, v := range pod.Labels {
		if !strings.HasPrefix(k, ciliumLabelPrefix) {
			m[k] = v
		}
	}
	if ns != nil {
		for k, v := range ns.Labels {
			m[NamespaceLabelsPrefix+k] = v
		}
	}
	m[NamespaceLabel] = pod.Namespace
	if sa := pod.Spec.ServiceAccountName; sa != "" {
		m[ServiceAccountLabel] = sa
	} else {
		delete(m, ServiceAccountLabel)
	}
	m[ClusterLabel] = cluster
	return discovery.Labels(labelSource, m)
}
