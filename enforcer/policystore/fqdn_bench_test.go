package policystore

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/identity"
)

// discardApplier applies by keeping nothing: the benchmark measures the
// store's recompile, not an applier (the datapath's apply is measured by
// the collector's BenchmarkDNSAnswerToConnection).
type discardApplier struct{ last *compile.Compiled }

func (d *discardApplier) ApplyPolicy(c *compile.Compiled) error { d.last = c; return nil }
func (d *discardApplier) SetPolicyAudit(uint32, bool) error     { return nil }

// discardAdmitter is a discardApplier that admits by keeping next: the
// incremental path's cost is the store's and Admit's (the datapath's
// writes are a handful of map updates).
type discardAdmitter struct{ discardApplier }

func (d *discardAdmitter) AdmitPolicy(next *compile.Compiled, delta *compile.Delta) error {
	if delta.Base != d.last {
		return compile.ErrRecompile
	}
	d.last = next
	return nil
}

// BenchmarkAdmitNewAddress is the cost, per new address, of a toFQDNs
// name resolving to an address no selector selected yet: AdmitNames
// either recompiles the whole policy set (path=recompile: an applier that
// only applies whole policies) or adds the address's entries
// (path=incremental: an Admitter), the applier discarding the result,
// with
// policies CNPs (each selecting one of 50 endpoints by app, with a toFQDNs
// rule of its own and an L3/L4 rule) and addrs live FQDN addresses (each
// selected by one policy's selector). cpu_ms/op is the process's CPU time
// per new address (the GC's included).
func BenchmarkAdmitNewAddress(b *testing.B) {
	for _, policies := range []int{1, 100, 1000} {
		for _, addrs := range []int{100, 1000, 10000} {
			for _, incremental := range []bool{false, true} {
				path := map[bool]string{false: "recompile", true: "incremental"}[incremental]
				b.Run(fmt.Sprintf("policies=%d/addrs=%d/path=%s", policies, addrs, path), func(b *testing.B) {
					benchmarkAdmitNewAddress(b, policies, addrs, incremental)
				})
			}
		}
	}
}

func benchmarkAdmitNewAddress(b *testing.B, policies, addrs int, incremental bool) {
	const endpoints = 50
	ids, err := identity.NewAllocator("")
	if err != nil {
		b.Fatal(err)
	}
	eps := &testEndpoints{ids: ids, hosts: []netip.Addr{netip.MustParseAddr("198.19.0.1")}}
	for i := range endpoints {
		labels := []string{fmt.Sprintf("k8s:app=app%d", i), "k8s:io.kubernetes.pod.namespace=default"}
		id, err := ids.Allocate(identity.NewLabels(labels...))
		if err != nil {
			b.Fatal(err)
		}
		eps.eps = append(eps.eps, Endpoint{Name: fmt.Sprintf("pod%d", i), ID: uint32(100 + i), Identity: uint32(id),
			Namespace: "default", Labels: labels, IPs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 1, byte(i)})}})
	}
	names := &fakeNames{}
	var applier Applier = &discardApplier{}
	if incremental {
		applier = &discardAdmitter{}
	}
	s, err := New(Options{Applier: applier, Endpoints: eps, Names: names})
	if err != nil {
		b.Fatal(err)
	}
	var yaml strings.Builder
	for i := range policies {
		fmt.Fprintf(&yaml, `---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p%d, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: app%d}}
  egress:
  - toFQDNs: [{matchPattern: "*.svc%d.example"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  - toEndpoints: [{matchLabels: {app: app%d}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
`, i, i%endpoints, i, (i+1)%endpoints)
	}
	if _, _, err := s.Apply("bench.yaml", []byte(yaml.String())); err != nil {
		b.Fatal(err)
	}
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range addrs {
		names.add(100, fmt.Sprintf("h%d.svc%d.example.", i, i%policies), addr(i))
	}
	if err := s.RefreshNames(); err != nil {
		b.Fatal(err)
	}
	next := addrs
	cpu0 := cpuTime(b)
	for b.Loop() {
		// A new name of policy 0's selector with a new address; the cache
		// grows by one address an iteration (b.N is small: each costs a
		// recompile).
		a := names.add(100, fmt.Sprintf("h%d.svc0.example.", next), addr(next))
		next++
		if err := s.AdmitNames(a); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time is what the machine's load does not inflate much (wall
	// time on a shared machine does).
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/1000/float64(b.N), "cpu_ms/op")
	// An incremental admission falls back to a recompile when the new
	// address's CIDR identity collides with another's (rare: figures
	// include them); more means the path is not taken.
	n := s.fqdn.recompiled.Load()
	b.ReportMetric(float64(n)/float64(b.N), "recompiles/op")
	if incremental && n > uint64(b.N/20) {
		b.Fatalf("%d of %d admissions fell back to a recompile", n, b.N)
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
