package policystore

import "github.com/periscope-dev/periscope/api/agentevent"

// announce appends an agent event of type typ for each policy when a
// commit took effect (the revision moved on from before, even if
// persisting it failed); s.mu is held.
func (s *Store) announce(before uint64, typ agentevent.Type, policies []*Applied) {
	if s.events == nil || s.revision == before {
		return
	}
	for _, p := range policies {
		s.events.Append(agentevent.PolicyChange(typ, p.Kind, p.Namespace, p.Name, s.revision, len(p.parsed.Rules)))
	}
}
