package dnsproxy

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
)

// gatedCache admits slow.example.com only when its gate opens (a
// recompile in progress) and every other name at once.
type gatedCache struct {
	gate    chan struct{}
	mu      sync.Mutex
	records []string
}

func (c *gatedCache) TryRecord(a fqdn.Answer) (bool, error) {
	return a.Name != "slow.example.com.", nil
}

func (c *gatedCache) Record(a fqdn.Answer) error {
	if a.Name == "slow.example.com." {
		<-c.gate
	}
	c.mu.Lock()
	c.records = append(c.records, a.Name)
	c.mu.Unlock()
	return nil
}

// TestAnAdmissionThatWaitsHoldsBackOnlyItsOwnAnswer: while one answer
// waits for the policy (a recompile), answers admitted already are
// released by the reader that got them, and the waiting one only once
// Record returned.
func TestAnAdmissionThatWaitsHoldsBackOnlyItsOwnAnswer(t *testing.T) {
	cache := &gatedCache{gate: make(chan struct{})}
	p := loopbackProxy(t, Options{Timeout: 5 * time.Second, Cache: cache}, answeringServer(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, func(*api.Flow) {}) }()
	defer func() { cancel(); <-done }()
	addr := p.Addrs()[0]

	ask := func(name string) chan *dns.Msg {
		got := make(chan *dns.Msg, 1)
		go func() {
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			r, _, err := (&dns.Client{Net: "udp", Timeout: 10 * time.Second}).Exchange(m, addr.String())
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			got <- r
		}()
		return got
	}
	slow := ask("slow.example.com.")
	deadline := time.Now().Add(10 * time.Second)
	for len(p.inFlight) != 1 || p.Stats().Queries != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the slow query never reached the proxy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 20 {
		if r := <-ask("www.example.com."); r == nil || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("query %d behind a waiting admission: %v", i, r)
		}
	}
	select {
	case r := <-slow:
		t.Fatalf("the answer waiting for its admission was released: %v", r)
	default:
	}
	close(cache.gate)
	select {
	case r := <-slow:
		if r == nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("the admitted answer: %v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the answer was not released once admitted")
	}
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if len(cache.records) != 1 || cache.records[0] != "slow.example.com." {
		t.Errorf("Record called for %v, want slow.example.com. alone (the others were recorded by TryRecord)", cache.records)
	}
}

var _ QuickCache = (*fqdn.Cache)(nil)
