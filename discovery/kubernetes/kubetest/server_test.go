package kubetest

import (
	"context"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func TestServerServesTheAPI(t *testing.T) {
	s := New(t)
	ctx := context.Background()
	for _, tc := range []struct {
		namespace string
		config    func() (*rest.Config, error)
	}{
		{"through-rest-config", func() (*rest.Config, error) { return s.Config, nil }},
		{"through-kubeconfig", func() (*rest.Config, error) { return clientcmd.BuildConfigFromFlags("", s.Kubeconfig) }},
	} {
		cfg, err := tc.config()
		if err != nil {
			t.Fatalf("%s: %v", tc.namespace, err)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.namespace, err)
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: tc.namespace}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s: create namespace: %v", tc.namespace, err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{}); err != nil {
			t.Fatalf("%s: get namespace: %v", tc.namespace, err)
		}
	}
	// Without the token a request is anonymous, and may not list.
	anon := rest.AnonymousClientConfig(s.Config)
	cs, err := kubernetes.NewForConfig(anon)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("an anonymous request listed namespaces")
	}
}

func TestStopEndsTheServersAndRemovesTheirFiles(t *testing.T) {
	s := New(t)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if !s.etcd.exited() || !s.apiserver.exited() {
		t.Error("a server still runs after Stop")
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop (%v)", s.Dir, err)
	}
	cs, err := kubernetes.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{}); err == nil {
		t.Error("the API server still answers after Stop")
	}
}
