package policystore

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

// compileSet builds the kernel's form of policies against the local
// endpoints, every known identity and the DNS names of now; seq numbers
// the commit, counted before the names are read.
func (s *Store) compileSet(policies map[string]*Applied) (*compile.Compiled, uint64, error) {
	seq := s.fqdn.commits.Add(1)
	in := s.input(policies)
	in.Names = s.fqdn.input()
	c, err := compile.Compile(in)
	if err != nil {
		return nil, seq, fmt.Errorf("compile policies: %w", err)
	}
	return c, seq, nil
}

// input is the compiler's input: policies in key order, the endpoints that
// have an id, the host's addresses as host-identity peers.
func (s *Store) input(policies map[string]*Applied) compile.Input {
	in := compile.Input{Identities: s.endpoints.Identities()}
	keys := make([]string, 0, len(policies))
	for k := range policies {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	in.Policies = make([]*policy.Policy, 0, len(keys))
	for _, k := range keys {
		in.Policies = append(in.Policies, policies[k].parsed)
	}
	for _, e := range s.endpoints.PolicyEndpoints() {
		if e.ID == 0 {
			continue
		}
		in.Endpoints = append(in.Endpoints, compile.Endpoint{
			ID: e.ID, Identity: e.Identity, Namespace: e.Namespace, Labels: e.Labels, IPs: e.IPs, Host: e.Host, Audit: e.Audit,
		})
	}
	for _, p := range s.endpoints.RemoteNodes() {
		in.IPCache = append(in.IPCache, compile.IPEntry{Prefix: p, Identity: uint32(identity.RemoteNode)})
	}
	for _, a := range s.endpoints.HostAddrs() {
		a = a.Unmap()
		in.IPCache = append(in.IPCache, compile.IPEntry{Prefix: netip.PrefixFrom(a, a.BitLen()), Identity: uint32(identity.Host)})
	}
	return in
}
