package relay

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/periscope-dev/periscope/api/ndjson"
)

// PartialHeader names the nodes an answer lacks, comma-separated. It is
// sent as a header, with the nodes unreachable when the answer started, and
// as a trailer, with every node unavailable at some point of the answer. A
// JSON-lines client that knows nothing of it reads a partial answer as an
// ordinary one.
const PartialHeader = "X-Periscope-Partial"

// Handler serves the relay's HTTP API, the collectors' API over all peers:
//
//   - GET /api/v1/flows with the collector's parameters (filter, last,
//     first, all, since, until, follow) and answer (NDJSON flows). The
//     response declares the trailer X-Periscope-Partial; when nodes are
//     unreachable the header X-Periscope-Partial lists those missing at the
//     start and the trailer those missing at any time.
//   - GET /api/v1/status: Status as JSON.
//   - GET /healthz: "ok".
func (r *Relay) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /api/v1/status", r.serveStatus)
	mux.HandleFunc("GET /api/v1/flows", r.serveFlows)
	for pattern, h := range r.opts.Handlers {
		mux.Handle(pattern, h)
	}
	return mux
}

func (r *Relay) serveStatus(w http.ResponseWriter, _ *http.Request) {
	body, err := json.Marshal(r.Status())
	if err != nil {
		http.Error(w, "encode status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(body, '\n'))
}

func (r *Relay) serveFlows(w http.ResponseWriter, hr *http.Request) {
	req, err := ParseRequest(hr.URL.Query(), time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc := http.NewResponseController(w)
	out := ndjson.NewWriter(w)
	h := w.Header()
	h.Set("Trailer", PartialHeader)
	opts := FlowsOptions{
		Started: func(unavailable []string) error {
			if len(unavailable) > 0 {
				h.Set(PartialHeader, strings.Join(unavailable, ","))
			}
			w.WriteHeader(http.StatusOK)
			if req.Follow {
				return rc.Flush()
			}
			return nil
		},
		Idle: out.Flush,
	}
	unavailable, err := r.Flows(hr.Context(), req, opts, func(it *Item) error { return out.Line(it.Line) })
	if err != nil && !errors.Is(err, hr.Context().Err()) {
		r.log.Debug("flows answer ended", "err", err, "remote", hr.RemoteAddr)
	}
	out.Close()
	if len(unavailable) > 0 {
		h.Set(PartialHeader, strings.Join(unavailable, ","))
	}
}
