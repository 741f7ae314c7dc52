package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/relay"
	"github.com/periscope-dev/periscope/relay/hubble"
)

// serveFlags say how the collector's APIs are served: mutual TLS for the
// HTTP API (what a relay connects to) and Hubble's gRPC API.
type serveFlags struct {
	tlsCert      string
	tlsKey       string
	tlsClientCA  string
	hubbleListen string
	hubblePoints pointViewFlag
}

func (s *serveFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&s.tlsCert, "tls-cert", "", "serve the APIs over TLS with this certificate (PEM)")
	f.StringVar(&s.tlsKey, "tls-key", "", "key (PEM) of --tls-cert")
	f.StringVar(&s.tlsClientCA, "tls-client-ca", "", "require client certificates signed by this CA (PEM): mutual TLS with relays")
	f.StringVar(&s.hubbleListen, "hubble-listen", hubble.DefaultListen, `address of Hubble's Observer gRPC API ("" to disable)`)
	addPointViewFlag(f, &s.hubblePoints)
}

// tlsConfig is the servers' TLS configuration, nil for plain TCP.
func (s serveFlags) tlsConfig() (*tls.Config, error) {
	switch {
	case s.tlsCert == "" && s.tlsKey == "" && s.tlsClientCA == "":
		return nil, nil
	case s.tlsCert == "" || s.tlsKey == "":
		return nil, errors.New("--tls-cert and --tls-key go together (and --tls-client-ca needs both)")
	}
	cfg, err := relay.ServerTLSConfig(s.tlsCert, s.tlsKey, s.tlsClientCA)
	if err != nil {
		return nil, fmt.Errorf("collector TLS: %w", err)
	}
	return cfg, nil
}

// listen opens the HTTP API's listener, over TLS when configured.
func listenAPI(addr string, cfg *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (--listen): %w", addr, err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}

// serveHubble serves Hubble's Observer API over the collector's store until
// ctx is done, requiring token ("" for none) on every call but the health
// check, connections seen at two points as points says; the returned wait
// blocks until the server has stopped.
func serveHubble(ctx context.Context, addr string, c *collector.Collector, cfg *tls.Config, token string,
	points hubble.PointView, logger *slog.Logger) (wait func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("hubble API: listen on %s (--hubble-listen; \"\" disables it): %w", addr, err)
	}
	var opts []grpc.ServerOption
	if cfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	logger.Info("hubble API listening", "listen", ln.Addr().String(), "tls", cfg != nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hubble.Serve(ctx, ln, hubble.NewCollectorBackend(c), hubble.Options{Followers: c.Followers(), Token: token, Points: points, GRPC: opts}); err != nil {
			logger.Error("hubble API stopped", "err", err)
		}
	}()
	return func() { <-done }, nil
}
