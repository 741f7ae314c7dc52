package api

import "testing"

func TestTraceIDFromParent(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name, value, want string
	}{
		{"the W3C example", "00-" + id + "-00f067aa0ba902b7-01", id},
		{"not sampled", "00-" + id + "-00f067aa0ba902b7-00", id},
		{"version 00, flags 02", "00-" + id + "-00f067aa0ba902b7-02", id},
		{"version 00, other flags", "00-" + id + "-00f067aa0ba902b7-03", ""},
		{"version 00 with more after the flags", "00-" + id + "-00f067aa0ba902b7-01-what", ""},
		{"version 00 with a lone dash after the flags (OpenTelemetry's leniency)", "00-" + id + "-00f067aa0ba902b7-01-", id},
		{"a later version with more after the flags", "cc-" + id + "-00f067aa0ba902b7-09-what-the-future-holds", id},
		{"version ff", "ff-" + id + "-00f067aa0ba902b7-01", ""},
		{"upper-case hex", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
		{"an all-zero trace ID", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"an all-zero parent ID", "00-" + id + "-0000000000000000-01", ""},
		{"a short trace ID", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", ""},
		{"a non-hex digit", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", ""},
		{"flags run on", "cc-" + id + "-00f067aa0ba902b7-01what", ""},
		{"missing flags", "00-" + id + "-00f067aa0ba902b7", ""},
		{"surrounding space", " 00-" + id + "-00f067aa0ba902b7-01", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := TraceIDFromParent(tc.value); got != tc.want {
				t.Fatalf("TraceIDFromParent(%q) = %q, want %q", tc.value, got, tc.want)
			}
			if tc.want != "" && !IsTraceID(tc.want) {
				t.Fatalf("IsTraceID(%q) is false", tc.want)
			}
		})
	}
}
