package chtest

import (
	"encoding/binary"
	"net/netip"

	"github.com/periscope-dev/periscope/api"
)

// Checksum is what a test compares stored flows by, computed the same way
// in Go (here) and in SQL over a flows table (ChecksumSQL): a wrapping
// uint64 sum over the addresses (as FixedString(16)), ports, protocol and
// counters. It returns the number of flows and the sum.
func Checksum(flows []api.Flow) (n, sum uint64) {
	ip16 := func(a netip.Addr) [16]byte {
		if !a.IsValid() {
			return [16]byte{}
		}
		return a.As16()
	}
	for i := range flows {
		f := &flows[i]
		s, d := ip16(f.IP.Source), ip16(f.IP.Destination)
		sum += binary.LittleEndian.Uint64(s[:8])*3 + binary.LittleEndian.Uint64(s[8:])*5 +
			binary.LittleEndian.Uint64(d[:8])*7 + binary.LittleEndian.Uint64(d[8:])*11 +
			uint64(f.L4.SourcePort)*13 + uint64(f.L4.DestinationPort)*17 + uint64(f.L4.Protocol)*19 +
			f.Counters.BytesForward*23 + f.Counters.BytesReply*29 + f.Counters.PacketsForward*31 + f.Counters.PacketsReply*37
	}
	return uint64(len(flows)), sum
}

// ChecksumSQL, followed by a flows table's name, selects its count, its
// distinct UUIDs and Checksum's sum.
const ChecksumSQL = `SELECT count(), uniqExact(uuid), sum(
	reinterpretAsUInt64(substring(src_ip, 1, 8)) * 3 + reinterpretAsUInt64(substring(src_ip, 9, 8)) * 5 +
	reinterpretAsUInt64(substring(dst_ip, 1, 8)) * 7 + reinterpretAsUInt64(substring(dst_ip, 9, 8)) * 11 +
	toUInt64(src_port) * 13 + toUInt64(dst_port) * 17 + toUInt64(protocol) * 19 +
	bytes_fwd * 23 + bytes_rev * 29 + packets_fwd * 31 + packets_rev * 37) FROM `
