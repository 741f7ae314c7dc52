package dnspolicy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/enforcer/dnsmatch"
	"github.com/periscope-dev/periscope/enforcer/dnsproxy"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// DefaultSaveInterval is how often a changed FQDN cache is written: the
// names (and the access they grant) a crash can lose.
const DefaultSaveInterval = time.Second

// Options configure a DNS.
type Options struct {
	// Disabled runs no proxy: a policy with rules.dns is refused (toFQDNs
	// then selects nothing, as without lookups).
	Disabled bool
	// Port is the proxy's port on 127.0.0.1 and ::1; 0 picks one: the
	// port PortFile holds when it is free, else a free one.
	Port uint16
	// PortFile keeps the proxy's port across restarts: while the collector
	// is down the datapath keeps redirecting to it, so the next run takes
	// it again. Empty: not kept.
	PortFile string
	// Redirects is this package's part of the datapath's redirect table
	// (a datapath.RedirectOwners owner); required unless Disabled.
	Redirects datapath.RedirectSetter
	// Cache configures the FQDN cache (its hooks are this package's; a
	// zero SaveInterval is DefaultSaveInterval).
	Cache fqdn.Options
	// Proxy tunes the proxy (Listen, Endpoints, Policy, Cache, FromClient,
	// UpstreamMark and Logger are this package's).
	Proxy dnsproxy.Options
	// Logger is the parent logger; nil discards.
	Logger *slog.Logger
}

// DNS is the node's DNS enforcement: proxy, cache and rule table.
type DNS struct {
	opts  Options
	log   *slog.Logger
	cache *fqdn.Cache
	table *dnsmatch.Table
	proxy *dnsproxy.Proxy

	store     atomic.Pointer[policystore.Store]
	endpoints atomic.Pointer[dnsproxy.Endpoints]
	refresh   chan struct{}
}

// New builds the cache (restoring its state file) and the table, and binds
// the proxy's sockets.
func New(opts Options) (*DNS, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DNS{opts: opts, log: log.With("component", "dns"), table: dnsmatch.NewTable(), refresh: make(chan struct{}, 1)}
	co := opts.Cache
	co.Admit, co.Admitted, co.Expire, co.Logger = d.admit, d.admitted, d.expire, log
	if co.SaveInterval == 0 {
		co.SaveInterval = DefaultSaveInterval
	}
	var err error
	if d.cache, err = fqdn.New(co); err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	if opts.Disabled {
		return d, nil
	}
	if opts.Redirects == nil {
		return nil, errors.New("dns: Redirects is required")
	}
	po := opts.Proxy
	po.Endpoints, po.Policy, po.Cache, po.Logger = d, d.table, d.cache, log
	po.FromClient, po.UpstreamMark = true, datapath.ProxyMarkUpstream
	ports, kept := []uint16{opts.Port}, uint16(0)
	if opts.Port == 0 {
		if kept = readPort(opts.PortFile); kept != 0 {
			ports = []uint16{kept, 0} // the kept one when it is free
		}
	}
	for _, port := range ports {
		po.Listen = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
			netip.AddrPortFrom(netip.IPv6Loopback(), port)}
		if d.proxy, err = dnsproxy.New(po); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dns: %w (choose another --dns-proxy-port)", err)
	}
	port := d.proxy.Addrs()[0].Port()
	if err := writePort(opts.PortFile, port); err != nil {
		d.proxy.Close()
		return nil, fmt.Errorf("dns: %w", err)
	}
	d.log.Info("dns proxy bound", "addrs", d.proxy.Addrs(), "kept_port", kept == port)
	return d, nil
}

// Cache is the FQDN cache: the names flows get (Annotate) and toFQDNs
// reads (policystore.Options.Names).
func (d *DNS) Cache() *fqdn.Cache { return d.cache }

// Proxy is the DNS proxy, a collector source; nil when Disabled.
func (d *DNS) Proxy() *dnsproxy.Proxy { return d.proxy }

// Table is the rule table the proxy checks.
func (d *DNS) Table() *dnsmatch.Table { return d.table }

// Bind makes s the policy the cache's answers are admitted into and eps
// (the *collector.Collector: its current endpoints) what finds the
// endpoint asking, both made after
// the proxy. Before, answers are released at once (the store's first
// compile reads the cache) and queries get SERVFAIL; the proxy reads no
// query before the collector runs it.
func (d *DNS) Bind(s *policystore.Store, eps dnsproxy.Endpoints) {
	d.endpoints.Store(&eps)
	d.store.Store(s)
}

// ForgetGone drops the cache's entries of every endpoint not among
// present (a removed endpoint's names and the access they granted): the
// collector's OnEndpointsChange hook, with its current endpoints.
func (d *DNS) ForgetGone(present []policystore.Endpoint) {
	keep := make(map[uint32]bool, len(present))
	for _, e := range present {
		keep[e.ID] = true
	}
	gone := map[uint32]bool{}
	for _, e := range d.cache.Entries() {
		if !keep[e.Endpoint] {
			gone[e.Endpoint] = true
		}
	}
	for id := range gone {
		d.log.Info("dns names of a removed endpoint forgotten", "endpoint_id", id)
		d.cache.Forget(id)
	}
}

// LookupIP finds the endpoint owning ip through the bound lookup.
func (d *DNS) LookupIP(ip netip.Addr) (api.Endpoint, bool) {
	if eps := d.endpoints.Load(); eps != nil && *eps != nil {
		return (*eps).LookupIP(ip)
	}
	return api.Endpoint{}, false
}

// admit is the cache's Admit hook.
func (d *DNS) admit(a fqdn.Admission) error {
	if s := d.store.Load(); s != nil {
		return s.AdmitNames(a)
	}
	return nil
}

// admitted is the cache's Admitted hook: whether admit would return at
// once.
func (d *DNS) admitted(a fqdn.Admission) bool {
	if s := d.store.Load(); s != nil {
		return s.NamesAdmitted(a)
	}
	return true
}

// expire is the cache's Expire hook: a refresh when the policy selected
// one of the addresses.
func (d *DNS) expire(x fqdn.Expiry) {
	if s := d.store.Load(); s != nil && s.NamesInForce(x.Addrs) {
		select {
		case d.refresh <- struct{}{}:
		default: // one is pending: it reads the cache as it will be
		}
	}
}

// Run runs the cache's expiry and saves, and recompiles the policy after
// expiries, until ctx ends; then it saves the cache once more. The proxy
// runs as a collector source (Proxy), not here.
func (d *DNS) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var cacheErr error
	wg.Go(func() { cacheErr = d.cache.Run(ctx) })
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return cacheErr
		case <-d.refresh:
		case <-retry:
		}
		retry = nil
		if s := d.store.Load(); s != nil {
			if err := s.RefreshNames(); err != nil {
				d.log.Warn("recompile after DNS names expired (retrying in a second)", "err", err)
				retry = time.After(time.Second)
			}
		}
	}
}

// Close closes the proxy's sockets when it never ran.
func (d *DNS) Close() {
	if d.proxy != nil {
		d.proxy.Close()
	}
}
