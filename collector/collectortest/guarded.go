package collectortest

import (
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/periscope-dev/periscope/api/access"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// Guarded is a collector served as the binary serves it: its API and the
// policy API behind an access guard on TCP, and the same API on its Unix
// socket, with one flow source that emits nothing.
type Guarded struct {
	Collector *collector.Collector
	// URL is the TCP listener's, http://host:port; Socket is the API
	// socket's path.
	URL, Socket string
}

// StartGuarded runs a Guarded collector of node "node1" until the test
// ends. token is the API token on TCP ("" for none); the web UI's files
// are public (access.StaticFiles). more, when not nil, adds routes built
// from the collector (the web UI's "GET /").
func StartGuarded(t testing.TB, token string, more func(*collector.Collector) map[string]http.Handler) *Guarded {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(t.TempDir(), "collector.sock")
	handlers := map[string]http.Handler{}
	c, err := collector.New(collector.Options{
		Topology: &collector.Topology{NodeName: "node1"}, Sources: []collector.Source{apitest.NewSource(nil, 1)}, Listener: ln,
		Handlers: handlers, Socket: socket,
		Access: access.New(access.Policy{Token: token, ListenHost: "127.0.0.1", Public: access.StaticFiles}),
	})
	if err != nil {
		t.Fatal(err)
	}
	store, err := policystore.New(policystore.Options{Applier: nopApplier{}, Endpoints: c.Registry()})
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(handlers, store.Handlers())
	if more != nil {
		maps.Copy(handlers, more(c))
	}
	apitest.Start(t, "collector", c)
	return &Guarded{Collector: c, URL: "http://" + c.Addr().String(), Socket: socket}
}

// SocketClient is a client of the collector's API socket.
func (g *Guarded) SocketClient() *http.Client { return apitest.SocketClient(g.Socket) }

// nopApplier brings nothing into force: the policy API's answers are what
// these tests read.
type nopApplier struct{}

func (nopApplier) ApplyPolicy(*compile.Compiled) error { return nil }
func (nopApplier) SetPolicyAudit(uint32, bool) error   { return nil }
