package metrics

import (
	"strconv"

	"github.com/periscope-dev/periscope/api"
)

// DNS metrics, from the DNS proxy's L7 records, as Hubble's dns handler
// counts them (pkg/hubble/metrics/dns): queries (a denied one with rcode
// "Policy denied", the others with none), responses by rcode, and each
// answer record's type; all with the query types and the number of
// addresses returned, between source and destination as the record has
// them. Query types and record types outside a known set are "other", and
// the count of addresses stops at maxIPsReturned, so a client cannot
// create series at will.

func dnsQueriesDef() Def {
	return Def{
		Name: DNSQueriesTotal, OTelName: OTelDNSQueries, Unit: "{query}", Kind: KindCounter, Capped: true,
		Help:   "DNS queries the DNS proxy saw, by rcode (\"Policy denied\" for a query policy refused, else empty), query types and addresses returned (0 for a query), between source (the asker) and destination (the server).",
		Labels: dnsLabels(),
	}
}

func dnsResponsesDef() Def {
	return Def{
		Name: DNSResponsesTotal, OTelName: OTelDNSResponses, Unit: "{response}", Kind: KindCounter, Capped: true,
		Help:   "DNS responses the DNS proxy saw, by rcode (Hubble's names: \"No Error\", \"Non-Existent Domain\", ...), query types and addresses returned (" + strconv.Itoa(maxIPsReturned) + " for that many or more), between source (the server) and destination (the asker).",
		Labels: dnsLabels(),
	}
}

func dnsResponseTypesDef() Def {
	return Def{
		Name: DNSResponseTypesTotal, OTelName: OTelDNSResponseTypes, Unit: "{record}", Kind: KindCounter, Capped: true,
		Help: "Records in the answers of DNS responses, by record type and query types, between source (the server) and destination (the asker).",
		Labels: append(endpointLabels(),
			Label{Name: LabelType, Key: KeyDNSResponseType},
			Label{Name: LabelQtypes, Key: KeyDNSQtypes},
		),
	}
}

func dnsLabels() []Label {
	return append(endpointLabels(),
		Label{Name: LabelRcode, Key: KeyDNSRcode},
		Label{Name: LabelQtypes, Key: KeyDNSQtypes},
		Label{Name: LabelIPsReturned, Key: KeyDNSIPsReturned},
	)
}

// maxIPsReturned caps ips_returned.
const maxIPsReturned = 16

// dnsKey is a DNS query's or response's label set; its strings are
// constants of this file, so building it allocates nothing.
type dnsKey struct {
	src, dst endpointKey
	rcode    string
	qtypes   string
	ips      uint8
}

// dnsTypeKey is one answer record's label set.
type dnsTypeKey struct {
	src, dst endpointKey
	rrtype   string
	qtypes   string
}

// dnsSignals counts DNS queries, responses and answer record types.
type dnsSignals struct {
	queries, responses *family[dnsKey]
	types              *family[dnsTypeKey]
	srcCtx, dstCtx     []Context
	names              *identityTexts
}

func newDNSSignals(m *Metrics) *dnsSignals {
	values := func(k dnsKey) []LabelValue {
		return []LabelValue{str(k.src.label()), str(k.dst.label()), str(k.rcode), str(k.qtypes), str(strconv.Itoa(int(k.ips)))}
	}
	return &dnsSignals{
		queries:   newFamily(m, values, &m.defs.dnsQueries),
		responses: newFamily(m, values, &m.defs.dnsResponses),
		types: newFamily(m, func(k dnsTypeKey) []LabelValue {
			return []LabelValue{str(k.src.label()), str(k.dst.label()), str(k.rrtype), str(k.qtypes)}
		}, &m.defs.dnsResponseTypes),
		srcCtx: m.opts.SourceContext,
		dstCtx: m.opts.DestinationContext,
		names:  m.identities,
	}
}

// observe counts a DNS record: a request as a query, a reply as a response
// and its answer's record types.
func (d *dnsSignals) observe(f *api.Flow) {
	rec := f.L7.DNS
	k := dnsKey{
		src:    endpointOf(&f.Source, d.srcCtx, d.names),
		dst:    endpointOf(&f.Destination, d.dstCtx, d.names),
		qtypes: dnsTypes(rec.Qtypes),
		ips:    uint8(min(len(rec.IPs), maxIPsReturned)),
	}
	switch {
	case f.Verdict == api.VerdictDropped:
		k.rcode = rcodePolicyDenied
		d.queries.get(k)[0].Record(1)
	case !f.IsReply:
		d.queries.get(k)[0].Record(1)
	default:
		k.rcode = rcodeName(rec.Rcode)
		d.responses.get(k)[0].Record(1)
		for _, t := range rec.RRtypes {
			d.types.get(dnsTypeKey{src: k.src, dst: k.dst, rrtype: dnsType(t), qtypes: k.qtypes})[0].Record(1)
		}
	}
}

// rcodePolicyDenied is Hubble's rcode label of a query policy refused.
const rcodePolicyDenied = "Policy denied"

// rcodeNames are Hubble's names of the DNS rcodes (IANA's).
var rcodeNames = map[uint32]string{
	0: "No Error", 1: "Format Error", 2: "Server Failure", 3: "Non-Existent Domain", 4: "Not Implemented",
	5: "Query Refused", 6: "Name Exists when it should not", 7: "RR Set Exists when it should not",
	8: "RR Set that should exist does not", 9: "Not Authorized", 10: "Name not contained in zone",
	11: "DSO-TYPE Not Implemented", 16: "Bad OPT Version", 17: "Key not recognized",
	18: "Signature out of time window", 19: "Bad TKEY Mode", 20: "Duplicate key name",
	21: "Algorithm not supported", 22: "Bad Truncation", 23: "Bad/missing Server Cookie",
}

// rcodeName is Hubble's name of rcode, "" for one it has no name for.
func rcodeName(rcode uint32) string { return rcodeNames[rcode] }

// dnsTypeNames are the record types given their own label value.
var dnsTypeNames = [...]string{"A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "NS", "SOA", "HTTPS", "SVCB",
	"CAA", "DS", "DNSKEY", "RRSIG", "NSEC", "NSEC3", "OPT", "ANY", "NAPTR"}

// typeOther stands for any other record type.
const typeOther = "other"

func dnsType(t string) string {
	for _, known := range dnsTypeNames {
		if t == known {
			return known
		}
	}
	return typeOther
}

// dnsTypes is the qtypes label: the one query type (a query has one
// question), "" for none, "other" for several.
func dnsTypes(ts []string) string {
	switch len(ts) {
	case 0:
		return ""
	case 1:
		return dnsType(ts[0])
	}
	return typeOther
}
