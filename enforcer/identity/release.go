package identity

import (
	"fmt"
	"sort"
	"time"
)

// DefaultReleaseGrace is how long an identity no endpoint uses is kept
// before Release forgets it: long enough that a collector restart, or a
// pod deleted and created again, finds its label set at the same id.
const DefaultReleaseGrace = 30 * time.Minute

// Release is the allocator's garbage collection. It counts the identities
// in inUse as used at now, forgets every other allocated identity that was
// last used more than grace before now, persists the state, and returns
// those it forgot, by id. Reserved ids in inUse are ignored.
//
// Without it the state file only grows: every label set a node ever saw
// (each rollout's pod-template-hash, each Job's controller-uid) keeps its
// id, the 65,280 cluster ids fill up, and collisions, which break
// cross-node agreement, become ever more likely. A forgotten label set
// that comes back gets its preferred id again, unless another label set
// took that id meanwhile (the package doc's collision rule).
func (a *Allocator) Release(inUse []ID, grace time.Duration, now time.Time) ([]Identity, error) {
	if grace < 0 {
		return nil, fmt.Errorf("release identities: grace %v is negative", grace)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range inUse {
		if _, ok := a.byID[id]; ok {
			a.lastUsed[id] = now
		}
	}
	var released []Identity
	for id, l := range a.byID {
		if now.Sub(a.lastUsed[id]) > grace {
			released = append(released, Identity{ID: id, Labels: l})
		}
	}
	if len(released) == 0 {
		if len(inUse) == 0 {
			return nil, nil
		}
		if err := a.save(); err != nil {
			return nil, fmt.Errorf("release identities: %w", err)
		}
		return nil, nil
	}
	for _, r := range released {
		delete(a.byID, r.ID)
		delete(a.byKey, r.Labels.key())
	}
	if err := a.save(); err != nil {
		for _, r := range released { // nothing forgotten unless persisted
			a.byID[r.ID] = r.Labels
			a.byKey[r.Labels.key()] = r.ID
		}
		return nil, fmt.Errorf("release %d identities: %w", len(released), err)
	}
	for _, r := range released {
		delete(a.lastUsed, r.ID)
	}
	sort.Slice(released, func(i, j int) bool { return released[i].ID < released[j].ID })
	return released, nil
}
