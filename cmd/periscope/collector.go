package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// collectorFlags are the flags of `periscope collector`.
type collectorFlags struct {
	config         string
	listen         string
	ringSize       int
	maxFollowers   int
	nodeName       string
	clusterName    string
	pinPath        string
	flowBudget     int
	ringbufSize    int
	sockTableSize  int
	readInterval   time.Duration
	reportInterval time.Duration
	idleTimeout    time.Duration
	closeGrace     time.Duration
	flowTableSize  int
	hostInterfaces []string
	sockEvents     bool
	logLevel       string
	sinks          sinkFlags
	ui             bool
	access         accessFlags
	identityState  string
	identityGrace  time.Duration
	policyDir      string
	endpointState  string
	discovery      discoveryFlags
	serve          serveFlags
	memoryLimit    int64
	proxy          proxyFlags
	dns            dnsFlags
}

func newCollectorCmd() *cobra.Command {
	var fl collectorFlags
	cmd := &cobra.Command{
		Use:   "collector",
		Short: "Run the node collector: load the datapath, enrich flows, serve the flow API",
		Long: `Run the node collector. It loads Periscope's eBPF datapath, attaches it to the
host-side veth of every endpoint declared in --config (and to --host-interface),
and of every pod of this node (--kubernetes, --kubeconfig) and container on a
bridge network (--container-runtime-socket) as they come and go, enforces the
policies applied to it (periscope policy) and the cluster's, enriches flows with the endpoints' names and labels, keeps the last --ring-size
flows in memory and serves them on --listen:

  GET /api/v1/flows         NDJSON flows (filter, last, first, all, since, until,
                            follow, source=ring|clickhouse)
  GET /api/v1/status        counters and configuration
  GET /api/v1/endpoints, DELETE /api/v1/endpoints/NAMESPACE/NAME
                            the endpoints in force; removing one (periscope
                            endpoint remove) is how it stops being enforced:
                            one --config no longer declares is kept from
                            --endpoint-state until then
  GET /api/v1/namespaces    namespaces of the last hour's flows
  GET /api/v1/agent-events  NDJSON agent events: started, policy and endpoint
                            changes (last, first, all, since, until, follow)
  GET /healthz              "ok"
  GET /metrics              Prometheus metrics (--metrics)
  GET /                     the web UI (--ui), its WebSocket at /api/v1/ws

The same API is served on the local socket --api-socket, to whoever its file
permissions let in. Over TCP, --api-token guards every call but the web UI's
files and /healthz, no change is made without it, calls by a Host name that
is not the listen host, localhost or --api-allowed-hosts and calls from
other web origins are refused (docs/ACCESS.md).

With --envoy, Envoy (run and supervised by the collector, configured over
xDS) enforces L7 policy (rules.http: the ports it covers go through Envoy,
refused requests get 403 and DROPPED L7 flows), the ports named by
--proxy-redirect go through it for visibility, and its HTTP access logs
become L7 flows. Without --envoy a policy with HTTP rules is refused.

The DNS proxy (--dns-proxy, on by default) judges the queries of endpoints a
policy's rules.dns covers (REFUSED for denied names), records them as L7 DNS
flows, and remembers which names resolved to which addresses (--fqdn-state):
flows show source_names/destination_names, and toFQDNs rules allow the
addresses of allowed answers before the answer reaches the pod.

Flows also go to ClickHouse (--clickhouse) and over OTLP (--otlp-endpoint or
$OTEL_EXPORTER_OTLP_ENDPOINT), each behind a bounded queue.

Needs root (CAP_BPF, CAP_NET_ADMIN, and CAP_PERFMON for --sock-events).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCollector(cmd, fl)
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.config, "config", "", "YAML file declaring the node's endpoints")
	f.StringVar(&fl.listen, "listen", collector.DefaultListen, "address of the HTTP API")
	f.IntVar(&fl.ringSize, "ring-size", collector.DefaultRingSize, "number of flows kept in memory")
	f.IntVar(&fl.maxFollowers, "max-followers", collector.DefaultMaxFollowers,
		"live followers served at once, over HTTP, the web UI's WebSockets and Hubble's API together; more are refused with 503 (0: no bound)")
	f.StringVar(&fl.nodeName, "node-name", "", "node name in flows (default: the config's node_name, else the hostname)")
	f.StringVar(&fl.clusterName, "cluster-name", "",
		"cluster name every endpoint carries as the label io.cilium.k8s.policy.cluster, and namespaces are listed in (hubble list namespaces) "+
			"(default: the config's cluster_name, else \"default\")")
	f.StringVar(&fl.pinPath, "bpf-pin-path", datapath.DefaultPinPath, "bpffs directory for Periscope's maps and links")
	f.IntVar(&fl.flowBudget, "flow-budget", datapath.DefaultFlowBudget,
		"connections tracked at once that the kernel maps are sized for (docs/FLOWS.md: Kernel memory)")
	f.IntVar(&fl.ringbufSize, "ringbuf-size", 0, "BPF ring buffer size in bytes, a power of two (default: from --flow-budget)")
	f.DurationVar(&fl.readInterval, "read-interval", datapath.DefaultReadInterval,
		"how long kernel events may wait in the ring buffer before they are read (sooner when it is a quarter full)")
	f.DurationVar(&fl.reportInterval, "report-interval", datapath.DefaultReportInterval, "how often long connections are reported")
	f.DurationVar(&fl.idleTimeout, "idle-timeout", datapath.DefaultIdleTimeout, "end flows idle for this long")
	f.DurationVar(&fl.closeGrace, "close-grace", datapath.DefaultCloseGrace, "end closed TCP connections after this much idle")
	f.IntVar(&fl.flowTableSize, "flow-table-size", 0, "entries of the kernel flow table (default: from --flow-budget)")
	f.IntVar(&fl.sockTableSize, "sock-table-size", 0, "sockets the sock tracepoint follows until they close (default: from --flow-budget)")
	f.StringArrayVar(&fl.hostInterfaces, "host-interface", nil, "host interface to watch too, where host policies (nodeSelector) are enforced (repeatable)")
	f.BoolVar(&fl.sockEvents, "sock-events", true, "report the processes behind connections (sock tracepoint: one event per closed socket)")
	f.StringVar(&fl.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.sinks.addFlags(f)
	fl.serve.addFlags(f)
	fl.proxy.addFlags(f)
	fl.dns.addFlags(f)
	f.Int64Var(&fl.memoryLimit, "memory-limit", defaultMemoryLimit,
		"soft memory limit in bytes for the Go runtime, so overload turns into counted drops, not growth (0: none; the GOMEMLIMIT environment variable wins)")
	f.BoolVar(&fl.ui, "ui", true, "serve the web UI at / on --listen")
	fl.access.addFlags(f, collector.DefaultSocket)
	f.StringVar(&fl.identityState, "identity-state", defaultIdentityState, "file keeping the allocated security identities")
	f.DurationVar(&fl.identityGrace, "identity-gc-grace", identity.DefaultReleaseGrace,
		"how long an identity no endpoint of this node uses is kept in --identity-state before it is released (negative: never)")
	f.StringVar(&fl.policyDir, "policy-dir", defaultPolicyDir, "directory keeping the applied policies")
	f.StringVar(&fl.endpointState, "endpoint-state", defaultEndpointState,
		"file keeping the endpoints in force: those --config no longer declares stay enforced until `periscope endpoint remove`")
	fl.discovery.addFlags(f)
	return cmd
}

func runCollector(cmd *cobra.Command, fl collectorFlags) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(fl.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	applyMemoryLimit(fl.memoryLimit)

	cfg := &collector.Config{}
	if fl.config != "" {
		var err error
		if cfg, err = collector.LoadConfig(fl.config); err != nil {
			return err
		}
	}
	if fl.nodeName != "" {
		cfg.NodeName = fl.nodeName
	}
	if fl.clusterName != "" {
		cfg.ClusterName = fl.clusterName
	}
	cfg.HostInterfaces = append(cfg.HostInterfaces, fl.hostInterfaces...)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("endpoints config: %w", err)
	}
	if missing := missingCapabilities(fl.sockEvents); len(missing) > 0 {
		return fmt.Errorf("the collector needs %s (run as root)", strings.Join(missing, ", "))
	}

	dp, err := datapath.Load(datapath.Config{
		PinPath:        fl.pinPath,
		FlowBudget:     fl.flowBudget,
		RingBufferSize: fl.ringbufSize,
		FlowTableSize:  fl.flowTableSize,
		SockTableSize:  fl.sockTableSize,
		ReadInterval:   fl.readInterval,
		ReportInterval: fl.reportInterval,
		IdleTimeout:    fl.idleTimeout,
		CloseGrace:     fl.closeGrace,
		Logger:         logger,
		HostDevices:    cfg.HostInterfaces,
	})
	if err != nil {
		return privilegeHint(fmt.Errorf("load datapath: %w", err))
	}
	defer func() {
		if err := dp.Close(); err != nil {
			logger.Warn("close datapath", "err", err)
		}
	}()
	if fl.sockEvents {
		if err := dp.AttachSockTracepoint(); err != nil {
			return privilegeHint(fmt.Errorf("attach sock tracepoint: %w", err))
		}
	}

	sinks, err := newCollectorSinks(cmd.Context(), fl.sinks, cfg.NodeName, dp, logger)
	if err != nil {
		return err
	}
	return sinks.runWith(cmd.Context(), func(ctx context.Context) error {
		return runCollectorWith(ctx, fl, cfg, dp, sinks, logger)
	})
}

// runCollectorWith builds the collector over dp with the sinks and the web
// UI, and runs it until ctx is done.
func runCollectorWith(ctx context.Context, fl collectorFlags, cfg *collector.Config, dp *datapath.Datapath,
	sinks *collectorSinks, logger *slog.Logger) error {
	var web uiMount
	if fl.ui {
		sinks.handlers[uiPattern] = &web
		defer web.Close()
	}
	ids, err := newIdentityAllocator(fl.identityState)
	if err != nil {
		return err
	}
	tlsCfg, err := fl.serve.tlsConfig()
	if err != nil {
		return err
	}
	guard, token, err := fl.access.guard(fl.listen)
	if err != nil {
		return err
	}
	ln, err := listenAPI(fl.listen, tlsCfg)
	if err != nil {
		return err
	}
	redirects := datapath.NewRedirectOwners(dp)
	l7, err := newProxy(fl.proxy, cfg.NodeName, redirects.Owner("envoy"), logger)
	if err != nil {
		ln.Close()
		return err
	}
	dns, err := newDNS(fl.dns, fl.identityState, redirects.Owner("dns"), logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer dns.Close()
	var more []collector.Source
	if l7 != nil {
		more = append(more, l7.Source())
	}
	if dns.Proxy() != nil {
		more = append(more, dns.Proxy())
	}
	attribution, networks, err := fl.discovery.attribution(logger)
	if err != nil {
		ln.Close()
		return privilegeHint(err)
	}
	c, err := collector.New(collector.Options{
		Attribution:   attribution,
		Identities:    ids,
		IdentityGrace: fl.identityGrace,
		Config:        cfg,
		Sources:       flowSources(dp, more...),
		Attacher:      dp,
		Stats:         datapathStats(dp),
		Stages:        sinks.stages(dp),
		Interfaces:    dp.Interfaces,
		Listener:      ln,
		Access:        guard,
		Socket:        fl.access.socket,
		RingSize:      fl.ringSize,
		MaxFollowers:  noBoundIfZero(fl.maxFollowers),
		Sinks:         sinks.sinks,
		Names:         dns.Cache(),
		Handlers:      sinks.handlers,
		History:       sinks.history,
		Logger:        logger,
		Version:       version,

		EndpointState: fl.endpointState,
	})
	if err != nil {
		ln.Close()
		// Resolving endpoints talks to the kernel (netns ids, links,
		// addresses): a refusal there is a missing capability too.
		return privilegeHint(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The proxy runs before the policy store applies the persisted
	// policies: their L7 rules need it.
	waitProxy, err := startProxy(ctx, l7, fl.proxy, c, logger)
	if err != nil {
		ln.Close()
		return err
	}
	var l7Applier policystore.L7Applier
	if l7 != nil {
		l7Applier = l7
	}
	store, err := startPolicyStore(fl.policyDir, c, dns.Applier(dp), l7Applier, dns.Cache(), sinks.handlers, logger)
	if err != nil {
		cancel()
		waitProxy()
		ln.Close()
		return err
	}
	sinks.addStages(c.Stages)
	watchers, err := newWatchers(fl.discovery, c.Registry().NodeName(), c.Registry().ClusterName(), c, store, logger, networks)
	if err != nil {
		ln.Close()
		return err
	}
	bindDNS(dns, store, c)
	if fl.ui {
		if err := web.start(c, sinks.history, fl.access.allowedOrigins, logger); err != nil {
			cancel()
			waitProxy()
			return fmt.Errorf("web UI: %w", err)
		}
		logger.Info("web UI", "url", "http://"+fl.listen+"/")
	}
	waitHubble, err := serveHubble(ctx, fl.serve.hubbleListen, c, tlsCfg, token, fl.serve.hubblePoints.view, logger)
	if err != nil {
		cancel()
		waitProxy()
		ln.Close()
		return err
	}
	dnsDone := make(chan struct{})
	go func() {
		defer close(dnsDone)
		if err := dns.Run(ctx); err != nil {
			logger.Warn("FQDN cache", "err", err)
		}
	}()
	var watchErr error
	var failOnce sync.Once
	waitWatchers := runWatchers(ctx, watchers, func(err error) {
		failOnce.Do(func() { watchErr = err; cancel() })
	}, logger)
	err = c.Run(ctx)
	cancel()
	waitWatchers()
	<-dnsDone
	waitProxy()
	waitHubble()
	return privilegeHint(errors.Join(err, watchErr))
}

// noBoundIfZero turns a flag's 0 ("no bound") into Options' negative.
func noBoundIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// defaultMemoryLimit keeps the collector's RSS near 256 MiB under overload
// (docs/BENCHMARKS.md: 1 M flows/s into ClickHouse stays at ~230 MiB).
const defaultMemoryLimit = 256 << 20

// applyMemoryLimit sets the runtime's soft memory limit unless GOMEMLIMIT
// already did.
func applyMemoryLimit(limit int64) {
	if limit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
}

// Capability numbers (linux/capability.h).
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// missingCapabilities names the effective capabilities the collector lacks.
// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as on older kernels.
func missingCapabilities(sockEvents bool) []string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil // cannot tell: let the kernel say no
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	sysAdmin := has(capSysAdmin)
	var missing []string
	if !has(capBPF) && !sysAdmin {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capNetAdmin) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if sockEvents && !has(capPerfmon) && !sysAdmin {
		missing = append(missing, "CAP_PERFMON (or --sock-events=false)")
	}
	return missing
}

// privilegeHint adds what to do to a permission error from the kernel.
func privilegeHint(err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w (hint: run as root, or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)", err)
	}
	return err
}

// datapathStats reads dp's counters and maps for the collector's status.
func datapathStats(dp *datapath.Datapath) func() collector.DatapathStats {
	return func() collector.DatapathStats {
		s := dp.Stats()
		ds := collector.DatapathStats{
			EventsRead: s.EventsRead, EventsLost: s.EventsLost, EventsEmitted: s.EventsEmitted, EventsPending: s.EventsPending,
			FlowsEnded:       s.FlowsEnded,
			FlowTableEntries: s.FlowTableEntries, FlowTableSize: s.FlowTableSize,
			RecordsMerged: s.RecordsMerged, SocketsMerged: s.SocketsMerged,
		}
		for _, m := range dp.MapMemory() {
			ds.Maps = append(ds.Maps, collector.MapStatus{Name: m.Name, Type: m.Type, MaxEntries: m.MaxEntries, Bytes: m.Bytes})
		}
		return ds
	}
}
