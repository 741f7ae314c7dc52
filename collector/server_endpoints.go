package collector

import (
	"errors"
	"net/http"

	"github.com/periscope-dev/periscope/api/httpserve"
)

// Paths of the endpoints API.
const (
	// EndpointsPath lists the endpoints (GET): []EndpointStatus.
	EndpointsPath = "/api/v1/endpoints"
)

// EndpointPath is the path of one endpoint: DELETE removes it.
func EndpointPath(namespace, name string) string { return EndpointsPath + "/" + namespace + "/" + name }

// RemoveResult is the answer of DELETE EndpointPath: the endpoint removed,
// and what went wrong after it was (its policy recompiled, its interface
// detached), if anything.
type RemoveResult struct {
	Removed *EndpointStatus `json:"removed,omitempty"`
	Error   string          `json:"error,omitempty"`
}

func (c *Collector) serveEndpoints(w http.ResponseWriter, _ *http.Request) {
	httpserve.WriteJSON(w, http.StatusOK, c.Registry().Endpoints())
}

func (c *Collector) serveRemoveEndpoint(w http.ResponseWriter, r *http.Request) {
	removed, err := c.RemoveEndpoint(r.PathValue("namespace"), r.PathValue("name"))
	switch {
	case errors.Is(err, ErrNoEndpoint):
		httpserve.WriteJSON(w, http.StatusNotFound, RemoveResult{Error: err.Error()})
	case err != nil:
		httpserve.WriteJSON(w, http.StatusInternalServerError, RemoveResult{Removed: &removed, Error: err.Error()})
	default:
		httpserve.WriteJSON(w, http.StatusOK, RemoveResult{Removed: &removed})
	}
}
