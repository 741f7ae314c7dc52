package datapath

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"
)

// A replaced revision's slot is emptied by the keys that filled it, after
// the grace period, and leaves nothing behind: the next fill into it finds
// every map empty, and the active slot keeps enforcing meanwhile.
func TestTheOldSlotIsEmptiedByItsKeys(t *testing.T) {
	d := loadForTest(t, Config{})
	t.Cleanup(func() { _ = d.ApplyPolicy(nil) })
	big := compileTest(t, testEP, testPolicies(80, 443, 8080))
	small := compileTest(t, testEP, testPolicies())
	applyOK(t, d, big)   // revision 1, slot 1
	applyOK(t, d, small) // revision 2: slot 1 (big) emptied by its keys
	applyOK(t, d, big)   // revision 3: slot 1 again; slot 0 (small) emptied
	d.policyMu.Lock()
	err := d.settle()
	inactive := d.slot(d.PolicyRevision() + 1)
	content := d.content[(d.PolicyRevision()+1)&1]
	d.policyMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if !content.known || content.c != nil {
		t.Fatalf("the inactive slot's content is %+v, want known empty", content)
	}
	for name, m := range map[string]*ebpf.Map{"policy": inactive.policy, "policy_range": inactive.policyRange,
		"ipcache": inactive.ipcache, "ipcache_lpm": inactive.ipcacheLPM, "enforce": inactive.enforce, "local_ep": inactive.localEP} {
		key := make([]byte, m.KeySize())
		if err := m.NextKey(nil, key); !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Errorf("%s of the emptied slot still holds an entry (%v)", name, err)
		}
	}
	for i, b := range inactive.fast {
		if b != (tcFlowPolicyFastBucket{}) {
			t.Fatalf("policy_fast bucket %d of the emptied slot is not zero", i)
		}
	}
	if got := len(big.Policy); got == 0 || len(big.IPCache) == 0 {
		t.Fatalf("the test policy is empty: %d entries", got)
	}
}
