package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/access"
	"github.com/periscope-dev/periscope/api/flowquery"
	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/enforcer/dnspolicy"
	"github.com/periscope-dev/periscope/proxy"
	"github.com/periscope-dev/periscope/relay/hubble"
)

// demoOptions are the demo's flags.
type demoOptions struct {
	listen      string
	hubble      string
	socket      string // the API's local socket; "" for none
	pinPath     string
	verbose     bool
	sinks       sinkFlags
	envoy       bool
	envoyBinary string
}

func newDemoCmd() *cobra.Command {
	opts := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run pods with live traffic and a collector, and print their flows",
		Long: `demo builds a lab of network-namespace pods (frontend, backend and db in
namespace default, outsider in namespace other, dns in kube-system; partner
and tracker outside the cluster), runs traffic between them
(HTTP-like requests, a long-lived database connection, datagrams, DNS lookups,
pings; over IPv4 and IPv6), loads the datapath on the pods' veths, serves a
collector's API and prints the flows live. Ctrl-C removes everything it made.

It enforces two CiliumNetworkPolicies. default/db-clients: db takes TCP 5432
from backend and UDP 5353 from frontend only, so the outsider's attempts on
db:5432 show up DROPPED (POLICY_DENIED). default/frontend-egress: the
frontend resolves names through dnsmasq in the dns pod (kube-system), its
lookups go through the DNS proxy (dns-request/dns-response flows), and of
the world only api.partner.example is allowed, by name (toFQDNs): its calls
to ads.tracker.example show up DROPPED, the name in the flow.

The backend serves real HTTP on 8080 behind Envoy (run by the demo), with
one L7 rule, default/backend-l7: the frontend may GET /public/..., anything
else gets 403. Its requests, their latencies and the 403 drops show up as
L7 flows (--envoy=false runs without Envoy and without the rule).

It also serves the web UI on --listen (its address is printed), Hubble's
gRPC API on --hubble-listen, Prometheus metrics with --metrics, and stores
flows in ClickHouse with --clickhouse.

In another terminal, try:
  periscope observe --last 20
  periscope observe -f --from-pod default/frontend
  periscope observe --verdict DROPPED
  periscope observe --protocol http
  periscope observe --protocol http --verdict DROPPED
  periscope observe --fqdn '*.example' --protocol tcp
  periscope observe --protocol dns
  periscope policy list
  sudo periscope policy delete db-clients   # changes go over the root-owned API socket`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := demoPrivileges(); err != nil {
				return err
			}
			return runDemo(cmd.Context(), opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&opts.listen, "listen", collector.DefaultListen, "address of the collector's HTTP API")
	cmd.Flags().StringVar(&opts.hubble, "hubble-listen", hubble.DefaultListen, `address of Hubble's Observer gRPC API ("" to disable)`)
	cmd.Flags().StringVar(&opts.socket, "api-socket", collector.DefaultSocket,
		`the API's local Unix socket, where periscope policy apply and delete go ("" for none)`)
	cmd.Flags().StringVar(&opts.pinPath, "pin-path", "/sys/fs/bpf/periscope-demo",
		"bpffs directory for the demo's maps (apart from a real collector's)")
	opts.sinks.addEnablingFlags(cmd.Flags())
	cmd.Flags().BoolVarP(&opts.verbose, "verbose", "v", false, "log what the demo creates and every failed exchange")
	cmd.Flags().BoolVar(&opts.envoy, "envoy", true, "run Envoy for the backend's L7 rule")
	cmd.Flags().StringVar(&opts.envoyBinary, "envoy-binary", proxy.DefaultEnvoyBinary, "the envoy executable the demo runs")
	return cmd
}

// runDemo runs the demo until ctx ends, then removes everything it made.
func runDemo(ctx context.Context, opts demoOptions, out, errOut io.Writer) (err error) {
	level := slog.LevelInfo
	if opts.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level}))

	// Piped into `head`, a closed stdout must end the demo through its
	// cleanup (a write error), not kill it with SIGPIPE and leave the lab.
	signal.Ignore(syscall.SIGPIPE)

	// A demo killed with SIGKILL leaves its lab behind; live labs are spared.
	if err := netlab.Cleanup(netlab.NamePrefix); err != nil {
		log.Warn("remove leftovers of earlier labs", "err", err)
	}
	lab, err := newDemoLab(ctx, netlab.Options{Name: "demo", Logger: log})
	if err != nil {
		return fmt.Errorf("demo topology: %w", err)
	}
	defer func() {
		if cerr := lab.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	dp, err := datapath.Load(datapath.Config{PinPath: opts.pinPath, Logger: log})
	if err != nil {
		return fmt.Errorf("demo datapath: %w", err)
	}
	defer func() { // before lab.Close: detach, then remove the links
		// The demo's policy goes with its pods: without one in force,
		// Close detaches and unpins everything.
		if cerr := dp.ApplyPolicy(nil); cerr != nil {
			err = errors.Join(err, fmt.Errorf("demo: remove the policy: %w", cerr))
		}
		if cerr := dp.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	redirects := datapath.NewRedirectOwners(dp) // Envoy's part and the DNS proxy's
	dns, err := newDemoDNS(redirects.Owner("dns"), log)
	if err != nil {
		return err
	}
	defer dns.Close()

	sinks, err := newCollectorSinks(ctx, opts.sinks, "", dp, log)
	if err != nil {
		return fmt.Errorf("demo sinks: %w", err)
	}
	return sinks.runWith(ctx, func(ctx context.Context) error {
		return runDemoCollector(ctx, opts, lab, dp, redirects.Owner("envoy"), dns, sinks, out, errOut, log)
	})
}

// runDemoCollector builds the demo's collector with the sinks and the web UI
// (and Envoy's redirects through envoyRedirects) and runs it with the
// traffic and the printer until ctx ends.
func runDemoCollector(ctx context.Context, opts demoOptions, lab *netlab.Lab, dp *datapath.Datapath,
	envoyRedirects datapath.RedirectSetter, dns *dnspolicy.DNS, sinks *collectorSinks, out, errOut io.Writer, log *slog.Logger) error {
	var web uiMount
	sinks.handlers[uiPattern] = &web
	defer web.Close()
	l7, removeL7, err := newDemoProxy(opts, envoyRedirects, log)
	if err != nil {
		return err
	}
	defer removeL7()
	var l7Source []collector.Source
	if l7 != nil {
		l7Source = append(l7Source, l7.Source())
	}
	col, err := collector.New(collector.Options{
		Config:     demoConfig(lab),
		Sources:    flowSources(dp, append(l7Source, dns.Proxy())...),
		Names:      dns.Cache(),
		Attacher:   dp,
		Stats:      datapathStats(dp),
		Stages:     sinks.stages(dp),
		Interfaces: dp.Interfaces,
		Listen:     opts.listen,
		Access:     access.New(access.Policy{ListenHost: demoListenHost(opts.listen), Public: access.StaticFiles}),
		Socket:     opts.socket,
		Sinks:      sinks.sinks,
		Handlers:   sinks.handlers,
		History:    sinks.history,
		Logger:     log,
		Version:    version,
	})
	if err != nil {
		return fmt.Errorf("demo collector: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waitProxy, err := startProxy(ctx, l7, proxyFlags{}, col, log)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer waitProxy()
	defer cancel() // runs before waitProxy: stop Envoy, then wait for it
	if err := startDemoPolicy(col, dp, dns, l7, sinks.handlers, log); err != nil {
		return err
	}
	if err := web.start(col, sinks.history, nil, log); err != nil {
		return fmt.Errorf("demo web UI: %w", err)
	}
	waitHubble, err := serveHubble(ctx, opts.hubble, col, nil, "", hubble.ViewConnection, log)
	if err != nil {
		return err
	}
	defer waitHubble()
	defer cancel() // runs before waitHubble: stop the server, then wait for it
	return runDemoParts(ctx, lab, col, dns, out, errOut, log)
}

// runDemoParts runs the collector, then the traffic and the printer once it
// is ready, until ctx ends or a part fails; it waits for all of them.
func runDemoParts(ctx context.Context, lab *netlab.Lab, col *collector.Collector, dns *dnspolicy.DNS,
	out, errOut io.Writer, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		cancel()
	}

	runDone := make(chan struct{})
	wg.Go(func() {
		defer close(runDone)
		fail(col.Run(ctx))
	})
	wg.Go(func() { fail(dns.Run(ctx)) })
	select {
	case <-col.Ready():
	case <-runDone:
	}
	if ctx.Err() == nil {
		fmt.Fprintf(errOut, "%sWeb UI: http://%s/\nflows API on http://%s — try: bin/periscope observe --last 20 (Ctrl-C stops)\n\n",
			demoBanner(lab), col.Addr(), col.Addr())
		waitDNS, err := startDemoDNSServer(ctx, lab, log)
		if err != nil {
			fail(err)
		} else {
			defer waitDNS() // after wg.Wait: ctx is done
		}
		wg.Go(func() {
			traffic := append(demoTraffic(lab), demoDNSTraffic(lab)...)
			fail(netlab.RunTraffic(ctx, netlab.TrafficOptions{Logger: log}, traffic...))
		})
		wg.Go(func() {
			// The same compact lines as `periscope observe`.
			p, err := newPrinter("compact", out, time.Local, true)
			if err != nil {
				fail(err)
				return
			}
			oc, err := col.Store().Follow(ctx, flowquery.Query{}, flowquery.Answer{
				Flow: func(f *api.Flow) error { return p.Print(nil, f) },
			})
			if oc.Skipped > 0 {
				log.Warn("printer fell behind", "skipped_flows", oc.Skipped)
			}
			if err != nil {
				fail(fmt.Errorf("print flows: %w", err))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// demoListenHost is the host of the demo's listen address.
func demoListenHost(listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	return host
}
