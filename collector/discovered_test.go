package collector

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/discovery"
)

// TestDiscoveredEndpointsFollowTheirWatcher: a watcher's events change the
// endpoints in force, in order: a pod is added (attached, its watcher's
// labels), one reusing its address supersedes it (the stale deletion of
// the first then changes nothing), a label update re-identifies without
// re-attaching, a discovered endpoint never replaces or removes one of
// the endpoints file, and a deletion detaches.
func TestDiscoveredEndpointsFollowTheirWatcher(t *testing.T) {
	att := &fakeAttacher{}
	c, err := New(Options{Topology: testTopology(), Sources: []Source{apitest.NewSource(nil, 0)}, Attacher: att, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	var changes int
	c.OnEndpointsChange(func() error { changes++; return nil })
	apitest.Start(t, "collector", c)

	ip := netip.MustParseAddr("198.18.0.20")
	pod := func(name string, ifindex int, labels ...string) discovery.Endpoint {
		return discovery.Endpoint{Source: "k8s", ID: "shop/" + name, Name: name, Namespace: "shop", Labels: labels,
			IPs: []netip.Addr{ip}, Interface: discovery.Interface{Name: "veth-" + name, Index: ifindex}}
	}
	resolve := func(ep discovery.Endpoint) *ResolvedEndpoint {
		return &ResolvedEndpoint{Config: EndpointConfig{Name: ep.Name, Namespace: ep.Namespace},
			HostIfIndex: uint32(ep.Interface.Index), HostIfName: ep.Interface.Name, IPs: ep.IPs,
			Discovered: &Discovered{Source: ep.Source, ID: ep.ID, Labels: ep.Labels}}
	}
	event := func(kind discovery.EventKind, ep discovery.Endpoint) {
		t.Helper()
		var re *ResolvedEndpoint
		if kind != discovery.Deleted {
			re = resolve(ep)
		}
		c.applyResolved([]discovery.EndpointEvent{{Kind: kind, Endpoint: ep}}, []*ResolvedEndpoint{re})
	}
	names := func() []string {
		var out []string
		for _, e := range c.Registry().Endpoints() {
			out = append(out, e.Namespace+"/"+e.Name+"@"+e.Interface+":"+e.Source)
		}
		slices.Sort(out)
		return out
	}
	calls := func() []string {
		att.mu.Lock()
		defer att.mu.Unlock()
		out := slices.Clone(att.calls)
		att.calls = nil
		return out
	}
	calls() // Run's own attachments
	declared := []string{"default/frontend-7d4@veth-fe-h:", "shop/backend@veth-be-h:"}
	steps := []struct {
		name      string
		kind      discovery.EventKind
		ep        discovery.Endpoint
		want      []string
		wantCalls []string
	}{
		{"a pod added is attached", discovery.Added, pod("web", 20, "k8s:app=web"),
			append(slices.Clone(declared), "shop/web@veth-web:k8s"), []string{"attach veth-web"}},
		{"a pod reusing its address supersedes it", discovery.Added, pod("web2", 21, "k8s:app=web"),
			append(slices.Clone(declared), "shop/web2@veth-web2:k8s"), []string{"attach veth-web2", "detach veth-web"}},
		{"the stale deletion of the first changes nothing", discovery.Deleted, pod("web", 20, "k8s:app=web"),
			append(slices.Clone(declared), "shop/web2@veth-web2:k8s"), nil},
		{"a label update re-identifies, no re-attach", discovery.Updated, pod("web2", 21, "k8s:app=web", "k8s:tier=db"),
			append(slices.Clone(declared), "shop/web2@veth-web2:k8s"), nil},
		{"a discovered endpoint never replaces one of the file", discovery.Added,
			discovery.Endpoint{Source: "docker", ID: "abc", Name: "backend", Namespace: "shop", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.30")},
				Interface: discovery.Interface{Name: "veth-x", Index: 30}},
			append(slices.Clone(declared), "shop/web2@veth-web2:k8s"), nil},
		{"nor removes it", discovery.Deleted, discovery.Endpoint{Source: "k8s", ID: "shop/backend", Name: "backend", Namespace: "shop"},
			append(slices.Clone(declared), "shop/web2@veth-web2:k8s"), nil},
		{"a deletion detaches", discovery.Deleted, pod("web2", 21),
			slices.Clone(declared), []string{"detach veth-web2"}},
	}
	var identity uint32
	for _, s := range steps {
		event(s.kind, s.ep)
		got := names()
		slices.Sort(s.want)
		if !slices.Equal(got, s.want) {
			t.Fatalf("%s: endpoints %v, want %v", s.name, got, s.want)
		}
		if gotCalls := calls(); !slices.Equal(gotCalls, s.wantCalls) {
			t.Errorf("%s: attacher calls %v, want %v", s.name, gotCalls, s.wantCalls)
		}
		if ep, ok := c.Registry().LookupIP(ip); ok {
			if s.kind == discovery.Updated && ep.Identity == identity {
				t.Errorf("%s: identity %d unchanged", s.name, ep.Identity)
			}
			identity = ep.Identity
			if s.kind == discovery.Updated && !slices.Equal(ep.Labels, []string{"k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop", "k8s:tier=db"}) {
				t.Errorf("%s: labels %v, want the watcher's and the namespace's", s.name, ep.Labels)
			}
		}
	}
	if changes != 4 {
		t.Errorf("%d changes notified, want 4 (the add, the supersede, the update, the deletion; none for the events that change nothing)", changes)
	}
}

// TestARefusedPutLeavesThePlanAsItWas: a discovered endpoint named as one
// of the endpoints file is refused before anything it would supersede is
// taken out.
func TestARefusedPutLeavesThePlanAsItWas(t *testing.T) {
	ip := netip.MustParseAddr("198.18.0.40")
	disc := func(name string, ifindex uint32) ResolvedEndpoint {
		return ResolvedEndpoint{Config: EndpointConfig{Name: name, Namespace: "shop"}, HostIfIndex: ifindex,
			HostIfName: "veth-" + name, IPs: []netip.Addr{ip}, Discovered: &Discovered{Source: "k8s", ID: "shop/" + name}}
	}
	topo := testTopology()
	topo.Endpoints = append([]ResolvedEndpoint{disc("old", 40)}, topo.Endpoints...)
	c, err := New(Options{Topology: topo, Sources: []Source{apitest.NewSource(nil, 0)}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	p := c.newPlan()
	before := slices.Clone(p.next.Endpoints)
	if err := p.put(disc("backend", 41)); err == nil {
		t.Fatal("a discovered endpoint replaced the endpoints file's backend")
	}
	if len(p.next.Endpoints) != len(before) || len(p.gone) != 0 || len(p.puts) != 0 {
		t.Fatalf("after the refusal: %d endpoints (want %d), %d gone, %d put", len(p.next.Endpoints), len(before), len(p.gone), len(p.puts))
	}
	for i := range before {
		if p.next.Endpoints[i].Config.Name != before[i].Config.Name {
			t.Errorf("endpoint %d is %s, was %s", i, p.next.Endpoints[i].Config.Name, before[i].Config.Name)
		}
	}
}

// TestABatchIsRefusedOnlyWhereItMust: in one batch, a pod whose address is
// the endpoints file's backend's cannot be in force; the other pod of the
// batch is.
func TestABatchIsRefusedOnlyWhereItMust(t *testing.T) {
	c, err := New(Options{Topology: testTopology(), Sources: []Source{apitest.NewSource(nil, 0)}, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(name, ip string, ifindex int) (discovery.EndpointEvent, *ResolvedEndpoint) {
		ep := discovery.Endpoint{Source: "k8s", ID: "shop/" + name, Name: name, Namespace: "shop", Labels: []string{"k8s:app=" + name},
			IPs: []netip.Addr{netip.MustParseAddr(ip)}, Interface: discovery.Interface{Name: "veth-" + name, Index: ifindex}}
		return discovery.EndpointEvent{Kind: discovery.Added, Endpoint: ep}, &ResolvedEndpoint{
			Config: EndpointConfig{Name: name, Namespace: "shop"}, HostIfIndex: uint32(ifindex), HostIfName: ep.Interface.Name,
			IPs: ep.IPs, Discovered: &Discovered{Source: "k8s", ID: ep.ID, Labels: ep.Labels}}
	}
	bad, badRe := ev("clash", "198.18.0.3", 50) // backend's address
	good, goodRe := ev("fine", "198.18.0.51", 51)
	c.applyResolved([]discovery.EndpointEvent{bad, good}, []*ResolvedEndpoint{badRe, goodRe})
	if ep, ok := c.Registry().LookupIP(netip.MustParseAddr("198.18.0.51")); !ok || ep.PodName != "fine" {
		t.Errorf("the good pod of the batch is not in force: %+v", ep)
	}
	if ep, _ := c.Registry().LookupIP(netip.MustParseAddr("198.18.0.3")); ep.PodName != "backend" {
		t.Errorf("backend's address is %+v's", ep)
	}
	if len(c.Registry().Endpoints()) != 3 {
		t.Errorf("endpoints %+v, want the file's two and fine", c.Registry().Endpoints())
	}
}
