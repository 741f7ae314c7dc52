package api

import (
	"cmp"
	"slices"
)

// Namespace is a namespace seen in flows, with the cluster of the node that
// saw it: one entry of GET /api/v1/namespaces and of Hubble's
// GetNamespaces.
type Namespace struct {
	Cluster   string `json:"cluster"`
	Namespace string `json:"namespace"`
}

// Namespaces is the body of GET /api/v1/namespaces.
type Namespaces struct {
	Namespaces []Namespace `json:"namespaces"`
}

// MergeNamespaces returns the namespaces of every list once, by cluster
// then name, as Hubble lists them.
func MergeNamespaces(lists ...[]Namespace) []Namespace {
	out := []Namespace{}
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortFunc(out, func(a, b Namespace) int {
		return cmp.Or(cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Namespace, b.Namespace))
	})
	return slices.Compact(out)
}
