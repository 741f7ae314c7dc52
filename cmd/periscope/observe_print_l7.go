package main

import (
	"net/netip"

	"github.com/periscope-dev/periscope/api"
)

// side is one end of a printed flow.
type side struct {
	ep    *api.Endpoint
	addr  netip.Addr
	port  uint16
	names []string
}

// printedSides are a flow's ends in printing order and the arrow between
// them: source -> destination; for an L7 response, which like Hubble's goes
// from the server, the client first and "<-", as `hubble observe` prints
// replies.
func printedSides(f *api.Flow) (first, second side, arrow string) {
	src := side{&f.Source, f.IP.Source, f.L4.SourcePort, f.SourceNames}
	dst := side{&f.Destination, f.IP.Destination, f.L4.DestinationPort, f.DestinationNames}
	if f.L7 != nil && f.IsReply {
		return dst, src, " <- "
	}
	return src, dst, " -> "
}

func appendSide(b []byte, s side) []byte { return appendEndpoint(b, s.ep, s.addr, s.port, s.names) }

// appendL7Type writes Hubble's name of an L7 flow's type, as `hubble
// observe` shows it: "http-request", "http-response", "dns-request proxy",
// "l7-sample" (Kafka and records without one are "l7").
func appendL7Type(b []byte, l7 *api.L7) []byte {
	switch {
	case l7.HTTP != nil:
		b = append(b, "http-"...)
	case l7.DNS != nil:
		b = append(b, "dns-"...)
	default:
		b = append(b, "l7-"...)
	}
	for _, c := range []byte(l7.Type.String()) {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	if l7.DNS != nil && l7.DNS.ObservationSource != "" {
		b = append(b, ' ')
		b = appendPrintable(b, l7.DNS.ObservationSource)
	}
	return b
}

// appendPrintable writes s with control characters as '?', so a record's
// text (a URL, a process name) cannot drive the terminal.
func appendPrintable(b []byte, s string) []byte {
	for _, c := range []byte(s) {
		if c < 0x20 || c == 0x7f {
			c = '?'
		}
		b = append(b, c)
	}
	return b
}
