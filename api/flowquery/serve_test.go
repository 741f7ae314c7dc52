package flowquery

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// fakeReader answers with flows (or fails to begin with err), as a node
// set whose unavailable nodes are named; it records the queries.
type fakeReader struct {
	flows       []api.Flow
	lines       bool // deliver encoded lines when the answer takes them
	err         error
	unavailable []string
	queries     []Query
	follows     int
}

func (r *fakeReader) Query(_ context.Context, q Query, a Answer) (Outcome, error) {
	r.queries = append(r.queries, q)
	if r.err != nil {
		return Outcome{}, r.err
	}
	if err := a.Begin(r.unavailable); err != nil {
		return Outcome{}, err
	}
	for i := range r.flows {
		var err error
		if r.lines && a.Line != nil {
			err = a.Line(api.AppendJSON(nil, &r.flows[i]))
		} else {
			err = a.Flow(&r.flows[i])
		}
		if err != nil {
			return Outcome{}, err
		}
	}
	return Outcome{Unavailable: r.unavailable}, nil
}

func (r *fakeReader) Follow(ctx context.Context, q Query, a Answer) (Outcome, error) {
	r.follows++
	oc, err := r.Query(ctx, q, a)
	if err != nil {
		return oc, err
	}
	if err := a.CaughtUp(); err != nil {
		return oc, err
	}
	return Outcome{Skipped: 3, Unavailable: oc.Unavailable}, nil
}

func flowAt(port uint16) api.Flow {
	return api.Flow{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		IP:   api.IP{Source: netip.MustParseAddr("198.18.0.1"), Destination: netip.MustParseAddr("198.18.0.2"), Version: api.IPv4},
		L4:   api.L4{Protocol: api.ProtoTCP, SourcePort: port, DestinationPort: 80},
	}
}

func serveOnce(t *testing.T, s *Server, query string) *http.Response {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/api/v1/flows" + query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServerAnswersFromTheSourcesReader(t *testing.T) {
	ring := &fakeReader{flows: []api.Flow{flowAt(1), flowAt(2)}}
	history := &fakeReader{flows: []api.Flow{flowAt(3)}, lines: true}
	s := &Server{Ring: ring, History: history}

	resp := serveOnce(t, s, "?last=2&filter=to:port%3D80")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ndjsonType {
		t.Fatalf("status %s, content type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if got := strings.Count(body(t, resp), "\n"); got != 2 {
		t.Errorf("got %d lines, want 2", got)
	}
	if len(ring.queries) != 1 || ring.queries[0].Last != 2 || ring.queries[0].Filter.String() != "to:port=80" {
		t.Errorf("ring queries %+v", ring.queries)
	}
	resp = serveOnce(t, s, "?source=clickhouse&all")
	if b := body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(b, `"source_port":3`) {
		t.Errorf("history: %s %q", resp.Status, b)
	}
	if resp.Header.Get("Trailer") != "" {
		t.Errorf("a server of one node declares a trailer: %q", resp.Header.Get("Trailer"))
	}
}

const ndjsonType = "application/x-ndjson"

func TestServerRefusals(t *testing.T) {
	failing := &fakeReader{err: errors.New("clickhouse: connection refused")}
	tests := []struct {
		name   string
		s      *Server
		query  string
		status int
		want   string
	}{
		{"a bad parameter", &Server{Ring: &fakeReader{}}, "?last=x", http.StatusBadRequest, `bad parameter "last"`},
		{"a bad chip", &Server{Ring: &fakeReader{}}, "?filter=nope%3D1", http.StatusBadRequest, `bad parameter "filter"`},
		{"no history", &Server{Ring: &fakeReader{}}, "?source=clickhouse", http.StatusBadRequest, NoHistory},
		{"a reader that cannot begin", &Server{Ring: &fakeReader{}, History: failing}, "?source=clickhouse", http.StatusBadGateway,
			"clickhouse: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := serveOnce(t, tt.s, tt.query)
			if b := body(t, resp); resp.StatusCode != tt.status || !strings.Contains(b, tt.want) {
				t.Errorf("%s %q, want %d containing %q", resp.Status, b, tt.status, tt.want)
			}
		})
	}
}

func TestServerNamesMissingNodes(t *testing.T) {
	r := &fakeReader{flows: []api.Flow{flowAt(1)}, lines: true, unavailable: []string{"node2", "node3"}}
	resp := serveOnce(t, &Server{Ring: r, Partial: true}, "?follow=1")
	b := body(t, resp)
	if resp.Header.Get(PartialHeader) != "node2,node3" || resp.Trailer.Get(PartialHeader) != "node2,node3" {
		t.Errorf("partial header %q, trailer %q", resp.Header.Get(PartialHeader), resp.Trailer.Get(PartialHeader))
	}
	if r.follows != 1 || !strings.Contains(b, `"source_port":1`) {
		t.Errorf("follows %d, body %q", r.follows, b)
	}
}

// failingAfter begins, sends its flows, then fails: a history store that
// breaks mid-answer.
type failingAfter struct{ fakeReader }

func (r *failingAfter) Query(ctx context.Context, q Query, a Answer) (Outcome, error) {
	if _, err := r.fakeReader.Query(ctx, q, a); err != nil {
		return Outcome{}, err
	}
	return Outcome{}, errors.New("clickhouse: read flows: connection reset")
}

// An answer a reader breaks off is cut off, not ended as if whole; a reader
// at its bound is a 503 with Retry-After.
func TestBrokenAndBusyAnswers(t *testing.T) {
	broken := &failingAfter{fakeReader{flows: []api.Flow{flowAt(1)}}}
	resp := serveOnce(t, &Server{Ring: broken}, "?last=5")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s, want 200 (the answer had begun)", resp.Status)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the broken answer read whole, without an error")
	}

	busy := &fakeReader{err: &BusyError{What: "history queries", Limit: 4}}
	resp = serveOnce(t, &Server{Ring: busy}, "?last=5")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "too many history queries") {
		t.Errorf("a busy reader: %s %q (Retry-After %q), want 503 saying so", resp.Status, body, resp.Header.Get("Retry-After"))
	}
}
