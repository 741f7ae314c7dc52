package api

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The wire* types mirror the JSON AppendJSON writes, for encoding/json.
type (
	wireResponse struct {
		Flow     *wireFlow `json:"flow"`
		NodeName string    `json:"node_name"`
		Time     string    `json:"time"`
	}
	wireFlow struct {
		Time             string           `json:"time"`
		UUID             string           `json:"uuid"`
		Verdict          wireEnum         `json:"verdict"`
		DropReason       uint16           `json:"drop_reason"`
		DropReasonDesc   wireEnum         `json:"drop_reason_desc"`
		IP               wireIP           `json:"IP"`
		L4               wireL4           `json:"l4"`
		Source           wireEndpoint     `json:"source"`
		Destination      wireEndpoint     `json:"destination"`
		Type             wireEnum         `json:"Type"`
		NodeName         string           `json:"node_name"`
		SourceNames      []string         `json:"source_names"`
		DestinationNames []string         `json:"destination_names"`
		L7               *wireL7          `json:"l7"`
		TrafficDirection wireEnum         `json:"traffic_direction"`
		IsReply          bool             `json:"is_reply"`
		Interface        Interface        `json:"interface"`
		TraceContext     wireTraceContext `json:"trace_context"`
		EgressAllowedBy  []wirePolicy     `json:"egress_allowed_by"`
		IngressAllowedBy []wirePolicy     `json:"ingress_allowed_by"`
		EgressDeniedBy   []wirePolicy     `json:"egress_denied_by"`
		IngressDeniedBy  []wirePolicy     `json:"ingress_denied_by"`
		Periscope        *wirePeriscope   `json:"periscope"`
	}
	wireTraceContext struct {
		Parent struct {
			TraceID string `json:"trace_id"`
		} `json:"parent"`
	}
	wireIP struct {
		Source      string   `json:"source"`
		Destination string   `json:"destination"`
		IPVersion   wireEnum `json:"ipVersion"`
	}
	wireL4 struct {
		TCP    *wirePorts `json:"TCP"`
		UDP    *wirePorts `json:"UDP"`
		SCTP   *wirePorts `json:"SCTP"`
		ICMPv4 *wireICMP  `json:"ICMPv4"`
		ICMPv6 *wireICMP  `json:"ICMPv6"`
	}
	wirePorts struct {
		SourcePort      uint16          `json:"source_port"`
		DestinationPort uint16          `json:"destination_port"`
		Flags           map[string]bool `json:"flags"`
	}
	wireICMP struct {
		Type uint8 `json:"type"`
		Code uint8 `json:"code"`
	}
	wireEndpoint struct {
		ID        uint32     `json:"ID"`
		Identity  uint32     `json:"identity"`
		Namespace string     `json:"namespace"`
		Labels    []string   `json:"labels"`
		PodName   string     `json:"pod_name"`
		Workloads []wireName `json:"workloads"`
	}
	wireName struct {
		Name string `json:"name"`
	}
	wirePolicy struct {
		Name      string   `json:"name"`
		Namespace string   `json:"namespace"`
		Kind      string   `json:"kind"`
		Revision  wireEnum `json:"revision"` // a string (protojson) or a number
	}
	wirePeriscope struct {
		Event     wireEnum     `json:"event"`
		StartTime string       `json:"start_time"`
		EndTime   string       `json:"end_time"`
		Forward   wireCounters `json:"forward"`
		Reply     wireCounters `json:"reply"`
		Process   *wireProcess `json:"process"`
		Hook      wireEnum     `json:"initiator_hook"`
		DstProc   *wireProcess `json:"destination_process"`
		Other     *wireObserv  `json:"other_observation"`
	}
	wireObserv struct {
		Interface        Interface    `json:"interface"`
		Hook             wireEnum     `json:"initiator_hook"`
		TrafficDirection wireEnum     `json:"traffic_direction"`
		Verdict          wireEnum     `json:"verdict"`
		DropReason       uint16       `json:"drop_reason"`
		Forward          wireCounters `json:"forward"`
		Reply            wireCounters `json:"reply"`
	}
	wireCounters struct {
		Packets uint64 `json:"packets"`
		Bytes   uint64 `json:"bytes"`
	}
	wireProcess struct {
		PID      uint32 `json:"pid"`
		Comm     string `json:"comm"`
		CgroupID uint64 `json:"cgroup_id"`
	}
)

// wireEnum is an enum as protojson writes it: a name, or a number for
// values without one. A number is kept as its decimal text.
type wireEnum string

// UnmarshalJSON accepts a JSON string or number.
func (e *wireEnum) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*e = wireEnum(s)
		return nil
	}
	if _, err := strconv.ParseUint(string(b), 10, 64); err != nil {
		return fmt.Errorf("enum value %s is neither a name nor a number", b)
	}
	*e = wireEnum(b)
	return nil
}

// parseEnumField parses a present enum with parse; an absent one is zero.
func parseEnumField[T any](e wireEnum, field string, parse func(string) (T, error), dst *T) error {
	if e == "" {
		return nil
	}
	v, err := parse(string(e))
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	*dst = v
	return nil
}

// ParseJSON reads one line written by AppendJSON (or by `hubble observe -o
// json`, for the fields Periscope knows) into f, which it resets first.
// Summary is derived from the record, so it is not read back.
func ParseJSON(line []byte, f *Flow) error {
	var r wireResponse
	if err := json.Unmarshal(line, &r); err != nil {
		return fmt.Errorf("parse flow JSON: %w", err)
	}
	if r.Flow == nil {
		return fmt.Errorf("parse flow JSON: no \"flow\" object")
	}
	*f = Flow{}
	if err := r.Flow.decode(f); err != nil {
		return fmt.Errorf("parse flow JSON: %w", err)
	}
	if f.NodeName == "" {
		f.NodeName = r.NodeName
	}
	if f.Time.IsZero() && r.Time != "" {
		if err := parseTime(r.Time, "time", &f.Time); err != nil {
			return fmt.Errorf("parse flow JSON: %w", err)
		}
	}
	return nil
}

func (w *wireFlow) decode(f *Flow) error {
	if err := parseTime(w.Time, "flow.time", &f.Time); err != nil {
		return err
	}
	if w.UUID != "" {
		if err := ParseUUID(w.UUID, &f.UUID); err != nil {
			return err
		}
	}
	f.DropReason = DropReason(w.DropReason)
	err := parseEnumField(w.Verdict, "verdict", ParseVerdict, &f.Verdict)
	if err == nil {
		err = parseEnumField(w.DropReasonDesc, "drop_reason_desc", ParseDropReason, &f.DropReason)
	}
	if err == nil {
		err = parseEnumField(w.Type, "Type", ParseFlowType, &f.Type)
	}
	if err == nil {
		err = parseEnumField(w.TrafficDirection, "traffic_direction", ParseTrafficDirection, &f.TrafficDirection)
	}
	if err == nil {
		err = w.IP.decode(&f.IP)
	}
	if err == nil && w.L7 != nil {
		f.L7, err = w.L7.decode()
		if err == nil {
			f.L7.TraceID = w.TraceContext.Parent.TraceID
		}
	}
	if err != nil {
		return err
	}
	w.L4.decode(&f.L4)
	w.Source.decode(&f.Source)
	w.Destination.decode(&f.Destination)
	f.NodeName = w.NodeName
	f.SourceNames, f.DestinationNames = w.SourceNames, w.DestinationNames
	f.IsReply = w.IsReply
	f.Interface = w.Interface
	if f.EgressAllowedBy, err = policies(w.EgressAllowedBy); err != nil {
		return err
	}
	if f.IngressAllowedBy, err = policies(w.IngressAllowedBy); err != nil {
		return err
	}
	if f.EgressDeniedBy, err = policies(w.EgressDeniedBy); err != nil {
		return err
	}
	if f.IngressDeniedBy, err = policies(w.IngressDeniedBy); err != nil {
		return err
	}
	if w.Periscope != nil {
		return w.Periscope.decode(f)
	}
	return nil
}

func (w *wireIP) decode(ip *IP) error {
	if err := parseAddr(w.Source, "IP.source", &ip.Source); err != nil {
		return err
	}
	if err := parseAddr(w.Destination, "IP.destination", &ip.Destination); err != nil {
		return err
	}
	return parseEnumField(w.IPVersion, "IP.ipVersion", ParseIPVersion, &ip.Version)
}

func (w *wireL4) decode(l4 *L4) {
	var ports *wirePorts
	switch {
	case w.TCP != nil:
		l4.Protocol, ports = ProtoTCP, w.TCP
	case w.UDP != nil:
		l4.Protocol, ports = ProtoUDP, w.UDP
	case w.SCTP != nil:
		l4.Protocol, ports = ProtoSCTP, w.SCTP
	case w.ICMPv4 != nil:
		l4.Protocol, l4.ICMPType, l4.ICMPCode = ProtoICMPv4, w.ICMPv4.Type, w.ICMPv4.Code
	case w.ICMPv6 != nil:
		l4.Protocol, l4.ICMPType, l4.ICMPCode = ProtoICMPv6, w.ICMPv6.Type, w.ICMPv6.Code
	}
	if ports == nil {
		return
	}
	l4.SourcePort, l4.DestinationPort = ports.SourcePort, ports.DestinationPort
	for _, fl := range tcpFlagFields {
		if ports.Flags[fl.name] {
			l4.TCPFlags |= fl.flag
		}
	}
}

func (w *wireEndpoint) decode(ep *Endpoint) {
	ep.ID, ep.Identity, ep.Namespace = w.ID, w.Identity, w.Namespace
	ep.Labels, ep.PodName = w.Labels, w.PodName
	if len(w.Workloads) > 0 {
		ep.Workload = w.Workloads[0].Name
	}
}

func (w *wirePeriscope) decode(f *Flow) error {
	if err := parseEnumField(w.Event, "periscope.event", ParseEventKind, &f.Event); err != nil {
		return err
	}
	if err := parseEnumField(w.Hook, "periscope.initiator_hook", ParseTrafficDirection, &f.InitiatorHook); err != nil {
		return err
	}
	if err := parseTime(w.StartTime, "periscope.start_time", &f.StartTime); err != nil {
		return err
	}
	if err := parseTime(w.EndTime, "periscope.end_time", &f.EndTime); err != nil {
		return err
	}
	f.Counters = Counters{
		PacketsForward: w.Forward.Packets, BytesForward: w.Forward.Bytes,
		PacketsReply: w.Reply.Packets, BytesReply: w.Reply.Bytes,
	}
	if w.Process != nil {
		f.Process = Process{PID: w.Process.PID, Comm: w.Process.Comm, CgroupID: w.Process.CgroupID}
	}
	if w.DstProc != nil {
		f.DestinationProcess = Process{PID: w.DstProc.PID, Comm: w.DstProc.Comm, CgroupID: w.DstProc.CgroupID}
	}
	if w.Other != nil {
		return w.Other.decode(&f.Other)
	}
	return nil
}

func (w *wireObserv) decode(o *Observation) error {
	if w.Interface.Index == 0 {
		return fmt.Errorf("periscope.other_observation: no interface index")
	}
	o.Interface = w.Interface
	if err := parseEnumField(w.Hook, "periscope.other_observation.initiator_hook", ParseTrafficDirection, &o.InitiatorHook); err != nil {
		return err
	}
	if err := parseEnumField(w.TrafficDirection, "periscope.other_observation.traffic_direction", ParseTrafficDirection, &o.TrafficDirection); err != nil {
		return err
	}
	if err := parseEnumField(w.Verdict, "periscope.other_observation.verdict", ParseVerdict, &o.Verdict); err != nil {
		return err
	}
	o.DropReason = DropReason(w.DropReason)
	o.Counters = Counters{
		PacketsForward: w.Forward.Packets, BytesForward: w.Forward.Bytes,
		PacketsReply: w.Reply.Packets, BytesReply: w.Reply.Bytes,
	}
	return nil
}

// policies reads policy references; a name "namespace/name" without a
// namespace (records written before flows carried namespaces) is split.
func policies(ws []wirePolicy) ([]PolicyRef, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	out := make([]PolicyRef, len(ws))
	for i, w := range ws {
		p := PolicyRef{Name: w.Name, Namespace: w.Namespace, Kind: w.Kind}
		if p.Namespace == "" && strings.Contains(p.Name, "/") {
			p = ParsePolicyRef(p.Name, p.Kind)
		}
		if w.Revision != "" {
			r, err := strconv.ParseUint(string(w.Revision), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("policy %s: revision %q: %w", p.Ref(), w.Revision, err)
			}
			p.Revision = r
		}
		out[i] = p
	}
	return out, nil
}

func names(ws []wireName) []string {
	if len(ws) == 0 {
		return nil
	}
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Name
	}
	return out
}

func parseTime(s, field string, dst *time.Time) error {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	*dst = t
	return nil
}

func parseAddr(s, field string, dst *netip.Addr) error {
	if s == "" {
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	*dst = a
	return nil
}
