#!/bin/sh
# An `exec` pod attach of podpath's own: a small CNI-like plugin that proves podpath learns
# what an implementation decides. Per node a bridge `podbr0` holding the pod subnet's .1; per
# pod a veth pair into it (hairpin on) and an address counted down from the *top* of the
# node's subnet (.250, .249, ...), not what podpath would plan (.2, .3, ...). It prints a CNI
# result, as a plugin's ADD does.
#
# podpath runs it in the node's network namespace with PODPATH_POD, PODPATH_NETNS,
# PODPATH_IFNAME, PODPATH_POD_CIDR, PODPATH_MTU (and PODPATH_IP) set (docs/implementations.md). Only /24
# pod subnets are handled.
set -eu

cidr=${PODPATH_POD_CIDR:?}
case "$cidr" in
  */24) ;;
  *) echo "exec-attach.sh: only /24 pod subnets, not $cidr" >&2; exit 1 ;;
esac
prefix=${cidr%.*}
gateway="$prefix.1"
netns=$(basename "${PODPATH_NETNS:?}")
ifname=${PODPATH_IFNAME:-eth0}
mtu=${PODPATH_MTU:-1500}
bridge=podbr0

if ! ip link show "$bridge" >/dev/null 2>&1; then
  ip link add "$bridge" mtu "$mtu" type bridge
  ip addr add "$gateway/24" dev "$bridge"
  ip link set "$bridge" up
fi

# The address the case fixes (PODPATH_IP, as a runtime passes CNI's `ips`), or one more port
# on the bridge: one address further down.
if [ -n "${PODPATH_IP:-}" ]; then
  addr=$PODPATH_IP
else
  ports=$(ip -o link show master "$bridge" | wc -l)
  addr="$prefix.$((250 - ports))"
fi
host="pp$(printf %s "${PODPATH_POD:?}" | cksum | cut -d' ' -f1)"
host=$(printf %.15s "$host")

ip link add "$host" mtu "$mtu" type veth peer name "$ifname" mtu "$mtu" netns "$netns"
ip link set "$host" master "$bridge"
ip link set "$host" type bridge_slave hairpin on
ip link set "$host" up
ip -n "$netns" addr add "$addr/24" dev "$ifname"
ip -n "$netns" link set "$ifname" up
ip -n "$netns" route add default via "$gateway" dev "$ifname"
mac=$(ip netns exec "$netns" cat "/sys/class/net/$ifname/address")

cat <<JSON
{"cniVersion":"1.0.0",
 "interfaces":[{"name":"$host"},{"name":"$ifname","mac":"$mac","sandbox":"$PODPATH_NETNS"}],
 "ips":[{"address":"$addr/24","gateway":"$gateway","interface":1}]}
JSON
