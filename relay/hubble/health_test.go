package hubble

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func healthClient(t *testing.T, b Backend) healthpb.HealthClient {
	t.Helper()
	conn, err := grpc.NewClient(serveAddr(t, b), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func checkHealth(t *testing.T, c healthpb.HealthClient, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return resp.GetStatus(), err
}

func TestHealthOfACollector(t *testing.T) {
	col, _, _ := startCollector(t, "node1", testFlows())
	c := healthClient(t, NewCollectorBackend(col))
	for _, svc := range []string{"", ObserverServiceName} {
		if st, err := checkHealth(t, c, svc); err != nil || st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("service %q: %v, %v; want SERVING", svc, st, err)
		}
	}
	if _, err := checkHealth(t, c, "grpc.reflection.v1.ServerReflection"); status.Code(err) != codes.NotFound {
		t.Errorf("an unknown service: %v, want NotFound", err)
	}
}

func TestHealthOfARelayFollowsItsNodes(t *testing.T) {
	_, r, stops := relayClient(t)
	c := healthClient(t, NewRelayBackend(r))
	stops[0]()
	stops[1]()
	waitFor(t, "two nodes down", func() bool { return r.Status().NumUnavailableNodes == 2 })
	if st, err := checkHealth(t, c, ObserverServiceName); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("with one node left: %v, %v; want SERVING", st, err)
	}
	stops[2]()
	waitFor(t, "every node down", func() bool { return r.Status().NumUnavailableNodes == 3 })
	if st, err := checkHealth(t, c, ObserverServiceName); err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("with no node: %v, %v; want NOT_SERVING", st, err)
	}
}
