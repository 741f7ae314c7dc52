package main

import (
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/periscope-dev/periscope/filter"
)

// parseObserveArgs runs the observe command's flag parsing on args and returns
// the chips and query it would send.
func parseObserveArgs(t *testing.T, args ...string) ([]string, url.Values, error) {
	t.Helper()
	var (
		gotChips []string
		gotQuery url.Values
	)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	cmd := newObserveCmdWith(func(_ *cobra.Command, opts observeOptions, chips []string) error {
		gotChips = chips
		q, err := opts.window.query(chips, now)
		gotQuery = q
		return err
	})
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage = true
	err := cmd.Execute()
	return gotChips, gotQuery, err
}

func TestObserveFlagsBecomeChipsInCommandLineOrder(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no flags give no chips", nil, nil},
		{"every sided flag maps to its chip",
			[]string{"--ip", "10.0.0.1", "--from-ip", "10.0.0.0/8", "--to-ip", "fd00::1",
				"--port", "53", "--from-port", "1", "--to-port", "8080",
				"--label", "app=a", "-l", "b", "--from-label", "c=d", "--to-label", "e!=f",
				"--pod", "web", "--from-pod", "default/web", "--to-pod", "kube-system/",
				"--namespace", "n1", "-n", "n2", "--from-namespace", "n3", "--to-namespace", "n4",
				"--workload", "w", "--from-workload", "w1", "--to-workload", "w2",
				"--identity", "1", "--from-identity", "2", "--to-identity", "3"},
			[]string{"ip=10.0.0.1", "from:ip=10.0.0.0/8", "to:ip=fd00::1",
				"port=53", "from:port=1", "to:port=8080",
				"label=app=a", "label=b", "from:label=c=d", "to:label=e!=f",
				"pod=web", "from:pod=default/web", "to:pod=kube-system/",
				"namespace=n1", "namespace=n2", "from:namespace=n3", "to:namespace=n4",
				"workload=w", "from:workload=w1", "to:workload=w2",
				"identity=1", "from:identity=2", "to:identity=3"}},
		{"every unsided flag maps to its chip",
			[]string{"--verdict", "DROPPED", "--protocol", "tcp", "--type", "l7", "-t", "sock",
				"--tcp-flags", "SYN,ACK", "--node-name", "kind-*", "--filter", "to:port=80"},
			[]string{"verdict=DROPPED", "protocol=tcp", "type=l7", "type=sock",
				"tcp-flag=SYN,ACK", "node=kind-*", "to:port=80"}},
		{"--not negates only the next filter flag",
			[]string{"--port", "80", "--not", "--namespace", "kube-system", "--verdict", "DROPPED"},
			[]string{"port=80", "!namespace=kube-system", "verdict=DROPPED"}},
		{"--not applies to whichever flag follows it",
			[]string{"--not", "--verdict", "FORWARDED", "--verdict", "DROPPED"},
			[]string{"!verdict=FORWARDED", "verdict=DROPPED"}},
		{"--not between non-filter flags waits for the next filter flag",
			[]string{"--not", "--last", "5", "-f", "--to-pod", "default/db"},
			[]string{"!to:pod=default/db"}},
		{"--not before a negated --filter chip cancels out",
			[]string{"--not", "--filter", "!port=53"},
			[]string{"port=53"}},
		{"--not=false does not negate", []string{"--not=false", "--port", "1"}, []string{"port=1"}},
		{"the equals form of a flag works", []string{"--to-port=443"}, []string{"to:port=443"}},
		{"the kinds hubble's filters gave chips have flags",
			[]string{"--traffic-direction", "ingress", "--reply", "--ip-version", "v6", "--drop-reason-desc", "POLICY_DENIED",
				"--event-type", "drop", "--uuid", "4f1a9c2e-5b7d-4e3a-9c1f-2b6d8e0a7c5d", "--interface", "eth0", "--not", "--reply=false"},
			[]string{"traffic-direction=ingress", "reply=true", "ip-version=v6", "drop-reason=POLICY_DENIED",
				"event-type=drop", "uuid=4f1a9c2e-5b7d-4e3a-9c1f-2b6d8e0a7c5d", "interface=eth0", "!reply=false"}},
		{"the L7 kinds have hubble's flags",
			[]string{"--protocol", "http", "--http-status", "5+", "--http-method", "GET", "--http-path", "^/api/",
				"--http-url", "example", "--http-header", "server:envoy", "--dns-query", `example\.com\.$`, "--not", "--http-status", "503"},
			[]string{"protocol=http", "http-status=5+", "http-method=GET", "http-path=^/api/",
				"http-url=example", "http-header=server:envoy", `dns-query=example\.com\.$`, "!http-status=503"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chips, q, err := parseObserveArgs(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(chips, tt.want) {
				t.Errorf("chips = %q, want %q", chips, tt.want)
			}
			if got := q["filter"]; !slices.Equal(got, tt.want) {
				t.Errorf("filter query = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestObserveFlagsBuildTheQuery(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // url.Values.Encode() without filters
	}{
		{"no flags ask for the last 20", nil, "last=20"},
		{"--last sets the count", []string{"--last", "5"}, "last=5"},
		{"--first asks for the oldest", []string{"--first", "7"}, "first=7"},
		{"--all asks for everything", []string{"--all"}, "all=1"},
		{"--follow alone streams only new flows", []string{"-f"}, "follow=1"},
		{"--follow with --last sends both", []string{"--follow", "--last", "3"}, "follow=1&last=3"},
		{"--since with a duration counts back from now", []string{"--since", "5m"}, "since=2026-11-23T09%3A55%3A00Z"},
		{"--since with a time sends it in UTC", []string{"--since", "2026-11-23T10:00:00+01:00"}, "since=2026-11-23T09%3A00%3A00Z"},
		{"--since and --until give a window", []string{"--since", "1h", "--until", "30m"},
			"since=2026-11-23T09%3A00%3A00Z&until=2026-11-23T09%3A30%3A00Z"},
		{"--since works with --follow", []string{"--since", "10s", "-f"}, "follow=1&since=2026-11-23T09%3A59%3A50Z"},
		{"--since with --last keeps the count", []string{"--since", "1h", "--last", "2"}, "last=2&since=2026-11-23T09%3A00%3A00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, q, err := parseObserveArgs(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			q.Del("filter")
			if got := q.Encode(); got != tt.want {
				t.Errorf("query = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestObserveFlagsRejectBadInput(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"a port name", []string{"--to-port", "http"}, `invalid argument "http" for "--to-port" flag: filter "to:port=http": port must be a number 0-65535`},
		{"a bad verdict", []string{"--verdict", "ALLOWED"}, "verdict must be FORWARDED, DROPPED, AUDIT, ERROR or TRACED"},
		{"a bad chip", []string{"--filter", "from:verdict=DROPPED"}, "verdict has no source or destination side"},
		{"a bad status", []string{"--http-status", "5xx"}, `filter "http-status=5xx": http-status must be a status code (404) or its first one or two digits and + (5+, 40+)`},
		{"a bad path expression", []string{"--http-path", "/a("}, `filter "http-path=/a(": http-path must be a regular expression`},
		{"a dangling --not", []string{"--port", "1", "--not"}, "--not must be followed by a filter flag"},
		{"--first with --last", []string{"--first", "1", "--last", "2"}, "--first cannot be combined with --last"},
		{"--all with --last", []string{"--all", "--last", "2"}, "--all cannot be combined with --first or --last"},
		{"--first with --follow", []string{"--first", "1", "-f"}, "--first cannot be combined with --follow"},
		{"--until with --follow", []string{"--until", "1m", "-f"}, "--until cannot be combined with --follow"},
		{"a negative --last", []string{"--last", "-1"}, "must not be negative"},
		{"a bad --since", []string{"--since", "yesterday"}, `--since: "yesterday" is neither a duration`},
		{"a negative --since", []string{"--since", "-5m"}, "must not be negative"},
		{"an argument", []string{"frontend"}, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseObserveArgs(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestObserveSourceFlag(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{name: "the ring is the default and sends no parameter", args: []string{"--last", "5"}, want: ""},
		{name: "clickhouse asks the collector for history", args: []string{"--since", "1h", "--source", "clickhouse"}, want: "clickhouse"},
		{name: "clickhouse cannot follow", args: []string{"-f", "--source", "clickhouse"}, wantErr: "cannot be combined with --follow"},
		{name: "an unknown source is refused", args: []string{"--source", "s3"}, wantErr: "want ring or clickhouse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, q, err := parseObserveArgs(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := q.Get("source"); got != tt.want {
				t.Fatalf("source = %q, want %q", got, tt.want)
			}
		})
	}
}

// The flags come from the filter kinds: every kind with a flag has one per
// side, with the help of its side.
func TestObserveFlagsComeFromTheFilterKinds(t *testing.T) {
	cmd := newObserveCmdWith(func(*cobra.Command, observeOptions, []string) error { return nil })
	fs := cmd.Flags()
	for _, k := range filter.Kinds() {
		if k.Flag == "" {
			continue
		}
		names := []string{k.Flag}
		if k.Sided {
			names = append(names, "from-"+k.Flag, "to-"+k.Flag)
		}
		for _, name := range names {
			if fs.Lookup(name) == nil {
				t.Errorf("kind %s has no --%s flag", k.Name, name)
			}
		}
	}
	for name, want := range map[string]string{
		"ip":        "Show flows from or to this IP address or CIDR prefix; repeat to OR",
		"from-port": "Show flows with this source port; repeat to OR",
		"to-label":  "Show flows to endpoints matching this label selector; repeat to OR",
		"pod":       "Show flows from or to pods with this name prefix ([namespace/]name); repeat to OR",
		"tcp-flags": "Show TCP flows that saw these flags (SYN, ACK, FIN, RST, ...; SYN,ACK means both); repeat to OR",
		"filter":    "Add a filter chip [!][from:|to:]kind=value, as the UI writes them; repeatable",
	} {
		if got := fs.Lookup(name).Usage; got != want {
			t.Errorf("--%s help %q, want %q", name, got, want)
		}
	}
	if l, n := fs.ShorthandLookup("l"), fs.ShorthandLookup("n"); l == nil || l.Name != "label" || n == nil || n.Name != "namespace" {
		t.Error("-l and -n must stay --label and --namespace")
	}
}
