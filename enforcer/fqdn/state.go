package fqdn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// stateFile is the on-disk form: a JSON document replaced atomically.
type stateFile struct {
	Version int          `json:"version"`
	Entries []stateEntry `json:"entries"`
}

type stateEntry struct {
	Endpoint uint32     `json:"endpoint"`
	Name     string     `json:"name"`
	Addr     netip.Addr `json:"addr"`
	// Expires is Unix milliseconds.
	Expires int64 `json:"expires"`
}

const stateVersion = 1

// load reads the state file into an empty cache.
func (c *Cache) load() error {
	if c.opts.StatePath == "" {
		return nil
	}
	data, err := os.ReadFile(c.opts.StatePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read fqdn cache state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("parse fqdn cache state %s: %w", c.opts.StatePath, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("fqdn cache state %s: version %d, want %d", c.opts.StatePath, st.Version, stateVersion)
	}
	now := c.opts.Now()
	kept := 0
	for i, e := range st.Entries {
		if e.Name == "" || !e.Addr.IsValid() {
			return fmt.Errorf("fqdn cache state %s: entry %d has no name or no address", c.opts.StatePath, i)
		}
		exp := time.UnixMilli(e.Expires)
		if !exp.After(now) {
			continue
		}
		ec := c.endpoints[e.Endpoint]
		if ec == nil {
			ec = &endpointCache{id: e.Endpoint, byPair: make(map[pairKey]*entry), names: make(map[netip.Addr][]string)}
			c.endpoints[e.Endpoint] = ec
		}
		// Bounds lowered since the file was written evict here, silently:
		// nothing was admitted yet in this run.
		c.upsert(ec, pairKey{e.Name, e.Addr.Unmap()}, exp, nil)
		kept++
	}
	c.nonEmpty.Store(c.total > 0)
	c.log.Debug("state loaded", "path", c.opts.StatePath, "entries", kept, "expired", len(st.Entries)-kept)
	return nil
}

// Save writes the state file if the cache changed since the last save.
func (c *Cache) Save() error {
	if c.opts.StatePath == "" {
		return nil
	}
	c.mu.Lock()
	if !c.dirty {
		c.mu.Unlock()
		return nil
	}
	c.dirty = false
	c.mu.Unlock()
	entries := c.Entries()
	st := stateFile{Version: stateVersion, Entries: make([]stateEntry, len(entries))}
	for i, e := range entries {
		st.Entries[i] = stateEntry{Endpoint: e.Endpoint, Name: e.Name, Addr: e.Addr, Expires: e.Expires.UnixMilli()}
	}
	if err := writeAtomic(c.opts.StatePath, st); err != nil {
		c.mu.Lock()
		c.dirty = true // try again next time
		c.mu.Unlock()
		return err
	}
	return nil
}

// writeAtomic writes v as JSON to a temporary file beside path, syncs it
// and renames it over path.
func writeAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode fqdn cache state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write fqdn cache state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write fqdn cache state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync fqdn cache state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write fqdn cache state %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace fqdn cache state %s: %w", path, err)
	}
	return nil
}

// Run removes expired entries every GCInterval and saves a changed cache
// every SaveInterval, until ctx is done; then it saves once more.
func (c *Cache) Run(ctx context.Context) error {
	gc := time.NewTicker(c.opts.GCInterval)
	defer gc.Stop()
	save := time.NewTicker(c.opts.SaveInterval)
	defer save.Stop()
	for {
		select {
		case <-ctx.Done():
			c.GC()
			return c.Save()
		case <-gc.C:
			c.GC()
		case <-save.C:
			if err := c.Save(); err != nil {
				c.log.Warn("save state", "err", err)
			}
		}
	}
}
