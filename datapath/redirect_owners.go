package datapath

import (
	"fmt"
	"slices"
	"sync"
)

// RedirectSetter replaces a complete redirect table; *Datapath and
// *RedirectOwner implement it.
type RedirectSetter interface {
	SetRedirects([]Redirect) error
}

// RedirectOwners shares the datapath's one redirect table between the
// proxies that fill it (the L7 proxy's Envoy, the DNS proxy): each owner
// replaces only its own part, and the table the datapath gets is always the
// union of every owner's last part, set whole. Two owners redirecting the
// same (endpoint, direction, protocol, port) is an error naming both; on
// any error the owner's previous part stays.
type RedirectOwners struct {
	dp    RedirectSetter
	mu    sync.Mutex
	parts map[string][]Redirect
}

// NewRedirectOwners merges into dp's table.
func NewRedirectOwners(dp RedirectSetter) *RedirectOwners {
	return &RedirectOwners{dp: dp, parts: map[string][]Redirect{}}
}

// Owner is the setter of the part named name ("envoy", "dns").
func (o *RedirectOwners) Owner(name string) *RedirectOwner {
	return &RedirectOwner{owners: o, name: name}
}

// RedirectOwner sets one owner's part of the redirect table.
type RedirectOwner struct {
	owners *RedirectOwners
	name   string
}

// SetRedirects makes rs the owner's complete part and sets the union.
func (w *RedirectOwner) SetRedirects(rs []Redirect) error {
	o := w.owners
	o.mu.Lock()
	defer o.mu.Unlock()
	next := make(map[string][]Redirect, len(o.parts)+1)
	for k, v := range o.parts {
		next[k] = v
	}
	next[w.name] = slices.Clone(rs)
	all, err := union(next)
	if err != nil {
		return fmt.Errorf("%s redirects: %w", w.name, err)
	}
	if err := o.dp.SetRedirects(all); err != nil {
		return fmt.Errorf("%s redirects: %w", w.name, err)
	}
	o.parts = next
	return nil
}

// redirectSpot is what two owners may not both redirect.
type redirectSpot struct {
	endpoint  uint32
	direction RedirectDirection
	proto     uint8
	port      uint16
}

// union joins the parts in owner name order, refusing a spot two owners
// claim.
func union(parts map[string][]Redirect) ([]Redirect, error) {
	names := make([]string, 0, len(parts))
	for n := range parts {
		names = append(names, n)
	}
	slices.Sort(names)
	owner := map[redirectSpot]string{}
	var all []Redirect
	for _, n := range names {
		for _, r := range parts[n] {
			s := redirectSpot{r.Endpoint, r.Direction, r.Proto, r.Port}
			if prev, taken := owner[s]; taken && prev != n {
				return nil, fmt.Errorf("endpoint %d %s %d/%d is redirected by both %s and %s",
					r.Endpoint, r.Direction, r.Port, r.Proto, prev, n)
			}
			owner[s] = n
			all = append(all, r)
		}
	}
	return all, nil
}
