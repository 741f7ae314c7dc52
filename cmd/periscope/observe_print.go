package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// flowPrinter writes flows in one output format.
type flowPrinter interface {
	// Print writes one flow; line is its JSON form as the collector sent it.
	Print(line []byte, f *api.Flow) error
	// Flush writes anything buffered; it is called after every batch.
	Flush() error
}

// newPrinter returns the printer for an -o value. follow makes the table
// printer flush every line.
func newPrinter(format string, w io.Writer, loc *time.Location, follow bool) (flowPrinter, error) {
	switch strings.ToLower(format) {
	case "compact", "":
		return &compactPrinter{w: w, loc: loc}, nil
	case "json", "jsonpb":
		return &jsonPrinter{w: w}, nil
	case "table":
		return &tablePrinter{tw: tabwriter.NewWriter(w, 2, 8, 2, ' ', 0), loc: loc, follow: follow}, nil
	}
	return nil, fmt.Errorf("-o %q: want compact, json, jsonpb or table", format)
}

// jsonPrinter writes the lines as received.
type jsonPrinter struct {
	w   io.Writer
	buf []byte
}

func (p *jsonPrinter) Print(line []byte, _ *api.Flow) error {
	p.buf = append(append(p.buf[:0], line...), '\n')
	_, err := p.w.Write(p.buf)
	return err
}

func (p *jsonPrinter) Flush() error { return nil }

// compactPrinter writes one hubble-like line per flow:
//
//	Nov 23 09:30:14.123: default/frontend:43210 (ID:1234) -> default/backend:8080 (ID:5678) EGRESS FORWARDED (TCP Flags: SYN, ACK) 3 pkts/180 B →, 2 pkts/120 B ←
//	Nov 23 09:30:14.135: default/frontend:43210 (ID:1234) <- default/backend:8080 (ID:5678) EGRESS http-response FORWARDED (HTTP/1.1 201 12ms (PUT http://backend:8080/applicants))
type compactPrinter struct {
	w   io.Writer
	loc *time.Location
	buf []byte
}

func (p *compactPrinter) Print(_ []byte, f *api.Flow) error {
	b := p.buf[:0]
	b = f.Time.In(p.loc).AppendFormat(b, time.StampMilli)
	b = append(b, ": "...)
	first, second, arrow := printedSides(f)
	b = appendSide(b, first)
	b = append(b, arrow...)
	b = appendSide(b, second)
	if f.TrafficDirection != api.TrafficDirectionUnknown {
		b = append(b, ' ')
		b = append(b, f.TrafficDirection.String()...)
	}
	b = append(b, ' ')
	if f.L7 != nil {
		b = appendL7Type(b, f.L7)
		b = append(b, ' ')
	}
	b = appendVerdict(b, f)
	if s := f.AppendSummary(nil); len(s) > 0 {
		b = append(b, " ("...)
		b = appendPrintable(b, string(s))
		b = append(b, ')')
	}
	b = appendCounters(b, &f.Counters)
	b = appendProcess(b, &f.Process)
	b = append(b, '\n')
	p.buf = b
	_, err := p.w.Write(b)
	return err
}

func (p *compactPrinter) Flush() error { return nil }

// tablePrinter writes aligned columns, like hubble observe -o table.
type tablePrinter struct {
	tw      *tabwriter.Writer
	loc     *time.Location
	follow  bool
	started bool
}

func (p *tablePrinter) Print(_ []byte, f *api.Flow) error {
	if !p.started {
		p.started = true
		if _, err := io.WriteString(p.tw, "TIMESTAMP\tSOURCE\tDESTINATION\tTYPE\tVERDICT\tSUMMARY\n"); err != nil {
			return err
		}
	}
	var b []byte
	b = f.Time.In(p.loc).AppendFormat(b, time.StampMilli)
	b = append(b, '\t')
	b = appendEndpoint(b, &f.Source, f.IP.Source, f.L4.SourcePort, f.SourceNames)
	b = append(b, '\t')
	b = appendEndpoint(b, &f.Destination, f.IP.Destination, f.L4.DestinationPort, f.DestinationNames)
	b = append(b, '\t')
	if f.L7 != nil {
		b = appendL7Type(b, f.L7)
	} else {
		b = append(b, f.Type.String()...)
	}
	if f.TrafficDirection != api.TrafficDirectionUnknown {
		b = append(b, ' ')
		b = append(b, f.TrafficDirection.String()...)
	}
	b = append(b, '\t')
	b = appendVerdict(b, f)
	b = append(b, '\t')
	b = appendPrintable(b, string(f.AppendSummary(nil)))
	b = appendCounters(b, &f.Counters)
	b = appendProcess(b, &f.Process)
	b = append(b, '\n')
	if _, err := p.tw.Write(b); err != nil {
		return err
	}
	if p.follow {
		return p.tw.Flush()
	}
	return nil
}

func (p *tablePrinter) Flush() error { return p.tw.Flush() }

// reservedIdentities are Cilium's reserved identities, which hubble prints by name.
var reservedIdentities = map[uint32]string{
	1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init",
	6: "remote-node", 7: "kube-apiserver", 8: "ingress",
}

// appendEndpoint writes "namespace/pod:port (ID:n)"; without a pod name
// the address's DNS names, comma-separated, as hubble prints them
// ("api.example.com:443 (world)"); else "ip:port (ID:n)".
func appendEndpoint(b []byte, ep *api.Endpoint, addr netip.Addr, port uint16, names []string) []byte {
	switch {
	case ep.PodName != "" || len(names) > 0:
		if ep.PodName == "" {
			for i, n := range names {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendPrintable(b, n)
			}
		} else {
			if ep.Namespace != "" {
				b = append(b, ep.Namespace...)
				b = append(b, '/')
			}
			b = append(b, ep.PodName...)
		}
		if port != 0 {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(port), 10)
		}
	case !addr.IsValid():
		b = append(b, '?')
	case port != 0:
		b = netip.AddrPortFrom(addr, port).AppendTo(b)
	default:
		b = addr.AppendTo(b)
	}
	if ep.Identity != 0 {
		b = append(b, " ("...)
		if name, ok := reservedIdentities[ep.Identity]; ok {
			b = append(b, name...)
		} else {
			b = append(b, "ID:"...)
			b = strconv.AppendUint(b, uint64(ep.Identity), 10)
		}
		b = append(b, ')')
	}
	return b
}

// appendVerdict writes the verdict and, for drops, the reason.
func appendVerdict(b []byte, f *api.Flow) []byte {
	b = append(b, f.Verdict.String()...)
	if f.DropReason != api.DropReasonUnknown {
		b = append(b, " ("...)
		b = append(b, f.DropReason.String()...)
		b = append(b, ')')
	}
	return b
}

// appendCounters writes " 3 pkts/180 B →, 2 pkts/120 B ←" when counted.
func appendCounters(b []byte, c *api.Counters) []byte {
	if *c == (api.Counters{}) {
		return b
	}
	b = append(b, ' ')
	b = appendCount(b, c.PacketsForward, c.BytesForward)
	b = append(b, " →, "...)
	b = appendCount(b, c.PacketsReply, c.BytesReply)
	return append(b, " ←"...)
}

func appendCount(b []byte, packets, bytes uint64) []byte {
	b = strconv.AppendUint(b, packets, 10)
	if packets == 1 {
		b = append(b, " pkt/"...)
	} else {
		b = append(b, " pkts/"...)
	}
	return appendBytes(b, bytes)
}

// appendBytes writes a byte count with a binary unit: "180 B", "1.5 KiB".
func appendBytes(b []byte, n uint64) []byte {
	const units = "KMGTPE"
	if n < 1024 {
		b = strconv.AppendUint(b, n, 10)
		return append(b, " B"...)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	b = strconv.AppendFloat(b, v, 'f', 1, 64)
	return append(b, ' ', units[i], 'i', 'B')
}

// appendProcess writes " [comm pid N]" for flows of a known host process.
func appendProcess(b []byte, p *api.Process) []byte {
	if p.PID == 0 && p.Comm == "" {
		return b
	}
	b = append(b, " ["...)
	if p.Comm != "" {
		b = appendPrintable(b, p.Comm)
		b = append(b, ' ')
	}
	b = append(b, "pid "...)
	b = strconv.AppendUint(b, uint64(p.PID), 10)
	return append(b, ']')
}
