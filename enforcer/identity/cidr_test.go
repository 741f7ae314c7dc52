package identity

import (
	"net/netip"
	"testing"
)

// A prefix whose first identity no other prefix holds leaves every other
// prefix's identity where it was, whatever their order: what Admit relies
// on (compile.Compiled.Admit) to give a new address its identity alone.
func TestALocalCIDRIdentityOfAFreeSlotMovesNoOther(t *testing.T) {
	var prefixes []netip.Prefix
	for i := range 3000 {
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32))
	}
	before := LocalCIDRIdentities(prefixes)
	held := map[ID]bool{}
	for _, id := range before {
		held[id] = true
	}
	added := 0
	for i := range 3000 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), 32)
		first := FirstLocalCIDRIdentity(p)
		if held[first] {
			continue
		}
		after := LocalCIDRIdentities(append(prefixes, p))
		if after[p] != first {
			t.Fatalf("%s got %d, its first identity %d is free", p, after[p], first)
		}
		for q, id := range before {
			if after[q] != id {
				t.Fatalf("adding %s moved %s from %d to %d", p, q, id, after[q])
			}
		}
		added++
		if added == 50 {
			return
		}
	}
	t.Fatalf("only %d prefixes had a free first identity", added)
}
