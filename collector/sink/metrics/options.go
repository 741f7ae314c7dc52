package metrics

import (
	"fmt"
	"strconv"
	"strings"
)

// Context says which property of an endpoint labels traffic metrics, as in
// Hubble's sourceContext and destinationContext metric options.
type Context uint8

// Contexts. The label value is given in parentheses.
const (
	ContextNamespace    Context = iota + 1 // the namespace ("default")
	ContextWorkload                        // namespace and workload ("default/frontend")
	ContextWorkloadName                    // the workload name alone ("frontend")
	ContextPod                             // namespace and pod ("default/frontend-7d9f")
	ContextPodName                         // the pod name alone ("frontend-7d9f")
	ContextIdentity                        // the identity's labels joined by "," (Hubble's: "k8s:app=web,k8s:io.kubernetes.pod.namespace=shop")
)

var contextNames = map[string]Context{
	"namespace":     ContextNamespace,
	"workload":      ContextWorkload,
	"workload-name": ContextWorkloadName,
	"pod":           ContextPod,
	"pod-name":      ContextPodName,
	"identity":      ContextIdentity,
}

// Options configure Metrics. Zero fields take the defaults below.
type Options struct {
	// SourceContext and DestinationContext choose the source and destination
	// labels of the traffic and HTTP metrics (periscope_bytes_total,
	// periscope_http_requests_total, ...): the first
	// context with a value for the endpoint wins; with none, the label is
	// empty. Default: ContextNamespace.
	SourceContext      []Context
	DestinationContext []Context
	// MaxSeries caps the label sets of each capped metric (Def.Capped).
	// Default 1000.
	MaxSeries int
	// MaxConnections caps the connections whose last counters are kept to
	// compute byte and packet deltas. Default 65536.
	MaxConnections int
	// HTTPBuckets are the bounds of periscope_http_request_duration_seconds
	// (and its OTLP twins). Default DefaultHTTPBuckets.
	HTTPBuckets []float64
}

// Defaults of Options.
const (
	DefaultMaxSeries      = 1000
	DefaultMaxConnections = 65536
)

// DefaultHTTPBuckets returns the default bounds, in seconds, of the HTTP
// request duration histogram (client_golang's DefBuckets).
func DefaultHTTPBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// WithDefaults returns o with its zero fields set to their defaults, or an
// error for a negative cap.
func (o Options) WithDefaults() (Options, error) {
	if o.MaxSeries < 0 || o.MaxConnections < 0 {
		return o, fmt.Errorf("metrics options: negative cap in %+v", o)
	}
	if len(o.SourceContext) == 0 {
		o.SourceContext = []Context{ContextNamespace}
	}
	if len(o.DestinationContext) == 0 {
		o.DestinationContext = []Context{ContextNamespace}
	}
	if o.MaxSeries == 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if len(o.HTTPBuckets) == 0 {
		o.HTTPBuckets = DefaultHTTPBuckets()
	}
	return o, nil
}

// ParseOptions reads options written the way Hubble's metric options are:
// "source_context=workload|namespace;destination_context=namespace". Keys
// (snake or camel case): source_context, destination_context, max_series,
// max_connections. Context values are namespace, workload, workload-name,
// pod, pod-name and identity, several joined by "|" (first with a value wins).
func ParseOptions(s string) (Options, error) {
	var o Options
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, value, ok := strings.Cut(part, "=")
		if !ok {
			return o, fmt.Errorf("metrics option %q: want key=value", part)
		}
		var err error
		switch strings.ReplaceAll(strings.ToLower(strings.TrimSpace(key)), "_", "") {
		case "sourcecontext":
			o.SourceContext, err = parseContexts(value)
		case "destinationcontext":
			o.DestinationContext, err = parseContexts(value)
		case "maxseries":
			o.MaxSeries, err = strconv.Atoi(strings.TrimSpace(value))
		case "maxconnections":
			o.MaxConnections, err = strconv.Atoi(strings.TrimSpace(value))
		default:
			err = fmt.Errorf("unknown key (want source_context, destination_context, max_series or max_connections)")
		}
		if err != nil {
			return o, fmt.Errorf("metrics option %q: %w", part, err)
		}
	}
	return o, nil
}

func parseContexts(s string) ([]Context, error) {
	var cs []Context
	for name := range strings.SplitSeq(s, "|") {
		c, ok := contextNames[strings.ToLower(strings.TrimSpace(name))]
		if !ok {
			return nil, fmt.Errorf("unknown context %q (want namespace, workload, workload-name, pod, pod-name or identity)", name)
		}
		cs = append(cs, c)
	}
	return cs, nil
}
