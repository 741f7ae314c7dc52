package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// maxFlowLine bounds one JSON line from the collector.
const maxFlowLine = 1 << 20

// flowClient reads flows from a collector's HTTP API.
type flowClient struct {
	base string // e.g. "http://127.0.0.1:4244"
	via  string // what error messages call it: the base, or the socket
	http *http.Client
}

// newFlowClient accepts "host:port" or an http(s):// URL for server.
func newFlowClient(server string, hc *http.Client) (*flowClient, error) {
	s := strings.TrimRight(strings.TrimSpace(server), "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--server %q: want host:port or an http(s):// URL", server)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &flowClient{base: s, via: s, http: hc}, nil
}

// flows asks the collector for flows matching q and calls fn with each JSON
// line (valid only during the call) and its parsed flow, until the answer
// ends, fn fails or ctx is done (which ends a follow without an error).
func (c *flowClient) flows(ctx context.Context, q url.Values, fn func(line []byte, f *api.Flow) error) error {
	u := c.base + "/api/v1/flows"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("build request for %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return c.reachError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(body))
		if msg == "" {
			msg = resp.Status
		}
		return fmt.Errorf("the collector at %s refused the query (%s): %s", c.via, resp.Status, msg)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxFlowLine)
	var f api.Flow
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := api.ParseJSON(line, &f); err != nil {
			return fmt.Errorf("read flows from %s: line %d: %w", c.via, n, err)
		}
		if err := fn(line, &f); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read flows from %s: %w", c.via, err)
	}
	return nil
}

// reachError explains a failed request, keeping the network error's own text
// rather than the URL-laden wrapper around it.
func (c *flowClient) reachError(err error) error {
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		err = opErr
	} else if uErr, ok := errors.AsType[*url.Error](err); ok {
		err = uErr.Err
	}
	return fmt.Errorf("cannot reach the collector at %s (is \"periscope collector\" running?): %w", c.via, err)
}
