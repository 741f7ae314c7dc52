package collector

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// The endpoints file's names follow Kubernetes' rules (apimachinery's
// validation package), so what Periscope accepts a cluster would too and
// no name can smuggle a path ("web/../../x") or a separator into labels,
// files or queries: pod names are DNS-1123 subdomains, namespaces DNS-1123
// labels, label keys an optional DNS-1123 subdomain prefix and a name,
// label values names or empty. Interfaces follow the kernel's rules for a
// device name (dev_valid_name), and an endpoint's is never lo.

const (
	dns1123LabelMax     = 63
	dns1123SubdomainMax = 253
	labelNameMax        = 63
	ifNameMax           = 15 // IFNAMSIZ - 1
)

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	labelName        = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
)

// checkSubdomain checks a DNS-1123 subdomain (a pod's name).
func checkSubdomain(s string) error {
	if len(s) > dns1123SubdomainMax {
		return fmt.Errorf("longer than %d characters", dns1123SubdomainMax)
	}
	if !dns1123Subdomain.MatchString(s) {
		return fmt.Errorf("must be a DNS-1123 subdomain, as Kubernetes' pod names: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")
	}
	return nil
}

// checkDNSLabel checks a DNS-1123 label (a namespace's name).
func checkDNSLabel(s string) error {
	if len(s) > dns1123LabelMax {
		return fmt.Errorf("longer than %d characters", dns1123LabelMax)
	}
	if !dns1123Label.MatchString(s) {
		return fmt.Errorf("must be a DNS-1123 label, as Kubernetes' namespaces: lower-case letters, digits and '-', starting and ending with a letter or digit")
	}
	return nil
}

// checkLabelKey checks a label key: [prefix/]name.
func checkLabelKey(k string) error {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name = k
	} else {
		if prefix == "" {
			return fmt.Errorf("empty prefix before '/'")
		}
		if err := checkSubdomain(prefix); err != nil {
			return fmt.Errorf("prefix %q: %w", prefix, err)
		}
	}
	if err := checkLabelName(name); err != nil {
		if hasPrefix {
			return fmt.Errorf("name %q: %w", name, err)
		}
		return err
	}
	return nil
}

// checkLabelName checks a label key's name part, or a non-empty value.
func checkLabelName(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if len(s) > labelNameMax {
		return fmt.Errorf("longer than %d characters", labelNameMax)
	}
	if !labelName.MatchString(s) {
		return fmt.Errorf("must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit, as Kubernetes' labels")
	}
	return nil
}

// checkLabelValue checks a label value: empty, or as a label name.
func checkLabelValue(v string) error {
	if v == "" {
		return nil
	}
	return checkLabelName(v)
}

// checkIfName checks a network device name as the kernel does.
func checkIfName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case len(s) > ifNameMax:
		return fmt.Errorf("longer than %d characters, the kernel's limit", ifNameMax)
	case s == "." || s == "..":
		return fmt.Errorf("not a device name")
	case strings.ContainsAny(s, "/: \t\n\r\v\f\x00"):
		return fmt.Errorf("a device name has no '/', ':' or white space")
	}
	return nil
}

// checkEndpointIfName checks an endpoint's host interface: a device name,
// and never the host's loopback.
func checkEndpointIfName(s string) error {
	if err := checkIfName(s); err != nil {
		return err
	}
	if s == "lo" {
		return fmt.Errorf("the host's loopback is no endpoint's: an endpoint's interface is the host end of its veth pair (host interfaces go in host_interfaces)")
	}
	return nil
}

// checkNetNS checks a netns reference: a name under /var/run/netns (no
// '/') or an absolute, clean path.
func checkNetNS(s string) error {
	switch {
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("contains a NUL byte")
	case !strings.ContainsRune(s, '/'):
		if s == "." || s == ".." {
			return fmt.Errorf("not a namespace name")
		}
	case !filepath.IsAbs(s):
		return fmt.Errorf("a path must be absolute (a name has no '/')")
	case filepath.Clean(s) != s:
		return fmt.Errorf("path is not clean (want %s)", filepath.Clean(s))
	}
	return nil
}

// checkNames checks the names of endpoint i (ep): its name, namespace,
// labels, netns and interface. Errors name the file, line and column, the
// entry and the field.
func (ep *EndpointConfig) checkNames(pos positions, i int) []error {
	entry := fmt.Sprintf("endpoint %d (%s/%s)", i, ep.namespace(), ep.Name)
	var errs []error
	field := func(key, value string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s%s: %s %q: %w", pos.endpointField(i, key), entry, key, value, err))
		}
	}
	if ep.Name != "" {
		field("name", ep.Name, checkSubdomain(ep.Name))
	}
	if ep.Namespace != "" {
		field("namespace", ep.Namespace, checkDNSLabel(ep.Namespace))
	}
	if ep.NetNS != "" {
		field("netns", ep.NetNS, checkNetNS(ep.NetNS))
	}
	if ep.Interface != "" {
		field("interface", ep.Interface, checkEndpointIfName(ep.Interface))
	}
	keys := make([]string, 0, len(ep.Labels))
	for k := range ep.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		at := pos.endpointLabel(i, k)
		if err := checkLabelKey(k); err != nil {
			errs = append(errs, fmt.Errorf("%s%s: label key %q: %w", at, entry, k, err))
		}
		if err := checkLabelValue(ep.Labels[k]); err != nil {
			errs = append(errs, fmt.Errorf("%s%s: label %q value %q: %w", at, entry, k, ep.Labels[k], err))
		}
	}
	return errs
}
