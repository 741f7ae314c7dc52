package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/periscope-dev/periscope/relay"
	"github.com/periscope-dev/periscope/relay/hubble"
	"github.com/periscope-dev/periscope/ui"
)

// envPeerToken holds the collectors' API token for a relay when no flag
// gives it.
const envPeerToken = "PERISCOPE_PEER_TOKEN"

// relayFlags are the flags of `periscope relay`.
type relayFlags struct {
	peers         []string
	peersFile     string
	listen        string
	hubbleListen  string
	hubblePoints  pointViewFlag
	mergeWindow   time.Duration
	tlsCert       string
	tlsKey        string
	tlsCA         string
	logLevel      string
	ui            bool
	access        accessFlags
	peerToken     string
	peerTokenFile string
	history       bool
	maxFollowers  int
}

func newRelayCmd() *cobra.Command {
	var fl relayFlags
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Join many collectors into one flow API, and serve Hubble's API",
		Long: `Run the relay. It connects to the collectors given by --peers and --peers-file
(one host:port per line, # comments; re-read when it changes), merges their
flows and serves on --listen the same HTTP API as a collector:

  GET /api/v1/flows   NDJSON flows from every node (filter, last, first, all,
                      since, until, follow); live flows are ordered by time
                      within --merge-window. When nodes are unreachable the
                      answer is partial: the X-Periscope-Partial header (and
                      trailer) names them.
  GET /api/v1/status  each node's state: connected, lag, last error, flows
  GET /api/v1/namespaces, GET /api/v1/agent-events
                      every node's namespaces and agent events
  GET /healthz        "ok"

and Hubble's Observer gRPC API (GetFlows, ServerStatus, GetNodes,
GetNamespaces, GetAgentEvents) on --hubble-listen, for the hubble CLI
(hubble observe --server ...).

With --tls-ca the relay reaches its peers over TLS and checks their
certificates against the CA; --tls-cert and --tls-key are its client
certificate for collectors that require one.`,
		Example: `  periscope relay --peers node1:4244,node2:4244
  periscope relay --peers-file peers.txt --tls-cert relay.pem --tls-key relay-key.pem --tls-ca ca.pem
  periscope observe --server 127.0.0.1:4344 --last 100
  hubble observe --server 127.0.0.1:4245 --last 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRelay(cmd, fl)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&fl.peers, "peers", nil, "collector addresses, host:port or http(s):// URLs (comma-separated, repeatable)")
	f.StringVar(&fl.peersFile, "peers-file", "", "file listing collector addresses, one per line; re-read when it changes")
	f.StringVar(&fl.listen, "listen", relay.DefaultListen, "address of the HTTP API")
	f.StringVar(&fl.hubbleListen, "hubble-listen", hubble.DefaultListen, `address of Hubble's gRPC API ("" to disable)`)
	addPointViewFlag(f, &fl.hubblePoints)
	f.DurationVar(&fl.mergeWindow, "merge-window", relay.DefaultMergeWindow, "how long live flows are held to order them by time")
	f.StringVar(&fl.tlsCert, "tls-cert", "", "client certificate (PEM) presented to collectors")
	f.StringVar(&fl.tlsKey, "tls-key", "", "key (PEM) of --tls-cert")
	f.StringVar(&fl.tlsCA, "tls-ca", "", "CA bundle (PEM) collectors' certificates must chain to; enables TLS")
	f.StringVar(&fl.logLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&fl.ui, "ui", true, "serve the web UI at / on --listen, over every node's flows")
	fl.access.addFlags(f, relay.DefaultSocket)
	f.StringVar(&fl.peerToken, "peer-token", "", "API token of the collectors (their --api-token), sent to every peer; $"+envPeerToken+" when not given")
	f.StringVar(&fl.peerTokenFile, "peer-token-file", "", "file holding the collectors' API token")
	f.IntVar(&fl.maxFollowers, "max-followers", relay.DefaultMaxFollowers,
		"live followers served at once, over HTTP, the web UI's WebSockets and Hubble's API together; more are refused with 503 (0: no bound)")
	f.BoolVar(&fl.history, "history", false, "the collectors keep history in ClickHouse (--clickhouse): the web UI's time ranges query it")
	return cmd
}

func runRelay(cmd *cobra.Command, fl relayFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(fl.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	if len(fl.peers) == 0 && fl.peersFile == "" {
		return errors.New("no peers: give --peers or --peers-file")
	}
	guard, token, err := fl.access.guard(fl.listen)
	if err != nil {
		return err
	}
	peerToken, err := readToken(fl.peerToken, fl.peerTokenFile, envPeerToken)
	if err != nil {
		return fmt.Errorf("--peer-token-file: %w", err)
	}
	opts := relay.Options{
		Access:       guard,
		Socket:       fl.access.socket,
		PeerToken:    peerToken,
		Peers:        fl.peers,
		PeersFile:    fl.peersFile,
		Listen:       fl.listen,
		MergeWindow:  fl.mergeWindow,
		Logger:       logger,
		Version:      version,
		MaxFollowers: noBoundIfZero(fl.maxFollowers),
	}
	switch {
	case fl.tlsCA != "":
		cfg, err := relay.ClientTLSConfig(fl.tlsCert, fl.tlsKey, fl.tlsCA)
		if err != nil {
			return err
		}
		opts.TLS = cfg
	case fl.tlsCert != "" || fl.tlsKey != "":
		return errors.New("--tls-cert and --tls-key need --tls-ca")
	}
	handlers := map[string]http.Handler{}
	opts.Handlers = handlers
	r, err := relay.New(opts)
	if err != nil {
		return err
	}
	if fl.ui {
		uopts := ui.Options{Source: r.Ring(), AllowedOrigins: fl.access.allowedOrigins, Followers: r.Followers(), Logger: logger}
		if fl.history {
			uopts.History = r.History()
		}
		u, err := ui.New(uopts)
		if err != nil {
			return fmt.Errorf("web UI: %w", err)
		}
		defer u.Close()
		handlers[uiPattern] = u
		logger.Info("web UI", "url", "http://"+fl.listen+"/")
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	var wg sync.WaitGroup
	var hubbleErr error
	if fl.hubbleListen != "" {
		ln, err := net.Listen("tcp", fl.hubbleListen)
		if err != nil {
			return fmt.Errorf("hubble API: listen on %s: %w", fl.hubbleListen, err)
		}
		logger.Info("hubble API listening", "listen", ln.Addr().String())
		wg.Go(func() {
			if err := hubble.Serve(ctx, ln, hubble.NewRelayBackend(r), hubble.Options{Followers: r.Followers(), Token: token, Points: fl.hubblePoints.view}); err != nil {
				hubbleErr = fmt.Errorf("hubble API: %w", err)
				cancel()
			}
		})
	}
	err = r.Run(ctx)
	cancel()
	wg.Wait()
	if err == nil {
		err = hubbleErr
	}
	return err
}
