// Package flowquery owns reading flows back: the one Query type (filter,
// time range, first or last N), the one Reader interface that every store
// of flows implements (the collector's ring, ClickHouse, a relay) and that
// every consumer reads through (the HTTP API, the web UI, Hubble's API),
// and GET /api/v1/flows, which collectors and relays answer alike: its
// parameters (filter, last, first, all, since, until, follow, source),
// parsed into Params, and Server, which answers it from Readers. Every
// server thus reads a request the same way and answers a bad one with the
// same words; filter chips are parsed once per request, here, with package
// filter.
//
// It must not store flows or know any Reader's implementation.
package flowquery

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/periscope-dev/periscope/filter"
)

// DefaultLast is how many flows a request that bounds nothing returns, like
// `hubble observe`.
const DefaultLast = 20

// Values of the source parameter.
const (
	SourceRing       = "ring"       // the collector's in-memory ring (the default)
	SourceClickHouse = "clickhouse" // long-term history; never live
)

// Params is one parsed flows request.
type Params struct {
	// Query is what to read: the parsed filter chips, since, until, and
	// first or last (all is a Query without either).
	Query
	Follow bool   // go on with live flows
	Source string // SourceRing or SourceClickHouse
}

// BadParam is a request error: which parameter, and what is wrong with it.
// Servers answer it with 400 and its text.
type BadParam struct {
	Param, Problem string
}

func (e *BadParam) Error() string {
	return fmt.Sprintf("bad parameter %q: %s", e.Param, e.Problem)
}

// Parse reads v. Durations in since and until ("5m") are taken before now.
// A request that bounds nothing (no last, first, all, since, until or
// follow) gets Last = DefaultLast. A bad filter chip is a BadParam of
// "filter" with filter.Parse's words.
func Parse(v url.Values, now time.Time) (Params, error) {
	p := Params{Source: SourceRing}
	for key := range v {
		switch key {
		case "filter", "last", "first", "all", "since", "until", "follow", "source":
		default:
			return p, &BadParam{key, "unknown parameter (want filter, last, first, all, since, until, follow or source)"}
		}
	}
	src, ok, err := single(v, "source")
	if err != nil {
		return p, err
	}
	if ok && src != "" {
		if src != SourceRing && src != SourceClickHouse {
			return p, &BadParam{"source", fmt.Sprintf("%q is not ring or clickhouse", src)}
		}
		p.Source = src
	}
	if p.Last, err = count(v, "last"); err != nil {
		return p, err
	}
	if p.First, err = count(v, "first"); err != nil {
		return p, err
	}
	all, err := flag(v, "all")
	if err != nil {
		return p, err
	}
	if p.Follow, err = flag(v, "follow"); err != nil {
		return p, err
	}
	if p.Since, err = instant(v, "since", now); err != nil {
		return p, err
	}
	if p.Until, err = instant(v, "until", now); err != nil {
		return p, err
	}
	limits := 0
	for _, set := range []bool{p.Last > 0, p.First > 0, all} {
		if set {
			limits++
		}
	}
	switch {
	case limits > 1:
		return p, &BadParam{"last", "last, first and all exclude each other"}
	case p.Follow && p.Source == SourceClickHouse:
		return p, &BadParam{"follow", "cannot be combined with source=clickhouse (history is not live)"}
	case p.Follow && p.First > 0:
		return p, &BadParam{"first", "cannot be combined with follow"}
	case !p.Since.IsZero() && !p.Until.IsZero() && p.Until.Before(p.Since):
		return p, &BadParam{"until", "is before since"}
	}
	if limits == 0 && !p.Follow && p.Since.IsZero() && p.Until.IsZero() {
		p.Last = DefaultLast
	}
	if p.Filter, err = filter.ParseSet(v["filter"]); err != nil {
		return p, &BadParam{"filter", err.Error()}
	}
	return p, nil
}

func single(v url.Values, key string) (string, bool, error) {
	vals, ok := v[key]
	if !ok {
		return "", false, nil
	}
	if len(vals) > 1 {
		return "", false, &BadParam{key, "given more than once"}
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
		return 0, &BadParam{key, fmt.Sprintf("%q is not a positive integer", s)}
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
		return false, &BadParam{key, fmt.Sprintf("%q is not a boolean (1, true, 0, false)", s)}
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
	return time.Time{}, &BadParam{key, fmt.Sprintf("%q is neither an RFC 3339 time nor a duration like 5m", s)}
}
