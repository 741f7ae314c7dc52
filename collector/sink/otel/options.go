package otel

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/periscope-dev/periscope/collector/sink/metrics"
)

// OTLP protocols, the values of OTEL_EXPORTER_OTLP_PROTOCOL that Periscope
// supports.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// DefaultServiceName is the default of Options.ServiceName.
const DefaultServiceName = "periscope"

// Options configure New. Zero fields take their defaults, and the standard
// OTEL_* environment variables apply to whatever the options leave unset
// (endpoints, headers, TLS, compression, timeouts, OTEL_METRIC_EXPORT_INTERVAL,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME).
type Options struct {
	// Endpoint is where both signals go, with the meaning of
	// OTEL_EXPORTER_OTLP_ENDPOINT: "host:port", or a base URL
	// ("http://collector:4318", "https://..."; an http scheme means no TLS,
	// and over HTTP the signal's path, /v1/metrics or /v1/logs, is appended
	// to the URL's path). Empty: the OTEL_EXPORTER_OTLP_* variables decide.
	Endpoint string
	// Protocol is ProtocolGRPC or ProtocolHTTPProtobuf. Empty: the signal's
	// OTEL_EXPORTER_OTLP_{METRICS,LOGS}_PROTOCOL, else
	// OTEL_EXPORTER_OTLP_PROTOCOL, else grpc.
	Protocol string
	// Insecure disables TLS. False leaves it to Endpoint's scheme and
	// OTEL_EXPORTER_OTLP_INSECURE.
	Insecure bool
	// ServiceName is the resource's service.name; it wins over
	// OTEL_SERVICE_NAME. Empty: OTEL_SERVICE_NAME, else "periscope".
	ServiceName string
	// ServiceVersion is service.version. Empty: the binary's module version
	// (or VCS revision).
	ServiceVersion string
	// NodeName is host.name. Empty: OTEL_RESOURCE_ATTRIBUTES, else the
	// hostname.
	NodeName string
	// ExportInterval is the time between two metric exports. Zero:
	// OTEL_METRIC_EXPORT_INTERVAL, else the SDK's 60s.
	ExportInterval time.Duration
	// Metrics are the Prometheus package's options (source and destination
	// contexts, caps, HTTP buckets), so that both exports count alike.
	Metrics metrics.Options
	// LogBody chooses the body of flow log records. Default BodyJSON.
	LogBody Body
	// Logger receives export warnings. Default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.ExportInterval < 0 {
		return o, fmt.Errorf("otel options: negative export interval %v", o.ExportInterval)
	}
	if o.LogBody > BodySummary {
		return o, fmt.Errorf("otel options: unknown log body %d", o.LogBody)
	}
	if o.ServiceVersion == "" {
		o.ServiceVersion = version()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "otel")
	var err error
	o.Metrics, err = o.Metrics.WithDefaults()
	return o, err
}

// protocol returns the OTLP protocol of signal ("METRICS" or "LOGS").
func (o Options) protocol(signal string) (string, error) {
	p := o.Protocol
	if p == "" {
		p = os.Getenv("OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL")
	}
	if p == "" {
		p = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch p = strings.TrimSpace(p); p {
	case "":
		return ProtocolGRPC, nil
	case ProtocolGRPC, ProtocolHTTPProtobuf:
		return p, nil
	}
	return "", fmt.Errorf("OTLP protocol %q for %s: want %s or %s", p, strings.ToLower(signal), ProtocolGRPC, ProtocolHTTPProtobuf)
}

// endpoint is Options.Endpoint taken apart.
type endpoint struct {
	set      bool
	host     string // host:port
	path     string // base path, without a trailing "/"
	insecure bool
}

func parseEndpoint(s string) (endpoint, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return endpoint{}, nil
	}
	if !strings.Contains(s, "://") {
		return endpoint{set: true, host: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("OTLP endpoint %q: %w", s, err)
	}
	if u.Host == "" {
		return endpoint{}, fmt.Errorf("OTLP endpoint %q: no host", s)
	}
	e := endpoint{set: true, host: u.Host, path: strings.TrimSuffix(u.Path, "/")}
	switch u.Scheme {
	case "http":
		e.insecure = true
	case "https":
	default:
		return endpoint{}, fmt.Errorf("OTLP endpoint %q: scheme %q, want http or https", s, u.Scheme)
	}
	return e, nil
}

// version is the binary's module version, or its VCS revision when built
// from a work tree, or "devel".
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return "devel+" + s.Value[:min(12, len(s.Value))]
		}
	}
	return "devel"
}
