package ndjson

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

func TestWriterWritesOneLinePerFlowWithTheHeaders(t *testing.T) {
	rec := httptest.NewRecorder()
	w := NewWriter(rec)
	f := api.Flow{Time: time.Date(2026, 11, 23, 14, 0, 0, 5, time.UTC), NodeName: "node-a"}
	steps := []struct {
		name  string
		write func() error
	}{
		{"flow", func() error { return w.Flow(&f) }},
		{"line without newline", func() error { return w.Line([]byte(`{"a":1}`)) }},
		{"line with newline", func() error { return w.Line([]byte("{\"b\":2}\n")) }},
	}
	for _, s := range steps {
		if err := s.write(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	if rec.Body.Len() != 0 {
		t.Errorf("%d bytes sent before Flush/Close, want them buffered", rec.Body.Len())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := string(api.AppendJSON(nil, &f)) + "\n{\"a\":1}\n{\"b\":2}\n"
	if got := rec.Body.String(); got != want {
		t.Errorf("body:\n%s\nwant:\n%s", got, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type %q, want %q", ct, ContentType)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
}

func TestFlushSendsAtOnce(t *testing.T) {
	rec := httptest.NewRecorder()
	w := NewWriter(rec)
	if err := w.Line([]byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if rec.Body.String() != "{}\n" || !rec.Flushed {
		t.Errorf("after Flush: body %q, flushed %v", rec.Body.String(), rec.Flushed)
	}
}
