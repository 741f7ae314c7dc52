package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/periscope-dev/periscope/enforcer/compile"
)

// AdmitPolicy makes next the policy in force by adding delta's entries
// (compile.Compiled.Admit: a DNS answer's new addresses) to the slot in
// force, in the revision in force: the policy entries first, then the
// probe flags that let them be found, then the ipcache entries that give
// the new addresses their identities, so a lookup meets the old policy
// until the address's ipcache entry and then all of the new one. Every
// entry is new (a key nothing looked up before), so no lookup meets a
// half-written state. Exact-port keys go to the policy hash, their
// policy_fast bucket marked spilled (an in-place slot write is not atomic
// for the programs reading it; the next ApplyPolicy lays them out again).
//
// delta.Base must be the policy in force (the last ApplyPolicy's or
// AdmitPolicy's); otherwise, and when the maps cannot take the entries,
// it fails and the policy in force stays delta.Base. Errors wrap
// compile.ErrRecompile when a full ApplyPolicy must bring next into force.
func (d *Datapath) AdmitPolicy(next *compile.Compiled, delta *compile.Delta) error {
	d.policyMu.Lock()
	defer d.policyMu.Unlock()
	if d.policyMem == nil {
		return errors.New("admit policy: datapath closed")
	}
	rev := d.PolicyRevision()
	content := d.content[rev&1]
	if delta.Base == nil || d.lastPolicy != delta.Base || !content.known || content.c != delta.Base {
		// Another policy was applied since the delta was computed (or the
		// slot's content is not the one it extends).
		return fmt.Errorf("admit policy: %w: the policy in force is not the one the delta extends", compile.ErrRecompile)
	}
	s := d.slot(rev)
	if len(next.PolicySets) > delta.FirstSet {
		// The new sets' names before any entry that names them.
		t := *d.names.Load()
		t.cur.sets = policyRefs(next)
		d.names.Store(&t)
	}
	w := admitWriter{slot: s}
	if err := w.write(delta); err != nil {
		if uerr := w.undo(); uerr != nil {
			// Entries of the delta may be left in the slot: empty it by
			// walking its maps when it is replaced.
			d.content[rev&1] = slotContent{}
			err = errors.Join(err, uerr)
		}
		return fmt.Errorf("admit policy: %w: %w", compile.ErrRecompile, err)
	}
	d.content[rev&1] = slotContent{known: true, c: next}
	d.lastPolicy = next
	d.log.Debug("policy admitted", "revision", rev, "entries", len(delta.Policy), "ipcache", len(delta.IPCache))
	return nil
}

// admitWriter writes a delta into the slot in force and remembers what
// it wrote, to undo it.
type admitWriter struct {
	slot     policySlot
	policy   []compile.Key
	ipcache  []tcFlowIpcacheKey
	enforced map[uint32]tcFlowPolicyEnforce // the values before
}

func (w *admitWriter) write(delta *compile.Delta) error {
	for k, v := range delta.Policy {
		m := w.slot.policy
		if k.InRangeTrie() {
			m = w.slot.policyRange
		}
		if err := putPolicy(m, k, v); err != nil {
			return err
		}
		w.policy = append(w.policy, k)
		if exactPort(k) {
			fs := fastSlot(k, v, 0, [16]byte{})
			w.slot.fast[policyFastHash(&fs, len(w.slot.fast))].Slot[0].Spill = 1
		}
	}
	w.enforced = map[uint32]tcFlowPolicyEnforce{}
	for ep, f := range delta.Flags {
		var v tcFlowPolicyEnforce
		if err := w.slot.enforce.Lookup(ep, &v); err != nil {
			return fmt.Errorf("enforce entry of endpoint %d: %w", ep, err)
		}
		w.enforced[ep] = v
		nv := v
		nv.Flags = uint8(f) | v.Flags&uint8(tcFlowPolicyEnforceFlagPOLICY_ENFORCE_FAST_PEERS)
		if err := w.slot.enforce.Put(ep, &nv); err != nil {
			return fmt.Errorf("enforce entry of endpoint %d: %w", ep, err)
		}
	}
	for p, id := range delta.IPCache {
		if !compile.HostPrefix(p) {
			return fmt.Errorf("ipcache %s: not a host prefix", p)
		}
		k, err := ipcacheKey(p)
		if err != nil {
			return err
		}
		if err := w.slot.ipcache.Update(&k, id, ebpf.UpdateNoExist); err != nil {
			return fmt.Errorf("ipcache %s: %w", p, err)
		}
		w.ipcache = append(w.ipcache, k)
	}
	return nil
}

// undo deletes what write wrote, the ipcache entries first, and puts the
// enforcement entries back.
func (w *admitWriter) undo() error {
	var errs []error
	for i := range w.ipcache {
		errs = append(errs, w.slot.ipcache.Delete(&w.ipcache[i]))
	}
	for ep, v := range w.enforced {
		errs = append(errs, w.slot.enforce.Put(ep, &v))
	}
	for _, k := range w.policy {
		m := w.slot.policy
		if k.InRangeTrie() {
			m = w.slot.policyRange
		}
		kb, _ := k.MarshalBinary()
		errs = append(errs, m.Delete(kb))
	}
	return errors.Join(errs...)
}
