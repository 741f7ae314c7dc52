package hubble

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
)

// namedTestFlows: frontend (10.0.0.1 in topology) reaches world
// addresses its lookups named.
func namedTestFlows() []api.Flow {
	now := time.Now().Add(-time.Minute)
	flow := func(dst string, names []string, v api.Verdict, at time.Duration) api.Flow {
		return api.Flow{Time: now.Add(at), Type: api.FlowTypeL3L4, Verdict: v, TrafficDirection: api.TrafficDirectionEgress,
			IP: api.IP{Source: testFlows()[0].IP.Source, Destination: netip.MustParseAddr(dst), Version: api.IPv4},
			L4: api.L4{Protocol: api.ProtoTCP, SourcePort: 40001, DestinationPort: 443}, DestinationNames: names}
	}
	return []api.Flow{
		flow("198.51.100.7", []string{"api.example.com"}, api.VerdictForwarded, 0),
		flow("198.51.100.8", []string{"ads.example.net"}, api.VerdictDropped, time.Second),
		flow("198.51.100.9", nil, api.VerdictForwarded, 2*time.Second),
	}
}

// The real hubble CLI's --fqdn, --to-fqdn and --from-fqdn select flows by
// their DNS names, and its printer shows the names.
func TestHubbleCLIFiltersByFQDN(t *testing.T) {
	h := newHubbleCLI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	named := namedTestFlows()
	c, err := collector.New(collector.Options{Topology: topology("node1"), Listener: ln, Version: "test",
		Sources: []collector.Source{apitest.NewSource(named, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "node1", c)
	waitFor(t, "every flow stored", func() bool { return c.Store().Seen() == uint64(len(named)) })
	h.server = serveAddr(t, NewCollectorBackend(c))

	dsts := func(args ...string) []string {
		var out []string
		for _, r := range parseFlowsJSON(t, h.mustRun(t, append([]string{"observe", "--all", "-o", "json"}, args...)...)) {
			out = append(out, r.GetFlow().GetIP().GetDestination())
		}
		return out
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"--fqdn a name", []string{"--fqdn", "api.example.com"}, []string{"198.51.100.7"}},
		{"--to-fqdn a pattern", []string{"--to-fqdn", "*.example.net"}, []string{"198.51.100.8"}},
		{"--fqdn a pattern spanning dots, any case", []string{"--fqdn", "*.EXAMPLE.*"}, []string{"198.51.100.7", "198.51.100.8"}},
		{"--from-fqdn tests the source's names", []string{"--from-fqdn", "api.example.com"}, nil},
		{"--not --fqdn", []string{"--not", "--fqdn", "*"}, []string{"198.51.100.9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dsts(tc.args...); !slices.Equal(got, tc.want) {
				t.Errorf("hubble observe %v: %v, want %v", tc.args, got, tc.want)
			}
		})
	}
	out := h.mustRun(t, "observe", "--all", "--color", "never", "--to-fqdn", "ads.example.net")
	if !strings.Contains(out, "-> ads.example.net:443") {
		t.Errorf("hubble's printer does not show the name:\n%s", out)
	}
}
