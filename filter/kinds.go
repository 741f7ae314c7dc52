package filter

import (
	"net/netip"
	"regexp"
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// value is one pre-parsed chip value; which fields are set depends on the kind.
type value struct {
	text      string         // canonical text, for Chips
	prefix    netip.Prefix   // ip
	num       uint32         // identity, port, verdict, type, tcp-flag mask, enums, reply, interface index, http-status
	protos    [2]uint8       // protocol (icmp is two)
	sel       selector       // label
	ns        string         // pod: namespace, "" for any
	name      string         // pod: name prefix; namespace, workload, node, interface: name or glob; protocol: L7 protocol; http-method; http-header: name; trace-id
	glob      bool           // node, dns: name holds wildcards
	uuid      [16]byte       // uuid
	numPrefix bool           // http-status: num is the code's first digits (5+)
	sub       uint32         // event-type: the sub-type (a trace point, a drop reason) when hasSub
	hasSub    bool           // event-type: sub is matched
	hval      string         // http-header: value
	re        *regexp.Regexp // http-path, http-url, dns-query; dns: a pattern
}

// Kind describes one filter kind to the code that translates filters to and
// from other forms: `periscope observe`'s flags, Hubble's FlowFilter, SQL,
// the web UI's chips. Adding a kind is one entry in this package's table
// (kinds, below); what else it needs is named by the tests of those
// translations (DEVELOPERS.md, "Where to add").
type Kind struct {
	// Name is the kind in a chip: "port" in "to:port=80".
	Name string
	// Sided kinds test a flow's source or destination: "from:" and "to:"
	// pick one, no side tests either.
	Sided bool
	// Aliases are other names a chip may use (hubble observe's flag names).
	Aliases []string
	// Flag is periscope observe's flag for the kind, with --from-Flag and
	// --to-Flag when Sided; "" for a kind only --filter reaches.
	Flag string
	// Short is the flag's one-letter shorthand, "" for none.
	Short string
	// FlagImplied is the value of the flag given without one (--reply);
	// "" when the flag needs a value.
	FlagImplied string
	// Help is the flag's help. A sided kind's holds one "{a|b|c}" group:
	// the words of --Flag, --from-Flag and --to-Flag.
	Help string
	// Hubble names the fields of Hubble's FlowFilter the kind reads:
	// {source field, destination field} when Sided, else one field; nil
	// when Hubble has no field for it.
	Hubble []string
}

// kind is one filter kind: its description, how to read its values and how
// to match them.
type kind struct {
	Kind
	parse func(raw string) (value, error)
	// match tests one value against fl; s is sideFrom or sideTo for sided
	// kinds and sideEither for the others. It must not allocate.
	match func(v *value, fl *api.Flow, s side) bool
}

// kinds is the one table of filter kinds, in the order periscope observe
// lists their flags and errors list their names.
var kinds = []*kind{
	{Kind: Kind{Name: "ip", Sided: true, Flag: "ip",
		Help:   "Show flows {from or to|from|to} this IP address or CIDR prefix",
		Hubble: []string{"source_ip", "destination_ip"}},
		parse: parseIP, match: matchIP},
	{Kind: Kind{Name: "port", Sided: true, Flag: "port",
		Help:   "Show flows with this {source or destination|source|destination} port",
		Hubble: []string{"source_port", "destination_port"}},
		parse: parsePort, match: matchPort},
	{Kind: Kind{Name: "protocol", Aliases: []string{"proto"}, Flag: "protocol",
		Help:   "Show flows of this protocol (tcp, udp, sctp, icmp, icmpv4, icmpv6; http, dns, kafka: L7 flows with that record)",
		Hubble: []string{"protocol"}},
		parse: parseProtocol, match: matchProtocol},
	{Kind: Kind{Name: "label", Sided: true, Aliases: []string{"labels"}, Flag: "label", Short: "l",
		Help: "Show flows {from or to endpoints matching this label selector (e.g. app=frontend,tier!=db or app in (web,api))|" +
			"from endpoints matching this label selector|to endpoints matching this label selector}",
		Hubble: []string{"source_label", "destination_label"}},
		parse: parseLabel, match: matchLabel},
	{Kind: Kind{Name: "pod", Sided: true, Flag: "pod",
		Help:   "Show flows {from or to|from|to} pods with this name prefix ([namespace/]name)",
		Hubble: []string{"source_pod", "destination_pod"}},
		parse: parsePod, match: matchPod},
	{Kind: Kind{Name: "namespace", Sided: true, Flag: "namespace", Short: "n",
		Help: "Show flows {from or to|from|to} this namespace"},
		parse: parseName, match: matchNamespace},
	{Kind: Kind{Name: "workload", Sided: true, Flag: "workload",
		Help:   "Show flows {from or to|from|to} this workload",
		Hubble: []string{"source_workload", "destination_workload"}},
		parse: parseName, match: matchWorkload},
	{Kind: Kind{Name: "identity", Sided: true, Flag: "identity",
		Help:   "Show flows {from or to|from|to} this security identity",
		Hubble: []string{"source_identity", "destination_identity"}},
		parse: parseIdentity, match: matchIdentity},
	{Kind: Kind{Name: "verdict", Flag: "verdict",
		Help:   "Show flows with this verdict (FORWARDED, DROPPED, AUDIT, ERROR, or TRACED: socket records)",
		Hubble: []string{"verdict"}},
		parse: parseVerdict, match: matchVerdict},
	{Kind: Kind{Name: "type", Flag: "type", Short: "t",
		Help: "Show flows of this type (l3_l4, l7, sock)"},
		parse: parseType, match: matchType},
	{Kind: Kind{Name: "tcp-flag", Aliases: []string{"tcp-flags"}, Flag: "tcp-flags",
		Help:   "Show TCP flows that saw these flags (SYN, ACK, FIN, RST, ...; SYN,ACK means both)",
		Hubble: []string{"tcp_flags"}},
		parse: parseTCPFlags, match: matchTCPFlags},
	{Kind: Kind{Name: "node", Aliases: []string{"node-name"}, Flag: "node-name",
		Help:   "Show flows observed on this node (glob with * allowed)",
		Hubble: []string{"node_name"}},
		parse: parseNode, match: matchNode},
	{Kind: Kind{Name: "traffic-direction", Flag: "traffic-direction",
		Help:   "Show flows in this traffic direction (ingress, egress)",
		Hubble: []string{"traffic_direction"}},
		parse: parseTrafficDirection, match: matchTrafficDirection},
	{Kind: Kind{Name: "reply", Flag: "reply", FlagImplied: "true",
		Help:   "Show only reply flows (--reply=false: only flows that are not replies)",
		Hubble: []string{"reply"}},
		parse: parseReply, match: matchReply},
	{Kind: Kind{Name: "ip-version", Flag: "ip-version",
		Help:   "Show flows of this IP version (ipv4, ipv6, or none for flows without IP)",
		Hubble: []string{"ip_version"}},
		parse: parseIPVersion, match: matchIPVersion},
	{Kind: Kind{Name: "drop-reason", Aliases: []string{"drop-reason-desc"}, Flag: "drop-reason-desc",
		Help:   "Show dropped flows with this drop reason (e.g. POLICY_DENIED)",
		Hubble: []string{"drop_reason_desc"}},
		parse: parseDropReason, match: matchDropReason},
	{Kind: Kind{Name: "event-type", Flag: "event-type",
		Help:   "Show flows of this Hubble event type (drop, trace, policy-verdict, l7, or a number), TYPE[:SUBTYPE]: trace:from-endpoint, trace:to-endpoint, trace:from-network, trace:to-network (Cilium's other trace points match nothing), drop:REASON",
		Hubble: []string{"event_type"}},
		parse: parseEventType, match: matchEventType},
	{Kind: Kind{Name: "uuid", Flag: "uuid",
		Help:   "Show the flow with this unique identifier",
		Hubble: []string{"uuid"}},
		parse: parseUUID, match: matchUUID},
	{Kind: Kind{Name: "interface", Flag: "interface",
		Help:   "Show flows observed at this interface: a name (eth0), an index (:7), or both (eth0:7)",
		Hubble: []string{"interface"}},
		parse: parseInterface, match: matchInterface},
	{Kind: Kind{Name: "http-status", Flag: "http-status",
		Help:   `Show HTTP responses with this status code ("404") or code prefix ("5+", "40+")`,
		Hubble: []string{"http_status_code"}},
		parse: parseHTTPStatus, match: matchHTTPStatus},
	{Kind: Kind{Name: "http-method", Flag: "http-method",
		Help:   "Show HTTP requests and responses of this method (GET, POST, ...; any case)",
		Hubble: []string{"http_method"}},
		parse: parseHTTPMethod, match: matchHTTPMethod},
	{Kind: Kind{Name: "http-path", Flag: "http-path",
		Help:   `Show HTTP requests and responses whose URL path matches this regular expression ("^/api/v[0-9]+/")`,
		Hubble: []string{"http_path"}},
		parse: parseRegexp("http-path"), match: matchHTTPPath},
	{Kind: Kind{Name: "http-url", Flag: "http-url",
		Help:   `Show HTTP requests and responses whose URL matches this regular expression ("^http://api\.example\.com/")`,
		Hubble: []string{"http_url"}},
		parse: parseRegexp("http-url"), match: matchHTTPURL},
	{Kind: Kind{Name: "http-header", Flag: "http-header",
		Help:   "Show HTTP requests and responses with this header, name:value exactly (content-type:application/json)",
		Hubble: []string{"http_header"}},
		parse: parseHTTPHeader, match: matchHTTPHeader},
	{Kind: Kind{Name: "trace-id", Flag: "trace-id",
		Help:   "Show HTTP requests and responses of this W3C trace: the trace ID of the request's traceparent header (32 lower-case hex digits)",
		Hubble: []string{"trace_id"}},
		parse: parseTraceID, match: matchTraceID},
	{Kind: Kind{Name: "dns-query", Flag: "dns-query",
		Help:   `Show DNS queries and answers whose queried name matches this regular expression ("example\.com\.$")`,
		Hubble: []string{"dns_query"}},
		parse: parseRegexp("dns-query"), match: matchDNSQuery},
	{Kind: Kind{Name: "dns", Sided: true, Aliases: []string{"fqdn"}, Flag: "fqdn",
		Help:   "Show flows {from or to|from|to} this DNS name, as its endpoints resolved it (* for any run of name characters: *.example.com)",
		Hubble: []string{"source_fqdn", "destination_fqdn"}},
		parse: parseFQDN, match: matchFQDN},
}

// Kinds returns the description of every kind, in the table's order.
func Kinds() []Kind {
	out := make([]Kind, len(kinds))
	for i, k := range kinds {
		out[i] = k.Kind
		out[i].Aliases = append([]string(nil), k.Aliases...)
		out[i].Hubble = append([]string(nil), k.Hubble...)
	}
	return out
}

func lookupKind(name string) *kind {
	for _, k := range kinds {
		if k.Name == name {
			return k
		}
		for _, a := range k.Aliases {
			if a == name {
				return k
			}
		}
	}
	return nil
}

func kindList() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.Name
	}
	return strings.Join(names, ", ")
}
