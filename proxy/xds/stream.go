package xds

import (
	"errors"
	"io"
	"slices"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// watch is what one stream's Envoy asked of one resource type.
type watch struct {
	// open: a request waits for a response (the last response was ACKed
	// or NACKed, or none was sent yet).
	open bool
	// names are the route configurations the last request asked for;
	// none: none (RDS is not a wildcard type). Listeners and clusters are
	// always sent whole.
	names []string
	// version and sentNames are what Envoy has or was last sent: the
	// version and the names it covered; nonce is the last response's.
	version   string
	sentNames []string
	nonce     string
}

// StreamAggregatedResources serves one Envoy's ADS stream in the state of
// the world variant. For each type Envoy subscribes to, it answers an open
// request with the snapshot's resources of that type (of the route
// configurations, only those asked for by name) once the snapshot has a
// version Envoy does not have, or Envoy asks for other route
// configurations; a new snapshot goes out clusters first, then listeners,
// then routes. A request that answers an earlier response than the last
// (a stale nonce) is ignored, as xDS says; a NACK keeps the rejected
// version from being sent again. The first request must name this
// server's node.
func (s *Server) StreamAggregatedResources(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	s.streams.Add(1)
	defer s.streamClosed()
	ctx := stream.Context()
	reqs := make(chan *discovery.DiscoveryRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	watches := map[string]*watch{}
	node := false
	for {
		snap, wire, updated := s.current()
		if snap != nil {
			if err := s.push(stream, watches, snap.Version, wire); err != nil {
				return err
			}
		}
		select {
		case req := <-reqs:
			if !node {
				if id := req.GetNode().GetId(); id != s.nodeID {
					return status.Errorf(codes.PermissionDenied, "xds: node %q: this collector serves node %q", id, s.nodeID)
				}
				node = true
			}
			s.request(watches, req)
		case <-updated:
		case err := <-recvErr:
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return status.Error(codes.Unavailable, "xds: the collector is stopping")
		}
	}
}

// request notes what req says Envoy has, and opens its type's watch
// unless req answers an earlier response than the last.
func (s *Server) request(watches map[string]*watch, req *discovery.DiscoveryRequest) {
	t, nack := req.GetTypeUrl(), req.GetErrorDetail() != nil
	s.observe(t, req.GetVersionInfo(), req.GetResponseNonce(), req.GetErrorDetail().GetMessage(), nack)
	if !slices.Contains(pushOrder, t) {
		s.log.Debug("envoy asked for a type this server does not serve", "type", t)
		return
	}
	w := watches[t]
	switch {
	case w == nil: // the stream's first request of t: Envoy may have a version from an earlier stream
		w = &watch{}
		watches[t] = w
		if !nack {
			w.version, w.sentNames = req.GetVersionInfo(), slices.Clone(req.GetResourceNames())
		}
	case req.GetResponseNonce() != w.nonce:
		return // stale: the answer to the last response is still to come
	}
	w.open, w.names = true, slices.Clone(req.GetResourceNames())
}

// push answers every open watch that lacks version (or, of the routes,
// the names asked for), in pushOrder.
func (s *Server) push(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer,
	watches map[string]*watch, version string, wire map[string][]wireResource) error {
	for _, t := range pushOrder {
		w := watches[t]
		byName := t == RouteType // listeners and clusters: always all of them
		if w == nil || !w.open || (w.version == version && (!byName || sameSet(w.names, w.sentNames))) {
			continue
		}
		resp := &discovery.DiscoveryResponse{VersionInfo: version, TypeUrl: t, Nonce: s.nextNonce()}
		for _, r := range wire[t] {
			if !byName || slices.Contains(w.names, r.name) {
				resp.Resources = append(resp.Resources, r.any)
			}
		}
		s.sent(resp.Nonce, version)
		if err := stream.Send(resp); err != nil {
			return err
		}
		w.open, w.version, w.nonce, w.sentNames = false, version, resp.Nonce, w.names
	}
	return nil
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
