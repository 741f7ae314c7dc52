package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath"
)

func TestParseRedirects(t *testing.T) {
	eps := []collector.EndpointStatus{
		{Name: "web", IfIndex: 7, IPs: []string{"198.18.0.2", "fd00::2"}},
		{Name: "nohost"},
	}
	for _, tc := range []struct {
		name string
		spec string
		dir  datapath.RedirectDirection
		err  string
	}{
		{"an endpoint's port, ingress by default", "web:80", datapath.RedirectIngress, ""},
		{"an egress redirect", "web:53:egress", datapath.RedirectEgress, ""},
		{"an unknown endpoint is refused", "db:80", 0, `no endpoint "db"`},
		{"an endpoint without host interface is refused", "nohost:80", 0, `no endpoint "nohost"`},
		{"port 0 is refused", "web:0", 0, "port"},
		{"a bad direction is refused", "web:80:sideways", 0, "neither ingress nor egress"},
		{"a missing port is refused", "web", 0, "want ENDPOINT:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := parseRedirects([]string{tc.spec}, eps)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || len(rs) != 1 {
				t.Fatalf("%v, %v", rs, err)
			}
			want := []netip.Addr{netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("fd00::2")}
			if r := rs[0]; r.Endpoint != 7 || r.Direction != tc.dir || !slices.Equal(r.Addrs, want) {
				t.Fatalf("redirect %+v", r)
			}
		})
	}
}
