package xds

import (
	"fmt"
	"strconv"
	"time"

	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	grpclog "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	originaldst "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	originalsrc "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_src/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	tracing "github.com/envoyproxy/go-control-plane/envoy/type/tracing/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Names shared with the bootstrap and the access-log source.
const (
	// XDSCluster is the bootstrap's static cluster of the collector's gRPC
	// server (ADS and the access-log service).
	XDSCluster = "periscope_xds"
	// OriginalDstCluster sends each request to its connection's original
	// destination.
	OriginalDstCluster = "periscope_original_dst"
	// AccessLogName is the log_name of every access-log stream.
	AccessLogName = "periscope"
	// Custom tags each access-log entry carries: which redirect saw it.
	TagEndpoint  = "periscope.endpoint"  // the endpoint id (decimal)
	TagDirection = "periscope.direction" // "ingress" or "egress"
)

// Listener is one redirected (endpoint, direction, port): Envoy listens
// transparently at ProxyPort (on 0.0.0.0 and ::, the datapath finds it by
// 127.0.0.1 and ::1) and proxies HTTP/1.1 and h2c to the original
// destination.
type Listener struct {
	Endpoint  uint32 // the endpoint's id (host-side ifindex)
	Direction string // "ingress" or "egress"
	Port      uint16 // the redirected destination port
	ProxyPort uint16 // where the datapath sends its connections
	// Rules are the port's L7 policy; none: every request passes
	// (visibility).
	Rules Rules
	// UpstreamMark is the SO_MARK of the connections to the upstream, so
	// the datapath neither redirects them again nor lets their replies
	// bypass Envoy.
	UpstreamMark uint32
}

// Name is the listener's (and its route configuration's) name.
func (l Listener) Name() string {
	return fmt.Sprintf("periscope-%s-%d-%d", l.Direction, l.Endpoint, l.Port)
}

// Options are how every listener logs and handles paths.
type Options struct {
	// RequestHeaders and ResponseHeaders are logged with each entry (the
	// access-log source redacts the sensitive ones).
	RequestHeaders, ResponseHeaders []string
	// FlushInterval is how long Envoy buffers access-log entries
	// (default DefaultFlushInterval), BufferBytes how many bytes of them at
	// most (default Envoy's, 16KiB): whichever comes first sends them.
	FlushInterval time.Duration
	BufferBytes   uint32
	// IdleTimeout closes client and upstream connections idle this long
	// (default DefaultIdleTimeout). It must be below the datapath's idle
	// limit of a redirect's connections (datapath.Config.ProxyIdleTimeout):
	// a redirected connection whose flow entry the datapath forgot is no
	// longer steered (its next packet goes direct and fails).
	IdleTimeout time.Duration
}

// DefaultFlushInterval is how long Envoy buffers access-log entries by
// default: a tenth of a second of the 2 s an entry has to become a
// queryable row (docs/BENCHMARKS.md); at high rates the buffer's size
// sends them sooner.
const DefaultFlushInterval = 100 * time.Millisecond

// DefaultIdleTimeout is half the datapath's default idle limit of a
// redirect's connections (datapath.DefaultProxyIdle).
const DefaultIdleTimeout = 5 * time.Minute

// Build makes the whole snapshot of version for ls and checks it.
func Build(version string, ls []Listener, opts Options) (*Snapshot, error) {
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	snap := &Snapshot{Version: version, Clusters: []*cluster.Cluster{originalDstCluster(opts.IdleTimeout)}}
	seen := map[string]bool{}
	for _, l := range ls {
		if l.Direction != "ingress" && l.Direction != "egress" {
			return nil, fmt.Errorf("listener %s: direction %q", l.Name(), l.Direction)
		}
		if l.Port == 0 || l.ProxyPort == 0 || l.Port == l.ProxyPort {
			return nil, fmt.Errorf("listener %s: port %d, proxy port %d", l.Name(), l.Port, l.ProxyPort)
		}
		if seen[l.Name()] {
			return nil, fmt.Errorf("listener %s twice", l.Name())
		}
		seen[l.Name()] = true
		lis, err := buildListener(l, opts)
		if err != nil {
			return nil, err
		}
		snap.Listeners = append(snap.Listeners, lis)
		snap.Routes = append(snap.Routes, buildRoutes(l))
	}
	if err := snap.Check(); err != nil {
		return nil, err
	}
	return snap, nil
}

func socketAddress(addr string, port uint16) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address: addr, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(port)}}}}
}

func typed(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("xds: marshal %T: %v", m, err)) // only our own well-formed messages
	}
	return a
}

// buildListener: transparent sockets on the unspecified addresses (bound to
// a specific one, Envoy would take that for every connection's local
// address instead of asking the socket, and lose the original
// destination); original_src makes the upstream connection from the
// client's address with the upstream mark; the one filter chain matches the
// redirected port only, so a connection made to the proxy port itself,
// from the host or beyond, is closed instead of looping.
func buildListener(l Listener, opts Options) (*listener.Listener, error) {
	m := &hcm.HttpConnectionManager{
		StatPrefix: l.Name(),
		CodecType:  hcm.HttpConnectionManager_AUTO, // HTTP/1.1, and h2c by its preface
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			RouteConfigName: l.Name(),
			ConfigSource: &core.ConfigSource{ResourceApiVersion: core.ApiVersion_V3,
				ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}},
		}},
		HttpFilters: []*hcm.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: typed(&router.Router{
				// The app sees no x-envoy-* headers; no per-route stats per request.
				SuppressEnvoyHeaders: true, DynamicStats: wrapperspb.Bool(false)})}}},
		LocalReplyConfig: deniedReply(),
		// The app gets no x-request-id of Envoy's (and the proxy saves a
		// UUID per request): no change to what the apps see.
		GenerateRequestId:         wrapperspb.Bool(false),
		CommonHttpProtocolOptions: &core.HttpProtocolOptions{IdleTimeout: durationpb.New(opts.IdleTimeout)},
		// Paths are normalised (RFC 3986, "." and ".." removed), "//" merged,
		// and a path with an escaped slash (%2F, %5C) is refused with 400:
		// nothing ambiguous reaches a path rule or the server.
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcm.HttpConnectionManager_REJECT_REQUEST,
		AccessLog: []*accesslog.AccessLog{{Name: "envoy.access_loggers.http_grpc",
			ConfigType: &accesslog.AccessLog_TypedConfig{TypedConfig: typed(&grpclog.HttpGrpcAccessLogConfig{
				CommonConfig: &grpclog.CommonGrpcAccessLogConfig{
					LogName:             AccessLogName,
					TransportApiVersion: core.ApiVersion_V3,
					GrpcService: &core.GrpcService{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{
						EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: XDSCluster}}},
					BufferFlushInterval: durationpb.New(opts.FlushInterval),
					BufferSizeBytes:     bufferBytes(opts.BufferBytes),
					CustomTags: []*tracing.CustomTag{
						literalTag(TagEndpoint, strconv.FormatUint(uint64(l.Endpoint), 10)),
						literalTag(TagDirection, l.Direction),
					},
				},
				AdditionalRequestHeadersToLog:  opts.RequestHeaders,
				AdditionalResponseHeadersToLog: opts.ResponseHeaders,
			})}}},
	}
	if l.Rules.Restricts() {
		f, err := rbacFilter(l.Rules, l.Direction == "egress")
		if err != nil {
			return nil, fmt.Errorf("listener %s: L7 rules: %w", l.Name(), err)
		}
		m.HttpFilters = append([]*hcm.HttpFilter{f}, m.HttpFilters...)
	}
	return &listener.Listener{
		Name:                l.Name(),
		Address:             socketAddress("0.0.0.0", l.ProxyPort),
		AdditionalAddresses: []*listener.AdditionalAddress{{Address: socketAddress("::", l.ProxyPort)}},
		Transparent:         wrapperspb.Bool(true),
		ListenerFilters: []*listener.ListenerFilter{{Name: "envoy.filters.listener.original_dst",
			ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: typed(&originaldst.OriginalDst{})}}, {Name: "envoy.filters.listener.original_src",
			ConfigType: &listener.ListenerFilter_TypedConfig{TypedConfig: typed(&originalsrc.OriginalSrc{Mark: l.UpstreamMark})}}},
		FilterChains: []*listener.FilterChain{{
			FilterChainMatch: &listener.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(l.Port))},
			Filters: []*listener.Filter{{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: typed(m)}}},
		}},
	}, nil
}

func literalTag(name, value string) *tracing.CustomTag {
	return &tracing.CustomTag{Tag: name, Type: &tracing.CustomTag_Literal_{Literal: &tracing.CustomTag_Literal{Value: value}}}
}

// buildRoutes: every request to its original destination, without a
// route timeout (the app's own, unchanged).
func buildRoutes(l Listener) *route.RouteConfiguration {
	return &route.RouteConfiguration{
		Name: l.Name(),
		VirtualHosts: []*route.VirtualHost{{
			Name:    l.Name(),
			Domains: []string{"*"},
			Routes: []*route.Route{{
				Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: OriginalDstCluster},
					Timeout:          durationpb.New(0),
				}},
			}},
		}},
	}
}

// originalDstCluster speaks to the upstream in the downstream's protocol
// (HTTP/1.1 or h2c) and closes connections idle for idle.
func originalDstCluster(idle time.Duration) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 OriginalDstCluster,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_ORIGINAL_DST},
		LbPolicy:             cluster.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       durationpb.New(5 * time.Second),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed(&httpopts.HttpProtocolOptions{
				CommonHttpProtocolOptions: &core.HttpProtocolOptions{IdleTimeout: durationpb.New(idle)},
				UpstreamProtocolOptions: &httpopts.HttpProtocolOptions_UseDownstreamProtocolConfig{
					UseDownstreamProtocolConfig: &httpopts.HttpProtocolOptions_UseDownstreamHttpConfig{
						HttpProtocolOptions:  &core.Http1ProtocolOptions{},
						Http2ProtocolOptions: &core.Http2ProtocolOptions{},
					}},
			}),
		},
	}
}

func bufferBytes(n uint32) *wrapperspb.UInt32Value {
	if n == 0 {
		return nil
	}
	return wrapperspb.UInt32(n)
}
