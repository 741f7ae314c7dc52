package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/api/access"
)

// Servers are the HTTP servers of one API: on the TCP listener and, when
// there is one, on the local socket.
type Servers struct {
	log     *slog.Logger
	servers []*server
	wg      sync.WaitGroup
}

// server is one of the API's servers and what ended its Serve.
type server struct {
	srv  *http.Server
	ln   net.Listener
	what string // "HTTP" or "the API socket", for errors and logs
	err  error
}

// Listen prepares the servers of api: one on ln, through guard when it is
// not nil, and, when socket names a path, one on the local socket made
// there (access.ListenSocket), which every caller may use as its mode
// allows. Requests live in ctx. Nothing is served before Serve. On error
// ln is closed.
func Listen(ctx context.Context, ln net.Listener, socket string, api http.Handler, guard *access.Guard, log *slog.Logger) (*Servers, error) {
	tcpAPI := api
	if guard != nil {
		tcpAPI = guard.TCP(api)
	}
	s := &Servers{log: log}
	s.servers = append(s.servers, &server{srv: newServer(ctx, tcpAPI, log), ln: ln, what: "HTTP"})
	if socket != "" {
		sln, err := access.ListenSocket(socket)
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.servers = append(s.servers, &server{srv: newServer(ctx, api, log), ln: sln, what: "the API socket"})
	}
	return s, nil
}

// newServer serves h with the daemon's HTTP settings.
func newServer(ctx context.Context, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout or WriteTimeout: they would cut follow streams;
		// handlers set write deadlines themselves.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Serve starts serving on every listener, each from its own goroutine
// until Shutdown. A server that fails calls failed (so that the daemon
// stops); Shutdown returns its error.
func (s *Servers) Serve(failed func()) {
	for _, sv := range s.servers {
		s.wg.Go(func() {
			if err := sv.srv.Serve(sv.ln); !errors.Is(err, http.ErrServerClosed) {
				sv.err = fmt.Errorf("serve %s: %w", sv.what, err)
				failed()
			}
		})
	}
}

// Shutdown stops the servers, letting requests finish for up to timeout
// (a server whose requests did not is logged), waits for them to return,
// and returns the first one's failure, if any.
func (s *Servers) Shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, sv := range s.servers {
		if err := sv.srv.Shutdown(ctx); err != nil {
			s.log.Warn("HTTP shutdown", "server", sv.what, "err", err)
		}
	}
	s.wg.Wait()
	for _, sv := range s.servers {
		if sv.err != nil {
			return sv.err
		}
	}
	return nil
}
