package httpserve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api/access"
	"github.com/periscope-dev/periscope/api/apitest"
)

// get returns the status and body of GET path over client.
func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

func TestServersGuardTCPAndTrustTheSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(t.TempDir(), "api.sock")
	api := Mux(map[string]http.Handler{
		"GET /healthz":   http.HandlerFunc(Healthz),
		"GET /api/v1/it": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { WriteJSON(w, http.StatusTeapot, map[string]int{"n": 1}) }),
	})
	guard := access.New(access.Policy{Token: "secret", Public: func(r *http.Request) bool { return r.URL.Path == "/healthz" }})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	servers, err := Listen(ctx, ln, socket, api, guard, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	servers.Serve(func() { t.Error("a server failed") })

	tcp := &http.Client{Timeout: 10 * time.Second}
	overSocket := apitest.SocketClient(socket)
	overSocket.Timeout = 10 * time.Second
	base := "http://" + ln.Addr().String()
	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		code   int
		body   string
	}{
		{"healthz is public over TCP", tcp, base + "/healthz", http.StatusOK, "ok"},
		{"the API needs the token over TCP", tcp, base + "/api/v1/it", http.StatusUnauthorized, ""},
		{"the API answers over TCP with the token", tcp, base + "/api/v1/it?token=secret", http.StatusTeapot, "{\"n\":1}\n"},
		{"the socket is trusted without a token", overSocket, "http://socket/api/v1/it", http.StatusTeapot, "{\"n\":1}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, tc.client, tc.url)
			if code != tc.code || (tc.body != "" && body != tc.body) {
				t.Fatalf("got %d %q, want %d %q", code, body, tc.code, tc.body)
			}
		})
	}
	if err := servers.Shutdown(5 * time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := tcp.Get(base + "/healthz"); err == nil {
		t.Fatal("the TCP server still answers after Shutdown")
	}
}

func TestServersReportAFailedServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	servers, err := Listen(t.Context(), ln, "", Mux(nil), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ln.Close() // Serve fails at once on a closed listener.
	failed := make(chan struct{})
	servers.Serve(func() { close(failed) })
	select {
	case <-failed:
	case <-time.After(30 * time.Second):
		t.Fatal("a server that could not serve did not call failed")
	}
	err = servers.Shutdown(5 * time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "serve HTTP: ") {
		t.Fatalf("Shutdown = %v, want the failure of serve HTTP", err)
	}
}

func TestListenClosesTheListenerWhenTheSocketFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	notASocket := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notASocket, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(t.Context(), ln, notASocket, Mux(nil), nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("Listen on a socket path held by a file succeeded")
	}
	if _, err := ln.Accept(); err == nil {
		t.Fatal("the TCP listener is still open after Listen failed")
	}
}
