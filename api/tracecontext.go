package api

import "strings"

// TraceParentHeader is the W3C Trace Context request header whose trace ID
// an HTTP record carries (L7.TraceID; Hubble's flow.trace_context).
const TraceParentHeader = "traceparent"

// TraceIDFromParent is the trace ID of a traceparent header's value, as
// OpenTelemetry's W3C propagator (Hubble's) reads it: four dash-separated
// lower-case hex fields, version (2 digits, not ff), trace ID (32), parent
// ID (16) and flags (2), neither ID all zeros; version 00 allows nothing
// after the flags but a lone dash (the propagator's leniency, which W3C's
// fixed length would refuse) and only flags 00-02, a later version
// anything after a dash. It returns "" for a value that is not one.
func TraceIDFromParent(v string) string {
	version, rest, _ := strings.Cut(v, "-")
	traceID, rest, _ := strings.Cut(rest, "-")
	parentID, rest, _ := strings.Cut(rest, "-")
	flags, extra, _ := strings.Cut(rest, "-")
	if !lowerHex(version, 2) || version == "ff" || !lowerHex(traceID, 32) || !lowerHex(parentID, 16) || !lowerHex(flags, 2) {
		return ""
	}
	if version == "00" && (extra != "" || flags > "02") {
		return ""
	}
	if allZeros(traceID) || allZeros(parentID) {
		return ""
	}
	return traceID
}

// IsTraceID reports whether s is a trace ID as TraceIDFromParent returns
// one: 32 lower-case hex digits, not all zeros.
func IsTraceID(s string) bool { return lowerHex(s, 32) && !allZeros(s) }

// lowerHex reports whether s is n lower-case hex digits.
func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allZeros(s string) bool { return strings.Trim(s, "0") == "" }
