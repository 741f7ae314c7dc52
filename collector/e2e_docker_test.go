package collector_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/discovery"
	"github.com/periscope-dev/periscope/discovery/docker"
	"github.com/periscope-dev/periscope/discovery/docker/dockertest"
)

// TestDockerContainersAreAttributedAndReleased runs the collector on the
// real datapath fed by a real dockerd, then a real Podman (both serve the
// Docker Engine API): their containers on the bridge are attributed in
// flows by name, compose project and labels, and when one is removed the
// collector forgets it, detaches and releases its identity.
func TestDockerContainersAreAttributedAndReleased(t *testing.T) {
	for _, engine := range []struct {
		name  string
		start func(*testing.T) *dockertest.Engine
	}{
		{"dockerd", dockertest.Start},
		{"podman", dockertest.StartPodman},
	} {
		t.Run(engine.name, func(t *testing.T) { testContainersAttributedAndReleased(t, engine.start(t)) })
	}
}

func testContainersAttributedAndReleased(t *testing.T, e *dockertest.Engine) {
	grace := time.Second
	n := startDiscoveryNode(t, "node-d", grace, func(ctx context.Context, eps discovery.EndpointSink, _ discovery.PolicySink) error {
		w, err := docker.New(docker.Options{Socket: e.Socket})
		if err != nil {
			return err
		}
		return w.Run(ctx, eps)
	})
	e.Docker(t, "run", "-d", "--name", "client", "--label", "app=client", dockertest.Image, "sleep", "1000")
	e.Docker(t, "run", "-d", "--name", "web", "--label", "app=web", "--label", "com.docker.compose.project=shop",
		dockertest.Image, "sleep", "1000")
	addr := func(name string) netip.Addr {
		return netip.MustParseAddr(e.Docker(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name))
	}
	clientIP, webIP := addr("client"), addr("web")
	n.waitEndpoint(t, clientIP, "client", 30*time.Second)
	web := n.waitEndpoint(t, webIP, "web", 30*time.Second)
	if web.Namespace != "shop" || web.Workload != "web" {
		t.Errorf("web: namespace %q, workload %q; want shop and web", web.Namespace, web.Workload)
	}
	if err := hasLabels(web.Labels, "container:app=web", "container:com.docker.compose.project=shop",
		"k8s:io.kubernetes.pod.namespace=shop"); err != nil {
		t.Error(err)
	}
	var webIf string
	for _, s := range n.c.Registry().Endpoints() {
		if s.Name == "web" {
			webIf = s.Interface
			if s.Source != docker.Source {
				t.Errorf("web's source %q, want %q", s.Source, docker.Source)
			}
		}
	}

	waitWithin(t, 30*time.Second, "a flow from client to web", func() bool {
		e.Docker(t, "exec", "client", "ping", "-c", "1", "-W", "2", webIP.String())
		f, ok := n.flowBetween(t, "client", "web")
		return ok && f.Destination.Namespace == "shop" && f.Destination.Identity == web.Identity
	})

	e.Docker(t, "rm", "-f", "web")
	waitWithin(t, 30*time.Second, "web forgotten", func() bool {
		_, ok := n.endpointAt(webIP)
		return !ok
	})
	waitWithin(t, 30*time.Second, "web's interface detached", func() bool {
		for _, i := range n.dp.Interfaces() {
			if i == webIf {
				return false
			}
		}
		return true
	})
	waitWithin(t, 10*grace+30*time.Second, "web's identity released", func() bool {
		for _, id := range n.c.Identities() {
			if strings.Contains(id.Labels.String(), "container:app=web") {
				return false
			}
		}
		return true
	})
	if _, ok := n.endpointAt(clientIP); !ok {
		t.Error("client is gone too")
	}
}
