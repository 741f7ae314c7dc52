package main

import (
	"context"
	"fmt"
	"time"

	"github.com/periscope-dev/periscope/collector"
	"github.com/periscope-dev/periscope/datapath/netlab"
)

// demoPods are the demo's workloads: a three-tier app in "default", an
// outsider in another namespace, the cluster's DNS server in kube-system;
// and, outside the cluster (not endpoints of the collector: world), a
// partner's API and an ad tracker the frontend calls by name.
var demoPods = []netlab.PodSpec{
	{Name: "frontend", Namespace: "default", Labels: map[string]string{"app": "frontend"}},
	{Name: "backend", Namespace: "default", Labels: map[string]string{"app": "backend"}},
	{Name: "db", Namespace: "default", Labels: map[string]string{"app": "db"}},
	{Name: "outsider", Namespace: "other", Labels: map[string]string{"app": "outsider"}},
	{Name: "dns", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}},
	{Name: "partner"},
	{Name: "tracker"},
}

// demoWorld are the pods outside the cluster.
var demoWorld = map[string]bool{"partner": true, "tracker": true}

// newDemoLab builds the demo's lab and pods; the caller closes the lab.
func newDemoLab(ctx context.Context, opts netlab.Options) (*netlab.Lab, error) {
	lab, err := netlab.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	for _, spec := range demoPods {
		if _, err := lab.AddPod(spec); err != nil {
			lab.Close()
			return nil, err
		}
	}
	return lab, nil
}

// demoTraffic is what the pods say to each other, forever.
func demoTraffic(lab *netlab.Lab) []netlab.Traffic {
	fe, be, db, out := lab.Pod("frontend"), lab.Pod("backend"), lab.Pod("db"), lab.Pod("outsider")
	return []netlab.Traffic{
		// Real HTTP through Envoy: demoL7Policy lets GET /public/... pass.
		{Kind: netlab.HTTP, From: fe, To: be, Port: 8080, Path: "/public/index.html", Every: 500 * time.Millisecond},
		{Kind: netlab.HTTP, From: fe, To: be, Port: 8080, IPv6: true, Path: "/public/items?page=2", Every: 3 * time.Second},
		{Kind: netlab.HTTP, From: fe, To: be, Port: 8080, Method: "POST", Path: "/admin/users", Every: 3 * time.Second},
		{Kind: netlab.HTTP, From: fe, To: be, Port: 8080, Path: "/private/report", Every: 5 * time.Second},
		{Kind: netlab.Stream, From: be, To: db, Port: 5432, Every: time.Second},
		{Kind: netlab.Datagrams, From: fe, To: db, Port: 5353, Every: 2 * time.Second},
		{Kind: netlab.Datagrams, From: fe, To: db, Port: 5353, IPv6: true, Every: 5 * time.Second},
		{Kind: netlab.Requests, From: out, To: db, Port: 5432, Every: 3 * time.Second}, // denied by demoPolicy
		{Kind: netlab.Echo, From: out, To: fe, Every: 2 * time.Second},
		{Kind: netlab.Echo, From: out, To: fe, IPv6: true, Every: 5 * time.Second},
	}
}

// demoNamespace is how the banner shows a pod's namespace: "(world)" for
// those outside the cluster.
func demoNamespace(p *netlab.Pod) string {
	if demoWorld[p.Name] {
		return "(world)"
	}
	return p.Namespace
}

// demoConfig declares the lab's pods as the collector's endpoints.
func demoConfig(lab *netlab.Lab) *collector.Config {
	cfg := &collector.Config{NodeName: "periscope-demo"}
	for _, p := range lab.Pods() {
		if demoWorld[p.Name] {
			continue
		}
		cfg.Endpoints = append(cfg.Endpoints, collector.EndpointConfig{
			Name:      p.Name,
			Namespace: p.Namespace,
			Labels:    p.Labels,
			NetNS:     p.NetNSPath,
			Interface: p.HostVeth.Name,
			IPs:       []string{p.IPv4.String(), p.IPv6.String()},
		})
	}
	return cfg
}

// demoBanner is the banner the demo prints about its topology.
func demoBanner(lab *netlab.Lab) string {
	s := fmt.Sprintf("lab %s: bridge %s, %s, %s\n", lab.ID, lab.Bridge.Name, lab.IPv4Net, lab.IPv6Net)
	for _, p := range lab.Pods() {
		s += fmt.Sprintf("  %-9s %-11s %-14s %-22s netns %s, veth %s\n",
			p.Name, demoNamespace(p), p.IPv4, p.IPv6, p.NetNSName, p.HostVeth.Name)
	}
	return s
}
