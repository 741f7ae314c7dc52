// Package identity owns Periscope's numeric security identities: one number
// per distinct label set, the same on every node and across restarts.
//
// # How a number is chosen
//
// Reserved identities keep Cilium's numbers (1 host, 2 world, 3 unmanaged,
// 4 health, 5 init, 6 remote-node, 7 kube-apiserver, 8 ingress). Every other
// label set is canonicalised (sorted, deduplicated "source:key=value"
// strings), hashed with 64-bit FNV-1a (each label followed by a NUL byte),
// and folded into the cluster range 256..65535: that is its preferred id.
// Nodes need no coordination because the preferred id depends on the labels
// alone.
//
// # Collisions
//
// Two label sets may share a preferred id. The Allocator then gives the
// later one the next free id after it (wrapping inside the range) and
// persists every allocation in its state file, so a restart keeps ids.
// Release forgets the ids no endpoint has used for a grace period, so the
// range does not fill up with label sets long gone.
//
// Cross-node agreement holds for every label set allocated at its preferred
// id (Identity.Preferred). It does NOT hold when colliding label sets are
// allocated in different orders on different nodes: node A may give X the
// preferred id and Y the next, node B the reverse. Detection: Collisions
// lists the identities not at their preferred id; a relay that compares
// the (id, labels) lists of all nodes, or any node that sees a remote flow
// whose identity maps to different labels locally, finds the disagreement.
// With 65280 slots the birthday bound makes a first collision likely at
// ~300 distinct label sets; real cross-node agreement at scale needs a
// shared allocator (Cilium uses CRDs or a kvstore), which this package does
// not attempt.
//
// Node-local identities (CIDR peers of policies) live in LocalScope and
// above (Cilium's 1<<24 local scope); they never leave the node.
//
// The package does no network I/O and knows nothing about policies.
package identity

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"strings"
)

// ID is a numeric security identity.
type ID uint32

// Reserved identities, numbered as Cilium numbers them.
const (
	Unknown       ID = 0
	Host          ID = 1
	World         ID = 2
	Unmanaged     ID = 3
	Health        ID = 4
	Init          ID = 5
	RemoteNode    ID = 6
	KubeAPIServer ID = 7
	Ingress       ID = 8
)

// Ranges of allocated identities.
const (
	MinCluster ID = 256     // first cluster-wide (hash-derived) identity
	MaxCluster ID = 65535   // last cluster-wide identity
	LocalScope ID = 1 << 24 // node-local identities (CIDR peers) start here
)

// reservedNames maps reserved identities to their label key ("reserved:<name>").
var reservedNames = map[ID]string{
	Host:          "host",
	World:         "world",
	Unmanaged:     "unmanaged",
	Health:        "health",
	Init:          "init",
	RemoteNode:    "remote-node",
	KubeAPIServer: "kube-apiserver",
	Ingress:       "ingress",
}

// ReservedLabel returns the label of a reserved identity ("reserved:host").
func ReservedLabel(id ID) (string, bool) {
	n, ok := reservedNames[id]
	if !ok {
		return "", false
	}
	return "reserved:" + n, true
}

// ReservedByName returns the reserved identity named name ("host", "world", ...).
func ReservedByName(name string) (ID, bool) {
	for id, n := range reservedNames {
		if n == name {
			return id, true
		}
	}
	return 0, false
}

// Labels is a canonical label set: sorted, without duplicates, each label
// "source:key=value" (or "source:key" when the value is empty).
type Labels []string

// NewLabels canonicalises labels (sorts and deduplicates a copy).
func NewLabels(labels ...string) Labels {
	out := append(Labels(nil), labels...)
	sort.Strings(out)
	j := 0
	for i, l := range out {
		if i > 0 && l == out[j-1] {
			continue
		}
		out[j] = l
		j++
	}
	return out[:j]
}

// String joins the labels with commas.
func (l Labels) String() string { return strings.Join(l, ",") }

// Has reports whether the set contains label.
func (l Labels) Has(label string) bool {
	i := sort.SearchStrings(l, label)
	return i < len(l) && l[i] == label
}

func (l Labels) key() string { return strings.Join(l, "\x00") }

// Validate checks that every label reads "source:key[=value]" with a
// non-empty source and key, and that the set is not empty.
func (l Labels) Validate() error {
	if len(l) == 0 {
		return errors.New("empty label set")
	}
	for _, s := range l {
		src, rest, ok := strings.Cut(s, ":")
		key, _, _ := strings.Cut(rest, "=")
		if !ok || src == "" || key == "" {
			return fmt.Errorf("label %q: want source:key=value", s)
		}
	}
	return nil
}

// Identity is an id with its labels.
type Identity struct {
	ID     ID
	Labels Labels
}

// Preferred reports whether the identity sits at its label set's preferred
// id: only then is it guaranteed equal on every node.
func (i Identity) Preferred() bool {
	if i.ID < MinCluster || i.ID > MaxCluster {
		return true
	}
	return PreferredID(i.Labels) == i.ID
}

// Reserved lists the reserved identities with their labels, by id.
func Reserved() []Identity {
	out := make([]Identity, 0, len(reservedNames))
	for id := Host; id <= Ingress; id++ {
		l, _ := ReservedLabel(id)
		out = append(out, Identity{ID: id, Labels: Labels{l}})
	}
	return out
}

// reservedID returns the reserved identity whose whole label set is labels.
func reservedID(labels Labels) (ID, bool) {
	if len(labels) != 1 || !strings.HasPrefix(labels[0], "reserved:") {
		return 0, false
	}
	return ReservedByName(strings.TrimPrefix(labels[0], "reserved:"))
}

// PreferredID is the hash-derived id of a canonical label set in
// MinCluster..MaxCluster.
func PreferredID(labels Labels) ID {
	h := fnv.New64a()
	for _, l := range labels {
		h.Write([]byte(l))
		h.Write([]byte{0})
	}
	span := uint64(MaxCluster - MinCluster + 1)
	return MinCluster + ID(h.Sum64()%span)
}

// CIDRLabels are the labels of the node-local identity of a CIDR peer:
// "cidr:<prefix>" and "reserved:world" (a CIDR peer is outside the cluster,
// so the world entity selects it, as in Cilium).
func CIDRLabels(p netip.Prefix) Labels {
	return NewLabels("cidr:"+p.Masked().String(), "reserved:world")
}

// CIDRPrefix returns the prefix of a "cidr:" label.
func CIDRPrefix(label string) (netip.Prefix, bool) {
	s, ok := strings.CutPrefix(label, "cidr:")
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	return p, err == nil
}

// LocalCIDRIdentities gives each prefix a node-local identity at or above
// LocalScope: a hash of the prefix in 24 bits, probing upwards on a
// collision in sorted prefix order. The same prefix set always gives the
// same ids, and a prefix keeps its id when others come and go unless they
// collide with it.
func LocalCIDRIdentities(prefixes []netip.Prefix) map[netip.Prefix]ID {
	ps := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		ps = append(ps, p.Masked())
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].String() < ps[j].String() })
	out := make(map[netip.Prefix]ID, len(ps))
	used := make(map[ID]bool, len(ps))
	for _, p := range ps {
		if _, dup := out[p]; dup {
			continue
		}
		id := FirstLocalCIDRIdentity(p)
		for used[id] {
			id = nextLocalCIDRIdentity(id)
		}
		used[id] = true
		out[p] = id
	}
	return out
}

// localCIDRSpan is how many identities LocalCIDRIdentities gives out.
const localCIDRSpan = 1<<24 - 1

// FirstLocalCIDRIdentity is the identity LocalCIDRIdentities tries first
// for prefix p (masked): p's own when no prefix sorted before it took it.
// Adding a prefix whose first identity no other prefix holds changes no
// other prefix's identity: no probe of theirs passed it.
func FirstLocalCIDRIdentity(p netip.Prefix) ID {
	h := fnv.New64a()
	h.Write([]byte(p.Masked().String()))
	return LocalScope + 1 + ID(h.Sum64()%localCIDRSpan)
}

// nextLocalCIDRIdentity is the identity probed after id on a collision.
func nextLocalCIDRIdentity(id ID) ID {
	return LocalScope + 1 + (id-LocalScope)%localCIDRSpan
}
