package filter

import (
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// Hubble's http_path filter matches the Path of url.ParseRequestURI(URL),
// which allocates a URL per record. This file finds the same path without
// allocating: it is cut out of the URL where ParseRequestURI would cut it,
// and unescaped into a pooled buffer when it has escapes. Only an authority
// ParseRequestURI has more to say about (user information, characters
// other than a host name's, a zone) is left to ParseRequestURI itself.
// TestRequestPathIsParseRequestURIs holds the two equal.

// matchRequestPath reports whether re matches the path of rawURL as
// url.ParseRequestURI reads it; false when ParseRequestURI fails.
func matchRequestPath(re *regexp.Regexp, rawURL string) bool {
	p, ok := requestPath(rawURL)
	if !ok {
		return false
	}
	if strings.IndexByte(p, '%') < 0 {
		return re.MatchString(p)
	}
	bp := pathBuffers.Get().(*[]byte)
	b, ok := unescapePath((*bp)[:0], p)
	matched := ok && re.Match(b)
	if cap(b) <= maxPooledPath {
		*bp = b[:0]
		pathBuffers.Put(bp)
	}
	return matched
}

// pathBuffers hold unescaped paths while an expression looks at them.
var pathBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// maxPooledPath bounds the buffers kept: a huge URL's is let go.
const maxPooledPath = 64 << 10

// requestPath is the path of rawURL, still escaped, where
// url.ParseRequestURI finds it; ok is false when ParseRequestURI fails
// before it unescapes the path.
func requestPath(rawURL string) (path string, ok bool) {
	if rawURL == "" || hasControlByte(rawURL) {
		return "", false
	}
	if rawURL == "*" {
		return "*", true
	}
	scheme, rest, ok := splitScheme(rawURL)
	if !ok {
		return "", false
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i] // the query; a fragment stays in the path
	}
	if !strings.HasPrefix(rest, "/") {
		// With a scheme the rest is opaque and the path empty; without
		// one it is no request URI.
		return "", scheme != ""
	}
	if scheme == "" || !strings.HasPrefix(rest, "//") {
		return rest, true
	}
	authority, rest := rest[2:], ""
	if i := strings.IndexByte(authority, '/'); i >= 0 {
		authority, rest = authority[:i], authority[i:]
	}
	if !plainAuthority(authority) {
		if _, err := url.ParseRequestURI(rawURL); err != nil {
			return "", false
		}
	}
	return rest, true
}

// hasControlByte reports whether s holds an ASCII control character, which
// ParseRequestURI refuses.
func hasControlByte(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// splitScheme splits "scheme:rest" as ParseRequestURI does: a scheme is a
// letter, then letters, digits, '+', '-' and '.', before the first colon;
// anything else before it means there is none. ok is false for a leading
// colon ("missing protocol scheme").
func splitScheme(raw string) (scheme, rest string, ok bool) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.':
			if i == 0 {
				return "", raw, true
			}
		case c == ':':
			if i == 0 {
				return "", "", false
			}
			return raw[:i], raw[i+1:], true
		default:
			return "", raw, true
		}
	}
	return "", raw, true
}

// plainAuthority reports whether a is an authority ParseRequestURI accepts
// without a doubt: empty, or a host name of letters, digits, '-', '.', '_',
// '~' and non-ASCII bytes, or an IPv6 literal without a zone, either with
// an optional ":port". For any other authority ParseRequestURI decides.
func plainAuthority(a string) bool {
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 || !optionalPort(a[end+1:]) {
			return false
		}
		lit := a[1:end]
		for i := 0; i < len(lit); i++ {
			if c := lit[i]; !isHex(c) && c != ':' && c != '.' {
				return false
			}
		}
		addr, err := netip.ParseAddr(lit)
		return err == nil && !addr.Is4()
	}
	host := a
	if i := strings.IndexByte(a, ':'); i >= 0 {
		host = a[:i]
		if !optionalPort(a[i:]) {
			return false
		}
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c >= 0x80) {
			return false
		}
	}
	return true
}

// optionalPort reports whether s is "" or ':' and digits.
func optionalPort(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != ':' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// unescapePath appends p with its %XX escapes decoded to dst; ok is false
// for an escape that is not '%' and two hex digits, which ParseRequestURI
// refuses. A '+' stays a '+' in a path.
func unescapePath(dst []byte, p string) (out []byte, ok bool) {
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			dst = append(dst, p[i])
			continue
		}
		if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
			return dst, false
		}
		dst = append(dst, unhex(p[i+1])<<4|unhex(p[i+2]))
		i += 2
	}
	return dst, true
}
