package collector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultNamespace is the namespace of an endpoint that declares none.
const DefaultNamespace = "default"

// Config declares the node's endpoints. It is usually read from YAML with
// LoadConfig, but may be built in Go (the demo does) and checked with Validate.
type Config struct {
	// NodeName names the node in every flow; empty means the hostname.
	NodeName string `yaml:"node_name"`
	// ClusterName is the cluster's name, which every endpoint carries as
	// Cilium's label k8s:io.cilium.k8s.policy.cluster; empty means
	// DefaultClusterName.
	ClusterName string `yaml:"cluster_name"`
	// HostInterfaces are host interfaces to watch besides the endpoints'
	// veths; host policies (nodeSelector) are enforced on them.
	HostInterfaces []string `yaml:"host_interfaces"`
	// NodeLabels are the node's labels: the host endpoint carries them as
	// "k8s:key=value" beside reserved:host, and host policies' nodeSelector
	// selects by them.
	NodeLabels map[string]string `yaml:"node_labels"`
	// RemoteNodes are the other nodes' addresses or prefixes: peers with
	// the remote-node identity (entity remote-node).
	RemoteNodes []string `yaml:"remote_nodes"`
	// Namespaces declares namespaces' labels; every endpoint of a namespace
	// carries them as Cilium's k8s:io.cilium.k8s.namespace.labels.<key>.
	// Every namespace has kubernetes.io/metadata.name=<name>, declared or
	// not, as Kubernetes sets it.
	Namespaces map[string]NamespaceConfig `yaml:"namespaces"`
	// Endpoints are the node's workloads ("pods").
	Endpoints []EndpointConfig `yaml:"endpoints"`
}

// NamespaceConfig declares one namespace.
type NamespaceConfig struct {
	// Labels are the namespace's labels.
	Labels map[string]string `yaml:"labels"`
}

// DefaultClusterName is the cluster name of a node that declares none, as
// Cilium's default.
const DefaultClusterName = "default"

// clusterNameRE is Cilium's rule for cluster names.
var clusterNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$`)

// EndpointConfig declares one endpoint: a network namespace reached through a
// veth pair whose host side the datapath watches.
type EndpointConfig struct {
	// Name is the pod name; required.
	Name string `yaml:"name"`
	// Namespace is the pod's namespace; empty means DefaultNamespace.
	Namespace string `yaml:"namespace"`
	// Labels become "k8s:key=value" labels of the endpoint.
	Labels map[string]string `yaml:"labels"`
	// NetNS is the endpoint's network namespace: a path, or a name under
	// /var/run/netns.
	NetNS string `yaml:"netns"`
	// Interface is the host-side veth; when empty it is found from NetNS.
	Interface string `yaml:"interface"`
	// IPs are the endpoint's addresses; when empty they are read from NetNS.
	IPs []string `yaml:"ips"`
	// Audit puts the endpoint's policy in audit mode: connections policy
	// would drop are reported with verdict AUDIT and forwarded.
	Audit bool `yaml:"audit"`
}

// LoadConfig reads and validates a YAML endpoints file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read endpoints config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig parses and validates YAML endpoint declarations; name is used
// in error messages, which read "name:line:column: what is wrong".
func ParseConfig(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, &root, err)
	}
	if err := cfg.validate(positions{file: name, root: &root}); err != nil {
		return nil, err
	}
	return &cfg, nil
}

var typeErrorLine = regexp.MustCompile(`^line (\d+): (.*)$`)
var unknownField = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)

// yamlError rewrites yaml.v3's "line N: ..." messages as "file:line:column:
// ..." with friendlier wording for unknown fields.
func yamlError(file string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := typeErrorLine.FindStringSubmatch(e)
		if m == nil {
			msgs = append(msgs, file+": "+e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		what := m[2]
		col := 0
		if u := unknownField.FindStringSubmatch(what); u != nil {
			col = keyColumn(root, line, u[1])
			what = fmt.Sprintf("unknown field %q in %s", u[1], typeName(u[2]))
		}
		if col > 0 {
			msgs = append(msgs, fmt.Sprintf("%s:%d:%d: %s", file, line, col, what))
		} else {
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s", file, line, what))
		}
	}
	return errors.New(strings.Join(msgs, "\n"))
}

func typeName(goType string) string {
	switch goType {
	case "collector.EndpointConfig":
		return "endpoint"
	case "collector.Config":
		return "config"
	}
	return goType
}

// keyColumn finds the column of the mapping key named key on line.
func keyColumn(n *yaml.Node, line int, key string) int {
	if n == nil {
		return 0
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Line == line && k.Value == key {
				return k.Column
			}
		}
	}
	for _, c := range n.Content {
		if col := keyColumn(c, line, key); col > 0 {
			return col
		}
	}
	return 0
}

// Validate checks a Config built in Go; errors name the endpoint by index.
func (c *Config) Validate() error {
	return c.validate(positions{})
}

func (c *Config) validate(pos positions) error {
	var errs []error
	names := make(map[string]int)
	ips := make(map[netip.Addr]int)
	for i, ep := range c.Endpoints {
		at := pos.endpoint(i)
		if ep.Name == "" {
			errs = append(errs, fmt.Errorf("%sendpoint %d: missing name", at, i))
		}
		errs = append(errs, ep.checkNames(pos, i)...)
		if ep.Interface == "" && ep.NetNS == "" {
			errs = append(errs, fmt.Errorf("%sendpoint %q: needs interface or netns", at, ep.Name))
		}
		key := ep.namespace() + "/" + ep.Name
		if prev, dup := names[key]; dup && ep.Name != "" {
			errs = append(errs, fmt.Errorf("%sduplicate endpoint name %q (first declared as endpoint %d)", at, key, prev))
		} else {
			names[key] = i
		}
		for j, s := range ep.IPs {
			ipAt := pos.endpointIP(i, j)
			a, err := netip.ParseAddr(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%sendpoint %q: bad IP %q", ipAt, ep.Name, s))
				continue
			}
			a = a.Unmap()
			if prev, dup := ips[a]; dup {
				errs = append(errs, fmt.Errorf("%sendpoint %q: duplicate IP %s (also endpoint %q)", ipAt, ep.Name, a, c.Endpoints[prev].Name))
				continue
			}
			ips[a] = i
		}
	}
	if c.ClusterName != "" && !clusterNameRE.MatchString(c.ClusterName) {
		errs = append(errs, fmt.Errorf("%scluster name %q: want at most 32 lower-case letters, digits and '-', starting and ending with a letter or digit (as Cilium's)",
			pos.at(pos.field("cluster_name")), c.ClusterName))
	}
	for k := range c.NodeLabels {
		if k == "" {
			errs = append(errs, fmt.Errorf("%snode label: empty key", pos.at(pos.field("node_labels"))))
		}
	}
	for i, s := range c.RemoteNodes {
		if _, err := parsePrefix(s); err != nil {
			errs = append(errs, fmt.Errorf("%sremote node %q: want an address or a prefix", pos.at(seqItem(pos.field("remote_nodes"), i)), s))
		}
	}
	for ns, nc := range c.Namespaces {
		at := pos.at(mapValue(pos.field("namespaces"), ns))
		if ns == "" {
			errs = append(errs, fmt.Errorf("%snamespace: empty name", at))
		}
		for k, v := range nc.Labels {
			switch {
			case k == "":
				errs = append(errs, fmt.Errorf("%snamespace %q: empty label key", at, ns))
			case k == NamespaceNameLabel && v != ns:
				errs = append(errs, fmt.Errorf("%snamespace %q: label %s is the namespace's name, not %q", at, ns, NamespaceNameLabel, v))
			}
		}
	}
	for i, ifname := range c.HostInterfaces {
		if err := checkIfName(ifname); err != nil {
			errs = append(errs, fmt.Errorf("%shost interface %d %q: %w", pos.hostInterface(i), i, ifname, err))
		}
	}
	return errors.Join(errs...)
}

// parsePrefix reads an address (a host prefix) or a prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

func (ep *EndpointConfig) namespace() string {
	if ep.Namespace == "" {
		return DefaultNamespace
	}
	return ep.Namespace
}

// positions maps config paths to "file:line:column: " prefixes; the zero
// value (a Config built in Go) gives empty prefixes.
type positions struct {
	file string
	root *yaml.Node
}

func (p positions) at(n *yaml.Node) string {
	if n == nil {
		if p.file != "" {
			return p.file + ": "
		}
		return ""
	}
	return fmt.Sprintf("%s:%d:%d: ", p.file, n.Line, n.Column)
}

func (p positions) field(key string) *yaml.Node {
	if p.root == nil || len(p.root.Content) == 0 {
		return nil
	}
	return mapValue(p.root.Content[0], key)
}

func (p positions) endpoint(i int) string {
	return p.at(seqItem(p.field("endpoints"), i))
}

func (p positions) endpointIP(i, j int) string {
	return p.at(seqItem(mapValue(seqItem(p.field("endpoints"), i), "ips"), j))
}

func (p positions) endpointField(i int, key string) string {
	return p.at(mapValue(seqItem(p.field("endpoints"), i), key))
}

// endpointLabel is where the key of label key of endpoint i is.
func (p positions) endpointLabel(i int, key string) string {
	return p.at(mapKey(mapValue(seqItem(p.field("endpoints"), i), "labels"), key))
}

func (p positions) hostInterface(i int) string {
	return p.at(seqItem(p.field("host_interfaces"), i))
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func mapKey(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return nil
}

func seqItem(n *yaml.Node, i int) *yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
		return nil
	}
	return n.Content[i]
}
