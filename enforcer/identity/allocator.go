package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Allocator hands out cluster identities (see the package doc) and keeps
// them in a state file so a restart gives every label set its old id, until
// Release forgets those no endpoint has used for a while. It is safe for
// concurrent use.
type Allocator struct {
	mu       sync.Mutex
	path     string
	byID     map[ID]Labels
	byKey    map[string]ID
	lastUsed map[ID]time.Time
}

// stateFile is the on-disk form: a JSON document replaced atomically.
type stateFile struct {
	Version    int          `json:"version"`
	Identities []stateEntry `json:"identities"`
}

type stateEntry struct {
	ID     ID       `json:"id"`
	Labels []string `json:"labels"`
	// LastUsed is when an endpoint last had the identity (Unix seconds);
	// absent in files written before Release existed: then the load time.
	LastUsed int64 `json:"last_used,omitempty"`
}

const stateVersion = 1

// NewAllocator loads statePath (a missing file is an empty state). An empty
// statePath keeps the allocations in memory only (tests, dry runs).
func NewAllocator(statePath string) (*Allocator, error) {
	a := &Allocator{path: statePath, byID: make(map[ID]Labels), byKey: make(map[string]ID), lastUsed: make(map[ID]time.Time)}
	if statePath == "" {
		return a, nil
	}
	data, err := os.ReadFile(statePath)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read identity state: %w", err)
	}
	loaded := time.Now()
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("parse identity state %s: %w", statePath, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("identity state %s: version %d, want %d", statePath, st.Version, stateVersion)
	}
	for _, e := range st.Identities {
		l := NewLabels(e.Labels...)
		if e.ID < MinCluster || e.ID > MaxCluster {
			return nil, fmt.Errorf("identity state %s: id %d outside %d..%d", statePath, e.ID, MinCluster, MaxCluster)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("identity state %s: id %d: %w", statePath, e.ID, err)
		}
		if _, dup := a.byID[e.ID]; dup {
			return nil, fmt.Errorf("identity state %s: id %d allocated twice", statePath, e.ID)
		}
		if prev, dup := a.byKey[l.key()]; dup {
			return nil, fmt.Errorf("identity state %s: labels %s have ids %d and %d", statePath, l, prev, e.ID)
		}
		a.byID[e.ID] = l
		a.byKey[l.key()] = e.ID
		a.lastUsed[e.ID] = loaded
		if e.LastUsed != 0 {
			a.lastUsed[e.ID] = time.Unix(e.LastUsed, 0)
		}
	}
	return a, nil
}

// Allocate returns the identity of labels, allocating (and persisting) it
// on first use, and counts it as used now. A label set that is exactly one
// reserved label gets the reserved id.
func (a *Allocator) Allocate(labels Labels) (ID, error) {
	l := NewLabels(labels...)
	if err := l.Validate(); err != nil {
		return 0, fmt.Errorf("allocate identity: %w", err)
	}
	if id, ok := reservedID(l); ok {
		return id, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if id, ok := a.byKey[l.key()]; ok {
		a.lastUsed[id] = time.Now() // persisted with the next change
		return id, nil
	}
	span := uint32(MaxCluster - MinCluster + 1)
	start := uint32(PreferredID(l) - MinCluster)
	for i := uint32(0); i < span; i++ {
		id := MinCluster + ID((start+i)%span)
		if _, used := a.byID[id]; used {
			continue
		}
		a.byID[id] = l
		a.byKey[l.key()] = id
		a.lastUsed[id] = time.Now()
		if err := a.save(); err != nil {
			delete(a.byID, id)
			delete(a.byKey, l.key())
			delete(a.lastUsed, id)
			return 0, err
		}
		return id, nil
	}
	return 0, fmt.Errorf("allocate identity for %s: all %d cluster identities are in use", l, span)
}

// Lookup returns the labels of id (reserved ids included).
func (a *Allocator) Lookup(id ID) (Labels, bool) {
	if l, ok := ReservedLabel(id); ok {
		return Labels{l}, true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.byID[id]
	return l, ok
}

// List returns the reserved and allocated identities, by id.
func (a *Allocator) List() []Identity {
	out := Reserved()
	a.mu.Lock()
	for id, l := range a.byID {
		out = append(out, Identity{ID: id, Labels: l})
	}
	a.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Collisions lists allocated identities that are not at their preferred id:
// the only ones other nodes may number differently.
func (a *Allocator) Collisions() []Identity {
	var out []Identity
	for _, i := range a.List() {
		if !i.Preferred() {
			out = append(out, i)
		}
	}
	return out
}

// save writes the state file atomically (temp file, fsync, rename); the
// caller holds a.mu.
func (a *Allocator) save() error {
	if a.path == "" {
		return nil
	}
	st := stateFile{Version: stateVersion, Identities: make([]stateEntry, 0, len(a.byID))}
	for id, l := range a.byID {
		st.Identities = append(st.Identities, stateEntry{ID: id, Labels: l, LastUsed: a.lastUsed[id].Unix()})
	}
	sort.Slice(st.Identities, func(i, j int) bool { return st.Identities[i].ID < st.Identities[j].ID })
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode identity state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(a.path), filepath.Base(a.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write identity state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write identity state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync identity state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write identity state: %w", err)
	}
	if err := os.Rename(tmp.Name(), a.path); err != nil {
		return fmt.Errorf("replace identity state: %w", err)
	}
	return nil
}
