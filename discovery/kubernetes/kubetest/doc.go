// Package kubetest runs a real Kubernetes API server for tests and
// benchmarks: etcd (Debian's etcd-server) and kube-apiserver (built into
// bin/ by scripts/kube-apiserver.sh) on loopback, with random ports, their
// own temporary directories, a bearer token with cluster-admin rights
// (group system:masters), a serving certificate of a CA made for the run
// and a service-account signing key. There are no controllers, scheduler
// or kubelets: a test creates pods and sets their status itself, as a
// kubelet would.
//
// It imports package testing: only tests may import it.
package kubetest
