package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	grpclog "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/periscope-dev/periscope/datapath/netlab/labtest"
	"github.com/periscope-dev/periscope/proxy/envoy"
	"github.com/periscope-dev/periscope/proxy/xds"
)

// benchUpstream is the breakdown's static cluster: the server's direct
// port, for a listener the client connects to itself.
const benchUpstream = "periscope_bench_upstream"

// BenchmarkL7Breakdown says where the cost of the redirect and Envoy is,
// in one run: the same GET at saturation (wrk -t2 -c32 -d5s, keep-alive)
// direct; to an Envoy listener the client connects to itself (no redirect,
// no original_src, a static cluster to the direct port), without and with
// the access log, and with it lean (no extra headers, no tags); through
// the redirect with the shipped listener minus the access log; as shipped
// (visibility); as shipped with the L7 rule (RBAC). For each: requests/s,
// Envoy's CPU per request, this process's (the server and the access-log
// source, which counts the records) and wrk's, the machine's idle share,
// and Envoy's upstream connections against its upstream requests
// (pooling); then p50 and p99 of a paced 1000 requests/s for 5s, and, of
// the modes that log, p50, p99 and max of Envoy's own time per request in
// it (-envoy-own-1k-: accesslog's ProxyTime, without the kernel's and the
// upstream's). The relay mode is a TCP relay with no logic in this process
// (serveRelay): the floor of the two socket hops any proxy adds.
// PERISCOPE_BENCH_MODES (comma-separated names) runs only those modes
// besides direct; PERISCOPE_BENCH_LOG_BUFFER sets Envoy's access-log
// buffer (bytes), PERISCOPE_BENCH_CONCURRENCY its workers.
//
//	sudo CI=true go test -run '^$' -bench BenchmarkL7Breakdown -benchtime 1x ./proxy/
func BenchmarkL7Breakdown(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		labtest.SkipOrFail(b, "no wrk (scripts/deps.sh installs it)")
	}
	l := newL7Lab(b, envoyBenchOptions())
	l.countOnly.Store(true)
	if n, err := strconv.Atoi(os.Getenv("PERISCOPE_BENCH_LOG_BUFFER")); err == nil {
		l.m.opts.AccessLogBuffer = uint32(n)
	}
	only := map[string]bool{}
	for _, m := range strings.Split(os.Getenv("PERISCOPE_BENCH_MODES"), ",") {
		if m != "" {
			only[m] = true
		}
	}
	ctx := context.Background()
	if err := l.m.SetRedirects(ctx, []Redirect{l.redirect()}); err != nil {
		b.Fatal(err)
	}
	plainPort := freePort(b, l.lab.HostIPv4)
	relayPort := freePort(b, l.lab.HostIPv4)
	serveRelay(b, netip.AddrPortFrom(l.lab.HostIPv4, relayPort), netip.AddrPortFrom(l.server.IPv4, portDirect))
	logged := map[string]bool{"envoy+log": true, "envoy+lean-log": true, "redirect": true, "redirect+rbac": true}
	noLog := func(m *hcm.HttpConnectionManager) { m.AccessLog = nil }
	keep := func(*hcm.HttpConnectionManager) {}
	modes := []struct {
		name   string
		target netip.AddrPort
		setup  func() error
	}{
		{"direct", netip.AddrPortFrom(l.server.IPv4, portDirect), func() error { return nil }},
		{"envoy", netip.AddrPortFrom(l.lab.HostIPv4, plainPort), func() error {
			return l.serveBench(ctx, "bench-envoy", xds.Rules{}, keep, plainPort, noLog)
		}},
		{"envoy+log", netip.AddrPortFrom(l.lab.HostIPv4, plainPort), func() error {
			return l.serveBench(ctx, "bench-envoy-log", xds.Rules{}, keep, plainPort, keep)
		}},
		{"envoy+lean-log", netip.AddrPortFrom(l.lab.HostIPv4, plainPort), func() error {
			return l.serveBench(ctx, "bench-envoy-lean-log", xds.Rules{}, keep, plainPort, leanLog)
		}},
		{"relay", netip.AddrPortFrom(l.lab.HostIPv4, relayPort), func() error { return nil }},
		{"redirect-nolog", netip.AddrPortFrom(l.server.IPv4, portHTTP), func() error {
			return l.serveBench(ctx, "bench-redirect-nolog", xds.Rules{}, noLog, 0, nil)
		}},
		{"redirect", netip.AddrPortFrom(l.server.IPv4, portHTTP), func() error {
			return l.serveBench(ctx, "bench-redirect", xds.Rules{}, keep, 0, nil)
		}},
		{"redirect+rbac", netip.AddrPortFrom(l.server.IPv4, portHTTP), func() error {
			return l.serveBench(ctx, "bench-redirect-rbac", l.benchRules(), keep, 0, nil)
		}},
	}
	for range b.N {
		var direct float64
		for _, m := range modes {
			if len(only) > 0 && !only[m.name] && m.name != "direct" {
				continue
			}
			if err := m.setup(); err != nil {
				b.Fatalf("%s: %v", m.name, err)
			}
			url := "http://" + m.target.String() + "/public/x"
			cmd := exec.Command("ip", "netns", "exec", l.client.NetNSName, wrk, "-t2", "-c32", "-d5s", "--latency", url)
			envoyPID := l.m.Supervisor().PID()
			envoy0, self0 := processCPU(envoyPID), processCPU(os.Getpid())
			idle0, total0 := machineIdle()
			cx0, rq0 := l.upstreamCounters()
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("%s: wrk: %v\n%s", m.name, err, out)
			}
			envoyCPU, selfCPU := processCPU(envoyPID)-envoy0, processCPU(os.Getpid())-self0
			idle1, total1 := machineIdle()
			cx1, rq1 := l.upstreamCounters()
			wrkCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			sat, err := parseWrk(string(out))
			if err != nil {
				b.Fatalf("%s: %v\n%s", m.name, err, out)
			}
			if non2xx := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindStringSubmatch(string(out)); non2xx != nil {
				b.Fatalf("%s: %s refused\n%s", m.name, non2xx[1], out)
			}
			if m.name == "direct" {
				direct = sat.rps
			}
			n := sat.rps * 5
			b.ReportMetric(sat.rps, m.name+"-req/s")
			b.ReportMetric(sat.rps/direct, m.name+"-ratio")
			b.ReportMetric(float64(envoyCPU.Microseconds())/n, m.name+"-envoy-µs/req")
			b.ReportMetric(float64(selfCPU.Microseconds())/n, m.name+"-server+log-µs/req")
			b.ReportMetric(float64(wrkCPU.Microseconds())/n, m.name+"-wrk-µs/req")
			b.ReportMetric(100*float64(idle1-idle0)/float64(max(total1-total0, 1)), m.name+"-idle-%")
			if m.name != "direct" {
				b.ReportMetric(float64(cx1-cx0), m.name+"-upstream-cx")
				b.ReportMetric(float64(rq1-rq0), m.name+"-upstream-rq")
			}
			l.quiet()
			l.ownTimes.start()
			p50, p99, failed := l.pacedTo(1000, 5*time.Second, m.target, "/public/x")
			if failed > 0 {
				b.Fatalf("%s: %d paced requests failed", m.name, failed)
			}
			b.ReportMetric(float64(p50.Microseconds()), m.name+"-1k-p50-µs")
			b.ReportMetric(float64(p99.Microseconds()), m.name+"-1k-p99-µs")
			if logged[m.name] {
				reportProxyTimes(b, m.name+"-envoy-own", l.ownTimes.stop(5000), 5000)
			} else {
				l.ownTimes.stop(0)
			}
		}
	}
}

// leanLog logs no headers besides those every entry has, and no tags.
func leanLog(m *hcm.HttpConnectionManager) {
	var c grpclog.HttpGrpcAccessLogConfig
	if err := m.AccessLog[0].GetTypedConfig().UnmarshalTo(&c); err != nil {
		panic(err)
	}
	c.AdditionalRequestHeadersToLog, c.AdditionalResponseHeadersToLog, c.CommonConfig.CustomTags = nil, nil, nil
	a, err := anypb.New(&c)
	if err != nil {
		panic(err)
	}
	m.AccessLog[0].ConfigType = &accesslog.AccessLog_TypedConfig{TypedConfig: a}
}

// envoyBenchOptions are the supervised Envoy's options of a benchmark:
// PERISCOPE_BENCH_CONCURRENCY sets its workers.
func envoyBenchOptions() (eo envoy.Options) {
	if n, err := strconv.Atoi(os.Getenv("PERISCOPE_BENCH_CONCURRENCY")); err == nil {
		eo.Concurrency = n
	}
	return eo
}

// serveBench serves Envoy the redirect's listener with rules (its
// connection manager changed by redirected) and, with plainPort, a
// listener on the lab's host address at plainPort that the client connects to
// itself, its connection manager changed by plain, to the server's direct
// port; it waits until Envoy accepted it and the listeners listen.
func (l *l7Lab) serveBench(ctx context.Context, version string, rules xds.Rules,
	redirected func(*hcm.HttpConnectionManager), plainPort uint16, plain func(*hcm.HttpConnectionManager)) error {
	l.m.mu.Lock()
	port := l.m.ports[l.redirect().key()]
	l.m.mu.Unlock()
	snap, err := xds.Build(version, []xds.Listener{{Endpoint: uint32(l.server.HostVeth.Index), Direction: "ingress",
		Port: portHTTP, ProxyPort: port, Rules: rules, UpstreamMark: 0xb00}},
		xds.Options{FlushInterval: l.m.opts.AccessLogFlush, BufferBytes: l.m.opts.AccessLogBuffer})
	if err != nil {
		return err
	}
	lis := snap.Listeners[0]
	if err := changeHCM(lis, redirected); err != nil {
		return err
	}
	wait := []uint16{port}
	if plainPort != 0 {
		p := proto.Clone(lis).(*listener.Listener)
		p.Name, p.Transparent, p.ListenerFilters, p.AdditionalAddresses = "bench-plain", nil, nil, nil
		p.Address = &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: l.lab.HostIPv4.String(), PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(plainPort)}}}}
		p.FilterChains[0].FilterChainMatch = nil
		if err := changeHCM(p, func(m *hcm.HttpConnectionManager) {
			m.StatPrefix = "bench-plain"
			m.RouteSpecifier = &hcm.HttpConnectionManager_RouteConfig{RouteConfig: &route.RouteConfiguration{
				Name: "bench-plain", VirtualHosts: []*route.VirtualHost{{Name: "bench-plain", Domains: []string{"*"},
					Routes: []*route.Route{{Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
						Action: &route.Route_Route{Route: &route.RouteAction{
							ClusterSpecifier: &route.RouteAction_Cluster{Cluster: benchUpstream},
							Timeout:          durationpb.New(0)}}}}}}}}
			plain(m)
		}); err != nil {
			return err
		}
		snap.Listeners = append(snap.Listeners, p)
		od := snap.Clusters[0]
		snap.Clusters = append(snap.Clusters, &cluster.Cluster{
			Name: benchUpstream, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
			ConnectTimeout:                durationpb.New(time.Second),
			TypedExtensionProtocolOptions: od.TypedExtensionProtocolOptions,
			LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: benchUpstream, Endpoints: []*endpoint.LocalityLbEndpoints{{
				LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
					Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
						Address: l.server.IPv4.String(), PortSpecifier: &core.SocketAddress_PortValue{PortValue: portDirect}}}}}}}}}}},
		})
		wait = append(wait, plainPort)
	}
	return l.serveResources(ctx, snap, wait)
}

// serveResources sets snap as Envoy's configuration, waits until Envoy
// accepted it and ports listen (v4 and v6 for the redirect's proxy port,
// the first; v4 for the others).
func (l *l7Lab) serveResources(ctx context.Context, snap *xds.Snapshot, ports []uint16) error {
	version := snap.Version
	if err := snap.Check(); err != nil {
		return err
	}
	if err := l.m.XDS().Set(ctx, snap); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := l.m.XDS().WaitAcked(wctx, version); err != nil {
		return fmt.Errorf("configuration %s: %w", version, err)
	}
	// A listener whose filters changed is replaced: wait until its port
	// listens again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v4, v6, err := listeningPorts()
		ok := err == nil
		for i, p := range ports {
			ok = ok && v4[p] && (i > 0 || v6[p])
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("configuration %s: ports %v do not listen", version, ports)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// changeHCM applies change to the connection manager of lis's first filter
// chain.
func changeHCM(lis *listener.Listener, change func(*hcm.HttpConnectionManager)) error {
	f := lis.GetFilterChains()[0].GetFilters()[0]
	var m hcm.HttpConnectionManager
	if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
		return err
	}
	change(&m)
	a, err := anypb.New(&m)
	if err != nil {
		return err
	}
	f.ConfigType = &listener.Filter_TypedConfig{TypedConfig: a}
	return nil
}

// upstreamCounters are Envoy's upstream connections and requests opened
// so far over every cluster but the collector's.
func (l *l7Lab) upstreamCounters() (cx, rq int64) {
	out, _ := exec.Command("curl", "-s", "http://"+l.m.Supervisor().AdminAddress()+"/stats").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, v, ok := strings.Cut(line, ": ")
		if !ok || !strings.HasPrefix(name, "cluster.") || strings.HasPrefix(name, "cluster."+xds.XDSCluster+".") {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case strings.HasSuffix(name, ".upstream_cx_total"):
			cx += n
		case strings.HasSuffix(name, ".upstream_rq_total"):
			rq += n
		}
	}
	return cx, rq
}

// freePort is a TCP port free on addr now.
func freePort(b *testing.B, addr netip.Addr) uint16 {
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// machineIdle is the machine's idle and total CPU time so far, in clock
// ticks (/proc/stat).
func machineIdle() (idle, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return idle, total
}
