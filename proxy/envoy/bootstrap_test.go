package envoy

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestBootstrapHoldsOnlyNodeXDSAndAdmin(t *testing.T) {
	b, err := Bootstrap("node-1", "/run/x.sock", netip.MustParseAddrPort("127.0.0.1:9901"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"admin", "dynamicResources", "node", "staticResources"}) {
		t.Fatalf("bootstrap sections %v", keys)
	}
	if s := string(b); !strings.Contains(s, `"/run/x.sock"`) || !strings.Contains(s, `"node-1"`) {
		t.Fatalf("bootstrap %s", s)
	}
	if _, err := Bootstrap("n", "/s", netip.MustParseAddrPort("0.0.0.0:9901")); err == nil {
		t.Fatal("an admin address off loopback was accepted")
	}
}
