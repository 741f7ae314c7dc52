package policystore

import (
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
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("persist policies (applied, not persisted): %w", err)
	}
	return nil
}

// load reads the policies persisted in s.dir.
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
			return nil, fmt.Errorf("policy store: %w", err)
		}
		for _, d := range docs {
			out[d.key()] = d
		}
	}
	return out, nil
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
