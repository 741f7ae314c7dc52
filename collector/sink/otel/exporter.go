package otel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/periscope-dev/periscope/collector/sink/metrics"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// sdkCardinalityLimit is the least cardinality limit given to the SDK: our own
// caps (Options.Metrics.MaxSeries) must be what bounds a metric, not the SDK's.
const sdkCardinalityLimit = 2000

// Exporter exports flows over OTLP: its Metrics (the metric model, a
// sink.Observer) count them, its Logs (a sink.Sink) emit one log record per
// flow. Shutdown flushes
// and stops both.
type Exporter struct {
	*metrics.Metrics
	*Logs

	mp *sdkmetric.MeterProvider
	lp *sdklog.LoggerProvider
}

// New builds the SDK's MeterProvider (a periodic reader on an OTLP metric
// exporter) and LoggerProvider (an OTLP log exporter), and the metrics and
// log sink on them. Nothing is sent before the first export; an unreachable
// endpoint shows as export errors, not as an error of New.
func New(ctx context.Context, opts Options) (*Exporter, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ep, err := parseEndpoint(o.Endpoint)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, o)
	if err != nil {
		return nil, err
	}
	mexp, err := newMetricExporter(ctx, o, ep)
	if err != nil {
		return nil, err
	}
	lexp, err := newLogExporter(ctx, o, ep)
	if err != nil {
		return nil, errors.Join(err, mexp.Shutdown(ctx))
	}
	var readerOpts []sdkmetric.PeriodicReaderOption
	if o.ExportInterval > 0 {
		readerOpts = append(readerOpts, sdkmetric.WithInterval(o.ExportInterval))
	}
	e := &Exporter{
		mp: sdkmetric.NewMeterProvider(
			sdkmetric.WithResource(res),
			sdkmetric.WithReader(sdkmetric.NewPeriodicReader(&loggingExporter{Exporter: mexp, log: o.Logger}, readerOpts...)),
			sdkmetric.WithCardinalityLimit(max(sdkCardinalityLimit, o.Metrics.MaxSeries+2)),
		),
		lp: sdklog.NewLoggerProvider(
			sdklog.WithResource(res),
			sdklog.WithProcessor(newFlushProcessor(lexp)),
		),
	}
	if e.Metrics, err = NewMetrics(e.mp, o.Metrics); err != nil {
		return nil, errors.Join(err, e.Shutdown(ctx))
	}
	e.Logs = NewLogs(e.lp, o.LogBody)
	return e, nil
}

// MeterProvider is the exporter's meter provider, for other instruments to
// be exported alongside.
func (e *Exporter) MeterProvider() metric.MeterProvider { return e.mp }

// ForceFlush exports the metrics now (and any log record emitted outside
// Write).
func (e *Exporter) ForceFlush(ctx context.Context) error {
	return errors.Join(e.mp.ForceFlush(ctx), e.lp.ForceFlush(ctx))
}

// Shutdown exports what is left and stops the exporters. Call it after the
// sink's queue has drained (sink.Fanout.Run returned), so that its last
// flows are exported too.
func (e *Exporter) Shutdown(ctx context.Context) error {
	if err := errors.Join(e.mp.Shutdown(ctx), e.lp.Shutdown(ctx)); err != nil {
		return fmt.Errorf("shut down OTLP export: %w", err)
	}
	return nil
}

// newResource describes this process: service.name, service.version and
// host.name, with OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over the
// defaults and explicit options over the environment.
func newResource(ctx context.Context, o Options) (*resource.Resource, error) {
	defaults := []attribute.KeyValue{semconv.ServiceName(DefaultServiceName), semconv.ServiceVersion(o.ServiceVersion)}
	if h, err := os.Hostname(); err == nil && o.NodeName == "" {
		defaults = append(defaults, semconv.HostName(h))
	}
	var explicit []attribute.KeyValue
	if o.ServiceName != "" {
		explicit = append(explicit, semconv.ServiceName(o.ServiceName))
	}
	if o.NodeName != "" {
		explicit = append(explicit, semconv.HostName(o.NodeName))
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(defaults...),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(explicit...),
	)
	if err != nil {
		return nil, fmt.Errorf("build OTel resource: %w", err)
	}
	return res, nil
}

func newMetricExporter(ctx context.Context, o Options, ep endpoint) (sdkmetric.Exporter, error) {
	proto, err := o.protocol("METRICS")
	if err != nil {
		return nil, err
	}
	var exp sdkmetric.Exporter
	switch proto {
	case ProtocolGRPC:
		var opts []otlpmetricgrpc.Option
		if ep.set {
			opts = append(opts, otlpmetricgrpc.WithEndpoint(ep.host))
		}
		if o.Insecure || ep.insecure {
			opts = append(opts, otlpmetricgrpc.WithInsecure())
		}
		exp, err = otlpmetricgrpc.New(ctx, opts...)
	default:
		var opts []otlpmetrichttp.Option
		if ep.set {
			opts = append(opts, otlpmetrichttp.WithEndpoint(ep.host), otlpmetrichttp.WithURLPath(ep.path+"/v1/metrics"))
		}
		if o.Insecure || ep.insecure {
			opts = append(opts, otlpmetrichttp.WithInsecure())
		}
		exp, err = otlpmetrichttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("create OTLP %s metric exporter: %w", proto, err)
	}
	return exp, nil
}

func newLogExporter(ctx context.Context, o Options, ep endpoint) (sdklog.Exporter, error) {
	proto, err := o.protocol("LOGS")
	if err != nil {
		return nil, err
	}
	var exp sdklog.Exporter
	switch proto {
	case ProtocolGRPC:
		var opts []otlploggrpc.Option
		if ep.set {
			opts = append(opts, otlploggrpc.WithEndpoint(ep.host))
		}
		if o.Insecure || ep.insecure {
			opts = append(opts, otlploggrpc.WithInsecure())
		}
		exp, err = otlploggrpc.New(ctx, opts...)
	default:
		var opts []otlploghttp.Option
		if ep.set {
			opts = append(opts, otlploghttp.WithEndpoint(ep.host), otlploghttp.WithURLPath(ep.path+"/v1/logs"))
		}
		if o.Insecure || ep.insecure {
			opts = append(opts, otlploghttp.WithInsecure())
		}
		exp, err = otlploghttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("create OTLP %s log exporter: %w", proto, err)
	}
	return exp, nil
}

// loggingExporter logs failed metric exports, at most once per
// logInterval: the periodic reader's only other outlet is the global OTel
// error handler.
type loggingExporter struct {
	sdkmetric.Exporter
	log *slog.Logger

	mu      sync.Mutex
	last    time.Time
	skipped int
}

const logInterval = 10 * time.Second

// Export implements sdkmetric.Exporter.
func (l *loggingExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	err := l.Exporter.Export(ctx, rm)
	if err == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.last) >= logInterval {
		l.log.Warn("OTLP metric export failed", "err", err, "failures_not_logged", l.skipped)
		l.last, l.skipped = now, 0
	} else {
		l.skipped++
	}
	return err
}
