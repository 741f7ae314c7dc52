package otel

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/collector/sink/otel/oteltest"
)

// pairedFlow is the one record of a connection between two local pods that
// the server's ingress policy dropped: forwarded at the client's veth
// (where its packets entered the node), dropped at the server's, each point
// with its own counts, both sockets' processes folded in.
func pairedFlow() api.Flow {
	f := genFlows(1).flows[0]
	f.Event = api.EventEnd
	f.Verdict, f.DropReason = api.VerdictDropped, api.DropReasonPolicyDenied
	f.TrafficDirection, f.InitiatorHook = api.TrafficDirectionIngress, api.TrafficDirectionEgress
	f.Interface = api.Interface{Index: 12, Name: "lxcserver"}
	f.Counters = api.Counters{PacketsForward: 3}
	f.Process = api.Process{PID: 4100, Comm: "curl", CgroupID: 77}
	f.DestinationProcess = api.Process{PID: 4200, Comm: "nginx", CgroupID: 88}
	f.Other = api.Observation{
		Interface:        api.Interface{Index: 11, Name: "lxcclient"},
		InitiatorHook:    api.TrafficDirectionIngress,
		TrafficDirection: api.TrafficDirectionEgress,
		Verdict:          api.VerdictForwarded,
		Counters:         api.Counters{PacketsForward: 3, BytesForward: 180, PacketsReply: 1, BytesReply: 60},
	}
	return f
}

// A record that merged two observation points exports both: its own as the
// record's attributes, the other as periscope.other_observation.*, with
// each point's counts as they are (never added up), as the Hubble API's
// per-point view serves them as two flows.
func TestLogRecordOfAPairedFlowCarriesBothObservationPoints(t *testing.T) {
	clearOTLPEnv(t)
	r, addr := oteltest.StartGRPC(t)
	e := newTestExporter(t, Options{Endpoint: addr, Protocol: ProtocolGRPC, Insecure: true, NodeName: "node-1"})
	single := genFlows(1).flows[0]
	if err := e.Write(context.Background(), []api.Flow{pairedFlow(), single}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	recs, _ := r.LogRecords()
	if len(recs) != 2 {
		t.Fatalf("got %d log records, want one per record: 2", len(recs))
	}
	paired, alone := oteltest.Attrs(recs[0].GetAttributes()), oteltest.Attrs(recs[1].GetAttributes())
	for k, v := range map[string]string{
		"network.interface.name":                        "lxcserver",
		"periscope.initiator_hook":                      "EGRESS",
		"periscope.traffic_direction":                   "INGRESS",
		"periscope.verdict":                             "DROPPED",
		"periscope.drop_reason":                         "POLICY_DENIED",
		"periscope.packets.forward":                     "3",
		"periscope.packets.reply":                       "0",
		"periscope.other_observation.interface.name":    "lxcclient",
		"periscope.other_observation.interface.index":   "11",
		"periscope.other_observation.initiator_hook":    "INGRESS",
		"periscope.other_observation.traffic_direction": "EGRESS",
		"periscope.other_observation.verdict":           "FORWARDED",
		"periscope.other_observation.packets.forward":   "3",
		"periscope.other_observation.bytes.forward":     "180",
		"periscope.other_observation.packets.reply":     "1",
		"periscope.other_observation.bytes.reply":       "60",
		"process.pid":                             "4100",
		"periscope.destination_process.pid":       "4200",
		"periscope.destination_process.comm":      "nginx",
		"periscope.destination_process.cgroup_id": "88",
	} {
		if paired[k] != v {
			t.Errorf("paired record: attribute %s = %q, want %q", k, paired[k], v)
		}
	}
	if _, ok := paired["periscope.other_observation.drop_reason"]; ok {
		t.Errorf("a forwarding point has a drop reason: %v", paired)
	}
	var body api.Flow
	if err := api.ParseJSON([]byte(recs[0].GetBody().GetStringValue()), &body); err != nil {
		t.Fatalf("body: %v", err)
	}
	if want := pairedFlow(); body.Other != want.Other {
		t.Errorf("body's other_observation %+v, want %+v", body.Other, want.Other)
	}
	for k := range alone {
		if strings.HasPrefix(k, "periscope.other_observation.") {
			t.Errorf("a record of one point has %s", k)
		}
	}
	if got := alone["periscope.packets.forward"]; got != strconv.FormatUint(single.Counters.PacketsForward, 10) {
		t.Errorf("single record's packets %q", got)
	}
}
