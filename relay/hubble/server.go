package hubble

import (
	"context"
	"errors"
	"net"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// DefaultListen is the Hubble API's default address (hubble-relay's port).
const DefaultListen = "127.0.0.1:4245"

// Server implements Hubble's Observer service over a Backend. GetFlows,
// ServerStatus, GetNodes, GetNamespaces and GetAgentEvents are served;
// GetDebugEvents (Cilium's datapath debug messages, which Periscope has
// none of) answers Unimplemented.
type Server struct {
	observerpb.UnimplementedObserverServer
	backend Backend
	opts    Options
}

// Options configure a Server.
type Options struct {
	// Followers bounds the follows (GetFlows and GetAgentEvents with
	// follow) served at once, shared with the other APIs that follow;
	// beyond it a follow is refused with ResourceExhausted. nil: no bound.
	Followers *flowquery.Limit
	// Token, when set, is required on every call but the health check
	// (auth.go), as the HTTP API requires its token.
	Token string
	// Points is what GetFlows serves of a connection seen at two
	// observation points of a node: one flow (ViewConnection, the
	// default) or one per point (ViewEachPoint). A request whose filters
	// name an interface is served point by point whatever Points says.
	Points PointView
	// GRPC are passed to grpc.NewServer by Serve, e.g.
	// grpc.Creds(credentials.NewTLS(cfg)).
	GRPC []grpc.ServerOption
}

// NewServer serves b.
func NewServer(b Backend, o Options) *Server { return &Server{backend: b, opts: o} }

// follower takes a follower's place, or refuses with ResourceExhausted.
func (s *Server) follower() (release func(), err error) {
	release, err = s.opts.Followers.Acquire()
	if err != nil {
		return nil, status.Error(codes.ResourceExhausted, err.Error())
	}
	return release, nil
}

// Register adds the Observer service to g, and the gRPC health service:
// `hubble status` fails without it.
func (s *Server) Register(g *grpc.Server) {
	observerpb.RegisterObserverServer(g, s)
	healthpb.RegisterHealthServer(g, &health{backend: s.backend})
}

// Serve serves the Observer service over b on ln until ctx is done, then
// stops (ending follows).
func Serve(ctx context.Context, ln net.Listener, b Backend, o Options) error {
	g := grpc.NewServer(append(authOptions(o.Token), o.GRPC...)...)
	NewServer(b, o).Register(g)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		g.Stop() // follows never end by themselves, so a graceful stop would wait forever
	}()
	err := g.Serve(ln)
	if ctx.Err() != nil {
		<-stopped
	}
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// GetFlows streams the flows req selects: number with first (the first N) or
// without (the last N; either counts per node through a relay, as
// hubble-relay's does), since, until and follow; the whitelist and
// blacklist are Hubble's FlowFilter lists (CompileFilters). Unsupported
// filter fields are InvalidArgument naming the field. number 0 without
// follow returns every stored flow in the time range. A connection seen
// at two observation points of a node is one flow, or one per point
// (Options.Points, or a filter naming an interface or a trace point);
// number then counts points (pointLimit), but in a follow's replay records.
func (s *Server) GetFlows(req *observerpb.GetFlowsRequest, stream observerpb.Observer_GetFlowsServer) error {
	fs, err := CompileFilters(req.GetWhitelist(), req.GetBlacklist())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if req.GetFirst() && req.GetFollow() {
		return status.Error(codes.InvalidArgument, "first cannot be combined with follow")
	}
	// Like hubble-relay, a number is per node: `hubble observe --last 20`
	// through a relay shows up to 20 flows of each node.
	q := flowquery.Query{PerNode: true}
	view := viewOf(s.opts.Points, req.GetWhitelist(), req.GetBlacklist())
	if !fs.Empty() {
		q.Filter = fs
		if view == ViewEachPoint {
			q.Filter = eachPointSet(fs)
		}
	}
	if q.Since, q.Until, err = timeWindow(req.GetSince(), req.GetUntil()); err != nil {
		return err
	}
	if n := req.GetNumber(); n > 0 {
		if n > 1<<31 {
			n = 1 << 31
		}
		if req.GetFirst() {
			q.First = int(n)
		} else {
			q.Last = int(n)
		}
	}
	if req.GetFollow() {
		release, err := s.follower()
		if err != nil {
			return err
		}
		defer release()
	}
	ctx := stream.Context()
	st := s.backend.Status(ctx)
	if st.Relay {
		if un := unavailable(st.Nodes); len(un) > 0 {
			err := stream.Send(&observerpb.GetFlowsResponse{
				ResponseTypes: &observerpb.GetFlowsResponse_NodeStatus{NodeStatus: &relaypb.NodeStatusEvent{
					StateChange: relaypb.NodeState_NODE_UNAVAILABLE,
					NodeNames:   un,
				}},
				Time: timestamppb.Now(),
			})
			if err != nil {
				return err
			}
		}
	}
	send := func(f *api.Flow) error { return stream.Send(flowResponse(f)) }
	var limit *pointLimit
	if view == ViewEachPoint {
		limit = newPointLimit(&q, req.GetFollow())
		sendPoint := send
		if limit != nil {
			sendPoint = func(f *api.Flow) error { return limit.offer(flowResponse(f), stream.Send) }
		}
		send = func(f *api.Flow) error { return eachPoint(f, fs, sendPoint) }
	}
	if req.GetFollow() {
		_, err = s.backend.Follow(ctx, q, flowquery.Answer{Flow: send})
	} else {
		_, err = s.backend.Query(ctx, q, flowquery.Answer{Flow: send})
	}
	if err == nil && limit != nil {
		err = limit.flush(stream.Send)
	}
	return streamError(ctx, err)
}

// flowResponse is the GetFlows response of f, sharing nothing with it.
func flowResponse(f *api.Flow) *observerpb.GetFlowsResponse {
	pf := FlowToProto(f)
	return &observerpb.GetFlowsResponse{
		ResponseTypes: &observerpb.GetFlowsResponse_Flow{Flow: pf},
		NodeName:      f.NodeName,
		Time:          pf.GetTime(),
	}
}

// streamError is the gRPC status of a stream's end: none when the client
// went, ResourceExhausted at a bound, Unavailable for a reader's failure.
func streamError(ctx context.Context, err error) error {
	switch {
	case err == nil || ctx.Err() != nil:
		return nil
	case errors.Is(err, flowquery.ErrBusy):
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unavailable, err.Error())
}

func unavailable(nodes []Node) []string {
	var out []string
	for _, n := range nodes {
		if !n.Connected {
			out = append(out, n.Name)
		}
	}
	return out
}

// ServerStatus reports the flows stored, their capacity, the flows seen,
// the uptime and, for a relay, the nodes connected and unavailable.
func (s *Server) ServerStatus(ctx context.Context, _ *observerpb.ServerStatusRequest) (*observerpb.ServerStatusResponse, error) {
	st := s.backend.Status(ctx)
	resp := &observerpb.ServerStatusResponse{
		NumFlows:  st.NumFlows,
		MaxFlows:  st.MaxFlows,
		SeenFlows: st.SeenFlows,
		UptimeNs:  uint64(st.Uptime),
		Version:   st.Version,
	}
	if st.Relay {
		un := unavailable(st.Nodes)
		resp.NumConnectedNodes = wrapperspb.UInt32(uint32(len(st.Nodes) - len(un)))
		resp.NumUnavailableNodes = wrapperspb.UInt32(uint32(len(un)))
		resp.UnavailableNodes = un
	}
	if st.Uptime > 0 {
		resp.FlowsRate = float64(st.SeenFlows) / st.Uptime.Seconds()
	}
	return resp, nil
}

// GetNodes lists the nodes behind the server with their state.
func (s *Server) GetNodes(ctx context.Context, _ *observerpb.GetNodesRequest) (*observerpb.GetNodesResponse, error) {
	st := s.backend.Status(ctx)
	resp := &observerpb.GetNodesResponse{}
	for _, n := range st.Nodes {
		state := relaypb.NodeState_NODE_CONNECTED
		if !n.Connected {
			state = relaypb.NodeState_NODE_UNAVAILABLE
		}
		resp.Nodes = append(resp.Nodes, &observerpb.Node{
			Name: n.Name, Version: n.Version, Address: n.Address, State: state,
			UptimeNs: uint64(n.Uptime), NumFlows: n.NumFlows, MaxFlows: n.MaxFlows, SeenFlows: n.SeenFlows,
		})
	}
	return resp, nil
}

var _ observerpb.ObserverServer = (*Server)(nil)
