package compile

import (
	"fmt"
	"math/rand"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/periscope-dev/periscope/enforcer/identity"
	"github.com/periscope-dev/periscope/enforcer/policy"
)

func TestRangePrefixesCoverExactlyTheRange(t *testing.T) {
	for _, r := range [][2]uint16{{0, 65535}, {1, 65535}, {80, 80}, {8000, 8080}, {0, 0}, {65535, 65535}, {1023, 1024}} {
		ps := rangePrefixes(6, r[0], r[1])
		for _, port := range []uint32{0, 1, uint32(r[0]) - 1, uint32(r[0]), uint32(r[1]), uint32(r[1]) + 1, 65535} {
			if port > 65535 {
				continue
			}
			n := 0
			for _, p := range ps {
				if p.contains(portPrefix{proto: 6, port: uint16(port), bits: 16}) {
					n++
				}
			}
			in := port >= uint32(r[0]) && port <= uint32(r[1])
			if in && n != 1 || !in && n != 0 {
				t.Fatalf("range %v port %d covered %d times", r, port, n)
			}
		}
	}
	if n := len(rangePrefixes(6, 1, 65535)); n != 16 {
		t.Fatalf("1-65535 took %d prefixes", n)
	}
}

func TestKernelEncodingHasTheDocumentedLayout(t *testing.T) {
	b, _ := Key{Endpoint: 7, Identity: 300, Direction: 1, Proto: 6, Port: 80, PortBits: 16}.MarshalBinary()
	want := []byte{96, 0, 0, 0, 0, 0, 0, 7, 0, 0, 1, 44, 1, 6, 0, 80}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("key % x", b)
	}
	v, _ := Value{Action: Deny, PolicySet: 3}.MarshalBinary()
	if !reflect.DeepEqual(v, []byte{3, 0, 0, 0, 2, 0, 0, 0}) {
		t.Fatalf("value % x", v)
	}
}

// world is a set of endpoints, identities and addresses to test against.
type world struct {
	pods     []Endpoint
	ids      []identity.Identity
	worldIPs []netip.Addr
}

func newWorld(r *rand.Rand) world {
	var w world
	alloc, _ := identity.NewAllocator("")
	apps, tiers, nss := []string{"a", "b", "c"}, []string{"x", "y", ""}, []string{"ns1", "ns2"}
	for i := 0; i < 6; i++ {
		ns := nss[r.Intn(len(nss))]
		labels := []string{"k8s:app=" + apps[r.Intn(len(apps))]}
		if t := tiers[r.Intn(len(tiers))]; t != "" {
			labels = append(labels, "k8s:tier="+t)
		}
		full := identity.NewLabels(append(labels, "k8s:"+policy.NamespaceLabel+"="+ns)...)
		id, _ := alloc.Allocate(full)
		w.pods = append(w.pods, Endpoint{ID: uint32(100 + i), Identity: uint32(id), Namespace: ns, Labels: labels,
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{172, 16, 0, byte(i + 1)})}})
	}
	w.ids = alloc.List()
	for _, s := range []string{"10.0.0.1", "10.1.2.3", "10.1.9.9", "10.200.0.1", "192.168.1.1", "192.168.2.2",
		"8.8.8.8", "172.16.0.200", "2001:db8::1", "2001:db8:1::1", "2001:4860::8888"} {
		w.worldIPs = append(w.worldIPs, netip.MustParseAddr(s))
	}
	return w
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.Intn(len(xs))] }

func randSelector(r *rand.Rand, knp bool) string {
	var parts []string
	if r.Intn(2) == 0 {
		parts = append(parts, "matchLabels: {app: "+pick(r, "a", "b", "c")+"}")
	}
	if r.Intn(3) == 0 {
		op := pick(r, "In", "NotIn", "Exists", "DoesNotExist")
		e := "{key: " + pick(r, "tier", "app") + ", operator: " + op
		if op == "In" || op == "NotIn" {
			e += ", values: [" + pick(r, "x", "y", "x, y", "a") + "]"
		}
		parts = append(parts, "matchExpressions: ["+e+"}]")
	}
	if !knp && r.Intn(5) == 0 {
		parts = append(parts, "matchLabels: {k8s:io.kubernetes.pod.namespace: "+pick(r, "ns1", "ns2")+"}")
		if len(parts) > 1 && strings.HasPrefix(parts[0], "matchLabels") {
			parts = parts[1:]
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func randPorts(r *rand.Rand, knp bool) string {
	if r.Intn(4) == 0 && !knp {
		return "icmps: [{fields: [{type: " + pick(r, "8", "0", "EchoRequest", "3") + ", family: " + pick(r, "IPv4", "IPv6") + "}]}]"
	}
	var ports []string
	for i := 0; i < 1+r.Intn(2); i++ {
		port := pick(r, "80", "443", "0", "1", "1024", "65535", "8080")
		p := "{port: " + port
		if port != "0" && r.Intn(3) == 0 {
			p += ", endPort: " + pick(r, "65535", "8090", "1100")
			if port == "8080" || port == "1024" || port == "443" || port == "65535" {
				p = "{port: 80, endPort: 1100"
			}
		}
		protos := []string{"TCP", "UDP", "SCTP"}
		if !knp {
			protos = append(protos, "ANY")
		}
		p += ", protocol: " + pick(r, protos...) + "}"
		ports = append(ports, p)
	}
	if knp {
		return "ports: [" + strings.Join(ports, ", ") + "]"
	}
	return "toPorts: [{ports: [" + strings.Join(ports, ", ") + "]}]"
}

func randCIDR(r *rand.Rand) string {
	return pick(r, "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "192.168.0.0/16", "0.0.0.0/0", "2001:db8::/32", "8.8.8.8/32", "172.16.0.0/12")
}

func randCiliumRule(r *rand.Rand, dir policy.Direction) string {
	from := "from"
	if dir == policy.Egress {
		from = "to"
	}
	var parts []string
	switch r.Intn(5) {
	case 0:
		parts = append(parts, from+"Endpoints: ["+randSelector(r, false)+"]")
	case 1:
		parts = append(parts, from+"Entities: ["+pick(r, "world", "cluster", "host", "all", "remote-node")+"]")
	case 2:
		c := randCIDR(r)
		except := ""
		if strings.HasPrefix(c, "10.0") || strings.HasPrefix(c, "0.0") {
			except = ", except: [10.1.0.0/16]"
		}
		parts = append(parts, from+"CIDRSet: [{cidr: "+c+except+"}]")
	case 3:
		parts = append(parts, from+"CIDR: ["+randCIDR(r)+"]")
	}
	if r.Intn(2) == 0 || len(parts) == 0 && r.Intn(3) > 0 {
		parts = append(parts, randPorts(r, false))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func randPolicy(r *rand.Rand, i int) string {
	name := fmt.Sprintf("p%d", i)
	switch r.Intn(3) {
	case 0, 1:
		kind, meta := "CiliumNetworkPolicy", "{name: "+name+", namespace: "+pick(r, "ns1", "ns2")+"}"
		if r.Intn(2) == 0 {
			kind, meta = "CiliumClusterwideNetworkPolicy", "{name: "+name+"}"
		}
		spec := "endpointSelector: " + randSelector(r, false)
		sections := 0
		for _, d := range []struct {
			dir  policy.Direction
			keys []string
		}{{policy.Ingress, []string{"ingress", "ingressDeny"}}, {policy.Egress, []string{"egress", "egressDeny"}}} {
			for _, k := range d.keys {
				if r.Intn(2) == 0 {
					continue
				}
				var rules []string
				for j := 0; j < 1+r.Intn(2); j++ {
					rules = append(rules, randCiliumRule(r, d.dir))
				}
				spec += ", " + k + ": [" + strings.Join(rules, ", ") + "]"
				sections++
			}
		}
		if sections == 0 { // Cilium refuses a rule without any
			spec += ", ingress: [{}]"
		}
		if r.Intn(6) == 0 {
			spec += ", enableDefaultDeny: {ingress: " + pick(r, "true", "false") + "}"
		}
		return "apiVersion: cilium.io/v2\nkind: " + kind + "\nmetadata: " + meta + "\nspec: {" + spec + "}\n"
	default:
		spec := "podSelector: " + randSelector(r, true)
		if r.Intn(2) == 0 {
			spec += ", policyTypes: [" + pick(r, "Ingress", "Egress", "Ingress, Egress") + "]"
		}
		for _, d := range []struct{ key, peer string }{{"ingress", "from"}, {"egress", "to"}} {
			if r.Intn(2) == 0 {
				continue
			}
			var rules []string
			for j := 0; j < r.Intn(3); j++ {
				var parts []string
				if r.Intn(3) > 0 {
					peer := pick(r, "{podSelector: "+randSelector(r, true)+"}",
						"{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: "+pick(r, "ns1", "ns2")+"}}}",
						"{namespaceSelector: {}, podSelector: "+randSelector(r, true)+"}",
						"{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}",
						"{ipBlock: {cidr: "+randCIDR(r)+"}}")
					parts = append(parts, d.peer+": ["+peer+"]")
				}
				if r.Intn(2) == 0 {
					parts = append(parts, randPorts(r, true))
				}
				rules = append(rules, "{"+strings.Join(parts, ", ")+"}")
			}
			spec += ", " + d.key + ": [" + strings.Join(rules, ", ") + "]"
		}
		return "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: " + name + ", namespace: " + pick(r, "ns1", "ns2") + "}\nspec: {" + spec + "}\n"
	}
}

// checkAgainstEvaluate compiles random policies and compares the compiled
// lookup with policy.Evaluate on random flows.
func checkAgainstEvaluate(t *testing.T, seed int64, flows int, seen map[policy.Verdict]int) {
	r := rand.New(rand.NewSource(seed))
	w := newWorld(r)
	var docs []string
	for i := 0; i < 1+r.Intn(4); i++ {
		docs = append(docs, randPolicy(r, i))
	}
	src := strings.Join(docs, "---\n")
	pols, err := policy.Parse("rand.yaml", []byte(src))
	if err != nil {
		t.Fatalf("seed %d: generated policy does not parse: %v\n%s", seed, err, src)
	}
	c, err := Compile(Input{Policies: pols, Endpoints: w.pods, Identities: w.ids,
		IPCache: []IPEntry{{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Identity: uint32(identity.Host)}}})
	if err != nil {
		t.Fatal(err)
	}
	labelsOf := map[uint32][]string{}
	for _, i := range c.Identities {
		labelsOf[uint32(i.ID)] = i.Labels
	}
	for n := 0; n < flows; n++ {
		local := w.pods[r.Intn(len(w.pods))]
		var remote policy.Peer
		var remoteID uint32
		switch r.Intn(3) {
		case 0: // another pod, resolved through the ipcache
			p := w.pods[r.Intn(len(w.pods))]
			remoteID = c.IdentityOf(p.IPs[0])
			remote = policy.Peer{Identity: p.Identity, Labels: labelsOf[p.Identity], IP: p.IPs[0]}
		case 1: // a reserved identity
			id := pick(r, identity.Host, identity.RemoteNode, identity.KubeAPIServer, identity.Health, identity.World)
			remoteID = uint32(id)
			l, _ := identity.ReservedLabel(id)
			remote = policy.Peer{Identity: remoteID, Labels: []string{l}}
		default: // outside the cluster
			ip := w.worldIPs[r.Intn(len(w.worldIPs))]
			remoteID = c.IdentityOf(ip)
			remote = policy.Peer{Identity: uint32(identity.World), Labels: []string{"reserved:world"}, IP: ip}
		}
		dir := pick(r, policy.Ingress, policy.Egress)
		proto := pick[uint8](r, 6, 6, 17, 132, 1, 58, 47)
		port := pick[uint16](r, 0, 1, 22, 79, 80, 81, 443, 1023, 1024, 1100, 1101, 8080, 8090, 8091, 65535, uint16(r.Intn(65536)))
		icmp := pick[uint8](r, 0, 3, 8, 128, 129)
		want := policy.Evaluate(pols, policy.Endpoint{ID: local.ID, Namespace: local.Namespace, Labels: local.Labels}, remote, dir, proto, port, icmp)
		kport := port
		if proto == 1 || proto == 58 {
			kport = uint16(icmp)
		}
		got := c.Decide(local.ID, remoteID, dir, proto, kport)
		seen[want.Verdict]++
		if got.Verdict != want.Verdict || !reflect.DeepEqual(got.Policies, want.Policies) && len(got.Policies)+len(want.Policies) > 0 {
			t.Fatalf("seed %d flow %d: %s %v → %s (id %d, %v) proto %d port %d icmp %d:\ncompiled %v %v\nevaluate %v %v\n%s",
				seed, n, dir, local.Labels, remote.Labels, remoteID, remote.IP, proto, port, icmp,
				got.Verdict, got.Policies, want.Verdict, want.Policies, src)
		}
	}
}

func TestCompiledMapsAgreeWithEvaluate(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	seen := map[policy.Verdict]int{}
	for s := 0; s < seeds; s++ {
		checkAgainstEvaluate(t, int64(s), 200, seen)
	}
	// The generator must exercise every verdict, or agreement proves little.
	for _, v := range []policy.Verdict{policy.NotSelected, policy.Allowed, policy.Denied, policy.DeniedByDeny} {
		if seen[v] < seeds*200/50 {
			t.Errorf("verdict %v seen only %d times: %v", v, seen[v], seen)
		}
	}
}

func FuzzCompile(f *testing.F) {
	for s := int64(1000); s < 1010; s++ {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed int64) {
		checkAgainstEvaluate(t, seed, 100, map[policy.Verdict]int{})
	})
}
