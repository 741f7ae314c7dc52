package otel

import (
	"context"
	"errors"
	"sync"

	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// maxExportRecords bounds the records of one export request, to stay well
// below the receivers' default 4 MiB message limit with JSON bodies.
const maxExportRecords = 512

// flushProcessor is the LoggerProvider's processor: it holds the records
// emitted since the last ForceFlush and exports them, synchronously, on the
// next one. The sink.Queue in front of Logs already batches, bounds and
// retries; an SDK BatchProcessor behind it would batch again and drop
// silently when full, and Write could not tell an exported batch from a lost
// one.
type flushProcessor struct {
	exp sdklog.Exporter

	mu      sync.Mutex
	pending []sdklog.Record
}

func newFlushProcessor(exp sdklog.Exporter) *flushProcessor {
	return &flushProcessor{exp: exp}
}

// OnEmit holds a copy of r until the next ForceFlush.
func (p *flushProcessor) OnEmit(_ context.Context, r *sdklog.Record) error {
	p.mu.Lock()
	p.pending = append(p.pending, r.Clone())
	p.mu.Unlock()
	return nil
}

// Enabled is true: every flow is exported.
func (p *flushProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }

// ForceFlush exports the held records, at most maxExportRecords per request.
// They are released whether or not the export succeeded: the caller (Write)
// learns of a failure and emits them again on retry.
func (p *flushProcessor) ForceFlush(ctx context.Context) error {
	p.mu.Lock()
	recs := p.pending
	p.pending = nil
	p.mu.Unlock()
	for len(recs) > 0 {
		n := min(len(recs), maxExportRecords)
		if err := p.exp.Export(ctx, recs[:n]); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return p.exp.ForceFlush(ctx)
}

// Shutdown exports what is held and shuts the exporter down.
func (p *flushProcessor) Shutdown(ctx context.Context) error {
	return errors.Join(p.ForceFlush(ctx), p.exp.Shutdown(ctx))
}
