package dnsproxy

import (
	"crypto/rand"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// newRecord starts the L7 record of a query (reply false: from the
// endpoint to the server) or of its answer (reply true: the other way).
// Both are EGRESS: the endpoint initiated the exchange.
func (p *Proxy) newRecord(q query, ep api.Endpoint, reply bool) *api.Flow {
	f := &api.Flow{
		Time:             time.Now(),
		Type:             api.FlowTypeL7,
		TrafficDirection: api.TrafficDirectionEgress,
		IsReply:          reply,
	}
	rand.Read(f.UUID[:])
	f.UUID[6] = f.UUID[6]&0x0f | 0x40 // version 4
	f.UUID[8] = f.UUID[8]&0x3f | 0x80 // RFC 4122 variant
	client := q.client.Addr().Unmap()
	server := q.server.Addr().Unmap()
	serverEP, _ := p.opts.Endpoints.LookupIP(server)
	f.IP.Version = api.IPv6
	if client.Is4() {
		f.IP.Version = api.IPv4
	}
	f.L4.Protocol = q.proto
	if reply {
		f.IP.Source, f.IP.Destination = server, client
		f.L4.SourcePort, f.L4.DestinationPort = q.server.Port(), q.client.Port()
		f.Source, f.Destination = serverEP, ep
	} else {
		f.IP.Source, f.IP.Destination = client, server
		f.L4.SourcePort, f.L4.DestinationPort = q.client.Port(), q.server.Port()
		f.Source, f.Destination = ep, serverEP
	}
	return f
}
