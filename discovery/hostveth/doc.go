// Package hostveth finds the host side of a workload's veth from the
// workload's addresses, whatever CNI or container engine made it: a veth
// that a /32 (or /128) route points at (Calico style), or, behind a bridge
// (Docker, Podman, Flannel, the bridge plugin), the veth whose peer's
// network namespace holds the address.
//
// It looks at other network namespaces only from the host's, by netns id,
// never by entering them: CAP_NET_ADMIN is enough. It must not change
// anything in the kernel but assign a netns id (which listing links does).
package hostveth
