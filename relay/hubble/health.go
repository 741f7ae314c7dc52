package hubble

import (
	"context"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// ObserverServiceName is the service Hubble's health check asks about
// (cilium's pkg/hubble/api/v1.ObserverServiceName); `hubble status` checks
// it before it asks for ServerStatus.
const ObserverServiceName = "hubble.server.Observer"

// health answers the standard gRPC health check the way Hubble does: a
// server is SERVING, except a relay with no node connected, which is
// NOT_SERVING as hubble-relay is without available peers. It asks the
// backend on every check, so it needs no goroutine to keep a status fresh.
type health struct {
	healthpb.UnimplementedHealthServer
	backend Backend
}

// Check reports the status of the Observer service ("" means the server).
func (h *health) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.GetService() {
	case "", ObserverServiceName:
	default:
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	st := h.backend.Status(ctx)
	if st.Relay && len(unavailable(st.Nodes)) == len(st.Nodes) {
		return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}, nil
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}
