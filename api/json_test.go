package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestAppendJSONMatchesTheGoldenFile(t *testing.T) {
	flows := sampleFlows()
	var got []byte
	for _, name := range sampleNames {
		got = AppendJSON(got, flows[name])
		got = append(got, '\n')
	}
	path := filepath.Join("testdata", "flows.golden.jsonl")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("AppendJSON output differs from %s\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestAppendJSONWritesValidHubbleShapedJSON(t *testing.T) {
	for name, f := range sampleFlows() {
		t.Run(name, func(t *testing.T) {
			line := AppendJSON(nil, f)
			if !json.Valid(line) {
				t.Fatalf("invalid JSON: %s", line)
			}
			if bytes.ContainsRune(line, '\n') {
				t.Errorf("line contains a newline: %s", line)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatal(err)
			}
			if _, ok := m["flow"]; !ok {
				t.Errorf("no \"flow\" key in %s", line)
			}
		})
	}
}

func TestAppendJSONFieldsFollowHubbleNames(t *testing.T) {
	line := string(AppendJSON(nil, sampleFlows()["tcp_forwarded"]))
	for _, want := range []string{
		`{"flow":{"time":"2026-11-23T09:30:14.123456789Z","uuid":"3f2a1b0c-4d5e-6f70-8192-a3b4c5d6e7f8","verdict":"FORWARDED",`,
		`"IP":{"source":"198.18.0.2","destination":"198.18.0.3","ipVersion":"IPv4"}`,
		`"l4":{"TCP":{"source_port":43210,"destination_port":8080,"flags":{"SYN":true,"ACK":true}}}`,
		`"source":{"ID":12,"identity":1234,"namespace":"default","labels":["k8s:app=frontend","k8s:io.kubernetes.pod.namespace=default"],"pod_name":"frontend","workloads":[{"name":"frontend"}]}`,
		`"Type":"L3_L4","node_name":"node1","traffic_direction":"EGRESS","is_reply":false`,
		`"interface":{"index":7,"name":"lxc-frontend"}`,
		`"Summary":"TCP Flags: SYN, ACK"`,
		`"egress_allowed_by":[{"name":"allow-frontend","namespace":"default","revision":"7","kind":"CiliumNetworkPolicy"}]`,
		`"periscope":{"event":"state","start_time":"2026-11-23T09:30:12.123456789Z","end_time":"2026-11-23T09:30:14.123456789Z","forward":{"packets":3,"bytes":180},"reply":{"packets":2,"bytes":120},"initiator_hook":"INGRESS"}`,
		`},"node_name":"node1","time":"2026-11-23T09:30:14.123456789Z"}`,
	} {
		if !strings.Contains(line, want) {
			t.Errorf("line lacks %s\nline: %s", want, line)
		}
	}
	for _, absent := range []string{"drop_reason", "denied_by", "ingress_allowed_by", "process"} {
		if strings.Contains(line, absent) {
			t.Errorf("line has %q although it is unset: %s", absent, line)
		}
	}
	dropped := string(AppendJSON(nil, sampleFlows()["tcp_policy_denied"]))
	for _, want := range []string{`"verdict":"DROPPED","drop_reason":133,"drop_reason_desc":"POLICY_DENIED"`, `"ingress_denied_by":[{"name":"deny-world","revision":"12","kind":"CiliumClusterwideNetworkPolicy"}]`} {
		if !strings.Contains(dropped, want) {
			t.Errorf("dropped line lacks %s\nline: %s", want, dropped)
		}
	}
}

func TestParseJSONReadsBackWhatAppendJSONWrote(t *testing.T) {
	for name, want := range sampleFlows() {
		t.Run(name, func(t *testing.T) {
			var got Flow
			got.NodeName = "left over from the previous line"
			if err := ParseJSON(AppendJSON(nil, want), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, want) {
				t.Errorf("round trip changed the flow\n got: %+v\nwant: %+v", got, *want)
			}
		})
	}
}

func TestParseJSONAcceptsHubbleOutput(t *testing.T) {
	// Shaped like `hubble observe -o json` output, with fields Periscope ignores.
	line := `{"flow":{"time":"2024-01-02T03:04:05.5Z","verdict":"DROPPED","drop_reason":181,"ethernet":{"source":"aa:bb:cc:dd:ee:ff"},` +
		`"IP":{"source":"10.0.0.1","destination":"10.0.0.2","ipVersion":"IPv4"},"l4":{"UDP":{"source_port":1,"destination_port":53}},` +
		`"source":{"identity":7,"labels":["k8s:a=b"],"workloads":[{"name":"w","kind":"Deployment"}]},"destination":{},"Type":"L3_L4",` +
		`"event_type":{"type":1,"sub_type":181},"traffic_direction":"EGRESS","Summary":"UDP",` +
		`"egress_denied_by":[{"name":"deny-dns","namespace":"kube-system","labels":["k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy"],"revision":"42","kind":"CiliumNetworkPolicy"}]},` +
		`"node_name":"kind-worker","time":"2024-01-02T03:04:05.5Z"}`
	var f Flow
	if err := ParseJSON([]byte(line), &f); err != nil {
		t.Fatal(err)
	}
	if f.Verdict != VerdictDropped || f.DropReason != DropReasonPolicyDeny || f.L4.Protocol != ProtoUDP ||
		f.L4.DestinationPort != 53 || f.Source.Workload != "w" || f.NodeName != "kind-worker" ||
		!f.Time.Equal(time.Date(2024, 1, 2, 3, 4, 5, 5e8, time.UTC)) {
		t.Errorf("unexpected flow: %+v", f)
	}
	if want := []PolicyRef{{Name: "deny-dns", Namespace: "kube-system", Kind: "CiliumNetworkPolicy", Revision: 42}}; !reflect.DeepEqual(f.EgressDeniedBy, want) {
		t.Errorf("egress_denied_by %+v, want %+v", f.EgressDeniedBy, want)
	}
}

func TestParseJSONReadsPoliciesOfOlderRecords(t *testing.T) {
	// Before flows carried Hubble's policy shape, the namespace was folded
	// into the name.
	line := `{"flow":{"verdict":"FORWARDED","ingress_allowed_by":[{"name":"default/web"},{"name":"lockdown"}]}}`
	var f Flow
	if err := ParseJSON([]byte(line), &f); err != nil {
		t.Fatal(err)
	}
	if want := []PolicyRef{{Name: "web", Namespace: "default"}, {Name: "lockdown"}}; !reflect.DeepEqual(f.IngressAllowedBy, want) {
		t.Errorf("ingress_allowed_by %+v, want %+v", f.IngressAllowedBy, want)
	}
}

func TestParseJSONRejectsBrokenLines(t *testing.T) {
	tests := []struct{ name, line, wantErr string }{
		{"not JSON at all", `hello`, "parse flow JSON"},
		{"an object without a flow", `{"node_name":"x"}`, `no "flow" object`},
		{"an unknown verdict", `{"flow":{"verdict":"MAYBE"}}`, `verdict: unknown verdict "MAYBE"`},
		{"a bad source address", `{"flow":{"IP":{"source":"1.2.3"}}}`, "IP.source"},
		{"a bad time", `{"flow":{"time":"yesterday"}}`, "flow.time"},
		{"a short uuid", `{"flow":{"uuid":"abc"}}`, "want 32 hex digits"},
		{"a boolean enum", `{"flow":{"Type":true}}`, "neither a name nor a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Flow
			err := ParseJSON([]byte(tt.line), &f)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseJSON(%s) error = %v, want it to contain %q", tt.line, err, tt.wantErr)
			}
		})
	}
}

func TestAppendStringEscapesLikeJSON(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain ASCII is copied", "frontend", `"frontend"`},
		{"quotes and backslashes are escaped", `a"b\c`, `"a\"b\\c"`},
		{"control characters are escaped", "a\nb\tc\rd\x01", `"a\nb\tc\rd\u0001"`},
		{"HTML characters are kept", "<a&b>", `"<a&b>"`},
		{"valid UTF-8 is kept", "héllo ☃", `"héllo ☃"`},
		{"invalid UTF-8 becomes U+FFFD", "a\xffb", `"a\ufffdb"`},
		{"line separators are escaped", "a\u2028b\u2029", `"a\u2028b\u2029"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendString(nil, tt.in))
			if got != tt.want {
				t.Errorf("appendString(%q) = %s, want %s", tt.in, got, tt.want)
			}
			var back string
			if err := json.Unmarshal([]byte(got), &back); err != nil {
				t.Fatalf("output is not a JSON string: %v", err)
			}
		})
	}
}

func TestAppendTimeUsesProtojsonPrecision(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"whole seconds have no fraction", base, "2026-01-02T03:04:05Z"},
		{"milliseconds have 3 digits", base.Add(120 * time.Millisecond), "2026-01-02T03:04:05.120Z"},
		{"microseconds have 6 digits", base.Add(120 * time.Microsecond), "2026-01-02T03:04:05.000120Z"},
		{"nanoseconds have 9 digits", base.Add(1), "2026-01-02T03:04:05.000000001Z"},
		{"other zones are written in UTC", base.In(time.FixedZone("CET", 3600)), "2026-01-02T03:04:05Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendTime(nil, tt.in)); got != tt.want {
				t.Errorf("appendTime = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestAppendJSONDoesNotAllocateWithRoom(t *testing.T) {
	f := sampleFlows()["tcp_forwarded"]
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendJSON(buf[:0], f)
	})
	if allocs != 0 {
		t.Errorf("AppendJSON allocated %.1f times per call, want 0", allocs)
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	f := sampleFlows()["tcp_forwarded"]
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], f)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkParseJSON(b *testing.B) {
	line := AppendJSON(nil, sampleFlows()["tcp_forwarded"])
	var f Flow
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseJSON(line, &f); err != nil {
			b.Fatal(err)
		}
	}
}
