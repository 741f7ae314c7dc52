// Package hostveth finds the host side of a workload's veth from the
// workload's addresses, whatever CNI or container engine made it: a veth
// that a /32 (or /128) route points at (Calico style), or, behind a bridge
// (Docker, Podman, Flannel, the bridge plugin), the veth whose peer's
// network namespace holds the address. It also knows the node's workload
// networks (Networks): the prefixes routed to such veths and bridges, so
// that an address no endpoint has yet can be told to be a workload's.
//
// It looks at other network namespaces only from the host's, by netns id,
// never by entering them: CAP_NET_ADMIN is enough. It must not change
// anything in the kernel but assign a netns id (which listing links does).
package hostveth
