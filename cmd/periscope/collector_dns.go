package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/enforcer/dnspolicy"
	"github.com/periscope-dev/periscope/enforcer/fqdn"
	"github.com/periscope-dev/periscope/enforcer/policystore"
)

// dnsFlags configure the DNS proxy and the FQDN cache.
type dnsFlags struct {
	enabled        bool
	port           uint16
	state          string
	minTTL         int
	maxEntries     int
	maxPerEndpoint int
}

func (d *dnsFlags) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&d.enabled, "dns-proxy", true, "run the DNS proxy: the DNS ports of endpoints a rules.dns policy covers go through it (REFUSED for denied names, L7 DNS flows), and toFQDNs rules learn addresses from its answers (off: rules.dns policies are refused)")
	f.Uint16Var(&d.port, "dns-proxy-port", 0, "the DNS proxy's port on 127.0.0.1 and ::1 (0: the previous run's, kept beside --fqdn-state, else a free one)")
	f.StringVar(&d.state, "fqdn-state", "", "file keeping the FQDN cache (names endpoints resolved, and the toFQDNs access they grant) across restarts (default: fqdn.json beside --identity-state)")
	f.IntVar(&d.minTTL, "tofqdns-min-ttl", int(fqdn.DefaultMinTTL/time.Second), "the minimum time, in seconds, a DNS answer's addresses stay in the FQDN cache (and allowed by toFQDNs), as Cilium's --tofqdns-min-ttl (0: the answers' TTLs)")
	f.IntVar(&d.maxEntries, "tofqdns-max-entries", fqdn.DefaultMaxEntries, "the FQDN cache's bound on (endpoint, name, address) entries; the closest to expiry go first")
	f.IntVar(&d.maxPerEndpoint, "tofqdns-endpoint-max-entries", fqdn.DefaultMaxPerEndpoint, "the FQDN cache's bound on one endpoint's (name, address) entries")
}

// newDNS builds the DNS proxy (bound, not serving) and the FQDN cache
// (restored), redirecting through redirects; the state defaults beside
// identityState.
func newDNS(fl dnsFlags, identityState string, redirects datapath.RedirectSetter, logger *slog.Logger) (*dnspolicy.DNS, error) {
	if fl.minTTL < 0 {
		return nil, fmt.Errorf("--tofqdns-min-ttl %d: want 0 or more seconds", fl.minTTL)
	}
	state := fl.state
	if state == "" {
		state = filepath.Join(filepath.Dir(identityState), "fqdn.json")
	}
	d, err := dnspolicy.New(dnspolicy.Options{
		Disabled: !fl.enabled, Port: fl.port, PortFile: filepath.Join(filepath.Dir(state), "dns-proxy.port"),
		Redirects: redirects,
		Cache: fqdn.Options{StatePath: state, MinTTL: time.Duration(fl.minTTL) * time.Second,
			MaxEntries: fl.maxEntries, MaxPerEndpoint: fl.maxPerEndpoint},
		Logger: logger,
	})
	if err != nil {
		return nil, fmt.Errorf("--dns-proxy: %w", err)
	}
	return d, nil
}

// bindDNS binds the DNS part to the policy store and the collector's
// current endpoints, and makes a removed endpoint's cached names (and the
// access they granted) go with it.
func bindDNS(dns *dnspolicy.DNS, store *policystore.Store, c *collector.Collector) {
	dns.Bind(store, c)
	c.OnEndpointsChange(func() error {
		dns.ForgetGone(c.PolicyEndpoints())
		return nil
	})
}
