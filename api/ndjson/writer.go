// Package ndjson writes answers of flows as newline-delimited JSON over HTTP,
// the form the collector's and the relay's /api/v1/flows share: the
// headers, a buffer, and a write deadline kept a stall ahead, so a client
// that stops reading is dropped instead of holding the answer open forever.
package ndjson

import (
	"bufio"
	"net/http"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// ContentType is the media type of an answer.
const ContentType = "application/x-ndjson"

// Stall is how long a client may stall an answer before it is dropped.
const Stall = 30 * time.Second

// Writer writes one answer. It is not safe for concurrent use.
type Writer struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	bw       *bufio.Writer
	line     []byte
	deadline time.Time
}

// NewWriter sets the answer's headers on w (not yet sent) and returns its
// writer.
func NewWriter(w http.ResponseWriter) *Writer {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-store")
	return &Writer{w: w, rc: http.NewResponseController(w), bw: bufio.NewWriterSize(w, 32<<10),
		line: make([]byte, 0, 2048)}
}

// Flow writes f as one line.
func (w *Writer) Flow(f *api.Flow) error {
	w.line = append(api.AppendJSON(w.line[:0], f), '\n')
	return w.Line(w.line)
}

// Line writes an encoded line; a missing final newline is added.
func (w *Writer) Line(b []byte) error {
	w.extend()
	if _, err := w.bw.Write(b); err != nil {
		return err
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return w.bw.WriteByte('\n')
	}
	return nil
}

// Flush sends what is buffered to the client now (a follow's idle moment).
func (w *Writer) Flush() error {
	w.extend()
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.rc.Flush()
}

// Close sends what is buffered; the answer ends when the handler returns.
func (w *Writer) Close() error { return w.bw.Flush() }

// extend pushes the connection's write deadline Stall ahead, at most once a
// second; ResponseWriters without deadlines (tests) ignore it.
func (w *Writer) extend() {
	now := time.Now()
	if now.Sub(w.deadline) < time.Second {
		return
	}
	w.deadline = now
	_ = w.rc.SetWriteDeadline(now.Add(Stall)) // ErrNotSupported: no deadline
}
