package sink

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
)

func TestASpooledBatchKeepsItsL7Records(t *testing.T) {
	sp, err := openSpool(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.close() })
	batch := apitest.HTTPExchange{Client: netip.MustParseAddrPort("198.18.0.2:40000"), Server: netip.MustParseAddrPort("198.18.0.3:8080"),
		Method: "GET", URL: "/a", Code: 200, Latency: time.Millisecond,
		RequestHeaders: []api.HTTPHeader{{Key: "accept", Value: "*/*"}}}.Flows(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	batch = append(batch, apitest.DNSExchange{Client: netip.MustParseAddrPort("198.18.0.2:40001"), Server: netip.MustParseAddrPort("198.18.0.53:53"),
		Query: "example.com.", IPs: []string{"198.18.0.10"}, TTL: 5}.Flows(time.Date(2026, 11, 23, 9, 0, 1, 0, time.UTC))...)
	batch = append(batch, api.Flow{Type: api.FlowTypeL7, L7: &api.L7{}}, *flowWithPort(80))
	if err := sp.append(batch, 0, false, false); err != nil {
		t.Fatal(err)
	}
	got, lost, err := sp.readHead(nil)
	if err != nil || lost != 0 {
		t.Fatalf("readHead: %v, %d lost", err, lost)
	}
	if !reflect.DeepEqual(got, batch) {
		t.Errorf("the spool gave back\n%+v\nwant\n%+v", got, batch)
	}
}
