package collector

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/periscope-dev/periscope/api/apitest"
)

// logRecorder keeps the messages and attributes of the records it handles.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	line := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) has(parts ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if all(line, parts) {
			return true
		}
	}
	return false
}

func all(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func TestEndpointsOfThePreviousRunAreKept(t *testing.T) {
	addr := netip.MustParseAddr
	declared := &Topology{NodeName: "n", Endpoints: []ResolvedEndpoint{
		{Config: EndpointConfig{Name: "a", Interface: "veth-a"}, HostIfIndex: 10, HostIfName: "veth-a", IPs: []netip.Addr{addr("198.18.0.2")}},
	}}
	state := []keptEndpoint{
		{Config: EndpointConfig{Name: "a", Namespace: "default", Interface: "veth-a", IPs: []string{"198.18.0.2"}}, IfIndex: 10}, // still declared
		{Config: EndpointConfig{Name: "b", Namespace: "shop", Interface: "veth-b", IPs: []string{"198.18.0.3"}, Labels: map[string]string{"app": "b"}}, IfIndex: 11},
		{Config: EndpointConfig{Name: "c", Namespace: "default", Interface: "veth-gone", IPs: []string{"198.18.0.4"}}, IfIndex: 20},
		{Config: EndpointConfig{Name: "d", Namespace: "default", Interface: "veth-a", IPs: []string{"198.18.0.5"}}, IfIndex: 10},
		{Config: EndpointConfig{Name: "e", Namespace: "default", Interface: "veth-e", IPs: []string{"198.18.0.2"}}, IfIndex: 12},
		{Config: EndpointConfig{Name: "f", Namespace: "default", NetNS: "gone-ns", Interface: "veth-f", IPs: []string{"198.18.0.6"}}, IfIndex: 13},
		{Config: EndpointConfig{Name: "g", Namespace: "default", Interface: "veth-g", IPs: []string{"198.18.0.7"}}, IfIndex: 14},
	}
	// veth-g is another device now: a new pod's veth got the old name.
	ifindex := map[string]uint32{"veth-a": 10, "veth-b": 11, "veth-e": 12, "veth-f": 13, "veth-g": 99}
	resolve := func(cfg EndpointConfig) (ResolvedEndpoint, error) {
		if cfg.NetNS != "" {
			return ResolvedEndpoint{}, errors.New("open netns: no such file")
		}
		i, ok := ifindex[cfg.Interface]
		if !ok {
			return ResolvedEndpoint{}, errors.New("host interface " + cfg.Interface + ": Link not found")
		}
		re := ResolvedEndpoint{Config: cfg, HostIfIndex: i, HostIfName: cfg.Interface}
		for _, s := range cfg.IPs {
			re.IPs = append(re.IPs, addr(s))
		}
		return re, nil
	}
	log := &logRecorder{}
	got := withKeptEndpoints(state, declared, resolve, slog.New(log))

	var names []string
	for _, re := range got.Endpoints {
		names = append(names, re.Config.namespace()+"/"+re.Config.Name)
		if want := re.Config.Name != "a"; re.Kept != want {
			t.Errorf("%s: kept %v, want %v", re.Config.Name, re.Kept, want)
		}
	}
	if want := []string{"default/a", "shop/b", "default/f"}; !slices.Equal(names, want) {
		t.Errorf("endpoints %v, want %v", names, want)
	}
	if len(declared.Endpoints) != 1 {
		t.Errorf("the declared topology was changed: %d endpoints", len(declared.Endpoints))
	}
	for _, want := range [][]string{
		{"WARN endpoint kept", "endpoint=shop/b", "interface=veth-b"},
		{"WARN endpoint kept", "endpoint=default/f", "interface=veth-f"},
		{"WARN endpoint of the previous run forgotten: its interface is gone", "endpoint=default/c"},
		{"WARN endpoint of the previous run forgotten", "endpoint=default/g", "interface veth-g is another device now (index 99, was 14)"},
		{"WARN endpoint of the previous run superseded", "endpoint=default/d", "by=default/a"},
		{"WARN endpoint of the previous run superseded", "endpoint=default/e", "by=default/a"},
	} {
		if !log.has(want...) {
			t.Errorf("no log line with %q in:\n%s", want, strings.Join(log.lines, "\n"))
		}
	}
	reg, err := NewRegistry(got)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range reg.Endpoints() {
		if e.Name == "b" && !strings.Contains(e.Kept, "periscope endpoint remove shop/b") || e.Name == "a" && e.Kept != "" {
			t.Errorf("status of %s: kept %q", e.Name, e.Kept)
		}
	}
}

func TestRemoveEndpoint(t *testing.T) {
	statePath := filepath.Join(t.TempDir(), "state", "endpoints.json")
	att := &fakeAttacher{}
	c, err := New(Options{Topology: testTopology(), Sources: []Source{apitest.NewSource(nil, 0)}, Attacher: att,
		Listen: "127.0.0.1:0", EndpointState: statePath})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := loadEndpointState(statePath)
	if err != nil || len(saved) != 2 || saved[1].Config.Name != "backend" || saved[1].Config.Interface != "veth-be-h" ||
		saved[1].IfIndex != 11 || saved[1].Config.IPs[0] != "198.18.0.3" {
		t.Fatalf("state after New: %+v, %v", saved, err)
	}
	var changes int
	c.OnEndpointsChange(func() error { changes++; return nil })
	apitest.Start(t, "collector", c)
	base := "http://" + c.Addr().String()
	backend := netip.MustParseAddr("198.18.0.3")
	if _, ok := c.LookupIP(backend); !ok {
		t.Fatal("the collector's lookup does not know the backend")
	}

	req, _ := http.NewRequest(http.MethodDelete, base+EndpointPath("shop", "backend"), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res RemoveResult
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || res.Removed == nil || res.Removed.Name != "backend" || res.Error != "" {
		t.Fatalf("DELETE: %s %+v", resp.Status, res)
	}
	if _, ok := c.Registry().LookupIP(backend); ok {
		t.Error("the registry still knows the removed endpoint")
	}
	if _, ok := c.LookupIP(backend); ok {
		t.Error("the collector's lookup (the DNS proxy's) still knows the removed endpoint")
	}
	if eps := c.Status().Endpoints; len(eps) != 1 || eps[0].Name != "frontend-7d4" {
		t.Errorf("status endpoints %+v, want frontend only", eps)
	}
	if changes != 1 {
		t.Errorf("%d change notifications, want 1", changes)
	}
	att.mu.Lock()
	calls := slices.Clone(att.calls)
	att.mu.Unlock()
	if !slices.Contains(calls, "detach veth-be-h") || slices.Contains(calls, "detach veth-fe-h") {
		t.Errorf("attacher calls %v, want backend's interface detached only", calls)
	}
	saved, err = loadEndpointState(statePath)
	if err != nil || len(saved) != 1 || saved[0].Config.Name != "frontend-7d4" {
		t.Errorf("state after the removal: %+v, %v", saved, err)
	}

	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("second DELETE: %s, want 404", resp.Status)
	}
	if _, err := c.RemoveEndpoint("default", "nobody"); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("RemoveEndpoint of nobody: %v", err)
	}
	var listed []EndpointStatus
	resp, err = http.Get(base + EndpointsPath)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&listed)
	resp.Body.Close()
	if len(listed) != 1 || listed[0].Name != "frontend-7d4" {
		t.Errorf("GET %s: %+v", EndpointsPath, listed)
	}
}

func TestAnUnreadableEndpointStateStopsTheStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endpoints.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{Topology: testTopology(), Sources: []Source{apitest.NewSource(nil, 0)}, EndpointState: path})
	if err == nil || !strings.Contains(err.Error(), "endpoint state "+path) {
		t.Errorf("New with a broken state file: %v", err)
	}
}
