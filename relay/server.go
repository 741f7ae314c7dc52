package relay

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// PartialHeader names the nodes an answer lacks, comma-separated. It is
// sent as a header, with the nodes unreachable when the answer started, and
// as a trailer, with every node unavailable at some point of the answer. A
// JSON-lines client that knows nothing of it reads a partial answer as an
// ordinary one.
const PartialHeader = "X-Periscope-Partial"

// writeStall is how long a client may stall a response before it is dropped.
const writeStall = 30 * time.Second

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
	var deadline time.Time
	extend := func() {
		if now := time.Now(); now.Sub(deadline) >= time.Second {
			deadline = now
			_ = rc.SetWriteDeadline(now.Add(writeStall))
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	h.Set("Trailer", PartialHeader)
	bw := bufio.NewWriterSize(w, 32<<10)
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
		Idle: func() error {
			extend()
			if err := bw.Flush(); err != nil {
				return err
			}
			return rc.Flush()
		},
	}
	unavailable, err := r.Flows(hr.Context(), req, opts, func(it *Item) error {
		extend()
		if _, err := bw.Write(it.Line); err != nil {
			return err
		}
		return bw.WriteByte('\n')
	})
	if err != nil && !errors.Is(err, hr.Context().Err()) {
		r.log.Debug("flows answer ended", "err", err, "remote", hr.RemoteAddr)
	}
	bw.Flush()
	if len(unavailable) > 0 {
		h.Set(PartialHeader, strings.Join(unavailable, ","))
	}
}
