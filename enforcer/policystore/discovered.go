package policystore

import (
	"encoding/json"
	"fmt"

	"github.com/periscope-dev/periscope/api/agentevent"
	"github.com/periscope-dev/periscope/discovery"
)

var _ discovery.PolicySink = (*Store)(nil)

// PolicyChanged follows a policy object of the orchestrator (a watcher,
// discovery/kubernetes.Policies, reports it): added or updated, it is
// applied as `periscope policy apply` applies a file, with the same
// refusals (the error names the object; on refusal nothing changes: an
// updated object's previous version stays in force); deleted, it is
// removed. The rest of the set stays in force either way. Such policies
// carry their object as their Origin. Synced (the watcher's first complete
// listing) removes, in one change, every policy from an object the listing
// does not name: objects deleted while the collector was down. A client's
// policies are never touched.
func (s *Store) PolicyChanged(ev discovery.PolicyEvent) error {
	if ev.Kind == discovery.Synced {
		return s.removeDeletedObjects(ev.Present)
	}
	what := fmt.Sprintf("%s %s", ev.ObjectKind, objectName(ev.Namespace, ev.Name))
	switch ev.Kind {
	case discovery.Added, discovery.Updated:
		if err := sameObject(ev); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, _, err := s.apply(what, ev.Source, originOf(ev)); err != nil {
			s.log.Warn("policy object refused", "object", what, "event", ev.Kind.String(), "err", err)
			return err
		}
		s.log.Info("policy object applied", "object", what, "event", ev.Kind.String())
		return nil
	case discovery.Deleted:
		n, err := s.Delete(ev.ObjectKind, ev.Namespace, ev.Name)
		if err != nil {
			s.log.Warn("policy object deleted: its removal failed to apply", "object", what, "err", err)
			return fmt.Errorf("%s: remove: %w", what, err)
		}
		s.log.Info("policy object deleted", "object", what, "removed", n)
		return nil
	}
	return fmt.Errorf("%s: unknown event %d", what, ev.Kind)
}

// removeDeletedObjects removes the policies from orchestrator objects
// that present does not name, in one change, logging each.
func (s *Store) removeDeletedObjects(present []discovery.PolicyObject) error {
	there := make(map[discovery.PolicyObject]bool, len(present))
	for _, o := range present {
		there[o] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]*Applied, len(s.policies))
	var removed []*Applied
	for k, p := range s.policies {
		if p.Origin.Source == OriginK8s && !there[p.Origin.object()] {
			removed = append(removed, p)
			continue
		}
		next[k] = p
	}
	if len(removed) == 0 {
		return nil
	}
	for _, p := range removed {
		s.log.Info("policy object deleted while not watching: removed", "object",
			fmt.Sprintf("%s %s", p.Origin.Kind, objectName(p.Origin.Namespace, p.Origin.Name)))
	}
	rev := s.revision
	err := s.commit(next, nil)
	s.announce(rev, agentevent.PolicyDeleted, removed)
	if err != nil {
		return fmt.Errorf("remove %d policies of objects deleted while not watching: %w", len(removed), err)
	}
	return nil
}

// sameObject checks that the event's document is the object it names: a
// document of another name would replace that policy instead.
func sameObject(ev discovery.PolicyEvent) error {
	var doc struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(ev.Source, &doc); err != nil {
		return fmt.Errorf("its document: %w", err)
	}
	if doc.Kind != ev.ObjectKind || doc.Metadata.Namespace != ev.Namespace || doc.Metadata.Name != ev.Name {
		return fmt.Errorf("its document is %s %s", doc.Kind, objectName(doc.Metadata.Namespace, doc.Metadata.Name))
	}
	return nil
}

// objectName is namespace/name, or name for a cluster-wide object.
func objectName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
