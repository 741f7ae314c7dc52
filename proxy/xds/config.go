package xds

import (
	"errors"
	"fmt"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// The type URLs of the resources a Snapshot holds, as ADS names them.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
)

// pushOrder is the order in which a stream sends a new version's types:
// clusters before the listeners that use them, listeners before the
// routes they name (xDS's make-before-break).
var pushOrder = []string{ClusterType, ListenerType, RouteType}

// Snapshot is one version of the node's whole configuration.
type Snapshot struct {
	Version   string
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Clusters  []*cluster.Cluster
}

// Check reports what makes s unusable as a whole: a version or name
// missing, a name twice within a type, or listeners whose RDS route
// configurations are not exactly s's Routes (Envoy would wait for a
// missing one; an extra one is never asked for).
func (s *Snapshot) Check() error {
	if s.Version == "" {
		return errors.New("xds snapshot: no version")
	}
	names := func(typ string, ms []proto.Message, name func(proto.Message) string) (map[string]bool, error) {
		seen := make(map[string]bool, len(ms))
		for _, m := range ms {
			n := name(m)
			if n == "" || seen[n] {
				return nil, fmt.Errorf("xds snapshot %s: %s named %q (empty or twice)", s.Version, typ, n)
			}
			seen[n] = true
		}
		return seen, nil
	}
	if _, err := names("listener", messages(s.Listeners), func(m proto.Message) string { return m.(*listener.Listener).GetName() }); err != nil {
		return err
	}
	if _, err := names("cluster", messages(s.Clusters), func(m proto.Message) string { return m.(*cluster.Cluster).GetName() }); err != nil {
		return err
	}
	routes, err := names("route configuration", messages(s.Routes), func(m proto.Message) string { return m.(*route.RouteConfiguration).GetName() })
	if err != nil {
		return err
	}
	referenced := map[string]bool{}
	for _, l := range s.Listeners {
		rds, err := routeNames(l)
		if err != nil {
			return fmt.Errorf("xds snapshot %s: listener %s: %w", s.Version, l.GetName(), err)
		}
		for _, n := range rds {
			if !routes[n] {
				return fmt.Errorf("xds snapshot %s: listener %s names route configuration %q, which it lacks", s.Version, l.GetName(), n)
			}
			referenced[n] = true
		}
	}
	for n := range routes {
		if !referenced[n] {
			return fmt.Errorf("xds snapshot %s: route configuration %q is named by no listener", s.Version, n)
		}
	}
	return nil
}

// routeNames are the RDS route configurations l's HTTP connection
// managers name.
func routeNames(l *listener.Listener) ([]string, error) {
	var out []string
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc == nil || !tc.MessageIs((*hcm.HttpConnectionManager)(nil)) {
				continue
			}
			var m hcm.HttpConnectionManager
			if err := tc.UnmarshalTo(&m); err != nil {
				return nil, fmt.Errorf("filter %s: %w", f.GetName(), err)
			}
			if n := m.GetRds().GetRouteConfigName(); n != "" {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// wireResource is one resource as a response carries it.
type wireResource struct {
	name string
	any  *anypb.Any
}

// wire is s's resources of each type URL, marshalled once for every
// stream and response.
func (s *Snapshot) wire() (map[string][]wireResource, error) {
	out := make(map[string][]wireResource, 3)
	add := func(typ, name string, m proto.Message) error {
		a, err := anypb.New(m)
		if err != nil {
			return fmt.Errorf("xds snapshot %s: marshal %s %q: %w", s.Version, typ, name, err)
		}
		out[typ] = append(out[typ], wireResource{name, a})
		return nil
	}
	for _, l := range s.Listeners {
		if err := add(ListenerType, l.GetName(), l); err != nil {
			return nil, err
		}
	}
	for _, r := range s.Routes {
		if err := add(RouteType, r.GetName(), r); err != nil {
			return nil, err
		}
	}
	for _, c := range s.Clusters {
		if err := add(ClusterType, c.GetName(), c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func messages[M proto.Message](ms []M) []proto.Message {
	out := make([]proto.Message, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}
