package xds

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
)

// Server serves one node's snapshot over ADS and watches what Envoy does
// with it.
type Server struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer // no incremental (delta) xDS

	ctx    context.Context // ends every stream
	nodeID string
	log    *slog.Logger

	nacks   atomic.Uint64
	streams atomic.Int64 // open ADS streams

	mu       sync.Mutex
	snap     *Snapshot
	wire     map[string][]wireResource // snap's resources by type URL
	updated  chan struct{}             // closed and replaced at each Set
	acked    map[string]string         // type URL -> version Envoy last accepted on an open stream
	nonces   map[string]string         // response nonce -> the version it carried
	rejected map[string]bool           // versions Envoy rejected
	noRoutes map[string]bool           // versions without routes: Envoy asks for none
	changed  chan struct{}             // closed and replaced whenever acked or rejected change
	nonce    uint64                    // the last response's nonce
}

// NewServer makes the ADS server of node nodeID; ctx bounds its streams.
func NewServer(ctx context.Context, nodeID string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		ctx:      ctx,
		nodeID:   nodeID,
		log:      log.With("component", "xds"),
		updated:  make(chan struct{}),
		acked:    map[string]string{},
		nonces:   map[string]string{},
		rejected: map[string]bool{},
		noRoutes: map[string]bool{},
		changed:  make(chan struct{}),
	}
}

// Register adds the ADS service to g.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s)
}

// Set makes snap the node's configuration and sends it to Envoy. snap
// should come from Build (checked whole); Set checks only that it can be
// sent.
func (s *Server) Set(_ context.Context, snap *Snapshot) error {
	if snap == nil || snap.Version == "" {
		return fmt.Errorf("xds: set a snapshot without a version")
	}
	wire, err := snap.wire()
	if err != nil {
		return fmt.Errorf("xds: set: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.noRoutes) > 1024 {
		clear(s.noRoutes)
	}
	s.noRoutes[snap.Version] = len(snap.Routes) == 0
	s.snap, s.wire = snap, wire
	close(s.updated)
	s.updated = make(chan struct{})
	return nil
}

// current is the snapshot to serve (nil: none yet), its resources and the
// channel that closes when it is replaced.
func (s *Server) current() (*Snapshot, map[string][]wireResource, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, s.wire, s.updated
}

// sent notes the version a response (nonce) carried, so that a NACK of it
// names the version.
func (s *Server) sent(nonce, version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.nonces) > 1024 {
		clear(s.nonces) // a NACK of a forgotten nonce only goes unattributed
	}
	s.nonces[nonce] = version
}

// nextNonce is a nonce no response of this server carried before.
func (s *Server) nextNonce() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nonce++
	return fmt.Sprint(s.nonce)
}

// observe notes what a request says of the configuration Envoy has: a
// NACK (error detail) of the version its nonce carried, or the version it
// accepted (version info).
func (s *Server) observe(typeURL, version, nonce, rejection string, nack bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if nack {
		s.nacks.Add(1)
		v := s.nonces[nonce]
		s.rejected[v] = true
		s.log.Warn("envoy rejected a configuration (NACK)", "type", typeURL, "version", v,
			"kept_version", version, "error", rejection)
		s.notifyLocked()
		return
	}
	if version != "" && s.acked[typeURL] != version {
		s.acked[typeURL] = version
		s.log.Debug("envoy accepted a configuration", "type", typeURL, "version", version)
		s.notifyLocked()
	}
}

// streamClosed forgets what the closed stream's Envoy accepted: a new
// Envoy accepts afresh.
func (s *Server) streamClosed() {
	s.streams.Add(-1)
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.acked)
	s.notifyLocked()
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// NACKs counts the configurations Envoy rejected.
func (s *Server) NACKs() uint64 { return s.nacks.Load() }

// Connected reports whether an Envoy has an ADS stream open.
func (s *Server) Connected() bool { return s.streams.Load() > 0 }

// Acked reports whether Envoy accepted version of the listeners, routes
// and clusters on its current stream (of the routes only when the version
// has some: without a listener Envoy subscribes to none).
func (s *Server) Acked(version string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ackedLocked(version)
}

func (s *Server) ackedLocked(version string) bool {
	for _, t := range pushOrder {
		if t == RouteType && s.noRoutes[version] {
			continue
		}
		if s.acked[t] != version {
			return false
		}
	}
	return true
}

// WaitAcked waits until Envoy accepted version (see Acked), and fails
// when it rejects that version or ctx ends.
func (s *Server) WaitAcked(ctx context.Context, version string) error {
	for {
		s.mu.Lock()
		ok, bad, ch := s.ackedLocked(version), s.rejected[version], s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		if bad {
			return fmt.Errorf("xds: envoy rejected version %s (see the NACK logged)", version)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("xds: wait for envoy to accept version %s: %w", version, ctx.Err())
		}
	}
}
