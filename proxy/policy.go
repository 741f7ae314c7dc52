package proxy

import (
	"context"
	"fmt"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/policy"
	"github.com/periscope-dev/periscope/proxy/xds"
)

// ApplyL7 makes ports the redirects of L7 policy (replacing the previous
// ones): each port's connections go through Envoy, which judges every
// request by the group of its peer. A port that left ports goes direct
// again (its listener stays until no redirect uses it); the
// --proxy-redirect ones (SetRedirects) stay. It returns once Envoy
// accepted the configuration (a rejection is an error and changes
// nothing in the datapath) and the datapath redirects.
func (m *Manager) ApplyL7(ctx context.Context, ports []compile.L7Port) error {
	rs := make([]Redirect, 0, len(ports))
	for _, p := range ports {
		rs = append(rs, redirectOf(p))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkUnique(rs); err != nil {
		return err
	}
	if err := m.apply(ctx, merge(rs, m.flagged)); err != nil {
		return err
	}
	m.policy = rs
	return nil
}

// redirectOf is the redirect of a compiled L7 port.
func redirectOf(p compile.L7Port) Redirect {
	r := Redirect{Endpoint: p.Endpoint, Addrs: p.Addrs, Direction: datapath.RedirectIngress, Port: p.Port,
		Rules: xds.Rules{Audit: p.Audit, Groups: make([]xds.PeerGroup, 0, len(p.Groups))}}
	if p.Direction == policy.Egress {
		r.Direction = datapath.RedirectEgress
	}
	for _, g := range p.Groups {
		pg := xds.PeerGroup{AllowAll: g.AllowAll, Peers: xds.Peers{Rest: g.Peers.Rest, RestExcept: g.Peers.RestExcept}}
		for _, id := range g.Policies {
			pg.Policies = append(pg.Policies, api.PolicyRef{Name: id.Name, Namespace: id.Namespace, Kind: string(id.Kind),
				Revision: p.Revisions[id]})
		}
		for _, rg := range g.Peers.Ranges {
			pg.Peers.Ranges = append(pg.Peers.Ranges, xds.Range{Prefix: rg.Prefix, Except: rg.Except})
		}
		for _, h := range g.HTTP {
			xh := xds.HTTPRule{Method: h.Method, Path: h.Path, Host: h.Host}
			for _, hd := range h.Headers {
				xh.Headers = append(xh.Headers, xds.Header{Name: hd.Name, Value: hd.Value})
			}
			pg.HTTP = append(pg.HTTP, xh)
		}
		r.Rules.Groups = append(r.Rules.Groups, pg)
	}
	if len(r.Rules.Groups) == 0 {
		// No peer may send anything: a group of no one makes Envoy judge
		// (and deny) every request instead of passing them all.
		r.Rules.Groups = []xds.PeerGroup{{}}
	}
	return r
}

// String names a redirect in logs and errors.
func (r Redirect) String() string {
	return fmt.Sprintf("endpoint %d %s port %d", r.Endpoint, r.Direction, r.Port)
}
