package policystore

import (
	"context"
	"net/netip"

	"github.com/periscope-dev/periscope/enforcer/compile"
	"github.com/periscope-dev/periscope/enforcer/identity"
)

// Endpoints is the node's endpoints as policy sees them: the contract
// between the collector (*collector.Registry implements it) and the
// enforcer. The store asks on every change, so answers may change between
// calls (identities do); it does not modify the slices it gets.
type Endpoints interface {
	// PolicyEndpoints lists the node's local endpoints.
	PolicyEndpoints() []Endpoint
	// HostAddrs lists the host's own addresses: peers with the host
	// identity.
	HostAddrs() []netip.Addr
	// RemoteNodes lists the other nodes' addresses (prefixes): peers with
	// the remote-node identity.
	RemoteNodes() []netip.Prefix
	// Identities lists every identity the node knows, reserved ones
	// included.
	Identities() []identity.Identity
}

// Endpoint is a local endpoint policy applies to.
type Endpoint struct {
	// Name names the endpoint in errors (its pod's name).
	Name string
	// ID is the endpoint id policy is compiled and enforced for: its
	// host-side interface index; 0 when it has none (no policy entries).
	ID uint32
	// Identity is the endpoint's security identity.
	Identity uint32
	// Namespace is the endpoint's namespace.
	Namespace string
	// Labels are the endpoint's identity labels ("source:key=value").
	Labels []string
	// IPs are the endpoint's addresses.
	IPs []netip.Addr
	// Audit reports what policy would drop (verdict AUDIT) instead of
	// dropping it.
	Audit bool
	// Host makes it the host endpoint on one host device (ID: the device's
	// ifindex, Identity: reserved host, Labels: reserved:host and the
	// node's labels): host policies (nodeSelector) are enforced there.
	Host bool
}

// Applier brings a compiled policy set into force; *datapath.Datapath
// implements it. ApplyPolicy must be atomic: on error the previous policy
// keeps enforcing.
type Applier interface {
	ApplyPolicy(c *compile.Compiled) error
	// SetPolicyAudit puts an endpoint (its ID) in audit mode or out of it.
	SetPolicyAudit(endpoint uint32, audit bool) error
}

// Admitter is an Applier that can also bring a DNS answer's new toFQDNs
// addresses into force by adding their entries to the policy in force
// (compile.Compiled.Admit), without applying the whole policy again;
// *datapath.Datapath implements it. AdmitPolicy must fail, leaving
// delta.Base in force, unless delta.Base is the policy in force (the last
// ApplyPolicy's or AdmitPolicy's); once it returns nil, next is in force.
// The store falls back to ApplyPolicy on any error.
type Admitter interface {
	Applier
	AdmitPolicy(next *compile.Compiled, delta *compile.Delta) error
}

// L7Applier brings the L7 part of compiled policy (compile.Compiled.L7)
// into force: the node's L7 proxy (*proxy.Manager implements it). ApplyL7
// replaces the whole set of L7 ports, redirecting exactly those; on error
// the previous set stays in force.
type L7Applier interface {
	ApplyL7(ctx context.Context, ports []compile.L7Port) error
}
