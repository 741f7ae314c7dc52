package main

import (
	"io"
	"net/netip"
	"strconv"

	"github.com/periscope-dev/periscope/api"
)

// demoAppendFlow appends one flow in `hubble observe`'s compact form:
//
//	Jan  2 15:04:05.000: default/frontend:41234 (ID:1234) -> default/backend:8080 (ID:5678) to-endpoint FORWARDED (TCP Flags: SYN)
func demoAppendFlow(dst []byte, f *api.Flow) []byte {
	dst = f.Time.AppendFormat(dst, "Jan _2 15:04:05.000")
	dst = append(dst, ": "...)
	dst = demoAppendEndpoint(dst, &f.Source, f.IP.Source, f.L4.SourcePort, f.L4.Protocol)
	dst = append(dst, " -> "...)
	dst = demoAppendEndpoint(dst, &f.Destination, f.IP.Destination, f.L4.DestinationPort, f.L4.Protocol)
	switch f.Verdict {
	case api.VerdictDropped:
		dst = append(dst, " policy-verdict DROPPED"...)
		if f.DropReason != 0 {
			dst = append(dst, " ("...)
			dst = append(dst, f.DropReason.String()...)
			dst = append(dst, ')')
		}
	default:
		dst = append(dst, " to-endpoint "...)
		dst = append(dst, f.Verdict.String()...)
	}
	dst = append(dst, " ("...)
	dst = f.AppendSummary(dst)
	dst = append(dst, ')')
	if f.Event != api.EventUnknown {
		dst = append(dst, " ["...)
		dst = append(dst, f.Event.String()...)
		dst = append(dst, ']')
	}
	return append(dst, '\n')
}

// demoAppendEndpoint writes "namespace/pod:port (ID:n)", or the bare address
// for an endpoint the collector does not know.
func demoAppendEndpoint(dst []byte, ep *api.Endpoint, ip netip.Addr, port uint16, proto uint8) []byte {
	withPort := proto == api.ProtoTCP || proto == api.ProtoUDP || proto == api.ProtoSCTP
	if ep.PodName == "" {
		if withPort {
			return netip.AddrPortFrom(ip, port).AppendTo(dst)
		}
		return ip.AppendTo(dst)
	}
	dst = append(dst, ep.Namespace...)
	dst = append(dst, '/')
	dst = append(dst, ep.PodName...)
	if withPort {
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, uint64(port), 10)
	}
	if ep.Identity != 0 {
		dst = append(dst, " (ID:"...)
		dst = strconv.AppendUint(dst, uint64(ep.Identity), 10)
		dst = append(dst, ')')
	}
	return dst
}

// demoPrinter writes flows to w in the compact form, reusing its buffer.
type demoPrinter struct {
	w   io.Writer
	buf []byte
}

func (p *demoPrinter) print(f *api.Flow) error {
	p.buf = demoAppendFlow(p.buf[:0], f)
	_, err := p.w.Write(p.buf)
	return err
}
