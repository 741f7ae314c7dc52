package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/discovery"
	"github.com/periscope-dev/periscope/discovery/hostveth"
)

// Source is the Endpoint.Source of containers.
const Source = "docker"

// LabelSource is the source of a container's labels, as in Cilium.
const LabelSource = "container"

// ComposeProjectLabel names a container's compose project, its namespace.
const ComposeProjectLabel = "com.docker.compose.project"

// DefaultNamespace is the namespace of a container of no compose project.
const DefaultNamespace = "default"

// Options configure a Watcher.
type Options struct {
	// Socket is the path of the engine's API socket (e.g.
	// /run/docker.sock, /run/podman/podman.sock); required.
	Socket string
	// Logger receives the watcher's logs; nil discards them.
	Logger *slog.Logger
	// FindInterface finds a container's host-side veth from its addresses;
	// nil means hostveth.Find.
	FindInterface func([]netip.Addr) (discovery.Interface, error)
	// InterfaceRetries is how many times a container whose veth is not
	// found is looked at again (backoff from 10 ms to 2 s); zero means 20.
	InterfaceRetries int
}

// Watcher follows an engine's containers.
type Watcher struct {
	c    *client
	opts Options
	log  *slog.Logger

	// mu guards emitted for Len; Run's goroutine owns it and drivers.
	mu      sync.Mutex
	emitted map[string]discovery.Endpoint
	drivers map[string]string // network id -> driver
}

// New makes a Watcher; Run starts it.
func New(opts Options) (*Watcher, error) {
	if opts.Socket == "" {
		return nil, errors.New("docker watcher: socket path is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FindInterface == nil {
		opts.FindInterface = hostveth.Find
	}
	if opts.InterfaceRetries == 0 {
		opts.InterfaceRetries = 20
	}
	return &Watcher{
		c:       newClient(opts.Socket),
		opts:    opts,
		log:     opts.Logger.With("component", "discovery-docker", "socket", opts.Socket),
		emitted: map[string]discovery.Endpoint{},
		drivers: map[string]string{},
	}, nil
}

// Len returns how many containers are reported as endpoints now.
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.emitted)
}

// Run follows the engine until ctx ends, reporting every change to sink
// from its own goroutine, in order. A lost connection is retried (with
// backoff up to 30 s) and followed by a full resync, which reports the
// containers that went meanwhile as deleted.
func (w *Watcher) Run(ctx context.Context, sink discovery.EndpointSink) error {
	backoff := time.Second
	for {
		err := w.session(ctx, sink)
		if ctx.Err() != nil {
			return nil
		}
		w.log.Warn("container engine unreachable; retrying", "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// retry asks for another look at a container whose veth was not found.
type retry struct {
	id      string
	attempt int
}

// session opens the event stream, resyncs, and follows the stream until
// it breaks or ctx ends.
func (w *Watcher) session(ctx context.Context, sink discovery.EndpointSink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The stream first: what changes during the resync is in it.
	stream, err := w.c.events(ctx)
	if err != nil {
		return err
	}
	events := make(chan event, 64)
	streamErr := make(chan error, 1)
	// On return: close the stream, stop the goroutines, wait for them.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	defer stream.Close()
	wg.Go(func() {
		dec := json.NewDecoder(stream)
		for {
			var ev event
			if err := dec.Decode(&ev); err != nil {
				streamErr <- fmt.Errorf("read events: %w", err)
				return
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
	})

	retries := make(chan retry, 64)
	attempts := map[string]int{}
	look := func(id string, attempt int) {
		found, err := w.sync(ctx, id, sink)
		if err != nil {
			w.log.Warn("container", "id", id, "err", err)
			return
		}
		if found || attempt >= w.opts.InterfaceRetries {
			delete(attempts, id)
			return
		}
		attempts[id] = attempt + 1
		delay := min(10*time.Millisecond<<attempt, 2*time.Second)
		wg.Go(func() {
			select {
			case <-time.After(delay):
				select {
				case retries <- retry{id, attempt + 1}:
				case <-ctx.Done():
				}
			case <-ctx.Done():
			}
		})
	}

	if err := w.resync(ctx, look, sink); err != nil {
		return err
	}
	w.log.Info("watching containers", "endpoints", w.Len())
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-streamErr:
			return err
		case r := <-retries:
			// A newer look (after an event) supersedes this one.
			if attempts[r.id] == r.attempt {
				look(r.id, r.attempt)
			}
		case ev := <-events:
			id := ev.Actor.ID
			switch {
			case ev.Type == "network" && (ev.Action == "connect" || ev.Action == "disconnect"):
				id = ev.Actor.Attributes["container"]
			case ev.Type == "container" && !strings.HasPrefix(ev.Action, "exec_") && !strings.HasPrefix(ev.Action, "health_status"):
			default:
				continue
			}
			if id != "" {
				look(id, 0)
			}
		}
	}
}

// resync looks at every running container and reports the endpoints it
// knew of that are gone.
func (w *Watcher) resync(ctx context.Context, look func(string, int), sink discovery.EndpointSink) error {
	list, err := w.c.containers(ctx)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, c := range list {
		running[c.ID] = true
		look(c.ID, 0)
	}
	w.mu.Lock()
	var gone []string
	for id := range w.emitted {
		if !running[id] {
			gone = append(gone, id)
		}
	}
	w.mu.Unlock()
	for _, id := range gone {
		w.remove(id, sink)
	}
	return nil
}

// sync reports the container's current state; found is false when it is
// an endpoint whose veth was not found.
func (w *Watcher) sync(ctx context.Context, id string, sink discovery.EndpointSink) (found bool, err error) {
	c, err := w.c.inspect(ctx, id)
	if errors.Is(err, errNotFound) {
		w.remove(id, sink)
		return true, nil
	}
	if err != nil {
		return true, err
	}
	ep, ok, err := w.endpoint(ctx, c)
	if err != nil {
		return true, err
	}
	if !ok {
		w.remove(c.ID, sink)
		return true, nil
	}
	var findErr error
	ep.Interface, findErr = w.findInterface(ep)
	w.emit(ep, sink)
	return findErr == nil, nil
}

// endpoint builds the endpoint of a running container with addresses on
// bridge networks; false for any other.
func (w *Watcher) endpoint(ctx context.Context, c *containerJSON) (discovery.Endpoint, bool, error) {
	mode := c.HostConfig.NetworkMode
	if !c.State.Running || mode == "host" || mode == "none" || strings.HasPrefix(mode, "container:") {
		return discovery.Endpoint{}, false, nil
	}
	var ips []netip.Addr
	for name, n := range c.NetworkSettings.Networks {
		driver, err := w.driver(ctx, n.NetworkID, name)
		if err != nil {
			return discovery.Endpoint{}, false, err
		}
		if driver != "bridge" {
			continue
		}
		for _, s := range []string{n.IPAddress, n.GlobalIPv6Address} {
			if ip, err := netip.ParseAddr(s); err == nil && !slices.Contains(ips, ip.Unmap()) {
				ips = append(ips, ip.Unmap())
			}
		}
	}
	if len(ips) == 0 {
		return discovery.Endpoint{}, false, nil
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	ns := c.Config.Labels[ComposeProjectLabel]
	if ns == "" {
		ns = DefaultNamespace
	}
	return discovery.Endpoint{
		Source:    Source,
		ID:        c.ID,
		Name:      strings.TrimPrefix(c.Name, "/"),
		Namespace: ns,
		Labels:    discovery.Labels(LabelSource, c.Config.Labels),
		IPs:       ips,
	}, true, nil
}

// driver returns a network's driver, asked once per network.
func (w *Watcher) driver(ctx context.Context, id, name string) (string, error) {
	key := id
	if key == "" {
		key = name
	}
	if d, ok := w.drivers[key]; ok {
		return d, nil
	}
	n, err := w.c.network(ctx, key)
	if errors.Is(err, errNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	w.drivers[key] = n.Driver
	return n.Driver, nil
}

// findInterface keeps the veth reported before while the addresses are
// the same and it exists; otherwise it looks for one.
func (w *Watcher) findInterface(ep discovery.Endpoint) (discovery.Interface, error) {
	w.mu.Lock()
	prev, ok := w.emitted[ep.ID]
	w.mu.Unlock()
	if ok && prev.Interface != (discovery.Interface{}) && slices.Equal(prev.IPs, ep.IPs) && hostveth.Exists(prev.Interface) {
		return prev.Interface, nil
	}
	return w.opts.FindInterface(ep.IPs)
}

func (w *Watcher) emit(ep discovery.Endpoint, sink discovery.EndpointSink) {
	w.mu.Lock()
	prev, ok := w.emitted[ep.ID]
	if ok && prev.Equal(ep) {
		w.mu.Unlock()
		return
	}
	w.emitted[ep.ID] = ep
	w.mu.Unlock()
	kind := discovery.Added
	if ok {
		kind = discovery.Updated
	}
	w.log.Debug("endpoint "+kind.String(), "container", ep.Name, "ips", ep.IPs, "interface", ep.Interface.Name)
	sink.EndpointChanged(discovery.EndpointEvent{Kind: kind, Endpoint: ep})
}

func (w *Watcher) remove(id string, sink discovery.EndpointSink) {
	w.mu.Lock()
	prev, ok := w.emitted[id]
	delete(w.emitted, id)
	w.mu.Unlock()
	if !ok {
		return
	}
	w.log.Debug("endpoint deleted", "container", prev.Name)
	sink.EndpointChanged(discovery.EndpointEvent{Kind: discovery.Deleted, Endpoint: prev})
}
