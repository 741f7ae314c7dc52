package kubetest

import (
	"context"
	"testing"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// New starts a Server for the test and stops it when the test ends. Without
// etcd or kube-apiserver the test skips, or fails in CI.
func New(tb testing.TB) *Server {
	tb.Helper()
	if _, _, err := Binaries(); err != nil {
		labtest.SkipOrFail(tb, err.Error())
	}
	s, err := Start(context.Background(), Options{})
	if err != nil {
		tb.Fatalf("start API server: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("kube-apiserver log ends:\n%s", s.apiserver.logTail(40))
		}
		if err := s.Stop(); err != nil {
			tb.Errorf("stop API server: %v", err)
		}
	})
	return s
}
