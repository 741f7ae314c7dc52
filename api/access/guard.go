package access

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Policy says who may call an API over TCP.
type Policy struct {
	// Token, when set, is required on every call but Public ones, and on
	// every change; without it no change can be made over TCP.
	Token string
	// ListenHost is the host of the listen address (an IP or a name).
	ListenHost string
	// AllowedHosts are names a client may call the API by, besides IP
	// addresses, localhost and ListenHost (e.g. the node's DNS name).
	AllowedHosts []string
	// AllowedOrigins are browser origins (scheme://host[:port]) whose pages
	// may call the API besides the server's own; "*" allows any.
	AllowedOrigins []string
	// Public says which reads need no token (the web UI's files).
	Public func(*http.Request) bool
}

// Guard enforces a Policy on the handlers it wraps. It is immutable.
type Guard struct {
	p       Policy
	hosts   map[string]bool
	origins map[string]bool
	anyOrig bool
}

// New makes the Guard of p.
func New(p Policy) *Guard {
	g := &Guard{p: p, hosts: map[string]bool{"localhost": true}, origins: map[string]bool{}}
	if h := strings.ToLower(strings.Trim(p.ListenHost, "[]")); h != "" {
		g.hosts[h] = true
	}
	for _, h := range p.AllowedHosts {
		g.hosts[strings.ToLower(strings.TrimSpace(h))] = true
	}
	for _, o := range p.AllowedOrigins {
		o = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(o), "/"))
		if o == "*" {
			g.anyOrig = true
		}
		g.origins[o] = true
	}
	return g
}

// Token is the policy's token ("" for none).
func (g *Guard) Token() string { return g.p.Token }

// TCP wraps next, served on the TCP listen address, with every check of
// the policy.
func (g *Guard) TCP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := g.hostProblem(r); msg != "" {
			http.Error(w, msg, http.StatusForbidden)
			return
		}
		if msg := g.originProblem(r); msg != "" {
			http.Error(w, msg, http.StatusForbidden)
			return
		}
		changes := Changes(r)
		if changes {
			if msg := bodyProblem(r); msg != "" {
				http.Error(w, msg, http.StatusUnsupportedMediaType)
				return
			}
			if g.p.Token == "" {
				http.Error(w, "changes over TCP need the API token (start the server with --api-token); "+
					"or make them over the local API socket (--api-socket), as `periscope policy` does by default", http.StatusForbidden)
				return
			}
		}
		if g.p.Token != "" && (changes || g.p.Public == nil || !g.p.Public(r)) {
			ok, viaQuery := g.authorized(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="periscope"`)
				http.Error(w, "missing or wrong API token (send it as Authorization: Bearer <token>)", http.StatusUnauthorized)
				return
			}
			if viaQuery { // ours, not a parameter of the API's
				q := r.URL.Query()
				q.Del("token")
				r = r.Clone(r.Context())
				r.URL.RawQuery = q.Encode()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Changes reports whether r may change state: any method but GET, HEAD
// and OPTIONS.
func Changes(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// hostProblem explains why r's Host is refused, or is "".
func (g *Guard) hostProblem(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if net.ParseIP(host) != nil || g.hosts[host] || strings.HasSuffix(host, ".localhost") {
		return ""
	}
	return fmt.Sprintf("host %q is not one this API answers to (a DNS rebinding?): call it by IP address or localhost, "+
		"or allow the name with --api-allowed-hosts", r.Host)
}

// originProblem explains why r, sent by a browser from another origin, is
// refused, or is "".
func (g *Guard) originProblem(r *http.Request) string {
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" {
		if g.originAllowed(origin, r) {
			return ""
		}
		return fmt.Sprintf("origin %q may not call this API (allow it with --api-allowed-origins)", origin)
	} else if origin == "null" && !g.anyOrig {
		return `origin "null" (a sandboxed or file page) may not call this API`
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		if !g.anyOrig {
			return fmt.Sprintf("a %s request may not call this API", site)
		}
	}
	return ""
}

func (g *Guard) originAllowed(origin string, r *http.Request) bool {
	if g.anyOrig || g.origins[strings.ToLower(strings.TrimSuffix(origin, "/"))] {
		return true
	}
	o, err := url.Parse(origin)
	return err == nil && o.Host != "" && strings.EqualFold(o.Host, r.Host)
}

// bodyProblem explains why a change's body is refused, or is "": a POST,
// PUT or PATCH must declare JSON or YAML.
func bodyProblem(r *http.Request) string {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return ""
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		switch mt {
		case "application/json", "application/yaml", "application/x-yaml", "text/yaml":
			return ""
		}
	}
	return fmt.Sprintf("content type %q: a change must send application/json or application/yaml "+
		"(what a browser may send from another site without asking first never changes state)", ct)
}

// authorized reports whether r carries the token, and whether it came as
// ?token= (a GET only).
func (g *Guard) authorized(r *http.Request) (ok, viaQuery bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		return CheckAuthorization(h, g.p.Token), false
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if t := r.URL.Query().Get("token"); t != "" {
			return equal(t, g.p.Token), true
		}
	}
	return false, false
}

// CheckAuthorization reports whether an Authorization value (of HTTP, or
// gRPC's "authorization" metadata) carries token: "Bearer <token>", or
// Basic authentication whose password is the token (any user; what
// `hubble --basic-auth-password` sends).
func CheckAuthorization(value, token string) bool {
	if token == "" {
		return false
	}
	scheme, cred, _ := strings.Cut(strings.TrimSpace(value), " ")
	switch strings.ToLower(scheme) {
	case "bearer":
		return equal(strings.TrimSpace(cred), token)
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
		if err != nil {
			return false
		}
		_, pass, ok := strings.Cut(string(raw), ":")
		return ok && equal(pass, token)
	}
	return false
}

func equal(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// StaticFiles is the Public of a server that serves the web UI: its own
// files (a GET or HEAD outside /api/ and /metrics) and /healthz need no
// token; they hold no data.
func StaticFiles(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	return !strings.HasPrefix(p, "/api/") && p != "/metrics"
}
