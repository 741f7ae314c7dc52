package netlab

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// httpRequest makes t's HTTP request on a new connection; any answer is
// an exchange (a 403 of a policy too).
func httpRequest(ctx context.Context, t Traffic) error {
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	method, path := t.Method, t.Path
	if method == "" {
		method = http.MethodGet
	}
	if path == "" {
		path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+t.dst().String()+path, nil)
	if err != nil {
		return fmt.Errorf("request %s %s: %w", method, path, err)
	}
	req.Header.Set("User-Agent", "periscope-demo")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return t.From.DialTCP(ctx, t.dst()) }}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// serveHTTP serves HTTP on port in pod until ctx ends: every request is
// answered 200 with a small JSON body after 1-20ms, so that latencies
// show.
func serveHTTP(ctx context.Context, wg *sync.WaitGroup, pod *Pod, port uint16) error {
	ln, err := pod.ListenTCP(port)
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: exchangeTimeout, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Duration(1+rand.IntN(20)) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"items":[]}`+"\n")
	})}
	context.AfterFunc(ctx, func() { srv.Close() })
	wg.Go(func() { _ = srv.Serve(ln) })
	return nil
}
