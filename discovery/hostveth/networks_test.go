package hostveth

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
)

// TestNetworksRunStopsWhileLinksChurn: Run returns promptly when its
// context ends while links come and go (the kernel then closes the
// watch's channels under it).
func TestNetworksRunStopsWhileLinksChurn(t *testing.T) {
	lab := labtest.NewLab(t)
	n, err := NewNetworks(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	churned := make(chan struct{})
	go func() {
		defer close(churned)
		for i := 0; i < 40 && ctx.Err() == nil; i++ {
			if _, err := lab.AddPod(netlab.PodSpec{Name: fmt.Sprintf("p%d", i)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // let links come and go under the watch; not a wait for a condition
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its context's end")
	}
	<-churned
}
