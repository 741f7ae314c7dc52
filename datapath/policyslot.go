package datapath

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/periscope-dev/periscope/enforcer/compile"
)

// slotContent is what a policy slot is known to hold, so that emptying it
// deletes those entries alone: walking a map to empty it costs a scan of
// every bucket (the kernel's get_next_key), milliseconds for the 256Ki-entry
// maps however few entries they hold.
type slotContent struct {
	// known is false when the content is not known (a slot adopted from a
	// previous run, or one a fill or an emptying failed on): emptying it
	// walks the maps.
	known bool
	// c filled the slot; nil for an empty one.
	c *compile.Compiled
}

// empty empties s, which holds content.
func (s policySlot) empty(content slotContent) error {
	switch {
	case !content.known:
		return s.clear()
	case content.c == nil:
		return nil
	}
	return s.deleteKeys(content.c)
}

// deleteKeys deletes from s every entry fill wrote for c (a key fill put
// in policy_fast is deleted from the policy hash too, where it may have
// spilled: a missing key is no error).
func (s policySlot) deleteKeys(c *compile.Compiled) error {
	clear(s.fast)
	var errs []error
	del := func(m *ebpf.Map, k any, what string) {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete %s from %s: %w", what, m, err))
		}
	}
	for p := range c.IPCache {
		k, err := ipcacheKey(p)
		if err != nil {
			continue // fill refused it: never written
		}
		m := s.ipcache
		if !compile.HostPrefix(p) {
			m = s.ipcacheLPM
		}
		del(m, &k, p.String())
	}
	for a := range c.LocalIngress {
		if k, err := ipcacheKey(netip.PrefixFrom(a, a.BitLen())); err == nil {
			del(s.localEP, &k, a.String())
		}
	}
	endpoints := map[uint32]bool{}
	for k := range c.Policy {
		endpoints[k.Endpoint] = true
		kb, _ := k.MarshalBinary()
		m := s.policy
		if k.InRangeTrie() {
			m = s.policyRange
		}
		del(m, kb, fmt.Sprintf("policy entry %+v", k))
	}
	for ep := range c.Enforce {
		endpoints[ep] = true
	}
	for ep := range endpoints {
		del(s.enforce, ep, fmt.Sprintf("endpoint %d", ep))
	}
	return errors.Join(errs...)
}
