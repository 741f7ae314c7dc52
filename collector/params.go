package collector

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// defaultLast is how many flows GET /api/v1/flows returns when the request
// bounds nothing, like `hubble observe`.
const defaultLast = 20

// flowsRequest is a parsed GET /api/v1/flows.
type flowsRequest struct {
	query  Query
	follow bool
	// source is where the flows come from: sourceRing or sourceClickHouse.
	source string
	// chips are the raw filter chips, for a history back end.
	chips []string
}

// Values of the source parameter.
const (
	sourceRing       = "ring"
	sourceClickHouse = "clickhouse"
)

// badParam is a 400: the parameter and what is wrong with it.
type badParam struct {
	param, problem string
}

func (e *badParam) Error() string {
	return fmt.Sprintf("bad parameter %q: %s", e.param, e.problem)
}

// parseFlowsRequest reads the query parameters of GET /api/v1/flows: filter
// (repeated chips), last, first, all, since, until, follow, source.
func parseFlowsRequest(v url.Values, now time.Time, parseFilter func([]string) (Matcher, error)) (*flowsRequest, error) {
	req := &flowsRequest{source: sourceRing}
	for key := range v {
		switch key {
		case "filter", "last", "first", "all", "since", "until", "follow", "source":
		default:
			return nil, &badParam{key, "unknown parameter (want filter, last, first, all, since, until, follow or source)"}
		}
	}
	src, ok, err := single(v, "source")
	if err != nil {
		return nil, err
	}
	if ok && src != "" {
		if src != sourceRing && src != sourceClickHouse {
			return nil, &badParam{"source", fmt.Sprintf("%q is not ring or clickhouse", src)}
		}
		req.source = src
	}
	if chips := v["filter"]; len(chips) > 0 {
		req.chips = chips
		if parseFilter == nil {
			return nil, &badParam{"filter", "this collector does not support filters"}
		}
		m, err := parseFilter(chips)
		if err != nil {
			return nil, &badParam{"filter", err.Error()}
		}
		req.query.Filter = m
	}
	if req.query.Last, err = count(v, "last"); err != nil {
		return nil, err
	}
	if req.query.First, err = count(v, "first"); err != nil {
		return nil, err
	}
	all, err := flag(v, "all")
	if err != nil {
		return nil, err
	}
	if req.follow, err = flag(v, "follow"); err != nil {
		return nil, err
	}
	if req.query.Since, err = instant(v, "since", now); err != nil {
		return nil, err
	}
	if req.query.Until, err = instant(v, "until", now); err != nil {
		return nil, err
	}

	limits := 0
	for _, set := range []bool{req.query.Last > 0, req.query.First > 0, all} {
		if set {
			limits++
		}
	}
	switch {
	case limits > 1:
		return nil, &badParam{"last", "last, first and all exclude each other"}
	case req.follow && req.source == sourceClickHouse:
		return nil, &badParam{"follow", "cannot be combined with source=clickhouse (history is not live)"}
	case req.follow && req.query.First > 0:
		return nil, &badParam{"first", "cannot be combined with follow"}
	case !req.query.Since.IsZero() && !req.query.Until.IsZero() && req.query.Until.Before(req.query.Since):
		return nil, &badParam{"until", "is before since"}
	}
	if limits == 0 && !req.follow && req.query.Since.IsZero() && req.query.Until.IsZero() {
		req.query.Last = defaultLast
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

// flag accepts a bare parameter ("?follow") as true.
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

// instant accepts RFC 3339 (with or without fractional seconds) or, like
// `hubble observe --since 5m`, a duration before now.
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
