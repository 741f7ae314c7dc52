package discovery

import "sort"

// Labels builds sorted Cilium-style labels "source:key=value" from a map.
// A label whose value is empty keeps its '=' ("source:key="), the form the
// collector's identities use for every label.
func Labels(source string, m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, source+":"+k+"="+v)
	}
	sort.Strings(out)
	return out
}
