package netlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// IperfOptions configure a throughput measurement.
type IperfOptions struct {
	// Duration is how long the client sends; at least one second.
	Duration time.Duration
	// Port is the server's port; 0 means 5201.
	Port uint16
	// IPv6 measures over the pods' IPv6 addresses instead of IPv4.
	IPv6 bool
	// Reverse makes the server send to the client (iperf3 -R).
	Reverse bool
	// Streams is the number of parallel streams; 0 means 1.
	Streams int
}

// Throughput runs iperf3 from client to server for opts.Duration and returns
// the TCP throughput the receiver saw, in bits per second.
func Throughput(ctx context.Context, client, server *Pod, opts IperfOptions) (float64, error) {
	port := opts.Port
	if port == 0 {
		port = 5201
	}
	secs := int(opts.Duration.Round(time.Second) / time.Second)
	secs = max(secs, 1)
	streams := max(opts.Streams, 1)
	dst := server.Addr(opts.IPv6)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// -1: serve one test and exit.
	srv := server.Command(ctx, "iperf3", "-s", "-1", "-p", strconv.Itoa(int(port)), "-B", dst.String())
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("iperf3 server in %s: %w", server.Name, err)
	}
	defer srv.Wait()
	defer cancel()
	if err := waitListening(ctx, server, netip.AddrPortFrom(dst, port)); err != nil {
		return 0, fmt.Errorf("iperf3 server in %s: %w (output: %s)", server.Name, err, srvOut.String())
	}

	args := []string{"-c", dst.String(), "-p", strconv.Itoa(int(port)), "-t", strconv.Itoa(secs),
		"-P", strconv.Itoa(streams), "-J"}
	if opts.Reverse {
		args = append(args, "-R")
	}
	out, err := client.Command(ctx, "iperf3", args...).Output()
	if err != nil {
		return 0, fmt.Errorf("iperf3 client in %s: %w (output: %s)", client.Name, err, out)
	}
	return parseIperf(out)
}

// waitListening polls the server's namespace until something listens on
// addr. It never connects: a one-shot iperf3 server would take a probe
// connection for the test it serves.
func waitListening(ctx context.Context, server *Pod, addr netip.AddrPort) error {
	deadline := time.Now().Add(5 * time.Second)
	filter := fmt.Sprintf("sport = :%d", addr.Port())
	for {
		out, err := server.Command(ctx, "ss", "-Hltn", filter).Output()
		if err != nil {
			return fmt.Errorf("probe listener with ss: %w", ctxOr(ctx, err))
		}
		if len(bytes.TrimSpace(out)) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("not listening after 5s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// iperfResult is the part of `iperf3 -J` output Throughput reads.
type iperfResult struct {
	End struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// parseIperf reads the receiver's throughput from `iperf3 -J` output.
func parseIperf(out []byte) (float64, error) {
	var r iperfResult
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("parse iperf3 json: %w", err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, errors.New("iperf3 reported no throughput")
	}
	return r.End.SumReceived.BitsPerSecond, nil
}
