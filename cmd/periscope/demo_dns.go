package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os/exec"
	"time"

	"github.com/periscope-dev/periscope/datapath"
	"github.com/periscope-dev/periscope/datapath/netlab"
	"github.com/periscope-dev/periscope/enforcer/dnspolicy"
)

// The demo's DNS part: the pods resolve names through dnsmasq in the dns
// pod (namespace kube-system), the DNS proxy sees the frontend's lookups,
// and its egress policy lets it reach api.partner.example by name and
// nothing else outside the cluster, so its calls to ads.tracker.example
// show up DROPPED with the name.

// Names the demo's DNS server answers.
const (
	demoPartnerName = "api.partner.example"
	demoTrackerName = "ads.tracker.example"
)

// demoFrontendEgress is the frontend's egress policy: DNS to kube-dns (every
// name, seen by the proxy), the backend and db, and api.partner.example on
// 443 by name (toFQDNs).
const demoFrontendEgress = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: frontend-egress
  namespace: default
spec:
  endpointSelector:
    matchLabels: {app: frontend}
  egress:
  - toEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s-app: kube-dns}
    toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules:
        dns: [{matchPattern: "*"}]
  - toEndpoints:
    - matchLabels: {app: backend}
  - toEndpoints:
    - matchLabels: {app: db}
  - toFQDNs: [{matchName: ` + demoPartnerName + `}]
    toPorts:
    - ports: [{port: "443", protocol: TCP}]
`

// newDemoDNS builds the demo's DNS proxy and FQDN cache (in memory) over
// redirects.
func newDemoDNS(redirects datapath.RedirectSetter, log *slog.Logger) (*dnspolicy.DNS, error) {
	d, err := dnspolicy.New(dnspolicy.Options{Redirects: redirects, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("demo DNS proxy: %w", err)
	}
	return d, nil
}

// startDemoDNSServer runs dnsmasq in the dns pod with the demo's names
// until ctx ends; wait returns once it exited. Without dnsmasq the demo
// runs without names (a warning says so).
func startDemoDNSServer(ctx context.Context, lab *netlab.Lab, log *slog.Logger) (wait func(), err error) {
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		log.Warn("dnsmasq is not installed (scripts/deps.sh installs it): the demo's pods cannot resolve names")
		return func() {}, nil
	}
	dns, partner, tracker := lab.Pod("dns"), lab.Pod("partner"), lab.Pod("tracker")
	cmd := dns.Command(ctx, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address="+dns.IPv4.String(), "--listen-address="+dns.IPv6.String(), "--port=53",
		"--cache-size=0", "--pid-file=", "--user=root", "--group=root", "--log-facility=/dev/null",
		fmt.Sprintf("--host-record=%s,%s,%s,300", demoPartnerName, partner.IPv4, partner.IPv6),
		fmt.Sprintf("--host-record=%s,%s,%s,300", demoTrackerName, tracker.IPv4, tracker.IPv6),
		"--local=/example/")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("demo DNS server: start dnsmasq: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	// Up once it answers.
	server := netip.AddrPortFrom(dns.IPv4, 53)
	for deadline := time.Now().Add(5 * time.Second); ; {
		rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := dns.Resolve(rctx, server, demoPartnerName, false)
		cancel()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				log.Warn("the demo's DNS server does not answer yet", "err", err)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() { <-done }, nil
}

// demoDNSTraffic is the frontend calling the partner and the tracker by
// name, resolved through the dns pod.
func demoDNSTraffic(lab *netlab.Lab) []netlab.Traffic {
	fe, dns := lab.Pod("frontend"), lab.Pod("dns")
	server := netip.AddrPortFrom(dns.IPv4, 53)
	return []netlab.Traffic{
		{Kind: netlab.Requests, From: fe, To: lab.Pod("partner"), Port: 443, Name: demoPartnerName, Resolver: server, Every: 2 * time.Second},
		{Kind: netlab.Requests, From: fe, To: lab.Pod("tracker"), Port: 443, Name: demoTrackerName, Resolver: server, Every: 3 * time.Second}, // dropped
	}
}
