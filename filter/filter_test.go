package filter

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/api"
)

// Sample flows the semantics tests are written against.
var (
	// frontend (default, 10.0.0.1, id 1234) -> backend (default, 10.0.1.2:8080, id 5678), TCP SYN+ACK.
	tcpFlow = &api.Flow{
		Verdict: api.VerdictForwarded,
		IP:      api.IP{Source: netip.MustParseAddr("10.0.0.1"), Destination: netip.MustParseAddr("10.0.1.2"), Version: api.IPv4},
		L4:      api.L4{Protocol: api.ProtoTCP, SourcePort: 43210, DestinationPort: 8080, TCPFlags: api.TCPFlagSYN | api.TCPFlagACK},
		Source: api.Endpoint{Identity: 1234, Namespace: "default", PodName: "frontend-7d4b9c-x2x", Workload: "frontend",
			Labels: []string{"k8s:app=frontend", "k8s:tier=web"}},
		Destination: api.Endpoint{Identity: 5678, Namespace: "default", PodName: "backend-0", Workload: "backend",
			Labels: []string{"k8s:app=backend", "k8s:tier=api"}},
		Type:             api.FlowTypeL3L4,
		NodeName:         "kind-worker",
		TrafficDirection: api.TrafficDirectionEgress,
		Interface:        api.Interface{Index: 5, Name: "lxc-front"},
		UUID:             [16]byte{0x4f, 0x1a, 0x9c, 0x2e, 0x5b, 0x7d, 0x4e, 0x3a, 0x9c, 0x1f, 0x2b, 0x6d, 0x8e, 0x0a, 0x7c, 0x5d},
	}
	// world (198.51.100.7, id 2) -> coredns (kube-system, fd00::53), UDP 53, dropped.
	udpFlow = &api.Flow{
		Verdict:          api.VerdictDropped,
		DropReason:       api.DropReasonPolicyDenied,
		IP:               api.IP{Source: netip.MustParseAddr("198.51.100.7"), Destination: netip.MustParseAddr("fd00::53"), Version: api.IPv6},
		L4:               api.L4{Protocol: api.ProtoUDP, SourcePort: 5353, DestinationPort: 53},
		Source:           api.Endpoint{Identity: 2, Labels: []string{"reserved:world"}},
		Destination:      api.Endpoint{Identity: 100, Namespace: "kube-system", PodName: "coredns-abc", Labels: []string{"k8s:k8s-app=kube-dns"}},
		Type:             api.FlowTypeL3L4,
		NodeName:         "kind-control-plane",
		TrafficDirection: api.TrafficDirectionIngress,
		IsReply:          true,
		Interface:        api.Interface{Index: 7, Name: "eth0"},
	}
	// frontend pings backend over ICMPv6; audit verdict; a SOCK-less L7 type.
	icmpFlow = &api.Flow{
		Verdict:     api.VerdictAudit,
		IP:          api.IP{Source: netip.MustParseAddr("fd00::1"), Destination: netip.MustParseAddr("fd00::2"), Version: api.IPv6},
		L4:          api.L4{Protocol: api.ProtoICMPv6, ICMPType: 128},
		Source:      api.Endpoint{Identity: 1234, Namespace: "default", PodName: "frontend-7d4b9c-x2x"},
		Destination: api.Endpoint{Identity: 5678, Namespace: "default", PodName: "backend-0"},
		Type:        api.FlowTypeL7,
		NodeName:    "kind-worker2",
		Interface:   api.Interface{Index: 5, Name: "eth0"},
	}
	// a host process connecting to the collector.
	sockFlow = &api.Flow{
		Verdict:  api.VerdictError,
		IP:       api.IP{Source: netip.MustParseAddr("127.0.0.1"), Destination: netip.MustParseAddr("127.0.0.1"), Version: api.IPv4},
		L4:       api.L4{Protocol: api.ProtoSCTP, SourcePort: 5000, DestinationPort: 4244},
		Type:     api.FlowTypeSock,
		NodeName: "kind-worker",
	}
	sampleFlows = map[string]*api.Flow{"tcp": tcpFlow, "udp": udpFlow, "icmp": icmpFlow, "sock": sockFlow}
)

func TestMatchFollowsHubbleSemantics(t *testing.T) {
	tests := []struct {
		name  string
		chips []string
		want  []string // names of sampleFlows that match
	}{
		{"no chips match every flow", nil, []string{"icmp", "sock", "tcp", "udp"}},
		{"blank chips are ignored", []string{" ", ""}, []string{"icmp", "sock", "tcp", "udp"}},

		// ip
		{"an ip without side matches either side", []string{"ip=10.0.1.2"}, []string{"tcp"}},
		{"a from: ip tests only the source", []string{"from:ip=10.0.1.2"}, nil},
		{"a to: ip tests only the destination", []string{"to:ip=10.0.1.2"}, []string{"tcp"}},
		{"a CIDR prefix matches addresses inside it", []string{"ip=10.0.0.0/16"}, []string{"tcp"}},
		{"an IPv6 prefix matches IPv6 addresses", []string{"to:ip=fd00::/64"}, []string{"icmp", "udp"}},
		{"an IPv4-mapped address matches its IPv4 form", []string{"ip=::ffff:127.0.0.1"}, []string{"sock"}},

		// label
		{"a label key=value matches labels with a source prefix", []string{"label=app=frontend"}, []string{"tcp"}},
		{"a label with a source matches only that source", []string{"label=k8s:app=backend"}, []string{"tcp"}},
		{"a label with another source does not match", []string{"label=container:app=backend"}, nil},
		{"a label key alone tests existence", []string{"to:label=k8s-app"}, []string{"udp"}},
		{"a reserved label matches", []string{"from:label=reserved:world"}, []string{"udp"}},
		{"a label with the any: source matches every source", []string{"label=any:world"}, []string{"udp"}},
		{"comma ANDs label requirements", []string{"from:label=app=frontend,tier=web"}, []string{"tcp"}},
		{"comma ANDs even when one requirement fails", []string{"from:label=app=frontend,tier=api"}, nil},
		{"!= matches endpoints without that value", []string{"from:label=app!=frontend"}, []string{"icmp", "sock", "udp"}},
		{"!key matches endpoints without the key", []string{"to:label=!tier"}, []string{"icmp", "sock", "udp"}},
		{"== is the same as =", []string{"to:label=tier==api"}, []string{"tcp"}},

		// pod, namespace, workload, identity
		{"a pod name is a prefix in any namespace", []string{"pod=frontend"}, []string{"icmp", "tcp"}},
		{"a namespaced pod must be in that namespace", []string{"pod=kube-system/coredns"}, []string{"udp"}},
		{"a pod in another namespace does not match", []string{"pod=default/coredns"}, nil},
		{"ns/ matches every pod in the namespace", []string{"to:pod=kube-system/"}, []string{"udp"}},
		{"a from: pod tests only the source", []string{"from:pod=backend"}, nil},
		{"a namespace matches exactly", []string{"namespace=kube-system"}, []string{"udp"}},
		{"a namespace is not a prefix", []string{"namespace=kube"}, nil},
		{"a to: namespace tests only the destination", []string{"to:namespace=default"}, []string{"icmp", "tcp"}},
		{"a workload matches its name", []string{"to:workload=backend"}, []string{"tcp"}},
		{"an identity matches either side", []string{"identity=2"}, []string{"udp"}},
		{"a from: identity tests only the source", []string{"from:identity=5678"}, nil},

		// port
		{"a port matches source or destination", []string{"port=53"}, []string{"udp"}},
		{"a from: port tests the source port", []string{"from:port=43210"}, []string{"tcp"}},
		{"a to: port tests the destination port", []string{"to:port=43210"}, nil},
		{"an SCTP port matches", []string{"to:port=4244"}, []string{"sock"}},
		{"port 0 does not match ICMP flows", []string{"port=0"}, nil},

		// verdict, protocol, tcp-flag, type, node
		{"a verdict matches in any case", []string{"verdict=dropped"}, []string{"udp"}},
		{"an AUDIT verdict matches", []string{"verdict=AUDIT"}, []string{"icmp"}},
		{"an ERROR verdict matches", []string{"verdict=error"}, []string{"sock"}},
		{"tcp matches TCP", []string{"protocol=TCP"}, []string{"tcp"}},
		{"icmp matches both ICMPs", []string{"protocol=icmp"}, []string{"icmp"}},
		{"icmpv4 does not match ICMPv6", []string{"protocol=icmpv4"}, nil},
		{"icmpv6 matches ICMPv6", []string{"protocol=icmpv6"}, []string{"icmp"}},
		{"sctp matches SCTP", []string{"protocol=sctp"}, []string{"sock"}},
		{"a tcp-flag matches flows that saw it", []string{"tcp-flag=syn"}, []string{"tcp"}},
		{"SYN,ACK needs both flags", []string{"tcp-flag=SYN,ACK"}, []string{"tcp"}},
		{"SYN,FIN fails when FIN was not seen", []string{"tcp-flag=SYN,FIN"}, nil},
		{"a type matches the flow type", []string{"type=l7"}, []string{"icmp"}},
		{"the sock type matches", []string{"type=SOCK"}, []string{"sock"}},
		{"a node matches exactly", []string{"node=kind-worker"}, []string{"sock", "tcp"}},
		{"a node glob matches with *", []string{"node=kind-worker*"}, []string{"icmp", "sock", "tcp"}},
		{"flows without DNS names match no dns", []string{"dns=example.com"}, nil},

		// traffic-direction, reply, ip-version, drop-reason, event-type, uuid, interface
		{"a traffic direction matches", []string{"traffic-direction=INGRESS"}, []string{"udp"}},
		{"the unknown traffic direction matches flows without one", []string{"traffic-direction=traffic_direction_unknown"}, []string{"icmp", "sock"}},
		{"reply=true matches replies", []string{"reply=true"}, []string{"udp"}},
		{"reply=false matches the others", []string{"reply=false"}, []string{"icmp", "sock", "tcp"}},
		{"an ip version matches", []string{"ip-version=ipv6"}, []string{"icmp", "udp"}},
		{"hubble's v4 is ipv4", []string{"ip-version=v4"}, []string{"sock", "tcp"}},
		{"a drop reason matches dropped flows", []string{"drop-reason=POLICY_DENIED"}, []string{"udp"}},
		{"a drop reason by number", []string{"drop-reason=133"}, []string{"udp"}},
		{"the drop event type is a drop", []string{"event-type=drop"}, []string{"udp"}},
		{"the trace event type is a forwarded L3/L4 or socket flow", []string{"event-type=trace"}, []string{"sock", "tcp"}},
		{"the policy verdict event type is an L3/L4 flow", []string{"event-type=policy-verdict"}, []string{"tcp", "udp"}},
		{"the L7 event type by number", []string{"event-type=129"}, []string{"icmp"}},
		{"another event type matches nothing", []string{"event-type=9"}, nil},
		{"a uuid matches its flow", []string{"uuid=4F1A9C2E-5B7D-4E3A-9C1F-2B6D8E0A7C5D"}, []string{"tcp"}},
		{"an interface name matches", []string{"interface=eth0"}, []string{"icmp", "udp"}},
		{"an interface index matches", []string{"interface=:5"}, []string{"icmp", "tcp"}},
		{"an interface name and index must both match", []string{"interface=eth0:5"}, []string{"icmp"}},
		{"a negated dns excludes no flow without names", []string{"!dns=example.com"}, []string{"icmp", "sock", "tcp", "udp"}},

		// OR within a term, AND across terms
		{"two values of a kind OR", []string{"port=53", "port=8080"}, []string{"tcp", "udp"}},
		{"two kinds AND", []string{"port=8080", "verdict=DROPPED"}, nil},
		{"two kinds AND when both hold", []string{"port=53", "verdict=DROPPED"}, []string{"udp"}},
		{"OR inside, AND across", []string{"verdict=forwarded", "verdict=dropped", "protocol=udp"}, []string{"udp"}},
		{"from: and to: of one kind AND", []string{"from:namespace=default", "to:namespace=kube-system"}, nil},
		{"from: and to: of one kind AND when both hold", []string{"from:pod=frontend", "to:pod=backend"}, []string{"icmp", "tcp"}},
		{"a sided and an unsided chip of one kind AND", []string{"ip=10.0.0.1", "to:ip=10.0.1.2"}, []string{"tcp"}},

		// negation
		{"a negated chip excludes its matches", []string{"!verdict=FORWARDED"}, []string{"icmp", "sock", "udp"}},
		{"a negated term excludes flows matching ANY of its values", []string{"!protocol=tcp", "!protocol=udp"}, []string{"icmp", "sock"}},
		{"an unsided negated ip excludes both sides", []string{"!ip=127.0.0.1"}, []string{"icmp", "tcp", "udp"}},
		{"a negated from: excludes only by source", []string{"!from:namespace=default"}, []string{"sock", "udp"}},
		{"a negated chip and a positive chip of one kind both apply", []string{"namespace=default", "!to:pod=backend"}, nil},
		{"a negation narrows a positive term", []string{"protocol=tcp", "protocol=udp", "!namespace=kube-system"}, []string{"tcp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.chips)
			if err != nil {
				t.Fatal(err)
			}
			got := matchedBy(f.Match, sampleFlows)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Parse(%q) matches %v, want %v", tt.chips, got, tt.want)
			}
		})
	}
}

// matchedBy names the flows match accepts, sorted.
func matchedBy(match func(*api.Flow) bool, flows map[string]*api.Flow) []string {
	var got []string
	for name, fl := range flows {
		if match(fl) {
			got = append(got, name)
		}
	}
	slices.Sort(got)
	return got
}

func TestNilFilterMatchesEverything(t *testing.T) {
	var f *Filter
	if !f.Match(tcpFlow) || !f.Empty() || f.Chips() != nil {
		t.Error("a nil Filter must match every flow, be empty and have no chips")
	}
	if !(&Filter{}).Match(udpFlow) {
		t.Error("a zero Filter must match every flow")
	}
}

func TestParseRejectsBadChips(t *testing.T) {
	tests := []struct {
		name, chip, wantErr string
	}{
		{"a chip without =", "port", `filter "port": want [!][from:|to:]kind=value`},
		{"an unknown kind", "color=red", `filter "color=red": unknown kind "color"`},
		{"an empty value", "to:port=", `filter "to:port=": port needs a value`},
		{"a port name", "to:port=http", `filter "to:port=http": port must be a number 0-65535`},
		{"a port too large", "port=65536", "port must be a number 0-65535"},
		{"a negative port", "port=-1", "port must be a number 0-65535"},
		{"a bad ip", "ip=10.0.0", "ip must be an address or a CIDR prefix"},
		{"a bad prefix", "ip=10.0.0.0/33", "ip must be an address or a CIDR prefix"},
		{"a bad identity", "identity=web", "identity must be a number"},
		{"a bad verdict", "verdict=allowed", "verdict must be FORWARDED, DROPPED, AUDIT, ERROR or TRACED"},
		{"the unknown verdict", "verdict=VERDICT_UNKNOWN", "verdict must be"},
		{"a bad protocol", "protocol=gre", "protocol must be tcp, udp, sctp, icmp, icmpv4 or icmpv6"},
		{"a bad tcp flag", "tcp-flag=SYN,XMAS", `unknown TCP flag "XMAS"`},
		{"a bad type", "type=trace", "type must be l3_l4, l7 or sock"},
		{"a bad node glob", "node=kind-[", "node must be a name or a glob"},
		{"a pod with two slashes", "pod=a/b/c", "pod must be name or namespace/name"},
		{"a pod with an empty namespace", "pod=/web", "pod must be name or namespace/name"},
		{"a side on verdict", "from:verdict=DROPPED", `filter "from:verdict=DROPPED": verdict has no source or destination side: drop "from:"`},
		{"a side on protocol", "to:protocol=tcp", "protocol has no source or destination side"},
		{"a side on tcp-flag", "!to:tcp-flag=SYN", "tcp-flag has no source or destination side"},
		{"a side on type", "from:type=l7", "type has no source or destination side"},
		{"a side on node", "to:node=a", "node has no source or destination side"},
		{"an empty label requirement", "label=app=a,,b", "an empty requirement"},
		{"a set without its parenthesis", "label=env in a,b", "want '(' after in"},
		{"an empty set", "label=env notin ()", "the values of \"env\" are empty"},
		{"an unclosed set", "label=env in (a,b", "lack their ')'"},
		{"a label compared with a word", "label=replicas>two", "must be an integer"},
		{"a label with spaces in the key", "label=my app=a", "after key \"my\" want =, ==, !=, in, notin, > or <"},
		{"a label with an empty key", "label==a", "want a key"},
		{"a bad traffic direction", "traffic-direction=up", "traffic-direction must be ingress, egress"},
		{"a bad reply", "reply=maybe", "reply must be true or false"},
		{"a bad ip version", "ip-version=7x", "ip-version must be ipv4, ipv6 or none"},
		{"a bad drop reason", "drop-reason=TOO_LOUD", "drop-reason must be"},
		{"a bad event type", "event-type=capture-all", "event-type must be drop, trace"},
		{"an event type too large", "event-type=300", "event-type must be"},
		{"a short uuid", "uuid=4f1a9c2e", "uuid must be 32 hex digits"},
		{"an interface without name or index", "interface=:", "interface index must be a number"},
		{"an interface index 0", "interface=eth0:0", "interface index must be a number 1-"},
		{"a side on traffic-direction", "to:traffic-direction=ingress", "traffic-direction has no source or destination side"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]string{"port=80", tt.chip})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error = %v, want it to contain %q", tt.chip, err, tt.wantErr)
			}
		})
	}
}

func TestChipsAreCanonical(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"chips of one term are grouped in first-seen order",
			[]string{"port=80", "verdict=DROPPED", "port=443"},
			[]string{"port=80", "port=443", "verdict=DROPPED"}},
		{"enum values are spelled canonically",
			[]string{"verdict=dropped", "protocol=TCP", "type=L3_L4", "tcp-flag=ack,syn"},
			[]string{"verdict=DROPPED", "protocol=tcp", "type=l3_l4", "tcp-flag=SYN,ACK"}},
		{"kinds, sides and spaces are normalized",
			[]string{" ! FROM:IP = 10.1.2.3/8 ", "To:Port=0080", "node-name=n1"},
			[]string{"!from:ip=10.0.0.0/8", "to:port=80", "node=n1"}},
		{"an IPv4-mapped address is unmapped", []string{"ip=::ffff:10.0.0.1"}, []string{"ip=10.0.0.1"}},
		{"label selectors are normalized",
			[]string{"label= app == web , !tier, any:x!=y"},
			[]string{"label=app=web,!tier,x!=y"}},
		{"other values are kept", []string{"pod=default/", "dns=a.example", "workload=w", "identity=007"},
			[]string{"pod=default/", "dns=a.example", "workload=w", "identity=7"}},
		{"the new kinds are spelled canonically",
			[]string{"traffic-direction=Egress", "reply=1", "ip-version=V6", "ip-version=none", "drop-reason=181",
				"drop-reason-desc=policy_denied", "event-type=DROP", "event-type=4", "event-type=77",
				"uuid=4F1A9C2E5B7D4E3A9C1F2B6D8E0A7C5D", "interface=eth0", "interface=:7", "interface=eth1:0012"},
			[]string{"traffic-direction=egress", "reply=true", "ip-version=ipv6", "ip-version=none",
				"drop-reason=POLICY_DENY", "drop-reason=POLICY_DENIED", "event-type=drop", "event-type=trace", "event-type=77",
				"uuid=4f1a9c2e-5b7d-4e3a-9c1f-2b6d8e0a7c5d", "interface=eth0", "interface=:7", "interface=eth1:12"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := f.Chips()
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Chips() = %q, want %q", got, tt.want)
			}
			again, err := Parse(got)
			if err != nil || !slices.Equal(again.Chips(), got) {
				t.Errorf("Parse(Chips()) = %q, %v; want the same chips", again.Chips(), err)
			}
		})
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	f := MustParse("from:label=app=frontend,tier=web", "to:ip=10.0.0.0/8", "port=8080", "port=53",
		"!verdict=DROPPED", "pod=default/", "node=kind-*", "tcp-flag=SYN,ACK", "protocol=tcp")
	if !f.Match(tcpFlow) {
		t.Fatal("the filter should match tcpFlow")
	}
	if allocs := testing.AllocsPerRun(100, func() { f.Match(tcpFlow) }); allocs != 0 {
		t.Errorf("Match allocated %.1f times per call, want 0", allocs)
	}
}

func BenchmarkMatch(b *testing.B) {
	f := MustParse("from:label=app=frontend,tier=web", "to:ip=10.0.0.0/8", "port=8080", "port=53",
		"!verdict=DROPPED", "pod=default/", "node=kind-*", "tcp-flag=SYN,ACK", "protocol=tcp")
	b.ReportAllocs()
	for b.Loop() {
		f.Match(tcpFlow)
	}
}
