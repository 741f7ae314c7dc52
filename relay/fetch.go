package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// maxLine bounds one JSON line from a peer.
const maxLine = 1 << 20

// timePrefix is how api.AppendJSON starts a line whose flow has a time.
var timePrefix = []byte(`{"flow":{"time":"`)

// lineTime reads a line's flow time cheaply when the line is in
// api.AppendJSON's form, else by parsing the whole line.
func lineTime(line []byte) (time.Time, error) {
	if rest, ok := bytes.CutPrefix(line, timePrefix); ok {
		if end := bytes.IndexByte(rest, '"'); end > 0 {
			if t, err := time.Parse(time.RFC3339Nano, string(rest[:end])); err == nil {
				return t, nil
			}
		}
	}
	var f api.Flow
	if err := api.ParseJSON(line, &f); err != nil {
		return time.Time{}, err
	}
	return f.Time, nil
}

// peerError is a peer's refusal of a query (a non-200 answer).
type peerError struct {
	status string
	msg    string
}

func (e *peerError) Error() string { return fmt.Sprintf("%s: %s", e.status, e.msg) }

// open sends GET /api/v1/flows?q to p.
func (r *Relay) open(ctx context.Context, p *peer, q url.Values) (*http.Response, error) {
	return r.get(ctx, p, "/api/v1/flows", q)
}

// get sends GET path?q to p; an answer other than 200 is a peerError.
func (r *Relay) get(ctx context.Context, p *peer, path string, q url.Values) (*http.Response, error) {
	u := p.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := r.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, &peerError{resp.Status, string(bytes.TrimSpace(body))}
	}
	return resp, nil
}

// lineReader turns a peer's NDJSON answer into items: each line kept as
// the peer sent it when the answer takes lines, parsed (and matched) when
// the request says so, which runs in the peer's goroutine.
type lineReader struct {
	peer *peer
	req  *request
	br   *bufio.Reader
}

func newLineReader(p *peer, body io.Reader, req *request) *lineReader {
	return &lineReader{peer: p, req: req, br: bufio.NewReaderSize(body, 64<<10)}
}

// next reads the next flow line into an item; it returns (nil, nil) for a
// flow the request's filter rejects and io.EOF at the end.
func (rd *lineReader) next() (*item, error) {
	line, err := rd.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(long) < maxLine {
			line, err = rd.br.ReadSlice('\n')
			long = append(long, line...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("a line longer than %d bytes", maxLine)
		}
		line = long
	}
	if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
		return nil, err
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return nil, nil
	}
	it := &item{peer: rd.peer.addr}
	if rd.req.parse {
		var f api.Flow
		if perr := api.ParseJSON(line, &f); perr != nil {
			return nil, perr
		}
		if !rd.req.match.Match(&f) {
			return nil, nil
		}
		it.ts, it.flow = f.Time, &f
	} else {
		t, perr := lineTime(line)
		if perr != nil {
			return nil, perr
		}
		it.ts = t
	}
	if rd.req.lines {
		it.line = append([]byte(nil), line...)
	}
	return it, nil
}

// buffered reports whether more input is already read, so a batch can grow
// without waiting on the network.
func (rd *lineReader) buffered() bool { return rd.br.Buffered() > 0 }

// fetch reads a history answer from p into a slice.
func (r *Relay) fetch(ctx context.Context, p *peer, q url.Values, req *request) ([]*item, error) {
	resp, err := r.open(ctx, p, q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rd := newLineReader(p, resp.Body, req)
	var items []*item
	for {
		it, err := rd.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return items, fmt.Errorf("read flows: %w", err)
		}
		if it != nil {
			items = append(items, it)
		}
	}
	if n := len(items); n > 0 {
		p.got(n, items[n-1].ts)
	}
	return items, nil
}
