package collector

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestEndpointNamesFollowKubernetesRules(t *testing.T) {
	_, err := LoadConfig(filepath.Join("testdata", "bad_names.yaml"))
	if err == nil {
		t.Fatal("bad names were accepted")
	}
	for _, want := range []string{
		`bad_names.yaml:2:11: endpoint 0 (default/web/../../x): name "web/../../x": must be a DNS-1123 subdomain`,
		`bad_names.yaml:5:16: endpoint 1 (Bad NS!/db): namespace "Bad NS!": must be a DNS-1123 label`,
		`bad_names.yaml:6:16: endpoint 1 (Bad NS!/db): interface "lo": the host's loopback is no endpoint's`,
		`bad_names.yaml:7:14: endpoint 1 (Bad NS!/db): label key "a b": must be letters, digits`,
		`bad_names.yaml:7:22: endpoint 1 (Bad NS!/db): label "app" value "has space": must be letters, digits`,
		`bad_names.yaml:7:63: endpoint 1 (Bad NS!/db): label key "/x": empty prefix before '/'`,
		`bad_names.yaml:8:11: endpoint 2 (default/Upper): name "Upper": must be a DNS-1123 subdomain`,
		`bad_names.yaml:9:12: endpoint 2 (default/Upper): netns "../run/netns/x": a path must be absolute`,
		`bad_names.yaml:10:16: endpoint 2 (default/Upper): interface "eth0:1": a device name has no '/', ':' or white space`,
		`bad_names.yaml:11:25: host interface 1 "": empty`,
		`bad_names.yaml:11:29: host interface 2 "a-very-long-interface-name": longer than 15 characters`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no error %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "example.com/tier") {
		t.Errorf("a prefixed label key was refused:\n%v", err)
	}
}

func TestNameRules(t *testing.T) {
	tests := []struct {
		name  string
		check func(string) error
		ok    []string
		bad   []string
	}{
		{"pod names are DNS-1123 subdomains", checkSubdomain,
			[]string{"web", "web-7d4f9", "a.b.c", "0"}, []string{"Web", "-web", "web-", "a..b", "a/b", "a_b", strings.Repeat("a", 254)}},
		{"namespaces are DNS-1123 labels", checkDNSLabel,
			[]string{"default", "kube-system", strings.Repeat("a", 63)}, []string{"a.b", "Bad NS!", strings.Repeat("a", 64)}},
		{"label keys are [prefix/]name", checkLabelKey,
			[]string{"app", "app.kubernetes.io/name", "A_b-C.d", "example.com/x"}, []string{"", "a b", "/x", "Example.com/x", "a/b/c", "-a", strings.Repeat("a", 64)}},
		{"label values are empty or names", checkLabelValue,
			[]string{"", "v1", "web_1.x"}, []string{"a b", "-x", strings.Repeat("v", 64)}},
		{"host interfaces are kernel device names", checkIfName,
			[]string{"eth0", "lo", "veth12ab", "br-lab.10"}, []string{"", ".", "..", "a/b", "a b", "eth0:1", "sixteen-chars-ab"}},
		{"an endpoint's interface is never lo", checkEndpointIfName,
			[]string{"veth1", "lxc12"}, []string{"lo"}},
		{"netns is a name or an absolute clean path", checkNetNS,
			[]string{"psc-web", "/var/run/netns/web", "/proc/1234/ns/net"}, []string{"..", "a/b", "/var/run/../x", "/var/run/netns/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range tt.ok {
				if err := tt.check(s); err != nil {
					t.Errorf("%q refused: %v", s, err)
				}
			}
			for _, s := range tt.bad {
				if tt.check(s) == nil {
					t.Errorf("%q accepted", s)
				}
			}
		})
	}
}
