package main

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api/apitest"
	"github.com/periscope-dev/periscope/collector"
)

func TestTheEndpointCommandsListAndRemove(t *testing.T) {
	c, err := collector.New(collector.Options{
		Topology: &collector.Topology{NodeName: "n", Endpoints: []collector.ResolvedEndpoint{{
			Config:      collector.EndpointConfig{Name: "web-1", Namespace: "shop", Labels: map[string]string{"app": "web"}},
			HostIfIndex: 7, HostIfName: "veth-web", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.7")},
		}}},
		Sources: []collector.Source{apitest.NewSource(nil, 0)},
		Listen:  "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	apitest.Start(t, "collector", c)
	server := c.Addr().String()
	for _, st := range []struct {
		name    string
		args    []string
		want    string
		wantErr bool
	}{
		{"list shows the endpoint", []string{"endpoint", "list"}, "shop       web-1", false},
		{"remove removes it", []string{"endpoint", "remove", "shop/web-1"}, "endpoint shop/web-1 removed\n", false},
		{"list no longer shows it", []string{"endpoint", "list"}, "NAMESPACE  NAME  IDENTITY  INTERFACE  IPS  KEPT\n", false},
		{"remove of an unknown endpoint says so", []string{"endpoint", "remove", "shop/web-1"}, "no such endpoint: shop/web-1", true},
		{"remove wants namespace/name", []string{"endpoint", "remove", "web-1"}, `endpoint "web-1": want NAMESPACE/NAME`, true},
	} {
		var out, errOut bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(append(st.args, "--server", server))
		err := root.ExecuteContext(context.Background())
		switch {
		case st.wantErr && (err == nil || !strings.Contains(err.Error(), st.want)):
			t.Errorf("%s: error %v; want one containing %q", st.name, err, st.want)
		case !st.wantErr && (err != nil || !strings.Contains(out.String(), st.want)):
			t.Errorf("%s: %v, output\n%s\nwant it to contain\n%s", st.name, err, out.String(), st.want)
		}
	}
}
