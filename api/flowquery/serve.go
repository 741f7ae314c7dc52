package flowquery

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/ndjson"
)

// PartialHeader names the nodes an answer lacks, comma-separated. It is
// sent as a header, with the nodes unreachable when the answer started, and
// as a trailer, with every node unavailable at some point of the answer. A
// JSON-lines client that knows nothing of it reads a partial answer as an
// ordinary one.
const PartialHeader = "X-Periscope-Partial"

// NoHistory is the 400 answer to source=clickhouse where no history is
// configured.
const NoHistory = "history is not configured (start the collector with --clickhouse)"

// Server answers GET /api/v1/flows from the Reader of the request's source:
//
//   - a bad request (see Parse) is a 400 with BadParam's words, and so is
//     source=clickhouse without History (NoHistory);
//   - a follow beyond Followers, or a reader at a bound of its own that
//     refuses to begin (ErrBusy), is a 503 with Retry-After;
//   - a reader that fails to begin (an unreachable ClickHouse) is a 502
//     with its error;
//   - otherwise the answer is 200 and NDJSON (package ndjson), one flow per
//     line, flushed whenever a follow has caught up; a reader that fails
//     once the answer has begun (history streamed from ClickHouse) cuts it
//     off (http.ErrAbortHandler), so the client sees a broken answer, never
//     a short one that looks whole. With Partial, the
//     answer declares the PartialHeader trailer and names in it, and in the
//     header, the nodes it lacks.
type Server struct {
	// Ring reads source=ring, the default; required.
	Ring Reader
	// History reads source=clickhouse; nil when there is none.
	History Reader
	// Partial says the readers join nodes (a relay) whose answers may be
	// partial.
	Partial bool
	// Followers bounds the follows answered at once (shared with the other
	// APIs that follow); beyond it a follow is a 503. nil: no bound.
	Followers *Limit
	// Log gets answers that fail or end early, and slow followers; nil
	// discards.
	Log *slog.Logger
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// ServeHTTP answers one GET /api/v1/flows.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, err := Parse(r.URL.Query(), time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if p.Follow {
		release, err := s.Followers.Acquire()
		if err != nil {
			WriteBusy(w, err)
			return
		}
		defer release()
	}
	rd := s.Ring
	if p.Source == SourceClickHouse {
		if s.History == nil {
			http.Error(w, NoHistory, http.StatusBadRequest)
			return
		}
		rd = s.History
	}
	h := w.Header()
	if s.Partial {
		h.Set("Trailer", PartialHeader)
	}
	// The answer's headers are set only once the reader begins (Started,
	// or its first call for a reader that skips it): a reader that cannot
	// begin is answered with a plain 502.
	var out *ndjson.Writer
	begin := func(unavailable []string) error {
		if out != nil {
			return nil
		}
		out = ndjson.NewWriter(w)
		if len(unavailable) > 0 {
			h.Set(PartialHeader, strings.Join(unavailable, ","))
		}
		w.WriteHeader(http.StatusOK)
		if p.Follow {
			return http.NewResponseController(w).Flush()
		}
		return nil
	}
	a := Answer{
		Started: begin,
		Flow: func(f *api.Flow) error {
			if err := begin(nil); err != nil {
				return err
			}
			return out.Flow(f)
		},
		Line: func(line []byte) error {
			if err := begin(nil); err != nil {
				return err
			}
			return out.Line(line)
		},
		Idle: func() error {
			if err := begin(nil); err != nil {
				return err
			}
			return out.Flush()
		},
	}
	var oc Outcome
	if p.Follow {
		oc, err = rd.Follow(r.Context(), p.Query, a)
	} else {
		oc, err = rd.Query(r.Context(), p.Query, a)
	}
	log := s.log()
	switch {
	case err != nil && r.Context().Err() != nil:
		log.Debug("flows answer ended", "source", p.Source, "err", err, "remote", r.RemoteAddr)
		if out == nil {
			return
		}
	case errors.Is(err, ErrBusy) && out == nil:
		log.Debug("flows answer refused", "source", p.Source, "err", err, "remote", r.RemoteAddr)
		WriteBusy(w, err)
		return
	case err != nil && out == nil:
		log.Warn("reading flows failed", "source", p.Source, "err", err, "remote", r.RemoteAddr)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	case err != nil:
		// Cut the answer short rather than end it as if it were whole: the
		// client sees a broken stream, not a complete one.
		log.Warn("reading flows failed during the answer", "source", p.Source, "err", err, "remote", r.RemoteAddr)
		out.Flush()
		panic(http.ErrAbortHandler)
	case out == nil: // a reader that never began: an empty answer
		begin(nil)
	}
	if oc.Skipped > 0 {
		log.Warn("slow follower skipped flows", "skipped", oc.Skipped, "remote", r.RemoteAddr)
	}
	out.Close()
	if len(oc.Unavailable) > 0 {
		h.Set(PartialHeader, strings.Join(oc.Unavailable, ","))
	}
}
