package collector

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		NodeName:       "node1",
		ClusterName:    "mesh-1",
		HostInterfaces: []string{"eth0"},
		NodeLabels:     map[string]string{"node-access": "ssh"},
		Namespaces:     map[string]NamespaceConfig{"shop": {Labels: map[string]string{"team": "red"}}},
		Endpoints: []EndpointConfig{
			{
				Name:      "frontend",
				Labels:    map[string]string{"app": "frontend", "tier": "web"},
				NetNS:     "psc-frontend",
				Interface: "veth-fe-h",
				IPs:       []string{"198.18.0.2", "fd00::2"},
			},
			{Name: "backend", Namespace: "shop", NetNS: "/var/run/netns/psc-backend"},
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		file string
		want string // the error must contain this
	}{
		{"unknown_field.yaml", `unknown_field.yaml:4:5: unknown field "lables" in endpoint`},
		{"top_level_typo.yaml", `top_level_typo.yaml:1:1: unknown field "nodename" in config`},
		{"bad_ip.yaml", `bad_ip.yaml:4:23: endpoint "frontend": bad IP "198.18.0.300"`},
		{"missing_name.yaml", `missing_name.yaml:2:5: endpoint 0: missing name`},
		{"missing_interface.yaml", `missing_interface.yaml:2:5: endpoint "frontend": needs interface or netns`},
		{"duplicate_name.yaml", `duplicate_name.yaml:4:5: duplicate endpoint name "default/frontend"`},
		{"duplicate_ip.yaml", `duplicate_ip.yaml:7:11: endpoint "backend": duplicate IP 198.18.0.2 (also endpoint "frontend")`},
		{"bad_type.yaml", `bad_type.yaml:4: cannot unmarshal`},
		{"missing.yaml", `read endpoints config`},
		{"bad_cluster.yaml", `bad_cluster.yaml:1:15: cluster name "Mesh_1": want at most 32 lower-case letters`},
		{"bad_cluster.yaml", `bad_cluster.yaml:3:9: namespace "shop": label kubernetes.io/metadata.name is the namespace's name, not "other"`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := LoadConfig(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestEmptyConfigIsValid(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "empty.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Endpoints) != 0 {
		t.Errorf("endpoints from an empty file: %v", cfg.Endpoints)
	}
}

func TestValidateConfigBuiltInGo(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"a valid config passes", Config{Endpoints: []EndpointConfig{{Name: "a", Interface: "v"}}}, ""},
		{"a missing name is named by index", Config{Endpoints: []EndpointConfig{{Interface: "v"}}}, "endpoint 0: missing name"},
		{"a bad IP is reported", Config{Endpoints: []EndpointConfig{{Name: "a", Interface: "v", IPs: []string{"x"}}}}, `bad IP "x"`},
		{"the same name in two namespaces is fine", Config{Endpoints: []EndpointConfig{
			{Name: "a", Interface: "v1"}, {Name: "a", Namespace: "other", Interface: "v2"}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
