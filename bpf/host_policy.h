/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Host policies (CiliumClusterwideNetworkPolicy with a nodeSelector, Cilium's
 * host firewall) on host devices: the host programs (flow_host_ingress,
 * flow_host_egress) run on the host interfaces, which are the host endpoint
 * (their policy_enforce entries have POLICY_ENFORCE_HOST_DEVICE). Included
 * by tc_flow.c after SLOT_LOOKUP and the ipcache maps.
 */
#ifndef PERISCOPE_HOST_POLICY_H
#define PERISCOPE_HOST_POLICY_H

#define IDENTITY_HOST 1

/*
 * host_device_turn turns judge's view of a connection seen on a pod's
 * host-side veth into the host's view on a host device, and says whether
 * the host endpoint judges the connection at all (0: not judged here).
 *
 * On a veth, TC ingress carries packets leaving the pod (the pod's egress);
 * on a host device it carries packets entering the host (the host's
 * ingress): direction and peer side are swapped. As in Cilium's host
 * firewall, only the host's own connections are judged: ingress ones whose
 * destination, egress ones whose source is a host address (identity host in
 * the ipcache). A connection the host forwards is not the host endpoint's.
 */
static __always_inline int host_device_turn(const struct flow_key *k, __u32 slot, __u8 *dir,
					    int *peer_is_src)
{
	struct ipcache_key ik = {};
	__u32 *idp;

	*dir = *dir == POLICY_DIR_INGRESS ? POLICY_DIR_EGRESS : POLICY_DIR_INGRESS;
	*peer_is_src = !*peer_is_src;
	ik.prefixlen = 32 + (k->family == 4 ? 32 : 128);
	ik.family = k->family;
	__builtin_memcpy(ik.addr, *peer_is_src ? k->daddr : k->saddr, 16);
	idp = SLOT_LOOKUP(slot, ipcache, &ik);
	return idp && *idp == IDENTITY_HOST;
}

#endif
