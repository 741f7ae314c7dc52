package filter

import (
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// value is one pre-parsed chip value; which fields are set depends on the kind.
type value struct {
	text   string       // canonical text, for Chips
	prefix netip.Prefix // ip
	num    uint32       // identity, port, verdict, type, tcp-flag mask
	protos [2]uint8     // protocol (icmp is two)
	sel    selector     // label
	ns     string       // pod: namespace, "" for any
	name   string       // pod: name prefix; namespace, workload, node: name or glob
	glob   bool         // node: name holds wildcards
}

// kind is one filter kind: how to read its values and match them.
type kind struct {
	name  string
	sided bool
	parse func(raw string) (value, error)
	// match tests one value against fl; s is sideFrom or sideTo for sided
	// kinds and sideEither for the others.
	match func(v *value, fl *api.Flow, s side) bool
}

// kinds lists every kind in the order errors list them.
var kinds = []*kind{
	{name: "ip", sided: true, parse: parseIP, match: matchIP},
	{name: "label", sided: true, parse: parseLabel, match: matchLabel},
	{name: "pod", sided: true, parse: parsePod, match: matchPod},
	{name: "namespace", sided: true, parse: parseName, match: matchNamespace},
	{name: "workload", sided: true, parse: parseName, match: matchWorkload},
	{name: "identity", sided: true, parse: parseIdentity, match: matchIdentity},
	{name: "port", sided: true, parse: parsePort, match: matchPort},
	{name: "verdict", parse: parseVerdict, match: matchVerdict},
	{name: "protocol", parse: parseProtocol, match: matchProtocol},
	{name: "tcp-flag", parse: parseTCPFlags, match: matchTCPFlags},
	{name: "type", parse: parseType, match: matchType},
	{name: "node", parse: parseNode, match: matchNode},
	{name: "dns", sided: true, parse: parseName, match: matchNothing},
}

// kindAliases are other spellings accepted for a kind (hubble's flag names).
var kindAliases = map[string]string{
	"tcp-flags": "tcp-flag", "node-name": "node", "fqdn": "dns",
	"labels": "label", "proto": "protocol",
}

func lookupKind(name string) *kind {
	if alias, ok := kindAliases[name]; ok {
		name = alias
	}
	for _, k := range kinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

func kindList() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

func endpoint(fl *api.Flow, s side) *api.Endpoint {
	if s == sideTo {
		return &fl.Destination
	}
	return &fl.Source
}

func parseIP(raw string) (value, error) {
	if strings.Contains(raw, "/") {
		p, err := netip.ParsePrefix(raw)
		if err != nil {
			return value{}, fmt.Errorf("ip must be an address or a CIDR prefix: %w", err)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		return value{text: p.String(), prefix: p}, nil
	}
	a, err := netip.ParseAddr(raw)
	if err != nil {
		return value{}, fmt.Errorf("ip must be an address or a CIDR prefix: %w", err)
	}
	a = a.Unmap()
	return value{text: a.String(), prefix: netip.PrefixFrom(a, a.BitLen())}, nil
}

func matchIP(v *value, fl *api.Flow, s side) bool {
	a := fl.IP.Source
	if s == sideTo {
		a = fl.IP.Destination
	}
	return a.IsValid() && v.prefix.Contains(a.Unmap())
}

func parseLabel(raw string) (value, error) {
	sel, err := parseSelector(raw)
	if err != nil {
		return value{}, err
	}
	return value{text: sel.String(), sel: sel}, nil
}

func matchLabel(v *value, fl *api.Flow, s side) bool {
	return v.sel.matches(endpoint(fl, s).Labels)
}

func parsePod(raw string) (value, error) {
	ns, name, ok := strings.Cut(raw, "/")
	if !ok {
		return value{text: raw, name: raw}, nil
	}
	if ns == "" || strings.Contains(name, "/") {
		return value{}, fmt.Errorf("pod must be name or namespace/name")
	}
	return value{text: raw, ns: ns, name: name}, nil
}

func matchPod(v *value, fl *api.Flow, s side) bool {
	ep := endpoint(fl, s)
	if v.ns != "" {
		return ep.Namespace == v.ns && strings.HasPrefix(ep.PodName, v.name)
	}
	return ep.PodName != "" && strings.HasPrefix(ep.PodName, v.name)
}

func parseName(raw string) (value, error) {
	return value{text: raw, name: raw}, nil
}

func matchNamespace(v *value, fl *api.Flow, s side) bool {
	return endpoint(fl, s).Namespace == v.name
}

func matchWorkload(v *value, fl *api.Flow, s side) bool {
	return endpoint(fl, s).Workload == v.name
}

func parseIdentity(raw string) (value, error) {
	n, err := strconv.ParseUint(raw, 10, 32)
	if err != nil {
		return value{}, fmt.Errorf("identity must be a number 0-4294967295")
	}
	return value{text: strconv.FormatUint(n, 10), num: uint32(n)}, nil
}

func matchIdentity(v *value, fl *api.Flow, s side) bool {
	return endpoint(fl, s).Identity == v.num
}

func parsePort(raw string) (value, error) {
	n, err := strconv.ParseUint(raw, 10, 16)
	if err != nil {
		return value{}, fmt.Errorf("port must be a number 0-65535")
	}
	return value{text: strconv.FormatUint(n, 10), num: uint32(n)}, nil
}

func matchPort(v *value, fl *api.Flow, s side) bool {
	switch fl.L4.Protocol {
	case api.ProtoTCP, api.ProtoUDP, api.ProtoSCTP:
	default:
		return false // ICMP and others have no ports
	}
	p := fl.L4.SourcePort
	if s == sideTo {
		p = fl.L4.DestinationPort
	}
	return uint32(p) == v.num
}

func parseVerdict(raw string) (value, error) {
	vd, err := api.ParseVerdict(raw)
	if err != nil || vd == api.VerdictUnknown {
		return value{}, fmt.Errorf("verdict must be FORWARDED, DROPPED, AUDIT or ERROR")
	}
	return value{text: vd.String(), num: uint32(vd)}, nil
}

func matchVerdict(v *value, fl *api.Flow, _ side) bool {
	return uint32(fl.Verdict) == v.num
}

// protocols maps protocol values to the IP protocols they stand for.
var protocols = map[string][2]uint8{
	"tcp":    {api.ProtoTCP, api.ProtoTCP},
	"udp":    {api.ProtoUDP, api.ProtoUDP},
	"sctp":   {api.ProtoSCTP, api.ProtoSCTP},
	"icmp":   {api.ProtoICMPv4, api.ProtoICMPv6},
	"icmpv4": {api.ProtoICMPv4, api.ProtoICMPv4},
	"icmpv6": {api.ProtoICMPv6, api.ProtoICMPv6},
}

func parseProtocol(raw string) (value, error) {
	name := strings.ToLower(raw)
	p, ok := protocols[name]
	if !ok {
		return value{}, fmt.Errorf("protocol must be tcp, udp, sctp, icmp, icmpv4 or icmpv6")
	}
	return value{text: name, protos: p}, nil
}

func matchProtocol(v *value, fl *api.Flow, _ side) bool {
	p := fl.L4.Protocol
	return p != 0 && (p == v.protos[0] || p == v.protos[1])
}

func parseTCPFlags(raw string) (value, error) {
	var mask api.TCPFlags
	for name := range strings.SplitSeq(raw, ",") {
		fl, err := api.ParseTCPFlag(strings.TrimSpace(name))
		if err != nil {
			return value{}, fmt.Errorf("tcp-flag must be SYN, ACK, FIN, RST, PSH, URG, ECE, CWR or NS, or several joined by commas: %w", err)
		}
		mask |= fl
	}
	return value{text: strings.ReplaceAll(mask.String(), " ", ""), num: uint32(mask)}, nil
}

func matchTCPFlags(v *value, fl *api.Flow, _ side) bool {
	return fl.L4.Protocol == api.ProtoTCP && uint32(fl.L4.TCPFlags)&v.num == v.num
}

func parseType(raw string) (value, error) {
	t, err := api.ParseFlowType(raw)
	if err != nil || t == api.FlowTypeUnknown {
		return value{}, fmt.Errorf("type must be l3_l4, l7 or sock")
	}
	return value{text: strings.ToLower(t.String()), num: uint32(t)}, nil
}

func matchType(v *value, fl *api.Flow, _ side) bool {
	return uint32(fl.Type) == v.num
}

func parseNode(raw string) (value, error) {
	if _, err := path.Match(raw, ""); err != nil {
		return value{}, fmt.Errorf("node must be a name or a glob: %w", err)
	}
	return value{text: raw, name: raw, glob: strings.ContainsAny(raw, "*?[\\")}, nil
}

func matchNode(v *value, fl *api.Flow, _ side) bool {
	if !v.glob {
		return fl.NodeName == v.name
	}
	ok, _ := path.Match(v.name, fl.NodeName) // the pattern was checked by parseNode
	return ok
}

// matchNothing is the matcher of reserved kinds whose data flows do not carry yet.
func matchNothing(*value, *api.Flow, side) bool { return false }
