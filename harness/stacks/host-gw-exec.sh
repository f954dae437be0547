#!/bin/sh
# A host-gw node network as a podpath `exec` driver (docs/implementations.md): what flannel's
# host-gw backend programs, written as a script. podpath runs it once in every node's network
# namespace, after the node's eth0 is up and before its pods are attached; it must exit 0.
#
# From its environment:
#   PODPATH_NODE, PODPATH_NODE_IP, PODPATH_POD_CIDR  this node, its underlay address, its pod subnet
#   PODPATH_CLUSTER_CIDR                            every pod's address is in it
#   PODPATH_UNDERLAY_DEV                            the node's interface on the underlay (eth0)
#   PODPATH_PEERS                                   "name,address,podCIDR ..." for every other node
# and HOST_GW_MASQUERADE (from the stack file's env): `true` to masquerade pod traffic that leaves
# the cluster network, as flanneld --ip-masq does; anything else leaves it alone.
set -eu

: "${PODPATH_NODE:?}" "${PODPATH_POD_CIDR:?}" "${PODPATH_CLUSTER_CIDR:?}" "${PODPATH_UNDERLAY_DEV:?}"

# host-gw: every peer's pod subnet via the peer's underlay address. No encapsulation, so the
# nodes must share an L2 segment (they do: the underlay bridge).
for peer in ${PODPATH_PEERS:-}; do
    name=${peer%%,*}
    rest=${peer#*,}
    addr=${rest%%,*}
    cidr=${rest#*,}
    if [ -z "$name" ] || [ -z "$addr" ] || [ -z "$cidr" ] || [ "$cidr" = "$rest" ]; then
        echo "host-gw-exec: $PODPATH_NODE: cannot read peer '$peer' (want name,address,podCIDR)" >&2
        exit 1
    fi
    ip route replace "$cidr" via "$addr" dev "$PODPATH_UNDERLAY_DEV"
done

if [ "${HOST_GW_MASQUERADE:-false}" = true ]; then
    # flanneld's --ip-masq rules: pod traffic to outside the cluster network leaves with the
    # node's address; traffic between pods keeps its source; what kube-proxy marked for
    # masquerading is left to kube-proxy (mark 0x4000).
    ipt() { iptables -w 5 "$@"; }
    ipt -t nat -N HOST-GW-POSTRTG
    ipt -t nat -A POSTROUTING -m comment --comment "host-gw-exec masq" -j HOST-GW-POSTRTG
    ipt -t nat -A HOST-GW-POSTRTG -m mark --mark 0x4000/0x4000 -j RETURN
    ipt -t nat -A HOST-GW-POSTRTG -s "$PODPATH_POD_CIDR" -d "$PODPATH_CLUSTER_CIDR" -j RETURN
    ipt -t nat -A HOST-GW-POSTRTG -s "$PODPATH_CLUSTER_CIDR" -d "$PODPATH_POD_CIDR" -j RETURN
    ipt -t nat -A HOST-GW-POSTRTG ! -s "$PODPATH_CLUSTER_CIDR" -d "$PODPATH_POD_CIDR" -j RETURN
    ipt -t nat -A HOST-GW-POSTRTG -s "$PODPATH_CLUSTER_CIDR" ! -d 224.0.0.0/4 -j MASQUERADE --random-fully
    ipt -t nat -A HOST-GW-POSTRTG ! -s "$PODPATH_CLUSTER_CIDR" -d "$PODPATH_CLUSTER_CIDR" -j MASQUERADE --random-fully
    # Pod traffic is forwarded even where the FORWARD policy drops.
    ipt -N HOST-GW-FWD
    ipt -A FORWARD -m comment --comment "host-gw-exec forward" -j HOST-GW-FWD
    ipt -A HOST-GW-FWD -s "$PODPATH_CLUSTER_CIDR" -j ACCEPT
    ipt -A HOST-GW-FWD -d "$PODPATH_CLUSTER_CIDR" -j ACCEPT
fi
