package agentevent

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/periscope-dev/periscope/api/ndjson"
)

// Path is where agent events are served.
const Path = "/api/v1/agent-events"

// DefaultLast is how many events a request that bounds nothing returns, as
// `hubble observe agent-events` asks.
const DefaultLast = 20

// ParseQuery reads GET /api/v1/agent-events' parameters: since and until
// (RFC 3339, or a duration before now such as 5m), first, last, all and
// follow, as GET /api/v1/flows reads them. A request that bounds nothing
// gets Last = DefaultLast.
func ParseQuery(v url.Values, now time.Time) (Query, error) {
	var q Query
	for key, vals := range v {
		switch key {
		case "since", "until", "first", "last", "all", "follow":
		default:
			return q, fmt.Errorf("bad parameter %q: unknown parameter (want since, until, first, last, all or follow)", key)
		}
		if len(vals) > 1 {
			return q, fmt.Errorf("bad parameter %q: given more than once", key)
		}
	}
	var err error
	if q.Since, err = instant(v, "since", now); err != nil {
		return q, err
	}
	if q.Until, err = instant(v, "until", now); err != nil {
		return q, err
	}
	if q.First, err = count(v, "first"); err != nil {
		return q, err
	}
	if q.Last, err = count(v, "last"); err != nil {
		return q, err
	}
	all, err := flag(v, "all")
	if err != nil {
		return q, err
	}
	if q.Follow, err = flag(v, "follow"); err != nil {
		return q, err
	}
	switch {
	case q.First > 0 && q.Last > 0, all && (q.First > 0 || q.Last > 0):
		return q, errors.New(`bad parameter "last": last, first and all exclude each other`)
	case q.Follow && q.First > 0:
		return q, errors.New(`bad parameter "first": cannot be combined with follow`)
	case !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since):
		return q, errors.New(`bad parameter "until": is before since`)
	}
	if !all && q.First == 0 && q.Last == 0 && !q.Follow && q.Since.IsZero() && q.Until.IsZero() {
		q.Last = DefaultLast
	}
	return q, nil
}

// Values writes q as the parameters ParseQuery reads back (all when q
// bounds nothing).
func Values(q Query) url.Values {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	switch {
	case q.Last > 0:
		v.Set("last", strconv.Itoa(q.Last))
	case q.First > 0:
		v.Set("first", strconv.Itoa(q.First))
	default:
		v.Set("all", "true")
	}
	if q.Follow {
		v.Set("follow", "true")
	}
	return v
}

func instant(v url.Values, key string, now time.Time) (time.Time, error) {
	s := v.Get(key)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 && !strings.HasPrefix(s, "-") {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("bad parameter %q: %q is neither an RFC 3339 time nor a duration like 5m", key, s)
}

func count(v url.Values, key string) (int, error) {
	if !v.Has(key) {
		return 0, nil
	}
	n, err := strconv.Atoi(v.Get(key))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad parameter %q: %q is not a positive integer", key, v.Get(key))
	}
	return n, nil
}

func flag(v url.Values, key string) (bool, error) {
	if !v.Has(key) {
		return false, nil
	}
	s := v.Get(key)
	if s == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("bad parameter %q: %q is not a boolean (1, true, 0, false)", key, s)
	}
	return b, nil
}

// Handler serves GET /api/v1/agent-events from r: NDJSON, one Event per
// line, oldest first; a follow is flushed as it begins and after every
// event. A bad request is a 400 naming the parameter.
func Handler(r Reader, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		q, err := ParseQuery(req.URL.Query(), time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := ndjson.NewWriter(w)
		w.WriteHeader(http.StatusOK)
		if q.Follow {
			if err := out.Flush(); err != nil {
				return
			}
		}
		var line []byte
		err = r.Read(req.Context(), q, func(e *Event) error {
			var err error
			if line, err = AppendJSON(line[:0], e); err != nil {
				return err
			}
			if err := out.Line(line); err != nil {
				return err
			}
			if q.Follow {
				return out.Flush()
			}
			return nil
		})
		if err != nil && req.Context().Err() == nil {
			log.Debug("agent events answer ended", "err", err, "remote", req.RemoteAddr)
		}
		out.Close()
	})
}
