package hubble

import (
	"context"
	"math"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/periscope-dev/periscope/api/agentevent"
)

// GetNamespaces lists the namespaces of the flows of the last hour, with
// their cluster, as Hubble lists them.
func (s *Server) GetNamespaces(ctx context.Context, _ *observerpb.GetNamespacesRequest) (*observerpb.GetNamespacesResponse, error) {
	list, err := s.backend.Namespaces(ctx)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	resp := &observerpb.GetNamespacesResponse{Namespaces: make([]*observerpb.Namespace, len(list))}
	for i, ns := range list {
		resp.Namespaces[i] = &observerpb.Namespace{Cluster: ns.Cluster, Namespace: ns.Namespace}
	}
	return resp, nil
}

// GetAgentEvents streams the agent events req selects: number with first
// (the first N) or without (the last N; per node through a relay), since,
// until and follow, as `hubble observe agent-events` asks them.
func (s *Server) GetAgentEvents(req *observerpb.GetAgentEventsRequest, stream observerpb.Observer_GetAgentEventsServer) error {
	if req.GetFirst() && req.GetFollow() {
		return status.Error(codes.InvalidArgument, "first cannot be combined with follow")
	}
	q := agentevent.Query{Follow: req.GetFollow()}
	var err error
	if q.Since, q.Until, err = timeWindow(req.GetSince(), req.GetUntil()); err != nil {
		return err
	}
	// The CLI's --all asks for the last math.MaxUint64: every event.
	if n := req.GetNumber(); n > 0 && n < math.MaxInt32 {
		if req.GetFirst() {
			q.First = int(n)
		} else {
			q.Last = int(n)
		}
	}
	if q.Follow {
		release, err := s.follower()
		if err != nil {
			return err
		}
		defer release()
	}
	ctx := stream.Context()
	err = s.backend.AgentEvents().Read(ctx, q, func(e *agentevent.Event) error {
		ts := timestamppb.New(e.Time)
		return stream.Send(&observerpb.GetAgentEventsResponse{AgentEvent: AgentEventToProto(e), NodeName: e.NodeName, Time: ts})
	})
	return streamError(ctx, err)
}

// AgentEventToProto converts e to Hubble's flow.AgentEvent.
func AgentEventToProto(e *agentevent.Event) *flowpb.AgentEvent {
	pe := &flowpb.AgentEvent{Type: flowpb.AgentEventType(e.Type)}
	switch {
	case e.Type == agentevent.AgentStarted:
		pe.Notification = &flowpb.AgentEvent_AgentStart{AgentStart: &flowpb.TimeNotification{Time: timestamppb.New(e.Start)}}
	case e.Policy != nil:
		pe.Notification = &flowpb.AgentEvent_PolicyUpdate{PolicyUpdate: &flowpb.PolicyUpdateNotification{
			Labels: e.Policy.Labels, Revision: e.Policy.Revision, RuleCount: e.Policy.RuleCount,
		}}
	case e.Endpoint != nil:
		pe.Notification = &flowpb.AgentEvent_EndpointUpdate{EndpointUpdate: &flowpb.EndpointUpdateNotification{
			Id: e.Endpoint.ID, Labels: e.Endpoint.Labels, PodName: e.Endpoint.PodName, Namespace: e.Endpoint.Namespace,
		}}
	}
	return pe
}
