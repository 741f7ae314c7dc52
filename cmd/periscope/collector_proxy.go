package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/proxy"
	"github.com/periscope-dev/periscope/proxy/accesslog"
	"github.com/periscope-dev/periscope/proxy/envoy"
)

// proxyFlags configure the node's L7 proxy (Envoy).
type proxyFlags struct {
	enabled     bool
	binary      string
	external    bool
	socket      string
	admin       string
	keepHeaders []string
	redirects   []string
}

func (p *proxyFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&p.enabled, "envoy", false, "run the L7 proxy: Envoy behind the datapath's redirect, enforcing L7 policy (rules.http), its access logs as L7 flows")
	f.StringVar(&p.binary, "envoy-binary", proxy.DefaultEnvoyBinary, "the envoy executable the collector runs and supervises")
	f.BoolVar(&p.external, "envoy-external", false, "do not run Envoy: serve xDS and access logs to one started with the bootstrap written beside --envoy-socket")
	f.StringVar(&p.socket, "envoy-socket", proxy.DefaultSocket, "Unix socket of the xDS and access-log gRPC server Envoy connects to")
	f.StringVar(&p.admin, "envoy-admin", "127.0.0.1:9901", "Envoy's admin address (loopback only)")
	f.StringArrayVar(&p.keepHeaders, "envoy-keep-headers", nil, "sensitive HTTP headers whose values L7 flows keep (default: Authorization, Cookie, Set-Cookie and Proxy-Authorization are redacted)")
	f.StringArrayVar(&p.redirects, "proxy-redirect", nil, "ENDPOINT:PORT[:ingress|egress] to send through Envoy for visibility, besides the ports L7 policy covers (repeatable; default direction ingress)")
}

// newProxy builds the proxy manager redirecting through dp (its part of
// the datapath's redirect table), or nil when --envoy is off.
func newProxy(fl proxyFlags, nodeName string, dp datapath.RedirectSetter, logger *slog.Logger) (*proxy.Manager, error) {
	if !fl.enabled {
		if len(fl.redirects) > 0 {
			return nil, errors.New("--proxy-redirect needs --envoy")
		}
		return nil, nil
	}
	admin, err := netip.ParseAddrPort(fl.admin)
	if err != nil {
		return nil, fmt.Errorf("--envoy-admin: %w", err)
	}
	if nodeName == "" {
		nodeName = "periscope"
	}
	m, err := proxy.New(proxy.Options{
		Datapath: dp, NodeID: nodeName, Socket: fl.socket, External: fl.external,
		Envoy:     envoy.Options{Binary: fl.binary, Admin: admin},
		AccessLog: accesslog.Options{KeepHeaders: fl.keepHeaders},
		// Envoy lets go of idle connections before the datapath forgets
		// their flows (and so how to steer them).
		IdleTimeout: datapath.DefaultProxyIdle / 2,
		Logger:      logger,
	})
	if err != nil {
		return nil, fmt.Errorf("--envoy: %w", err)
	}
	return m, nil
}

// startProxy runs m until ctx ends and applies --proxy-redirect against
// the collector's endpoints; wait blocks until it stopped.
func startProxy(ctx context.Context, m *proxy.Manager, fl proxyFlags, c *collector.Collector,
	logger *slog.Logger) (wait func(), err error) {
	if m == nil {
		return func() {}, nil
	}
	rs, err := parseRedirects(fl.redirects, c.Registry().Endpoints())
	if err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(ctx, func() { close(ready) }); err != nil {
			logger.Error("L7 proxy", "err", err)
		}
	}()
	select {
	case <-ready:
	case <-done:
		return nil, errors.New("L7 proxy did not start")
	}
	go func() {
		if err := m.SetRedirects(ctx, rs); err != nil {
			logger.Error("L7 proxy: set redirects", "err", err)
		}
	}()
	return func() { <-done }, nil
}

// parseRedirects resolves ENDPOINT:PORT[:DIRECTION] against the endpoints.
func parseRedirects(specs []string, eps []collector.EndpointStatus) ([]proxy.Redirect, error) {
	var rs []proxy.Redirect
	for _, spec := range specs {
		parts := strings.Split(spec, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("--proxy-redirect %q: want ENDPOINT:PORT[:ingress|egress]", spec)
		}
		port, err := strconv.ParseUint(parts[1], 10, 16)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("--proxy-redirect %q: port %q", spec, parts[1])
		}
		dir := datapath.RedirectIngress
		if len(parts) == 3 {
			switch parts[2] {
			case "ingress":
			case "egress":
				dir = datapath.RedirectEgress
			default:
				return nil, fmt.Errorf("--proxy-redirect %q: direction %q is neither ingress nor egress", spec, parts[2])
			}
		}
		var ep *collector.EndpointStatus
		for i := range eps {
			if eps[i].Name == parts[0] {
				ep = &eps[i]
			}
		}
		if ep == nil || ep.IfIndex == 0 {
			return nil, fmt.Errorf("--proxy-redirect %q: no endpoint %q with a host interface in --config", spec, parts[0])
		}
		r := proxy.Redirect{Endpoint: ep.IfIndex, Direction: dir, Port: uint16(port)}
		for _, s := range ep.IPs {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("--proxy-redirect %q: endpoint address %q: %w", spec, s, err)
			}
			r.Addrs = append(r.Addrs, a)
		}
		rs = append(rs, r)
	}
	return rs, nil
}
