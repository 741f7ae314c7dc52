package envoy

import (
	"fmt"
	"net/netip"

	bootstrap "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpopts "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/periscope-dev/periscope/proxy/xds"
)

// Bootstrap returns Envoy's bootstrap (JSON, for --config-yaml): node id
// nodeID, ADS over the Unix socket xdsSocket (cluster xds.XDSCluster), and
// the admin interface at admin, which must be a loopback address.
func Bootstrap(nodeID, xdsSocket string, admin netip.AddrPort) ([]byte, error) {
	if !admin.Addr().IsLoopback() {
		return nil, fmt.Errorf("envoy bootstrap: admin address %s is not on loopback", admin)
	}
	h2, err := anypb.New(&httpopts.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpopts.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &core.Http2ProtocolOptions{}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	ads := &core.ConfigSource{ResourceApiVersion: core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}}
	b := &bootstrap.Bootstrap{
		Node: &core.Node{Id: nodeID, Cluster: "periscope"},
		DynamicResources: &bootstrap.Bootstrap_DynamicResources{
			AdsConfig: &core.ApiConfigSource{
				ApiType:             core.ApiConfigSource_GRPC,
				TransportApiVersion: core.ApiVersion_V3,
				GrpcServices: []*core.GrpcService{{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{
					EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: xds.XDSCluster}}}},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		StaticResources: &bootstrap.Bootstrap_StaticResources{Clusters: []*cluster.Cluster{{
			Name:                          xds.XDSCluster,
			ClusterDiscoveryType:          &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
			ConnectTimeout:                durationpb.New(1e9),
			TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
			LoadAssignment: &endpoint.ClusterLoadAssignment{
				ClusterName: xds.XDSCluster,
				Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: []*endpoint.LbEndpoint{{
					HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
						Address: &core.Address{Address: &core.Address_Pipe{Pipe: &core.Pipe{Path: xdsSocket}}}}}}}}},
			},
		}}},
		Admin: &bootstrap.Admin{Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: admin.Addr().String(), PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(admin.Port())}}}}},
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	return protojson.Marshal(b)
}
