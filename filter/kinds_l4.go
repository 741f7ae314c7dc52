package filter

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/periscope-dev/periscope/api"
)

// The kinds that test layer 4: port, protocol (which names L7 protocols
// too), tcp-flag.

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

// protocols maps protocol values to the IP protocols they stand for.
var protocols = map[string][2]uint8{
	"tcp":    {api.ProtoTCP, api.ProtoTCP},
	"udp":    {api.ProtoUDP, api.ProtoUDP},
	"sctp":   {api.ProtoSCTP, api.ProtoSCTP},
	"icmp":   {api.ProtoICMPv4, api.ProtoICMPv6},
	"icmpv4": {api.ProtoICMPv4, api.ProtoICMPv4},
	"icmpv6": {api.ProtoICMPv6, api.ProtoICMPv6},
}

// l7Protocols are the protocol values that name an L7 record
// (api.L7.Protocol).
var l7Protocols = []string{api.L7ProtocolHTTP, api.L7ProtocolDNS, api.L7ProtocolKafka}

func parseProtocol(raw string) (value, error) {
	name := strings.ToLower(raw)
	if p, ok := protocols[name]; ok {
		return value{text: name, protos: p}, nil
	}
	if slices.Contains(l7Protocols, name) {
		return value{text: name, name: name}, nil
	}
	return value{}, fmt.Errorf("protocol must be tcp, udp, sctp, icmp, icmpv4 or icmpv6, or http, dns or kafka")
}

// matchProtocol is Hubble's: an L4 protocol matches the flow's, an L7 one
// the record the flow carries (an L7 flow has its L4 protocol too).
func matchProtocol(v *value, fl *api.Flow, _ side) bool {
	if v.name != "" {
		return fl.L7.Protocol() == v.name
	}
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
