package policystore

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/periscope-dev/periscope/api/policyapi"
)

// maxPolicyBody bounds a POST /api/v1/policies body.
const maxPolicyBody = 4 << 20

// Handlers are the policy and identity API's handlers, keyed by ServeMux
// pattern (for collector.Options.Handlers): GET/POST /api/v1/policies,
// GET/DELETE /api/v1/policies/{namespace}/{name}, GET /api/v1/identities.
func (s *Store) Handlers() map[string]http.Handler {
	const one = policyapi.PoliciesPath + "/{namespace}/{name}"
	return map[string]http.Handler{
		"GET " + policyapi.PoliciesPath:   http.HandlerFunc(s.serveList),
		"POST " + policyapi.PoliciesPath:  http.HandlerFunc(s.serveApply),
		"GET " + one:                      http.HandlerFunc(s.serveGet),
		"DELETE " + one:                   http.HandlerFunc(s.serveDelete),
		"GET " + policyapi.IdentitiesPath: http.HandlerFunc(s.serveIdentities),
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// wire is the API's form of applied policies.
func wire(ps []Applied) []policyapi.Policy {
	out := make([]policyapi.Policy, len(ps))
	for i, p := range ps {
		out[i] = p.Policy
	}
	return out
}

// namespaceOf is the namespace a policy's path names.
func namespaceOf(r *http.Request) string {
	ns := r.PathValue("namespace")
	if ns == policyapi.ClusterNamespace {
		return ""
	}
	return ns
}

func (s *Store) serveList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, wire(s.List()))
}

func (s *Store) serveGet(w http.ResponseWriter, r *http.Request) {
	ps := s.Get(namespaceOf(r), r.PathValue("name"))
	if len(ps) == 0 {
		http.Error(w, "policy not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	for i, p := range ps {
		if i > 0 {
			io.WriteString(w, "---\n")
		}
		io.WriteString(w, p.YAML)
	}
}

func (s *Store) serveApply(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPolicyBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, policyapi.ApplyResult{Errors: []string{err.Error()}})
		return
	}
	name := r.URL.Query().Get(policyapi.FileParam)
	if name == "" {
		name = "request"
	}
	applied, skipped, err := s.Apply(name, data)
	notes := make([]string, len(skipped))
	for i, sk := range skipped {
		notes[i] = sk.String()
	}
	if err != nil {
		var msgs []string
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				msgs = append(msgs, e.Error())
			}
		} else {
			msgs = []string{err.Error()}
		}
		writeJSON(w, http.StatusBadRequest, policyapi.ApplyResult{Errors: msgs, Skipped: notes})
		return
	}
	writeJSON(w, http.StatusOK, policyapi.ApplyResult{Applied: wire(applied), Skipped: notes})
}

func (s *Store) serveDelete(w http.ResponseWriter, r *http.Request) {
	n, err := s.Delete(r.URL.Query().Get(policyapi.KindParam), namespaceOf(r), r.PathValue("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if n == 0 {
		http.Error(w, "policy not found", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, policyapi.DeleteResult{Deleted: n})
}

// serveIdentities lists the reserved and allocated identities, by id.
func (s *Store) serveIdentities(w http.ResponseWriter, _ *http.Request) {
	list := s.endpoints.Identities()
	out := make([]policyapi.Identity, len(list))
	for i, id := range list {
		out[i] = policyapi.Identity{ID: uint32(id.ID), Labels: id.Labels}
	}
	writeJSON(w, http.StatusOK, out)
}
