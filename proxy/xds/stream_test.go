package xds

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"
)

const testNode = "node-1"

// adsClient is one ADS stream to a Server, as Envoy would hold it.
type adsClient struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps  chan *discovery.DiscoveryResponse
	err    chan error
}

// serveADS runs s on a loopback gRPC server until the test ends.
func serveADS(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func openADS(t *testing.T, conn *grpc.ClientConn) *adsClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &adsClient{t: t, stream: stream, resps: make(chan *discovery.DiscoveryResponse, 16), err: make(chan error, 1)}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				c.err <- err
				return
			}
			c.resps <- r
		}
	}()
	return c
}

func (c *adsClient) send(req *discovery.DiscoveryRequest) {
	c.t.Helper()
	if req.Node == nil {
		req.Node = &core.Node{Id: testNode}
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// next is the next response, which must come within a few seconds and be
// of typeURL and version.
func (c *adsClient) next(typeURL, version string) *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resps:
		if r.GetTypeUrl() != typeURL || r.GetVersionInfo() != version {
			c.t.Fatalf("response %s version %s, want %s version %s", r.GetTypeUrl(), r.GetVersionInfo(), typeURL, version)
		}
		return r
	case err := <-c.err:
		c.t.Fatalf("stream ended: %v", err)
	case <-time.After(5 * time.Second):
		c.t.Fatalf("no %s response of version %s", typeURL, version)
	}
	return nil
}

// none checks that no response comes for a while.
func (c *adsClient) none() {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("unexpected response %s version %s", r.GetTypeUrl(), r.GetVersionInfo())
	case <-time.After(200 * time.Millisecond):
	}
}

// ack answers r as accepted.
func (c *adsClient) ack(r *discovery.DiscoveryResponse, names ...string) {
	c.send(&discovery.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce(), ResourceNames: names})
}

// twoRoutes is a snapshot of version with one listener and two route
// configurations, a and b (not Check-consistent: the stream does not care).
func twoRoutes(t *testing.T, version string) *Snapshot {
	t.Helper()
	snap, err := Build(version, []Listener{{Endpoint: 7, Direction: "ingress", Port: 80, ProxyPort: 15100}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap.Routes = []*route.RouteConfiguration{{Name: "a"}, {Name: "b"}}
	return snap
}

func routeNamesOf(t *testing.T, r *discovery.DiscoveryResponse) string {
	t.Helper()
	var names []string
	for _, a := range r.GetResources() {
		var rc route.RouteConfiguration
		if err := a.UnmarshalTo(&rc); err != nil {
			t.Fatal(err)
		}
		names = append(names, rc.GetName())
	}
	return strings.Join(names, ",")
}

func TestADSStream(t *testing.T) {
	s := NewServer(context.Background(), testNode, nil)
	conn := serveADS(t, s)

	t.Run("a stream of another node is refused", func(t *testing.T) {
		c := openADS(t, conn)
		c.send(&discovery.DiscoveryRequest{Node: &core.Node{Id: "other"}, TypeUrl: ClusterType})
		select {
		case err := <-c.err:
			if grpcstatus.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `"other"`) {
				t.Fatalf("stream ended with %v, want PermissionDenied naming the node", err)
			}
		case r := <-c.resps:
			t.Fatalf("response %v to another node", r)
		case <-time.After(5 * time.Second):
			t.Fatal("the stream of another node stays open")
		}
	})

	c := openADS(t, conn)
	c.send(&discovery.DiscoveryRequest{TypeUrl: ClusterType})
	c.send(&discovery.DiscoveryRequest{TypeUrl: ListenerType})
	c.none() // nothing to serve yet
	if err := s.Set(context.Background(), twoRoutes(t, "v1")); err != nil {
		t.Fatal(err)
	}
	cds := c.next(ClusterType, "v1")
	lds := c.next(ListenerType, "v1")
	if len(cds.GetResources()) != 1 || len(lds.GetResources()) != 1 {
		t.Fatalf("%d clusters, %d listeners, want 1 and 1", len(cds.GetResources()), len(lds.GetResources()))
	}
	c.ack(cds)
	c.ack(lds)
	c.send(&discovery.DiscoveryRequest{TypeUrl: RouteType, ResourceNames: []string{"a"}})
	rds := c.next(RouteType, "v1")
	if got := routeNamesOf(t, rds); got != "a" {
		t.Fatalf("route configurations %q, want the one asked for, a", got)
	}
	c.ack(rds, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitAcked(ctx, "v1"); err != nil {
		t.Fatal(err)
	}

	t.Run("other route names at the same version are sent", func(t *testing.T) {
		c.send(&discovery.DiscoveryRequest{TypeUrl: RouteType, VersionInfo: "v1", ResponseNonce: rds.GetNonce(), ResourceNames: []string{"a", "b"}})
		rds = c.next(RouteType, "v1")
		if got := routeNamesOf(t, rds); got != "a,b" {
			t.Fatalf("route configurations %q, want a,b", got)
		}
		c.ack(rds, "a", "b")
		c.none()
	})

	t.Run("no route names: no route configurations", func(t *testing.T) {
		c.send(&discovery.DiscoveryRequest{TypeUrl: RouteType, VersionInfo: "v1", ResponseNonce: rds.GetNonce()})
		rds = c.next(RouteType, "v1")
		if got := routeNamesOf(t, rds); got != "" {
			t.Fatalf("route configurations %q, want none", got)
		}
		c.ack(rds, "a", "b")
		rds = c.next(RouteType, "v1")
		if got := routeNamesOf(t, rds); got != "a,b" {
			t.Fatalf("route configurations %q, want a,b", got)
		}
		c.ack(rds, "a", "b")
		c.none()
	})

	t.Run("a request with a stale nonce is ignored", func(t *testing.T) {
		c.send(&discovery.DiscoveryRequest{TypeUrl: ClusterType, VersionInfo: "v0", ResponseNonce: "stale"})
		c.none()
	})

	t.Run("a new version goes out clusters, listeners, routes", func(t *testing.T) {
		if err := s.Set(context.Background(), twoRoutes(t, "v2")); err != nil {
			t.Fatal(err)
		}
		cds, lds, rds = c.next(ClusterType, "v2"), c.next(ListenerType, "v2"), c.next(RouteType, "v2")
		c.ack(cds)
		c.ack(lds)
		c.ack(rds, "a", "b")
		if err := s.WaitAcked(ctx, "v2"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a NACK is counted, fails the wait and is not answered with the same version", func(t *testing.T) {
		if err := s.Set(context.Background(), twoRoutes(t, "v3")); err != nil {
			t.Fatal(err)
		}
		cds := c.next(ClusterType, "v3")
		c.ack(cds)
		lds := c.next(ListenerType, "v3")
		c.send(&discovery.DiscoveryRequest{TypeUrl: ListenerType, VersionInfo: "v2", ResponseNonce: lds.GetNonce(),
			ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "bad listener"}})
		c.next(RouteType, "v3") // its watch was open
		err := s.WaitAcked(ctx, "v3")
		if err == nil || !strings.Contains(err.Error(), "rejected") {
			t.Fatalf("wait for a rejected version: %v", err)
		}
		if s.NACKs() != 1 {
			t.Fatalf("%d NACKs, want 1", s.NACKs())
		}
		c.none()
	})

	t.Run("a reconnecting Envoy gets only the types whose version it lacks", func(t *testing.T) {
		if err := s.Set(context.Background(), twoRoutes(t, "v4")); err != nil {
			t.Fatal(err)
		}
		c2 := openADS(t, conn)
		c2.send(&discovery.DiscoveryRequest{TypeUrl: ClusterType, VersionInfo: "v4"})
		c2.send(&discovery.DiscoveryRequest{TypeUrl: ListenerType, VersionInfo: "v3"})
		c2.next(ListenerType, "v4")
		c2.none()
	})
}
