package kubernetes

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodLabels(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "blue"}}}
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
		ns   *corev1.Namespace
		want []string
	}{
		{
			name: "a pod gets its labels, namespace, namespace labels, service account and cluster",
			pod: corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{ServiceAccountName: "web"},
			},
			ns: ns,
			want: []string{
				"k8s:app=web",
				"k8s:io.cilium.k8s.namespace.labels.team=blue",
				"k8s:io.cilium.k8s.policy.cluster=c1",
				"k8s:io.cilium.k8s.policy.serviceaccount=web",
				"k8s:io.kubernetes.pod.namespace=shop",
			},
		},
		{
			name: "a pod cannot claim Cilium's labels or another namespace",
			pod: corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Labels: map[string]string{
				"io.cilium.k8s.policy.serviceaccount": "admin",
				"io.cilium.k8s.namespace.labels.team": "red",
				"io.cilium.k8s.policy.cluster":        "other",
				"io.kubernetes.pod.namespace":         "kube-system",
				"app":                                 "",
			}}},
			ns: ns,
			want: []string{
				"k8s:app=",
				"k8s:io.cilium.k8s.namespace.labels.team=blue",
				"k8s:io.cilium.k8s.policy.cluster=c1",
				"k8s:io.kubernetes.pod.namespace=shop",
			},
		},
		{
			name: "a pod whose namespace is not known yet has no namespace labels",
			pod:  corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "new"}},
			want: []string{"k8s:io.cilium.k8s.policy.cluster=c1", "k8s:io.kubernetes.pod.namespace=new"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := podLabels(&tc.pod, tc.ns, "c1"); !slices.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}
