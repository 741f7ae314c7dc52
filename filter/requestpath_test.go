package filter

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// decodedRequestPath is what matchRequestPath hands the expression.
func decodedRequestPath(raw string) (string, bool) {
	p, ok := requestPath(raw)
	if !ok {
		return "", false
	}
	b, ok := unescapePath(nil, p)
	return string(b), ok
}

// requestURIs are URLs of every shape ParseRequestURI tells apart; they
// seed FuzzRequestPath too.
var requestURIs = []string{
	"", "*", "/", "/a/b", "/a%20b", "/a%2Fb?x=%zz", "/a%2", "/a%zz", "/a+b", "/a#frag", "/a%23b#c", "/a?", "/a?b?",
	"//host/a", "///a", "a/b", "a:b/c", ":/a", "1http://h/a",
	"http://h", "http://h/", "http://h:8080/a", "http://h:/a", "http://h:x/a", "http://:80/a", "http:///a",
	"HTTP://H/A", "http:/a", "http:a/b", "http:", "http:?x", "mailto:a@b", "http://h?x/y", "http://h/a?b/c",
	"http://u@h/a", "http://u:p@h/a", "http://u%zz@h/a", "http://u@h@i/a", "http://h%41/a", "http://h%2e/a",
	"http://h i/a", "http://h!/a", "http://h,i/a", "http://a:1:2/a", "ftp://a:1:2/a", "http://bücher.example/a",
	"http://[fd00::1]/a", "http://[fd00::1]:80/a", "http://[fd00::1]x/a", "http://[fd00::1/a", "http://[1.2.3.4]/a",
	"http://[::ffff:1.2.3.4]/a", "http://[fe80::1%25eth0]/a", "http://[fe80::1%eth0]/a", "http://x[::1]/a",
	"http://[::1]]/a", "http://[zz::1]/a", "http://[]/a", "http://h/a\x7f", "http://h/a\x00", "http://h/a\tb",
	"/\xff%ff", "x-y+z.w://h/p", "git+ssh://h/p", "h.t-t+p:/p",
}

func TestRequestPathIsParseRequestURIs(t *testing.T) {
	for _, raw := range requestURIs {
		checkRequestPath(t, raw)
	}
}

func FuzzRequestPath(f *testing.F) {
	for _, raw := range requestURIs {
		f.Add(raw)
	}
	f.Fuzz(checkRequestPath)
}

// checkRequestPath holds requestPath and its unescaping to
// url.ParseRequestURI's Path.
func checkRequestPath(t *testing.T, raw string) {
	got, ok := decodedRequestPath(raw)
	u, err := url.ParseRequestURI(raw)
	switch {
	case err != nil && ok:
		t.Errorf("%q: path %q, but ParseRequestURI fails: %v", raw, got, err)
	case err == nil && !ok:
		t.Errorf("%q: no path, but ParseRequestURI reads %q", raw, u.Path)
	case err == nil && got != u.Path:
		t.Errorf("%q: path %q, ParseRequestURI reads %q", raw, got, u.Path)
	}
}

func TestMatchRequestPathUnescapesIntoAFreshBuffer(t *testing.T) {
	re := regexp.MustCompile(`^/a b$`)
	long := "/" + strings.Repeat("a", maxPooledPath) // a buffer too big to keep
	for range 3 {
		if !matchRequestPath(re, "/a%20b") || matchRequestPath(re, "/a%20bc") || !matchRequestPath(regexp.MustCompile(`a $`), long+"%20") {
			t.Fatal("matchRequestPath does not follow the unescaped path")
		}
	}
}
