package metrics

import (
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Prometheus metric names. Dashboards and alerts are built on them: never
// rename one.
const (
	FlowsTotal                     = "periscope_flows_total"
	DropsTotal                     = "periscope_drops_total"
	PolicyVerdictsTotal            = "periscope_policy_verdicts_total"
	BytesTotal                     = "periscope_bytes_total"
	PacketsTotal                   = "periscope_packets_total"
	TrafficTrackedConnections      = "periscope_traffic_tracked_connections"
	TrafficEvictedConnectionsTotal = "periscope_traffic_evicted_connections_total"
	HTTPRequestsTotal              = "periscope_http_requests_total"
	HTTPRequestDurationSeconds     = "periscope_http_request_duration_seconds"
	LostEventsTotal                = "periscope_lost_events_total"
	SinkQueueLength                = "periscope_sink_queue_length"
	SinkDroppedTotal               = "periscope_sink_dropped_total"
	SinkWrittenTotal               = "periscope_sink_written_total"
	SinkFailedTotal                = "periscope_sink_failed_total"
	SinkSpoolBytes                 = "periscope_sink_spool_bytes"
	SinkSpooledFlows               = "periscope_sink_spooled_flows"
	SinkWriteErrorsTotal           = "periscope_sink_write_errors_total"
	SinkWriteDurationSeconds       = "periscope_sink_write_duration_seconds"
	EventsReadTotal                = "periscope_events_read_total"
	FlowTableEntries               = "periscope_flow_table_entries"
	FlowTableCapacity              = "periscope_flow_table_capacity"
	PolicyRevision                 = "periscope_policy_revision"
	PolicyMatchesTotal             = "periscope_policy_matches_total"
	SinkCorruptTotal               = "periscope_sink_corrupt_total"
	SinkDeduplicatedTotal          = "periscope_sink_deduplicated_total"
	SinkRecoveredTotal             = "periscope_sink_recovered_total"
	SinkUnrecoveredTotal           = "periscope_sink_unrecovered_total"
	StageInTotal                   = "periscope_stage_in_total"
	StageOutTotal                  = "periscope_stage_out_total"
	StageDroppedTotal              = "periscope_stage_dropped_total"
	StageQueued                    = "periscope_stage_queued"
	DNSQueriesTotal                = "periscope_dns_queries_total"
	DNSResponsesTotal              = "periscope_dns_responses_total"
	DNSResponseTypesTotal          = "periscope_dns_response_types_total"
	BPFMapMemoryBytes              = "periscope_bpf_map_memory_bytes"
	BPFMapMaxEntries               = "periscope_bpf_map_max_entries"
)

// OpenTelemetry instrument names of the same metrics.
const (
	OTelFlows                     = "periscope.flows"
	OTelDrops                     = "periscope.drops"
	OTelPolicyVerdicts            = "periscope.policy.verdicts"
	OTelBytes                     = "periscope.bytes"
	OTelPackets                   = "periscope.packets"
	OTelTrafficTrackedConnections = "periscope.traffic.tracked_connections"
	OTelTrafficEvictedConnections = "periscope.traffic.evicted_connections"
	OTelHTTPRequests              = "periscope.http.requests"
	// The semantic conventions' HTTP durations, by reporter; a request
	// whose reporter is unknown goes to OTelHTTPRequestDuration.
	OTelHTTPServerRequestDuration = "http.server.request.duration"
	OTelHTTPClientRequestDuration = "http.client.request.duration"
	OTelHTTPRequestDuration       = "periscope.http.request.duration"
	OTelLostEvents                = "periscope.lost_events"
	OTelSinkQueueLength           = "periscope.sink.queue_length"
	OTelSinkDropped               = "periscope.sink.dropped"
	OTelSinkWritten               = "periscope.sink.written"
	OTelSinkFailed                = "periscope.sink.failed"
	OTelSinkSpoolBytes            = "periscope.sink.spool.size"
	OTelSinkSpooledFlows          = "periscope.sink.spool.flows"
	OTelSinkWriteErrors           = "periscope.sink.write_errors"
	OTelSinkWriteDuration         = "periscope.sink.write.duration"
	OTelEventsRead                = "periscope.events_read"
	OTelFlowTableEntries          = "periscope.flow_table.entries"
	OTelFlowTableCapacity         = "periscope.flow_table.capacity"
	OTelPolicyRevision            = "periscope.policy.revision"
	OTelPolicyMatches             = "periscope.policy.matches"
	OTelSinkCorrupt               = "periscope.sink.corrupt"
	OTelSinkDeduplicated          = "periscope.sink.deduplicated"
	OTelSinkRecovered             = "periscope.sink.recovered"
	OTelSinkUnrecovered           = "periscope.sink.unrecovered"
	OTelStageIn                   = "periscope.stage.in"
	OTelStageOut                  = "periscope.stage.out"
	OTelStageDropped              = "periscope.stage.dropped"
	OTelStageQueued               = "periscope.stage.queued"
	OTelDNSQueries                = "periscope.dns.queries"
	OTelDNSResponses              = "periscope.dns.responses"
	OTelDNSResponseTypes          = "periscope.dns.response_types"
	OTelBPFMapMemory              = "periscope.bpf.map.memory"
	OTelBPFMapMaxEntries          = "periscope.bpf.map.max_entries"
)

// Prometheus label names.
const (
	LabelVerdict     = "verdict"
	LabelDirection   = "direction"
	LabelProtocol    = "protocol"
	LabelIPVersion   = "ip_version"
	LabelType        = "type"
	LabelReason      = "reason" // a flow's drop reason, or why a stage dropped
	LabelStage       = "stage"
	LabelAction      = "action"
	LabelMatch       = "match"
	LabelSource      = "source" // the source endpoint (traffic, HTTP) or the lost events' source
	LabelDestination = "destination"
	LabelSink        = "sink"
	LabelMethod      = "method"
	LabelStatus      = "status"
	LabelReporter    = "reporter"
	LabelPolicy      = "policy"   // a policy's namespace/name ("" for a default deny no rule names)
	LabelEndpoint    = "endpoint" // the endpoint a policy applies to, under the metrics' context
	LabelRcode       = "rcode"    // a DNS response's rcode name (Hubble's), "Policy denied" for a refused query
	LabelQtypes      = "qtypes"   // a DNS query's type
	LabelIPsReturned = "ips_returned"
	LabelMap         = "map"
)

// OpenTelemetry attribute keys of Periscope's own, for what the semantic
// conventions have no name for.
const (
	KeyVerdict          = attribute.Key("periscope.verdict")
	KeyTrafficDirection = attribute.Key("periscope.traffic_direction")
	KeyDropReason       = attribute.Key("periscope.drop_reason")
	KeyFlowType         = attribute.Key("periscope.flow_type")
	KeyPolicyMatch      = attribute.Key("periscope.policy.match")
	KeySource           = attribute.Key("periscope.source")      // the source endpoint under its context
	KeyDestination      = attribute.Key("periscope.destination") // the destination endpoint under its context
	KeyReporter         = attribute.Key("periscope.reporter")
	KeyLostSource       = attribute.Key("periscope.lost_events.source")
	KeySink             = attribute.Key("periscope.sink")
	KeyFlowSource       = attribute.Key("periscope.flow_source") // a producer of flow records (the datapath)
	KeyPolicy           = attribute.Key("periscope.policy")
	KeyEndpoint         = attribute.Key("periscope.endpoint")
	KeyStage            = attribute.Key("periscope.stage")
	KeyStageDropReason  = attribute.Key("periscope.stage.drop_reason")
	KeyDNSRcode         = attribute.Key("periscope.dns.rcode")
	KeyDNSQtypes        = attribute.Key("periscope.dns.qtypes")
	KeyDNSIPsReturned   = attribute.Key("periscope.dns.ips_returned")
	KeyDNSResponseType  = attribute.Key("periscope.dns.response_type")
	KeyBPFMap           = attribute.Key("periscope.bpf.map")
)

// Values of the reporter label: which side of an exchange reported an L7
// record, as Hubble's http metrics say.
const (
	ReporterClient  = "client"  // the requester's side (traffic direction EGRESS)
	ReporterServer  = "server"  // the responder's side (INGRESS)
	ReporterUnknown = "unknown" // neither
)

// OverflowValue is the Prometheus value of every label of the series that
// counts what lies beyond a metric's cap. OpenTelemetry's overflow series
// has the SDK's own attribute instead (otel.metric.overflow=true).
const OverflowValue = "overflow"

// Semantic-convention keys the model's labels use.
const (
	keyTransport       = semconv.NetworkTransportKey
	keyNetworkType     = semconv.NetworkTypeKey
	keyMethod          = semconv.HTTPRequestMethodKey
	keyStatusCode      = semconv.HTTPResponseStatusCodeKey
	keyProtocolVersion = semconv.NetworkProtocolVersionKey
)
