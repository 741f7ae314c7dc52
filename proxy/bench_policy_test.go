package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extauthz "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy/envoy"
	"github.com/periscope-dev/periscope/proxy/xds"
)

// benchRules is the L7 policy of the decision benchmark: the client may
// GET /public/...; the benchmark's requests all are.
func (l *l7Lab) benchRules() xds.Rules {
	return xds.Rules{Groups: []xds.PeerGroup{{
		Policies: []api.PolicyRef{{Kind: "CiliumNetworkPolicy", Namespace: "default", Name: "bench", Revision: 1}},
		Peers: xds.Peers{Ranges: []xds.Range{{Prefix: netip.PrefixFrom(l.client.IPv4, 32)},
			{Prefix: netip.PrefixFrom(l.client.IPv6, 128)}}},
		HTTP: []xds.HTTPRule{{Method: "GET", Path: "/public/.*"}},
	}}}
}

// BenchmarkL7PolicyDecision decides by measurement where L7 policy runs:
// the same requests (GET /public/x from the allowed client) directly, and
// through the redirect and Envoy with no policy (visibility), with the
// policy in Envoy's RBAC filter (what Periscope ships), and with the
// policy decided by an ext_authz gRPC call to a server in this process
// over a Unix socket (as the collector would answer it: the same rule,
// the peer by address, fail closed with a 200ms timeout). For each: wrk
// at saturation (requests/s, p99) and a paced 1000 requests/s (p50,
// p99), and the CPU Envoy and this process (server, access-log source)
// spent per request at saturation. PERISCOPE_BENCH_PIN=1 pins wrk and
// this process (server, paced client) to CPU 0 and Envoy to CPU 1;
// PERISCOPE_BENCH_CONCURRENCY sets Envoy's workers (default 2),
// PERISCOPE_BENCH_FLUSH and PERISCOPE_BENCH_LOG_BUFFER its access-log
// buffering (defaults 200ms, 16KiB); PERISCOPE_BENCH_STATS=1 logs Envoy's
// connection, request and access-log counters.
//
//	sudo CI=true go test -run '^$' -bench BenchmarkL7PolicyDecision -benchtime 1x ./proxy/
func BenchmarkL7PolicyDecision(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		labtest.SkipOrFail(b, "no wrk (scripts/deps.sh installs it)")
	}
	eo := envoy.Options{}
	if n, err := strconv.Atoi(os.Getenv("PERISCOPE_BENCH_CONCURRENCY")); err == nil {
		eo.Concurrency = n
	}
	l := newL7Lab(b, eo)
	l.countOnly.Store(true)
	if d, err := time.ParseDuration(os.Getenv("PERISCOPE_BENCH_FLUSH")); err == nil {
		l.m.opts.AccessLogFlush = d
	}
	if n, err := strconv.Atoi(os.Getenv("PERISCOPE_BENCH_LOG_BUFFER")); err == nil {
		l.m.opts.AccessLogBuffer = uint32(n)
	}
	pin := os.Getenv("PERISCOPE_BENCH_PIN") == "1"
	if pin {
		pinTo(b, os.Getpid(), "0")
	}
	authz := l.startExtAuthz(b)
	ctx := context.Background()
	modes := []struct {
		name  string
		port  uint16
		setup func() error
	}{
		{"direct", portDirect, func() error { return nil }},
		{"visibility", portHTTP, func() error { return l.m.SetRedirects(ctx, []Redirect{l.redirect()}) }},
		{"rbac", portHTTP, func() error {
			r := l.redirect()
			r.Rules = l.benchRules()
			return l.m.SetRedirects(ctx, []Redirect{r})
		}},
		{"extauthz", portHTTP, func() error { return l.useExtAuthz(ctx, authz) }},
	}
	for range b.N {
		for _, m := range modes {
			if err := m.setup(); err != nil {
				b.Fatalf("%s: %v", m.name, err)
			}
			if pin && m.name != "direct" {
				pinTo(b, l.m.Supervisor().PID(), "1")
			}
			url := "http://" + netip.AddrPortFrom(l.server.IPv4, m.port).String() + "/public/x"
			args := []string{"netns", "exec", l.client.NetNSName, wrk, "-t2", "-c32", "-d5s", "--latency", url}
			cmd := exec.Command("ip", args...)
			if pin {
				cmd = exec.Command("taskset", append([]string{"-c", "0", "ip"}, args...)...)
			}
			envoyCPU0, selfCPU0 := processCPU(l.m.Supervisor().PID()), processCPU(os.Getpid())
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("%s: wrk: %v\n%s", m.name, err, out)
			}
			envoyCPU, selfCPU := processCPU(l.m.Supervisor().PID())-envoyCPU0, processCPU(os.Getpid())-selfCPU0
			sat, err := parseWrk(string(out))
			if err != nil {
				b.Fatalf("%s: %v\n%s", m.name, err, out)
			}
			// Refused requests the policy allows: an ext_authz check that
			// timed out fails closed.
			refused := 0
			if non2xx := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindStringSubmatch(string(out)); non2xx != nil {
				refused, _ = strconv.Atoi(non2xx[1])
			}
			p50, p99, failed := l.pacedPath(1000, 5*time.Second, m.port, "/public/x")
			b.ReportMetric(float64(refused), m.name+"-sat-refused")
			b.ReportMetric(float64(failed), m.name+"-1k-failed")
			if n := sat.rps * 5; n > 0 {
				if m.name != "direct" {
					b.ReportMetric(float64(envoyCPU.Microseconds())/n, m.name+"-envoy-cpu-µs/req")
				}
				b.ReportMetric(float64(selfCPU.Microseconds())/n, m.name+"-server+log-cpu-µs/req")
			}
			b.ReportMetric(sat.rps, m.name+"-req/s")
			b.ReportMetric(float64(sat.p99.Microseconds()), m.name+"-sat-p99-µs")
			b.ReportMetric(float64(p50.Microseconds()), m.name+"-1k-p50-µs")
			b.ReportMetric(float64(p99.Microseconds()), m.name+"-1k-p99-µs")
		}
	}
	b.ReportMetric(float64(authz.calls.Load()), "extauthz-calls")
	if os.Getenv("PERISCOPE_BENCH_STATS") != "" {
		out, _ := exec.Command("curl", "-s", "http://"+l.m.Supervisor().AdminAddress()+"/stats").Output()
		for _, line := range strings.Split(string(out), "\n") {
			if regexp.MustCompile(`upstream_cx_total|upstream_rq_total|downstream_cx_total|downstream_rq_total|access_log|server.concurrency`).MatchString(line) {
				b.Log(line)
			}
		}
	}
}

// pinTo pins every thread of process pid to cpus (taskset's list).
func pinTo(b *testing.B, pid int, cpus string) {
	b.Helper()
	if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		b.Fatalf("taskset %d: %v\n%s", pid, err, out)
	}
}

// extAuthz is the prototype of L7 decisions in the collector: Envoy's
// ext_authz Check, answered by the benchmark's rule for the peer's
// address.
type extAuthz struct {
	authv3.UnimplementedAuthorizationServer
	socket string
	peers  []netip.Prefix
	method *regexp.Regexp
	path   *regexp.Regexp
	calls  atomic.Int64
}

func (l *l7Lab) startExtAuthz(b *testing.B) *extAuthz {
	rules := l.benchRules()
	a := &extAuthz{socket: filepath.Join(b.TempDir(), "authz.sock"),
		method: regexp.MustCompile(`^(?:` + rules.Groups[0].HTTP[0].Method + `)$`),
		path:   regexp.MustCompile(`^(?:` + rules.Groups[0].HTTP[0].Path + `)$`)}
	for _, r := range rules.Groups[0].Peers.Ranges {
		a.peers = append(a.peers, r.Prefix)
	}
	ln, err := net.Listen("unix", a.socket)
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, a)
	go func() { _ = g.Serve(ln) }()
	b.Cleanup(g.Stop)
	return a
}

// Check allows a request of an allowed peer that matches the rule.
func (a *extAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	a.calls.Add(1)
	attrs := req.GetAttributes()
	peer, err := netip.ParseAddr(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress())
	http := attrs.GetRequest().GetHttp()
	allowed := false
	if err == nil {
		for _, p := range a.peers {
			if p.Contains(peer.Unmap()) && a.method.MatchString(http.GetMethod()) && a.path.MatchString(http.GetPath()) {
				allowed = true
			}
		}
	}
	if allowed {
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)}}, nil
	}
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Body: "Access denied\r\n"}}}, nil
}

const authzCluster = "periscope_authz"

// useExtAuthz serves the visibility listener with an ext_authz filter (to
// a cluster of a's socket, fail closed, 200ms) in front of the router.
func (l *l7Lab) useExtAuthz(ctx context.Context, a *extAuthz) error {
	if err := l.m.SetRedirects(ctx, []Redirect{l.redirect()}); err != nil {
		return err
	}
	l.m.mu.Lock()
	port := l.m.ports[l.redirect().key()]
	l.m.mu.Unlock()
	snap, err := xds.Build("extauthz", []xds.Listener{{Endpoint: uint32(l.server.HostVeth.Index), Direction: "ingress",
		Port: portHTTP, ProxyPort: port, UpstreamMark: 0xb00}}, xds.Options{})
	if err != nil {
		return err
	}
	lis := snap.Listeners[0]
	f := lis.GetFilterChains()[0].GetFilters()[0]
	var m hcm.HttpConnectionManager
	if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
		return err
	}
	authzFilter, err := anypb.New(&extauthz.ExtAuthz{
		TransportApiVersion: core.ApiVersion_V3,
		FailureModeAllow:    false,
		Services: &extauthz.ExtAuthz_GrpcService{GrpcService: &core.GrpcService{
			Timeout:         durationpb.New(200 * time.Millisecond),
			TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: authzCluster}}}},
	})
	if err != nil {
		return err
	}
	m.HttpFilters = append([]*hcm.HttpFilter{{Name: "envoy.filters.http.ext_authz",
		ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: authzFilter}}}, m.HttpFilters...)
	if f.ConfigType.(*listener.Filter_TypedConfig).TypedConfig, err = anypb.New(&m); err != nil {
		return err
	}
	h2, err := anypb.New(&httpopts.HttpProtocolOptions{UpstreamProtocolOptions: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &core.Http2ProtocolOptions{}}}}})
	if err != nil {
		return err
	}
	snap.Clusters = append(snap.Clusters, &cluster.Cluster{
		Name: authzCluster, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:                durationpb.New(time.Second),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: authzCluster, Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_Pipe{Pipe: &core.Pipe{Path: a.socket}}}}}}}}}},
	})
	if err := snap.Check(); err != nil {
		return err
	}
	if err := l.m.XDS().Set(ctx, snap); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := l.m.XDS().WaitAcked(wctx, "extauthz"); err != nil {
		return fmt.Errorf("ext_authz configuration: %w", err)
	}
	// The listener is replaced (its filters changed): wait until its
	// port listens again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v4, v6, err := listeningPorts()
		if err == nil && v4[port] && v6[port] {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the ext_authz listener does not listen on %d", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processCPU is the user and system CPU time process pid has used
// (/proc/pid/stat; clock ticks of 10ms); 0 when it cannot tell.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
