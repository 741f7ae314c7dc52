package docker

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/discovery"
	"github.com/periscope-dev/periscope/discovery/docker/dockertest"
)

const eventTimeout = 30 * time.Second

type recorder chan discovery.EndpointEvent

func (r recorder) wait(t *testing.T, what string, match func(discovery.EndpointEvent) bool) discovery.Endpoint {
	t.Helper()
	deadline := time.After(eventTimeout)
	var seen []discovery.EndpointEvent
	for {
		select {
		case ev := <-r:
			if match(ev) {
				return ev.Endpoint
			}
			seen = append(seen, ev)
		case <-deadline:
			t.Fatalf("no %s within %v; saw %+v", what, eventTimeout, seen)
		}
	}
}

func named(kind discovery.EventKind, name string) func(discovery.EndpointEvent) bool {
	return func(ev discovery.EndpointEvent) bool { return ev.Kind == kind && ev.Endpoint.Name == name }
}

func runWatcher(t *testing.T, socket string) (*Watcher, recorder) {
	t.Helper()
	w, err := New(Options{Socket: socket})
	if err != nil {
		t.Fatal(err)
	}
	rec := make(recorder, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, discovery.EndpointFunc(func(ev discovery.EndpointEvent) { rec <- ev })) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("watcher: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("watcher did not stop within 30s")
		}
	})
	return w, rec
}

// hostSide is the host's end of the container's eth0, read inside the
// container (its iflink), an oracle independent of hostveth.
func hostSide(t *testing.T, e *dockertest.Engine, name string) int {
	t.Helper()
	n, err := strconv.Atoi(e.Docker(t, "exec", name, "cat", "/sys/class/net/eth0/iflink"))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestContainersBecomeEndpoints(t *testing.T) {
	for _, engine := range []struct {
		name  string
		start func(*testing.T) *dockertest.Engine
	}{
		{"dockerd", dockertest.Start},
		{"podman", dockertest.StartPodman},
	} {
		t.Run(engine.name, func(t *testing.T) { testContainersBecomeEndpoints(t, engine.start(t)) })
	}
}

func testContainersBecomeEndpoints(t *testing.T, e *dockertest.Engine) {
	// A container running before the watcher starts is found by the
	// first resync.
	e.Docker(t, "run", "-d", "--name", "early", "--label", "role=early", dockertest.Image, "sleep", "1000")
	w, rec := runWatcher(t, e.Socket)
	early := rec.wait(t, "Added of early", named(discovery.Added, "early"))
	if early.Interface.Index != hostSide(t, e, "early") {
		t.Errorf("early: interface %+v, want index %d", early.Interface, hostSide(t, e, "early"))
	}

	e.Docker(t, "run", "-d", "--name", "web",
		"--label", "app=web",
		"--label", "com.docker.compose.project=shop",
		"--label", "com.docker.compose.service=web",
		dockertest.Image, "sleep", "1000")
	web := rec.wait(t, "Added of web", func(ev discovery.EndpointEvent) bool {
		return ev.Endpoint.Name == "web" && ev.Kind != discovery.Deleted && ev.Endpoint.Interface.Index != 0
	})
	ip := netip.MustParseAddr(e.Docker(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"))
	id := e.Docker(t, "inspect", "-f", "{{.Id}}", "web")
	want := discovery.Endpoint{
		Source:    Source,
		ID:        id,
		Name:      "web",
		Namespace: "shop",
		Labels: []string{
			"container:app=web",
			"container:com.docker.compose.project=shop",
			"container:com.docker.compose.service=web",
		},
		IPs:       []netip.Addr{ip},
		Interface: web.Interface,
	}
	if !web.Equal(want) {
		t.Errorf("web\n got %+v\nwant %+v", web, want)
	}
	if !e.Lab.IPv4Net.Contains(ip) {
		t.Errorf("web's address %s is not on the lab's bridge %s", ip, e.Lab.IPv4Net)
	}
	if web.Interface.Index != hostSide(t, e, "web") {
		t.Errorf("web: interface %+v, want index %d", web.Interface, hostSide(t, e, "web"))
	}
	if !slices.Contains(early.Labels, "container:role=early") || early.Namespace != DefaultNamespace {
		t.Errorf("early: %+v", early)
	}

	// They talk over the bridge.
	e.Docker(t, "exec", "early", "ping", "-c", "1", "-W", "5", ip.String())

	// A host-network container is the host: no endpoint.
	e.Docker(t, "run", "-d", "--name", "hostnet", "--network", "host", dockertest.Image, "sleep", "1000")

	e.Docker(t, "stop", "-t", "0", "web")
	gone := rec.wait(t, "Deleted of web", named(discovery.Deleted, "web"))
	if gone.ID != id {
		t.Errorf("deleted %+v, want id %s", gone, id)
	}
	e.Docker(t, "rm", "-f", "early")
	rec.wait(t, "Deleted of early", named(discovery.Deleted, "early"))

	// Started again, web is back, with a veth of its own.
	e.Docker(t, "start", "web")
	again := rec.wait(t, "Added of web again", func(ev discovery.EndpointEvent) bool {
		return ev.Endpoint.Name == "web" && ev.Kind != discovery.Deleted && ev.Endpoint.Interface.Index != 0
	})
	if again.Interface.Index != hostSide(t, e, "web") {
		t.Errorf("web again: interface %+v, want index %d", again.Interface, hostSide(t, e, "web"))
	}
	e.Docker(t, "rm", "-f", "web", "hostnet")
	rec.wait(t, "Deleted of web again", named(discovery.Deleted, "web"))
	select {
	case ev := <-rec:
		if ev.Endpoint.Name == "hostnet" {
			t.Errorf("an event for the host-network container: %+v", ev)
		}
	case <-time.After(500 * time.Millisecond):
	}
	if n := w.Len(); n != 0 {
		t.Errorf("the watcher holds %d endpoints after every container went", n)
	}
}
