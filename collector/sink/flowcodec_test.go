package sink

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/api"
)

// fillEveryField sets every field of v (a pointer) to a value of its own,
// recursively, so that a codec that drops or swaps a field is caught.
func fillEveryField(v reflect.Value, n *int) {
	*n++
	switch x := v.Addr().Interface().(type) {
	case *time.Time:
		*x = time.Unix(int64(1_800_000_000+*n), int64(*n)).UTC()
		return
	case *netip.Addr:
		*x = netip.AddrFrom16([16]byte{0xfd, 15: byte(*n)}).WithZone(fmt.Sprint("eth", *n))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillEveryField(v.Field(i), n)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillEveryField(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fillEveryField(v.Index(i), n)
		}
	case reflect.Array:
		for i := range v.Len() {
			fillEveryField(v.Index(i), n)
		}
	case reflect.String:
		v.SetString(fmt.Sprint("s", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n % 100))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n % 200))
	default:
		panic(fmt.Sprintf("fillEveryField: no value for a %s", v.Type()))
	}
}

// TestFlowCodecKeepsEveryField fails when api.Flow gains a field the
// journal's encoding does not carry.
func TestFlowCodecKeepsEveryField(t *testing.T) {
	var full api.Flow
	n := 0
	fillEveryField(reflect.ValueOf(&full).Elem(), &n)
	l3 := full
	l3.L7 = nil
	v4 := l3
	v4.IP.Source, v4.IP.Destination = netip.MustParseAddr("198.18.0.1"), netip.Addr{}
	local := l3
	local.Time, local.StartTime, local.EndTime = time.Unix(1_800_000_000, 5), time.Time{}, time.Unix(0, 0)
	empty := l3
	empty.Source.Labels, empty.IngressAllowedBy, empty.SourceNames = []string{}, []api.PolicyRef{{}}, []string{""}
	httpOnly, dnsEmpty, l7Bare := l3, l3, l3
	httpOnly.L7 = &api.L7{Type: api.L7TypeRequest, HTTP: &api.HTTP{Method: "GET", URL: "/", Headers: []api.HTTPHeader{}}}
	dnsEmpty.L7 = &api.L7{Type: api.L7TypeResponse, DNS: &api.DNS{IPs: []string{}, Qtypes: []string{"A"}}}
	l7Bare.L7 = &api.L7{}
	for name, f := range map[string]api.Flow{
		"every field set, with an L7 record": full,
		"every field set, no L7 record":      l3,
		"IPv4 and no address":                v4,
		"local, zero and epoch times":        local,
		"empty lists and strings":            empty,
		"HTTP only, no headers":              httpOnly,
		"DNS with empty lists":               dnsEmpty,
		"an empty L7 record":                 l7Bare,
		"the zero flow":                      {},
	} {
		t.Run(name, func(t *testing.T) {
			b := appendFlow(nil, &f)
			var got api.Flow
			got.NodeName = "left over"
			if err := decodeFlow(b, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, f)
			}
			for cut := range len(b) {
				if err := decodeFlow(b[:cut], &got); err == nil {
					t.Fatalf("a flow cut to %d of %d bytes decoded", cut, len(b))
				}
			}
		})
	}
}

func TestAppendFlowDoesNotAllocate(t *testing.T) {
	l3 := testFlow(7)
	l7 := testFlow(8)
	l7.Type = api.FlowTypeL7
	l7.L7 = &api.L7{Type: api.L7TypeResponse, LatencyNs: 1_500_000, HTTP: &api.HTTP{Code: 200, Method: "GET",
		URL: "http://backend:8080/api", Protocol: "HTTP/1.1", Headers: []api.HTTPHeader{{Key: "accept", Value: "*/*"}}}}
	for name, f := range map[string]*api.Flow{"L3/L4": &l3, "L7": &l7} {
		buf := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(100, func() {
			buf = appendFlow(buf[:0], f)
		})
		if allocs != 0 {
			t.Errorf("appendFlow of an %s flow allocated %.1f times, want 0", name, allocs)
		}
	}
}

// testFlow is a flow shaped like the collector's records, numbered i in
// its UUID.
func testFlow(i uint64) api.Flow {
	t0 := time.Unix(1_800_000_000, 0).UTC().Add(time.Duration(i) * time.Millisecond)
	f := api.Flow{
		Time: t0, Verdict: api.VerdictForwarded, Type: api.FlowTypeL3L4, Event: api.EventStart,
		IP: api.IP{Source: netip.MustParseAddr("198.18.0.2"), Destination: netip.MustParseAddr("198.18.0.3"), Version: api.IPv4},
		L4: api.L4{Protocol: api.ProtoTCP, SourcePort: uint16(i), DestinationPort: 8080, TCPFlags: api.TCPFlagSYN},
		Source: api.Endpoint{ID: 12, Identity: 1234, Namespace: "default", PodName: "frontend-7d9f", Workload: "frontend",
			Labels: []string{"k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=default"}},
		Destination: api.Endpoint{ID: 13, Identity: 5678, Namespace: "default", PodName: "backend-55c1", Workload: "backend",
			Labels: []string{"k8s:app=backend", "k8s:io.kubernetes.pod.namespace=default"}},
		TrafficDirection: api.TrafficDirectionEgress, NodeName: "node-1",
		Interface: api.Interface{Index: 7, Name: "lxc-frontend"},
		StartTime: t0, EndTime: t0,
		Counters:        api.Counters{PacketsForward: 1, BytesForward: 60},
		InitiatorHook:   api.TrafficDirectionIngress,
		EgressAllowedBy: []api.PolicyRef{{Namespace: "default", Name: "allow-frontend", Kind: "CiliumNetworkPolicy", Revision: 3}},
	}
	putSeq(&f, i)
	return f
}

func putSeq(f *api.Flow, i uint64) {
	for b := range 8 {
		f.UUID[8+b] = byte(i >> (8 * b))
	}
}

func seqOf(f *api.Flow) uint64 {
	var i uint64
	for b := range 8 {
		i |= uint64(f.UUID[8+b]) << (8 * b)
	}
	return i
}

func BenchmarkAppendFlow(b *testing.B) {
	f := testFlow(1)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendFlow(buf[:0], &f)
	}
	b.SetBytes(int64(len(buf)))
}

// A journal written before the trace ID (version 2: no trace ID after the
// L7 record) reads back as it was, without one.
func TestFlowCodecReadsVersion2(t *testing.T) {
	f := api.Flow{Time: time.Unix(1_800_000_000, 0).UTC(), NodeName: "node1",
		L7: &api.L7{Type: api.L7TypeRequest, HTTP: &api.HTTP{Method: "GET", URL: "/"}}}
	b := appendFlow(nil, &f)
	if b[0] != 3 || b[len(b)-1] != 0 {
		t.Fatalf("version %d ending %d: want version 3 ending with an empty trace ID", b[0], b[len(b)-1])
	}
	v2 := append([]byte{2}, b[1:len(b)-1]...)
	var got api.Flow
	if err := decodeFlow(v2, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, f) {
		t.Errorf("version 2 flow read back as %+v, want %+v", got, f)
	}
}
