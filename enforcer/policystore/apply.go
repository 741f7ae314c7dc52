package policystore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/periscope-dev/periscope/enforcer/compile"
)

// applyPolicy brings c into force, the kernel's part and the L7 proxy's,
// in the order that lets no request pass that neither the old nor the new
// policy allows, and fails no request both allow:
//
//  1. the proxy redirects the L7 ports of the old and the new policy (new
//     rules on the new ones, old rules on those only the old one has), so
//     no peer the new policy allows at L3/L4 reaches an L7 port directly;
//  2. the kernel applies the new policy (on error the old one stays, and
//     so does the proxy's old set);
//  3. the proxy keeps the new policy's L7 ports only.
//
// The caller holds s.mu.
func (s *Store) applyPolicy(c *compile.Compiled) error {
	if len(c.L7) > 0 && s.l7 == nil {
		return fmt.Errorf("apply policy: L7 rules (rules.http) of %s need the L7 proxy: run the collector with --envoy",
			strings.Join(l7Policies(c.L7), ", "))
	}
	ctx := context.Background()
	l7 := s.l7 != nil && (len(c.L7) > 0 || len(s.l7Ports) > 0)
	if l7 {
		if err := s.l7.ApplyL7(ctx, unionL7(c.L7, s.l7Ports)); err != nil {
			return fmt.Errorf("apply L7 policy: %w", err)
		}
	}
	if err := s.applier.ApplyPolicy(c); err != nil {
		if l7 {
			if rerr := s.l7.ApplyL7(ctx, s.l7Ports); rerr != nil {
				s.log.Error("L7 policy: restore the policy in force", "err", rerr)
			}
		}
		return fmt.Errorf("apply policy: %w", err)
	}
	if l7 {
		if err := s.l7.ApplyL7(ctx, c.L7); err != nil {
			// The kernel enforces the new policy; the proxy keeps the
			// union, which fails closed on the ports that left.
			s.log.Error("L7 policy: remove the ports of the previous policy", "err", err)
		}
	}
	s.l7Ports = c.L7
	return nil
}

// unionL7 is first's ports and those of second no port of first is.
func unionL7(first, second []compile.L7Port) []compile.L7Port {
	out := slices.Clone(first)
	for _, p := range second {
		if !slices.ContainsFunc(first, func(q compile.L7Port) bool {
			return q.Endpoint == p.Endpoint && q.Direction == p.Direction && q.Port == p.Port
		}) {
			out = append(out, p)
		}
	}
	return out
}

// l7Policies names the policies with L7 rules on ports.
func l7Policies(ports []compile.L7Port) []string {
	var out []string
	for _, p := range ports {
		for _, g := range p.Groups {
			for _, id := range g.Policies {
				if !slices.Contains(out, id.Ref()) {
					out = append(out, id.Ref())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
