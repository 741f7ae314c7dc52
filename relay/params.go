package relay

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/periscope-dev/periscope/filter"
)

// defaultLast is how many flows an unbounded request returns, as a
// collector does.
const defaultLast = 20

// badParam is a 400: the parameter and what is wrong with it. The wording
// is the collector's so that clients see the same errors.
type badParam struct {
	param, problem string
}

func (e *badParam) Error() string {
	return fmt.Sprintf("bad parameter %q: %s", e.param, e.problem)
}

// ParseRequest reads the query parameters of GET /api/v1/flows exactly as a
// collector does: filter (repeated chips, checked with filter.Parse), last,
// first, all, since, until, follow. Durations in since and until are taken
// before now, so every peer is asked for the same instants.
func ParseRequest(v url.Values, now time.Time) (Request, error) {
	var req Request
	for key := range v {
		switch key {
		case "filter", "last", "first", "all", "since", "until", "follow", "source":
		default:
			return req, &badParam{key, "unknown parameter (want filter, last, first, all, since, until, follow or source)"}
		}
	}
	source, _, err := single(v, "source")
	if err != nil {
		return req, err
	}
	switch source {
	case "", "ring":
	case "clickhouse":
		req.Source = source
	default:
		return req, &badParam{"source", fmt.Sprintf("%q is not ring or clickhouse", source)}
	}
	if chips := v["filter"]; len(chips) > 0 {
		if _, err := filter.Parse(chips); err != nil {
			return req, &badParam{"filter", err.Error()}
		}
		req.Chips = chips
	}
	if req.Last, err = count(v, "last"); err != nil {
		return req, err
	}
	if req.First, err = count(v, "first"); err != nil {
		return req, err
	}
	all, err := flag(v, "all")
	if err != nil {
		return req, err
	}
	if req.Follow, err = flag(v, "follow"); err != nil {
		return req, err
	}
	if req.Since, err = instant(v, "since", now); err != nil {
		return req, err
	}
	if req.Until, err = instant(v, "until", now); err != nil {
		return req, err
	}
	limits := 0
	for _, set := range []bool{req.Last > 0, req.First > 0, all} {
		if set {
			limits++
		}
	}
	switch {
	case limits > 1:
		return req, &badParam{"last", "last, first and all exclude each other"}
	case req.Follow && req.First > 0:
		return req, &badParam{"first", "cannot be combined with follow"}
	case req.Follow && req.Source != "":
		return req, &badParam{"source", "clickhouse is history: it cannot be combined with follow"}
	case !req.Since.IsZero() && !req.Until.IsZero() && req.Until.Before(req.Since):
		return req, &badParam{"until", "is before since"}
	}
	if limits == 0 && !req.Follow && req.Since.IsZero() && req.Until.IsZero() {
		req.Last = defaultLast
	}
	return req, nil
}

func single(v url.Values, key string) (string, bool, error) {
	vals, ok := v[key]
	if !ok {
		return "", false, nil
	}
	if len(vals) > 1 {
		return "", false, &badParam{key, "given more than once"}
	}
	return vals[0], true, nil
}

func count(v url.Values, key string) (int, error) {
	s, ok, err := single(v, key)
	if err != nil || !ok {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, &badParam{key, fmt.Sprintf("%q is not a positive integer", s)}
	}
	return n, nil
}

func flag(v url.Values, key string) (bool, error) {
	s, ok, err := single(v, key)
	if err != nil || !ok {
		return false, err
	}
	if s == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, &badParam{key, fmt.Sprintf("%q is not a boolean (1, true, 0, false)", s)}
	}
	return b, nil
}

func instant(v url.Values, key string, now time.Time) (time.Time, error) {
	s, ok, err := single(v, key)
	if err != nil || !ok {
		return time.Time{}, err
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 && !strings.HasPrefix(s, "-") {
		return now.Add(-d), nil
	}
	return time.Time{}, &badParam{key, fmt.Sprintf("%q is neither an RFC 3339 time nor a duration like 5m", s)}
}

// peerQuery is the query sent to every peer for req. With a local matcher
// the peers are asked for everything in the time range and first/last is
// applied after matching, across peers.
func (req *Request) peerQuery() url.Values {
	q := url.Values{}
	if len(req.Chips) > 0 {
		q["filter"] = req.Chips
	}
	if !req.Since.IsZero() {
		q.Set("since", req.Since.UTC().Format(time.RFC3339Nano))
	}
	if !req.Until.IsZero() {
		q.Set("until", req.Until.UTC().Format(time.RFC3339Nano))
	}
	if req.Follow {
		q.Set("follow", "1")
	}
	if req.Source != "" {
		q.Set("source", req.Source)
	}
	switch {
	case req.Match == nil && req.Last > 0:
		q.Set("last", strconv.Itoa(req.Last))
	case req.Match == nil && req.First > 0:
		q.Set("first", strconv.Itoa(req.First))
	case !req.Follow && req.Since.IsZero() && req.Until.IsZero():
		q.Set("all", "1")
	}
	return q
}
