package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestSourceAndDestinationNamesUseHubbleFieldsAndReadBack(t *testing.T) {
	f := sampleFlows()["tcp_forwarded"]
	f.SourceNames = []string{"frontend.example"}
	f.DestinationNames = []string{"api.example.com", "www.example.com"}
	line := AppendJSON(nil, f)
	if !json.Valid(line) {
		t.Fatalf("invalid JSON: %s", line)
	}
	want := `"node_name":"node1","source_names":["frontend.example"],"destination_names":["api.example.com","www.example.com"],"traffic_direction"`
	if !strings.Contains(string(line), want) {
		t.Fatalf("names not written as Hubble's fields in Hubble's order:\n%s\nwant a part %s", line, want)
	}
	var got Flow
	if err := ParseJSON(line, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.SourceNames, f.SourceNames) || !slices.Equal(got.DestinationNames, f.DestinationNames) {
		t.Fatalf("read back %q / %q, want %q / %q", got.SourceNames, got.DestinationNames, f.SourceNames, f.DestinationNames)
	}

	f.SourceNames, f.DestinationNames = nil, nil
	if s := string(AppendJSON(nil, f)); strings.Contains(s, "_names") {
		t.Fatalf("empty name lists must be omitted: %s", s)
	}
}
