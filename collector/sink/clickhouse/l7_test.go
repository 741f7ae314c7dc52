package clickhouse

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/api/flowquery"
)

// l7Flows are L7 records of every shape, and an L3/L4 flow among them.
func l7Flows(base time.Time) []api.Flow {
	fe, be := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	dns := netip.MustParseAddr("fd00::53")
	var flows []api.Flow
	flows = append(flows, apitest.HTTPExchange{
		Client: netip.AddrPortFrom(fe, 40000), Server: netip.AddrPortFrom(be, 8080),
		Method: "PUT", URL: "http://backend:8080/applicants/_create/103294?x='1'", Code: 201, Latency: 12 * time.Millisecond,
		RequestHeaders:  []api.HTTPHeader{{Key: "content-type", Value: "application/json"}, {Key: "x-empty"}},
		ResponseHeaders: []api.HTTPHeader{{Key: "server", Value: "envoy"}},
	}.Flows(base)...)
	flows = append(flows, apitest.HTTPExchange{
		Client: netip.AddrPortFrom(fe, 40001), Server: netip.AddrPortFrom(be, 8080), Protocol: "HTTP/2",
		Method: "GET", URL: "/healthz", Code: 503, Latency: 900 * time.Millisecond, Direction: api.TrafficDirectionIngress,
	}.Flows(base.Add(time.Second))...)
	flows = append(flows, apitest.DNSExchange{
		Client: netip.AddrPortFrom(netip.MustParseAddr("fd00::2"), 40002), Server: netip.AddrPortFrom(dns, 53),
		Query: "www.example.com.", Qtype: "AAAA", CNAMEs: []string{"example.com."}, IPs: []string{"2001:db8::1", "2001:db8::2"},
		TTL: 300, Latency: time.Millisecond,
	}.Flows(base.Add(2*time.Second))...)
	flows = append(flows, apitest.DNSExchange{
		Client: netip.AddrPortFrom(fe, 40003), Server: netip.AddrPortFrom(dns, 53), Query: "nope.example.", Rcode: 3,
	}.Flows(base.Add(3*time.Second))...)
	kafka := flows[0]
	kafka.UUID[8] = 'k'
	kafka.L7 = &api.L7{Type: api.L7TypeResponse, LatencyNs: 5, Kafka: &api.Kafka{ErrorCode: -1, APIVersion: 7, APIKey: "produce",
		CorrelationID: 42, Topic: "orders"}}
	sample := flows[0]
	sample.UUID[8] = 's'
	sample.L7 = &api.L7{Type: api.L7TypeSample}
	plain := flows[0]
	plain.UUID[8] = 'p'
	plain.Type, plain.L7 = api.FlowTypeL3L4, nil
	flows = append(flows, kafka, sample, plain)
	for i := range flows {
		flows[i].Time = flows[i].Time.UTC()
		flows[i].NodeName = "node-a"
		flows[i].Source = api.Endpoint{Identity: 1234, Namespace: "default", PodName: "frontend", Labels: []string{"k8s:app=frontend"}}
	}
	return flows
}

func TestL7FlowsAreStoredAndReadBackEqual(t *testing.T) {
	flows := l7Flows(time.Now().UTC().Add(-time.Hour).Truncate(time.Second))
	s := storeWith(t, flows)
	got, err := query(t, s, flowquery.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(flows) {
		t.Fatalf("read %d flows, wrote %d", len(got), len(flows))
	}
	byID := map[[16]byte]api.Flow{}
	for _, f := range got {
		byID[f.UUID] = f
	}
	for i, want := range flows {
		g := byID[want.UUID]
		if !reflect.DeepEqual(g, want) {
			t.Errorf("flow %d (%s) read back differs:\n got %+v\n     L7 %+v\nwant %+v\n     L7 %+v", i, want.Summary(), g, g.L7, want, want.L7)
		}
	}
}

func TestL7ColumnsAreQueryable(t *testing.T) {
	flows := l7Flows(time.Now().UTC().Add(-time.Hour).Truncate(time.Second))
	s, srv := openStore(t, nil, "periscope")
	if err := s.Write(context.Background(), flows); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ where, want string }{
		{"http_method = 'PUT'", "2"},
		{"http_status >= 500", "1"},
		{"http_status = 201 AND l7_type = 2", "1"},
		{"startsWith(http_path, 'http://backend:8080/applicants/')", "2"},
		{"l7_latency_ns >= 100000000", "1"}, // the 900ms response
		{"l7_protocol = 'dns' AND dns_query = 'www.example.com.'", "2"},
		{"has(dns_ips, '2001:db8::2')", "1"},
		{"dns_rcode = 3", "1"},
		{"has(http_headers_keys, 'server')", "1"},
		{"kafka_topic = 'orders' AND kafka_error_code = -1", "1"},
		{"l7_protocol = '' AND l7_type = 0", "1"}, // the L3/L4 flow
	}
	for _, tt := range tests {
		t.Run(tt.where, func(t *testing.T) {
			if got := srv.Query("SELECT count() FROM periscope.flows WHERE " + tt.where); got != tt.want {
				t.Errorf("%s rows, want %s", got, tt.want)
			}
		})
	}
}

// A database created before the L7 columns gets them from migration 4; its
// old rows read back without an L7 record.
func TestMigrationAddsTheL7ColumnsToAnOlderTable(t *testing.T) {
	released := migrations
	migrations = released[:3]
	old, srv := openStore(t, nil, "periscope")
	migrations = released
	old.Close()
	if got := srv.Query("SELECT count() FROM system.columns WHERE database = 'periscope' AND table = 'flows' AND name = 'l7_type'"); got != "0" {
		t.Fatalf("the older table has l7_type already (%s)", got)
	}
	var v1 []string
	for _, c := range flowColumnsV1 {
		v1 = append(v1, c.name)
	}
	srv.Query("INSERT INTO periscope.flows (" + strings.Join(v1, ", ") + ") SELECT " +
		"toDateTime('2026-11-23 09:00:00'), 5, toFixedString('0123456789abcdef', 16), 'node-a', 1, 1, 1, 0, 2, 0, 1, 1, " +
		"toFixedString('', 16), toFixedString('', 16), 6, 40000, 80, 0, 0, 2, 0, 0, '', '', '', [], [], 0, 0, '', '', '', [], [], " +
		"0, '', 0, 0, 0, 0, 0, 0, 0, '', 0, [], [], [], [], '', '', '', 0, 0, ''")

	s, _ := openStore(t, srv, "periscope")
	if s.migrationsRun != len(released)-3 {
		t.Errorf("reopening applied %d migrations, want those since migration 4 (%d)", s.migrationsRun, len(released)-3)
	}
	have, err := s.tableColumns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range flowColumns {
		if !have[c.name] {
			t.Errorf("column %s missing after the migration", c.name)
		}
	}
	flows := l7Flows(time.Now().UTC().Add(-time.Hour).Truncate(time.Second))
	if err := s.Write(context.Background(), flows); err != nil {
		t.Fatal(err)
	}
	got, err := query(t, s, flowquery.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(flows)+1 || got[0].L7 != nil || got[0].L4.DestinationPort != 80 {
		t.Fatalf("read %d flows, the old one %+v; want %d with the old one first, without L7", len(got), got[0], len(flows)+1)
	}
	byID := map[[16]byte]api.Flow{}
	for _, f := range got {
		byID[f.UUID] = f
	}
	for i, want := range flows {
		if g := byID[want.UUID]; !reflect.DeepEqual(g.L7, want.L7) {
			t.Errorf("flow %d: L7 %+v, want %+v", i, g.L7, want.L7)
		}
	}
	// Adding columns the table has is a no-op, as a rerun or a second
	// collector migrating at the same time finds it.
	if err := s.addColumns(context.Background(), l7Columns); err != nil {
		t.Errorf("adding existing columns: %v", err)
	}
}

func TestAnL3L4BlockSendsEmptyL7Arrays(t *testing.T) {
	flows := genFlows(31, 50, time.Now().UTC().Add(-time.Hour))
	s, srv := openStore(t, nil, "periscope")
	if err := s.Write(context.Background(), flows); err != nil {
		t.Fatal(err)
	}
	if got := srv.Query("SELECT count() FROM periscope.flows WHERE empty(http_headers_keys) AND empty(dns_ips) AND empty(dns_rrtypes) AND l7_protocol = ''"); got != "50" {
		t.Errorf("%s of 50 rows have empty L7 columns", got)
	}
}
