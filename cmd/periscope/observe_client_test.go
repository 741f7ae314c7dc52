package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// cannedLines are two flows as a collector sends them.
func cannedLines() []string {
	return []string{
		string(api.AppendJSON(nil, printSamples["pods"])),
		string(api.AppendJSON(nil, printSamples["icmp"])),
	}
}

func TestRunObserveReadsFlowsFromTheCollector(t *testing.T) {
	var gotQuery url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/flows" {
			http.NotFound(w, r)
			return
		}
		gotQuery = r.URL.Query()
		w.Header().Set("Content-Type", "application/x-ndjson")
		for _, l := range cannedLines() {
			fmt.Fprintln(w, l)
		}
		fmt.Fprintln(w) // a blank keep-alive line is skipped
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name   string
		server string
		output string
		want   string
	}{
		{"json output repeats the lines", srv.URL, "json", strings.Join(cannedLines(), "\n") + "\n"},
		{"compact output formats the flows", strings.TrimPrefix(srv.URL, "http://"), "compact",
			"default/frontend:43210 (ID:1234) -> default/backend:8080 (ID:5678) EGRESS FORWARDED"},
		{"table output has a header", srv.URL + "/", "table", "TIMESTAMP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			opts := observeOptions{server: tt.server, output: tt.output, window: window{last: 2}}
			err := runObserve(context.Background(), opts, []string{"port=8080", "!verdict=DROPPED"}, &out, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("output %q lacks %q", out.String(), tt.want)
			}
			if !slices.Equal(gotQuery["filter"], []string{"port=8080", "!verdict=DROPPED"}) || gotQuery.Get("last") != "2" {
				t.Errorf("server got query %v", gotQuery)
			}
		})
	}
}

func TestRunObserveReportsCollectorErrors(t *testing.T) {
	badRequest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `filter "to:port=http": port must be a number 0-65535`, http.StatusBadRequest)
	}))
	t.Cleanup(badRequest.Close)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, cannedLines()[0])
		fmt.Fprintln(w, "<html>oops</html>")
	}))
	t.Cleanup(garbage.Close)
	// A port that was free a moment ago: nothing listens on it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()

	tests := []struct {
		name, server string
		wantErr      []string
	}{
		{"a collector that is down", down, []string{
			`cannot reach the collector at http://` + down + ` (is "periscope collector" running?): dial tcp `,
			"connection refused"}},
		{"a 400 shows the server's text", badRequest.URL, []string{
			"refused the query (400 Bad Request)", `filter "to:port=http": port must be a number 0-65535`}},
		{"a line that is not a flow", garbage.URL, []string{"line 2", "parse flow JSON"}},
		{"a bad server address", "ftp://x", []string{`--server "ftp://x": want host:port or an http(s):// URL`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runObserve(context.Background(), observeOptions{server: tt.server, output: "json"}, nil, &bytes.Buffer{}, http.DefaultClient)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

// signalWriter is a buffer that closes written on its first write.
type signalWriter struct {
	bytes.Buffer
	written chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	if w.Len() == 0 && len(p) > 0 {
		defer close(w.written)
	}
	return w.Buffer.Write(p)
}

func TestRunObserveEndsAFollowCleanlyOnCancel(t *testing.T) {
	sent := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("follow") != "1" {
			http.Error(w, "want follow=1", http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, cannedLines()[0])
		w.(http.Flusher).Flush()
		close(sent)
		<-r.Context().Done() // stream until the client goes away
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	out := &signalWriter{written: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- runObserve(ctx, observeOptions{server: srv.URL, output: "table", window: window{follow: true}}, nil, out, srv.Client())
	}()
	<-sent
	<-out.written // the table printer flushes each line while following
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("a cancelled follow returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end after cancel")
	}
	if !strings.Contains(out.String(), "default/frontend:43210") {
		t.Errorf("the streamed flow was not printed: %q", out.String())
	}
}
