package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/periscope-dev/periscope/collector"
)

// envAPIToken holds the API token for the CLI and the servers when no flag
// gives it (so it stays out of the process list).
const envAPIToken = "PERISCOPE_API_TOKEN"

// defaultServer is the collector's address the CLI calls when neither
// --server nor a usable API socket says otherwise.
const defaultServer = "127.0.0.1:4244"

// apiTarget says how a CLI command reaches a collector's (or a relay's)
// API: an explicit --server over TCP; else the local API socket when this
// user may use it (changes need no token there); else defaultServer. Over
// TCP it sends the token when one is given (--token, --token-file or
// $PERISCOPE_API_TOKEN).
type apiTarget struct {
	server    string
	socket    string
	token     string
	tokenFile string
}

func (t *apiTarget) addFlags(fs *pflag.FlagSet, what string) {
	fs.StringVar(&t.server, "server", "", what+" address: host:port or an http(s):// URL (default: the API socket when usable, else "+defaultServer+")")
	fs.StringVar(&t.socket, "socket", collector.DefaultSocket, "the API's local Unix socket, used when --server is not given and this user may connect to it")
	fs.StringVar(&t.token, "token", "", "API token (--api-token of the server); $"+envAPIToken+" when not given")
	fs.StringVar(&t.tokenFile, "token-file", "", "file holding the API token")
}

// apiToken reads the API token from its flag, a file or $PERISCOPE_API_TOKEN.
func apiToken(token, file string) (string, error) { return readToken(token, file, envAPIToken) }

// readToken reads a token from its flag, else a file, else the environment
// variable env.
func readToken(token, file, env string) (string, error) {
	if token == "" && file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read the API token: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return "", fmt.Errorf("the API token file %s is empty", file)
		}
	}
	if token == "" {
		token = os.Getenv(env)
	}
	return token, nil
}

// socketUsable reports whether path is a socket this user may connect to.
func socketUsable(path string) bool {
	if path == "" {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0 && unix.Access(path, unix.W_OK) == nil
}

// client builds the client of t; hc's timeout is kept (nil: none).
func (t apiTarget) client(hc *http.Client) (*flowClient, error) {
	token, err := apiToken(t.token, t.tokenFile)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	var c *flowClient
	if t.server == "" && socketUsable(t.socket) {
		path := t.socket
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}
		c = &flowClient{base: "http://localhost", via: "unix:" + path, http: &http.Client{Transport: tr, Timeout: hc.Timeout}}
	} else {
		server := t.server
		if server == "" {
			server = defaultServer
		}
		if c, err = newFlowClient(server, hc); err != nil {
			return nil, err
		}
	}
	if token != "" {
		h := *c.http
		next := h.Transport
		if next == nil {
			next = http.DefaultTransport
		}
		h.Transport = &bearer{next: next, auth: "Bearer " + token}
		c.http = &h
	}
	return c, nil
}

// bearer sends the API token with every request.
type bearer struct {
	next http.RoundTripper
	auth string
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", b.auth)
	return b.next.RoundTrip(req)
}
