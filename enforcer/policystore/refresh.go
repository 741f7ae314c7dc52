package policystore

import (
	"errors"
	"fmt"
)

// Refresh brings the applied policies into force against the endpoints as
// they are now, after the node's endpoints changed (one was removed): it
// puts the endpoints that ask for it in audit mode and takes the others
// out of it, and recompiles and applies the set (a new revision). On error
// the policy in force stays.
func (s *Store) Refresh() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.syncAudit(); err != nil {
		return fmt.Errorf("policy store: %w", err)
	}
	if err := s.commit(s.policies, nil); err != nil {
		return fmt.Errorf("policy store: refresh: %w", err)
	}
	return nil
}

// syncAudit makes the applier's audit modes the endpoints': on for those
// that ask for it, off for those it turned on that no longer do (or are
// gone: their id may come back as another endpoint's).
func (s *Store) syncAudit() error {
	want := map[uint32]string{}
	for _, e := range s.endpoints.PolicyEndpoints() {
		if e.Audit {
			want[e.ID] = e.Name
		}
	}
	var errs []error
	for id := range s.audited {
		if _, ok := want[id]; !ok {
			if err := s.applier.SetPolicyAudit(id, false); err != nil {
				errs = append(errs, fmt.Errorf("audit mode off for endpoint %d: %w", id, err))
				continue
			}
			delete(s.audited, id)
		}
	}
	if s.audited == nil {
		s.audited = map[uint32]bool{}
	}
	for id, name := range want {
		if s.audited[id] {
			continue
		}
		if err := s.applier.SetPolicyAudit(id, true); err != nil {
			errs = append(errs, fmt.Errorf("audit mode of %s: %w", name, err))
			continue
		}
		s.audited[id] = true
	}
	return errors.Join(errs...)
}
