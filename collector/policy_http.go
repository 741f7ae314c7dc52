package collector

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/periscope-dev/periscope/api/policyapi"
	"github.com/periscope-dev/periscope/enforcer/identity"
)

// maxPolicyBody bounds a POST /api/v1/policies body.
const maxPolicyBody = 4 << 20

// Handlers are the policy API's handlers, for Options.Handlers:
// GET/POST /api/v1/policies, GET/DELETE /api/v1/policies/{namespace}/{name}.
func (s *PolicyStore) Handlers() map[string]http.Handler {
	return map[string]http.Handler{
		"GET " + policyapi.PoliciesPath:                            http.HandlerFunc(s.serveList),
		"POST " + policyapi.PoliciesPath:                           http.HandlerFunc(s.serveApply),
		"GET " + policyapi.PoliciesPath + "/{namespace}/{name}":    http.HandlerFunc(s.serveGet),
		"DELETE " + policyapi.PoliciesPath + "/{namespace}/{name}": http.HandlerFunc(s.serveDelete),
	}
}

// IdentitiesHandler serves GET /api/v1/identities: reserved and allocated
// identities, by id.
func IdentitiesHandler(ids *identity.Allocator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		list := ids.List()
		out := make([]policyapi.Identity, len(list))
		for i, id := range list {
			out[i] = policyapi.Identity{ID: uint32(id.ID), Labels: id.Labels}
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// Identities is the registry's identity allocator.
func (r *Registry) Identities() *identity.Allocator { return r.ids }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *PolicyStore) serveList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, wire(s.List()))
}

func (s *PolicyStore) serveGet(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if ns == policyapi.ClusterNamespace {
		ns = ""
	}
	ps := s.Get(ns, r.PathValue("name"))
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

func (s *PolicyStore) serveApply(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPolicyBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, policyapi.ApplyResult{Errors: []string{err.Error()}})
		return
	}
	name := r.URL.Query().Get(policyapi.FileParam)
	if name == "" {
		name = "request"
	}
	applied, err := s.Apply(name, data)
	if err != nil {
		var msgs []string
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				msgs = append(msgs, e.Error())
			}
		} else {
			msgs = []string{err.Error()}
		}
		writeJSON(w, http.StatusBadRequest, policyapi.ApplyResult{Errors: msgs})
		return
	}
	writeJSON(w, http.StatusOK, policyapi.ApplyResult{Applied: wire(applied)})
}

func (s *PolicyStore) serveDelete(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if ns == policyapi.ClusterNamespace {
		ns = ""
	}
	n, err := s.Delete(r.URL.Query().Get(policyapi.KindParam), ns, r.PathValue("name"))
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

// wire is the API's form of stored policies.
func wire(ps []StoredPolicy) []policyapi.Policy {
	out := make([]policyapi.Policy, len(ps))
	for i, p := range ps {
		out[i] = policyapi.Policy{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name, Revision: p.Revision}
	}
	return out
}
