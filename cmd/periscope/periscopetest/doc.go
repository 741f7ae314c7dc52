// Package periscopetest is the test side of the periscope binary: it
// builds the binary, runs it as a collector or a relay with the flags
// every test needs (a free listen address, an API socket, a BPF pin path
// and state files of the test's own, all removed when the test ends),
// waits until it answers, stops it when the test ends, and writes the
// endpoints file of a lab's pods. ClickHouse for such a test is
// collector/sink/clickhouse/chtest's.
//
// It must not be imported by anything the binary links (it imports
// testing).
package periscopetest
