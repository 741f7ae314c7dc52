package policystore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// fileName is the persisted file of p.
func (p *Applied) fileName() string {
	ns := p.Namespace
	if ns == "" {
		ns = "_cluster"
	}
	return p.Kind + "_" + ns + "_" + p.Name + ".yaml"
}

// persist writes the applied set to s.dir and removes the files of
// policies no longer applied.
func (s *Store) persist(prev map[string]*Applied) error {
	if s.dir == "" {
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return fmt.Errorf("persist policies: %w", err)
	}
	var errs []error
	for k, p := range prev {
		if _, ok := s.policies[k]; !ok {
			if err := os.Remove(filepath.Join(s.dir, p.fileName())); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
	}
	for k, p := range s.policies {
		if prev[k] == p {
			continue
		}
		errs = append(errs, writeAtomic(filepath.Join(s.dir, p.fileName()), []byte(p.YAML)))
	}
	errs = append(errs, s.persistRevisions())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("persist policies (applied, not persisted): %w", err)
	}
	return nil
}

// revisionsFile keeps the store's revision and each policy's, and the
// origins of those that are not a client's, so a restart lists them as
// they were.
const revisionsFile = "revisions.json"

// revisions is revisionsFile's content.
type revisions struct {
	Revision uint64            `json:"revision"`
	Policies map[string]uint64 `json:"policies"` // by kind/namespace/name
	// Origins of the policies that are not a client's, by
	// kind/namespace/name; absent in files of earlier versions (every
	// policy then loads as a client's).
	Origins map[string]Origin `json:"origins,omitempty"`
}

func (s *Store) persistRevisions() error {
	r := revisions{Revision: s.revision, Policies: make(map[string]uint64, len(s.policies))}
	for k, p := range s.policies {
		r.Policies[k] = p.Revision
		if p.Origin != (Origin{}) {
			if r.Origins == nil {
				r.Origins = map[string]Origin{}
			}
			r.Origins[k] = p.Origin
		}
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, revisionsFile), data)
}

// loadRevisions restores the revisions and origins persisted beside the
// policies; a policy without a revision (persisted before revisions were)
// keeps 0, one without an origin is a client's.
func (s *Store) loadRevisions(loaded map[string]*Applied) error {
	data, err := os.ReadFile(filepath.Join(s.dir, revisionsFile))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("policy store: %w", err)
	}
	var r revisions
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("policy store: %s: %w", filepath.Join(s.dir, revisionsFile), err)
	}
	s.revision = r.Revision
	for k, p := range loaded {
		p.Revision = r.Policies[k]
		p.parsed.Revision = p.Revision
		p.Origin = r.Origins[k]
	}
	return nil
}

// load reads the policies persisted in s.dir and their revisions.
func (s *Store) load() (map[string]*Applied, error) {
	out := map[string]*Applied{}
	if s.dir == "" {
		return out, nil
	}
	entries, err := os.ReadDir(s.dir)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("policy store: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("policy store: %w", err)
		}
		docs, _, err := parse(path, data)
		if err != nil {
			// Not dropped: without it the endpoints it isolated could be
			// opened. A newer version may refuse what an older accepted.
			return nil, fmt.Errorf("policy store: a stored policy is refused (edit or remove %s, then start again): %w", path, err)
		}
		for _, d := range docs {
			out[d.key()] = d
		}
	}
	return out, s.loadRevisions(out)
}

// writeAtomic replaces path with data: a crash leaves the old file or the
// new one, never a part.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
