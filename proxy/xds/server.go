package xds

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// Server serves one node's snapshot over ADS and watches what Envoy does
// with it.
type Server struct {
	nodeID string
	log    *slog.Logger
	cache  cache.SnapshotCache
	srv    server.Server

	nacks   atomic.Uint64
	streams atomic.Int64 // open ADS streams

	mu       sync.Mutex
	acked    map[string]string // type URL -> version Envoy last accepted on an open stream
	nonces   map[string]string // response nonce -> the version it carried
	rejected map[string]bool   // versions Envoy rejected
	noRoutes map[string]bool   // versions without routes: Envoy asks for none
	changed  chan struct{}     // closed and replaced whenever acked or rejected change
}

// NewServer makes the ADS server of node nodeID; ctx bounds its streams.
func NewServer(ctx context.Context, nodeID string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		nodeID:   nodeID,
		log:      log.With("component", "xds"),
		cache:    cache.NewSnapshotCache(true, cache.IDHash{}, nil),
		acked:    map[string]string{},
		nonces:   map[string]string{},
		rejected: map[string]bool{},
		noRoutes: map[string]bool{},
		changed:  make(chan struct{}),
	}
	s.srv = server.NewServer(ctx, s.cache, server.CallbackFuncs{
		StreamOpenFunc: func(context.Context, int64, string) error {
			s.streams.Add(1)
			return nil
		},
		StreamClosedFunc: func(int64, *core.Node) {
			s.streams.Add(-1)
			s.mu.Lock()
			clear(s.acked) // a new Envoy accepts afresh
			s.notifyLocked()
			s.mu.Unlock()
		},
		StreamRequestFunc: s.onRequest,
		StreamResponseFunc: func(_ context.Context, _ int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
			s.mu.Lock()
			if len(s.nonces) > 1024 {
				clear(s.nonces) // a NACK of a forgotten nonce only goes unattributed
			}
			s.nonces[resp.GetNonce()] = resp.GetVersionInfo()
			s.mu.Unlock()
		},
	})
	return s
}

// Register adds the ADS service to g.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s.srv)
}

func (s *Server) onRequest(_ int64, req *discovery.DiscoveryRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := req.GetErrorDetail(); st != nil {
		s.nacks.Add(1)
		v := s.nonces[req.GetResponseNonce()]
		s.rejected[v] = true
		s.log.Warn("envoy rejected a configuration (NACK)", "type", req.GetTypeUrl(), "version", v,
			"kept_version", req.GetVersionInfo(), "error", st.GetMessage())
		s.notifyLocked()
		return nil
	}
	if v := req.GetVersionInfo(); v != "" && s.acked[req.GetTypeUrl()] != v {
		s.acked[req.GetTypeUrl()] = v
		s.log.Debug("envoy accepted a configuration", "type", req.GetTypeUrl(), "version", v)
		s.notifyLocked()
	}
	return nil
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Set makes snap the node's configuration. snap must come from Build
// (checked whole).
func (s *Server) Set(ctx context.Context, snap *cache.Snapshot) error {
	s.mu.Lock()
	if len(s.noRoutes) > 1024 {
		clear(s.noRoutes)
	}
	s.noRoutes[snap.GetVersion(resource.ListenerType)] = len(snap.GetResources(resource.RouteType)) == 0
	s.mu.Unlock()
	if err := s.cache.SetSnapshot(ctx, s.nodeID, snap); err != nil {
		return fmt.Errorf("xds: set snapshot %s: %w", snap.GetVersion(resource.ListenerType), err)
	}
	return nil
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
	for _, t := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType} {
		if t == resource.RouteType && s.noRoutes[version] {
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
