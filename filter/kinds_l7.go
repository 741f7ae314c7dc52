package filter

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// The kinds that test a flow's L7 record, as Hubble's HTTP, DNS and
// tracing filters do: http-status, http-method, http-path, http-url,
// http-header, dns-query, trace-id. Each reads the record the flow carries (api.L7.Protocol), so
// a flow without one, or with another protocol's, never matches.

// httpOf is the HTTP record fl carries, nil for none.
func httpOf(fl *api.Flow) *api.HTTP {
	if fl.L7.Protocol() != api.L7ProtocolHTTP {
		return nil
	}
	return fl.L7.HTTP
}

// parseHTTPStatus reads Hubble's status forms: a code ("404") or a prefix
// of one or two digits and "+" ("5+", "40+"), the first digit 1-5.
func parseHTTPStatus(raw string) (value, error) {
	digits, prefix := strings.CutSuffix(raw, "+")
	ok := !prefix && len(digits) == 3 || prefix && (len(digits) == 1 || len(digits) == 2)
	for i := 0; ok && i < len(digits); i++ {
		ok = '0' <= digits[i] && digits[i] <= '9'
	}
	if !ok || digits[0] < '1' || digits[0] > '5' {
		return value{}, fmt.Errorf(`http-status must be a status code (404) or its first one or two digits and + (5+, 40+), the first digit 1-5`)
	}
	n, _ := strconv.ParseUint(digits, 10, 32) // checked above
	return value{text: raw, num: uint32(n), numPrefix: prefix}, nil
}

// matchHTTPStatus is Hubble's: a response's code, written with at least
// three digits ("%03d"), equals the value or starts with its digits. A
// request (code 0) never matches; nor does a code below 100, whose first
// digit is 0.
func matchHTTPStatus(v *value, fl *api.Flow, _ side) bool {
	h := httpOf(fl)
	if h == nil || h.Code < 100 {
		return false
	}
	if !v.numPrefix {
		return h.Code == v.num
	}
	limit := uint32(10) // the code shortened to the prefix's digits
	if v.num >= 10 {
		limit = 100
	}
	c := h.Code
	for c >= limit {
		c /= 10
	}
	return c == v.num
}

// parseHTTPMethod reads a method, an HTTP token (RFC 9110: letters,
// digits and !#$%&'*+-.^_`|~); it is matched in any case.
func parseHTTPMethod(raw string) (value, error) {
	for i := 0; i < len(raw); i++ {
		if !isTokenChar(raw[i]) {
			return value{}, fmt.Errorf("http-method must be an HTTP method (GET, POST, ...): %q is not allowed in one", raw[i:i+1])
		}
	}
	m := strings.ToUpper(raw)
	return value{text: m, name: m}, nil
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// matchHTTPMethod is Hubble's (a method equal in any case) for ASCII
// letters only: a value is a token, and a record's non-ASCII byte folding
// onto an ASCII letter (the Kelvin sign onto k) is no method.
func matchHTTPMethod(v *value, fl *api.Flow, _ side) bool {
	h := httpOf(fl)
	if h == nil || len(h.Method) != len(v.name) {
		return false
	}
	for i := 0; i < len(v.name); i++ {
		c := h.Method[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != v.name[i] {
			return false
		}
	}
	return true
}

// parseRegexp reads a value that is a regular expression (Go's RE2
// syntax, as Hubble's), matched anywhere in the text unless anchored.
func parseRegexp(kind string) func(raw string) (value, error) {
	return func(raw string) (value, error) {
		re, err := regexp.Compile(raw)
		if err != nil {
			return value{}, fmt.Errorf("%s must be a regular expression: %w", kind, err)
		}
		return value{text: raw, re: re}, nil
	}
}

// matchHTTPPath is Hubble's: the path of the record's URL, read as
// net/url.ParseRequestURI reads it (unescaped), matches the expression; a
// URL it cannot read matches nothing.
func matchHTTPPath(v *value, fl *api.Flow, _ side) bool {
	h := httpOf(fl)
	if h == nil || h.URL == "" {
		return false
	}
	return matchRequestPath(v.re, h.URL)
}

// matchHTTPURL is Hubble's: the record's URL, as recorded, matches the
// expression.
func matchHTTPURL(v *value, fl *api.Flow, _ side) bool {
	h := httpOf(fl)
	return h != nil && h.URL != "" && v.re.MatchString(h.URL)
}

// parseHTTPHeader reads "name:value" (Hubble's --http-header): the name
// ends at the first colon after its first character, so an HTTP/2
// pseudo-header (":authority:example.com") can be named; the value may be
// empty.
func parseHTTPHeader(raw string) (value, error) {
	i := strings.IndexByte(raw[1:], ':') + 1
	if i == 0 {
		return value{}, fmt.Errorf(`http-header must be name:value (content-type:application/json)`)
	}
	return value{text: raw, name: raw[:i], hval: raw[i+1:]}, nil
}

// matchHTTPHeader is Hubble's: the record has a header of exactly this name
// and value (names are compared as recorded, in their case).
func matchHTTPHeader(v *value, fl *api.Flow, _ side) bool {
	h := httpOf(fl)
	if h == nil {
		return false
	}
	for i := range h.Headers {
		if h.Headers[i].Key == v.name && h.Headers[i].Value == v.hval {
			return true
		}
	}
	return false
}

// parseTraceID reads a W3C trace ID: 32 lower-case hex digits, not all
// zeros, as a record carries one (api.TraceIDFromParent). Hubble compares
// the text as given, so any other spelling could match nothing: it is
// refused instead.
func parseTraceID(raw string) (value, error) {
	if !api.IsTraceID(raw) {
		return value{}, fmt.Errorf("trace-id must be a W3C trace ID: 32 lower-case hex digits, not all zeros (4bf92f3577b34da6a3ce929d0e0e4736)")
	}
	return value{text: raw, name: raw}, nil
}

// matchTraceID is Hubble's trace_id: the trace ID of the record's request
// (its traceparent header; flow.trace_context.parent.trace_id) is the
// value.
func matchTraceID(v *value, fl *api.Flow, _ side) bool {
	return fl.L7 != nil && fl.L7.TraceID == v.name
}

// matchDNSQuery is Hubble's dns_query: the queried name of the record's
// DNS query or answer ("example.com.", fully qualified) matches the
// expression.
func matchDNSQuery(v *value, fl *api.Flow, _ side) bool {
	if fl.L7.Protocol() != api.L7ProtocolDNS {
		return false
	}
	return v.re.MatchString(fl.L7.DNS.Query)
}
