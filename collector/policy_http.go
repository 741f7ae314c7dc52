package collector

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/periscope-dev/periscope/enforcer/identity"
)

// maxPolicyBody bounds a POST /api/v1/policies body.
const maxPolicyBody = 4 << 20

// IdentityJSON is one identity in GET /api/v1/identities.
type IdentityJSON struct {
	ID     uint32   `json:"id"`
	Labels []string `json:"labels"`
}

// PolicyApplyResult is the answer of POST /api/v1/policies.
type PolicyApplyResult struct {
	Applied []StoredPolicy `json:"applied,omitempty"`
	Errors  []string       `json:"errors,omitempty"`
}

// Handlers are the policy API's handlers, for Options.Handlers:
// GET/POST /api/v1/policies, GET/DELETE /api/v1/policies/{namespace}/{name}.
func (s *PolicyStore) Handlers() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /api/v1/policies":                       http.HandlerFunc(s.serveList),
		"POST /api/v1/policies":                      http.HandlerFunc(s.serveApply),
		"GET /api/v1/policies/{namespace}/{name}":    http.HandlerFunc(s.serveGet),
		"DELETE /api/v1/policies/{namespace}/{name}": http.HandlerFunc(s.serveDelete),
	}
}

// IdentitiesHandler serves GET /api/v1/identities: reserved and allocated
// identities, by id.
func IdentitiesHandler(ids *identity.Allocator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		list := ids.List()
		out := make([]IdentityJSON, len(list))
		for i, id := range list {
			out[i] = IdentityJSON{ID: uint32(id.ID), Labels: id.Labels}
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

// clusterNS names clusterwide policies in URLs (they have no namespace).
const clusterNS = "-"

func (s *PolicyStore) serveList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.List())
}

func (s *PolicyStore) serveGet(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if ns == clusterNS {
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
		writeJSON(w, http.StatusRequestEntityTooLarge, PolicyApplyResult{Errors: []string{err.Error()}})
		return
	}
	name := r.URL.Query().Get("file")
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
		writeJSON(w, http.StatusBadRequest, PolicyApplyResult{Errors: msgs})
		return
	}
	writeJSON(w, http.StatusOK, PolicyApplyResult{Applied: applied})
}

func (s *PolicyStore) serveDelete(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("namespace")
	if ns == clusterNS {
		ns = ""
	}
	n, err := s.Delete(r.URL.Query().Get("kind"), ns, r.PathValue("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if n == 0 {
		http.Error(w, "policy not found", http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"deleted": n})
}
