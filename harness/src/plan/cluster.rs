//! The `cluster:` section: pod, Service and node networks, overlay, MTU and proxy modes.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netns_runtime::proxy::driver::ProxyMode;
use serde_saphyr::Spanned;

use super::context::{ClusterParams, Overlay, Planner, YamlLocation};
use super::parse::quoted;
use super::topology::VXLAN_OVERHEAD;
use crate::case::{ClusterSpec, PodNames};

/// Default cluster pod network (kind's and flannel's).
pub const DEFAULT_POD_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 244, 0, 0), 16);

/// Default per-node pod subnet prefix length (flannel's `SubnetLen`).
pub const DEFAULT_SUBNET_LEN: u8 = 24;

/// Default Service network (kubeadm's and kind's `--service-cluster-ip-range`).
pub const DEFAULT_SERVICE_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 96, 0, 0), 12);

/// Default underlay network (kind's docker network).
pub const DEFAULT_NODE_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(172, 18, 0, 0), 16);

/// Default underlay MTU.
pub const DEFAULT_MTU: u32 = 1500;

/// Smallest and largest underlay MTU accepted (IPv4's minimum datagram size; jumbo frames).
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 576..=9000;

/// IPv4 ranges that cannot hold pods, nodes or Services: the kernel treats their addresses
/// specially (RFC 6890), so a cluster there breaks during the build or its flows fail in
/// misleading ways. Each with its name and what goes wrong.
pub const SPECIAL_RANGES: [(Ipv4Net, &str, &str); 5] = [
    (
        Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
        "\"this network\" range",
        "its addresses mean \"this host\" and are never assigned to an interface",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
        "loopback range",
        "the kernel delivers its addresses to each namespace's own loopback, never over a link",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
        "link-local range",
        "its addresses are never routed beyond one link",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4),
        "multicast range",
        "its addresses name groups, not hosts, and cannot be a gateway",
    ),
    (
        Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
        "reserved range (with the broadcast address 255.255.255.255)",
        "the kernel does not route its addresses",
    ),
];

/// The first special range (see [`SPECIAL_RANGES`]) `net` shares addresses with, if any.
pub fn special_range(net: Ipv4Net) -> Option<(Ipv4Net, &'static str, &'static str)> {
    SPECIAL_RANGES
        .into_iter()
        .find(|(range, _, _)| range.contains(&net.network()) || net.contains(&range.network()))
}

/// Why `net` (written as `what`) cannot be used, if it touches a special range: the message
/// names the range and what goes wrong there.
pub fn special_range_problem(what: &str, net: Ipv4Net) -> Option<String> {
    let (range, name, why) = special_range(net)?;
    let relation = if range.contains(&net.network()) {
        "is in"
    } else {
        "contains"
    };
    let shown = if net.prefix_len() == 32 {
        net.addr().to_string()
    } else {
        net.to_string()
    };
    Some(format!(
        "{what} {shown} {relation} the {name} {range}: {why}; use a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)"
    ))
}

impl Planner {
    pub(super) fn cluster(
        &mut self,
        spec: &ClusterSpec,
        root: YamlLocation,
        has_services: bool,
    ) -> ClusterParams {
        let pod_cidr = match &spec.pod_cidr {
            Some(v) => self.ordinary_cidr("podCIDR", v),
            None => Some(DEFAULT_POD_CIDR),
        };
        let node_cidr = match &spec.node_cidr {
            Some(v) => self.ordinary_cidr("nodeCIDR", v).filter(|cidr| {
                let ok = cidr.prefix_len() <= 30;
                if !ok {
                    self.error(
                        v.referenced,
                        format!("nodeCIDR {cidr} is too small: a node needs an address that is neither the network nor the broadcast address (use /30 or shorter)"),
                    );
                }
                ok
            }),
            None => Some(DEFAULT_NODE_CIDR),
        };

        let subnet_len = match &spec.subnet_len {
            Some(v) => self.number("subnetLen", v).and_then(|n| {
                if n > 30 {
                    self.error(
                        v.referenced,
                        format!("subnetLen {n} is too long: at most 30, so a node subnet holds its gateway and a pod"),
                    );
                    None
                } else {
                    u8::try_from(n).ok()
                }
            }),
            None => Some(DEFAULT_SUBNET_LEN),
        };
        let subnet_len = match (pod_cidr, subnet_len) {
            (Some(pods), Some(len)) if len <= pods.prefix_len() => {
                let at = spec
                    .subnet_len
                    .as_ref()
                    .or(spec.pod_cidr.as_ref())
                    .map_or(root, |v| v.referenced);
                self.error(
                    at,
                    format!("subnetLen {len} must be longer than the podCIDR prefix /{} (podCIDR {pods} is split into one subnet per node)", pods.prefix_len()),
                );
                None
            }
            (_, len) => len,
        };

        if let (Some(pods), Some(nodes)) = (pod_cidr, node_cidr)
            && (pods.contains(&nodes.network()) || nodes.contains(&pods.network()))
        {
            let at = spec
                .pod_cidr
                .as_ref()
                .or(spec.node_cidr.as_ref())
                .map_or(root, |v| v.referenced);
            self.error(at, format!("podCIDR {pods} overlaps nodeCIDR {nodes}"));
        }

        let overlay = match &spec.overlay {
            Some(v) => match v.value.as_str() {
                "vxlan" => Some(Overlay::Vxlan),
                "host-gw" => Some(Overlay::HostGw),
                "none" => Some(Overlay::None),
                other => {
                    self.error(
                        v.referenced,
                        format!(
                            "unknown overlay {}: expected vxlan, host-gw or none",
                            quoted(other)
                        ),
                    );
                    None
                }
            },
            None => Some(Overlay::Vxlan),
        };

        let mtu = match &spec.mtu {
            Some(v) => self.number("mtu", v).and_then(|n| {
                let mtu = u32::try_from(n).ok().filter(|m| MTU_RANGE.contains(m));
                match mtu {
                    None => {
                        self.error(
                            v.referenced,
                            format!("mtu {n} is out of range {}..={}", MTU_RANGE.start(), MTU_RANGE.end()),
                        );
                        None
                    }
                    Some(m) if overlay == Some(Overlay::Vxlan) && m - VXLAN_OVERHEAD < *MTU_RANGE.start() => {
                        self.error(
                            v.referenced,
                            format!(
                                "mtu {m} is too small for vxlan: pods would get {m} - {VXLAN_OVERHEAD} = {}, below {}; use at least {}",
                                m - VXLAN_OVERHEAD,
                                MTU_RANGE.start(),
                                MTU_RANGE.start() + VXLAN_OVERHEAD
                            ),
                        );
                        None
                    }
                    Some(m) => Some(m),
                }
            }),
            None => Some(DEFAULT_MTU),
        };

        let service_cidr = self.service_cidr(spec, root, pod_cidr, node_cidr, has_services);
        let proxy_modes = self.proxy_modes(spec, has_services);

        ClusterParams {
            pod_cidr,
            service_cidr,
            subnet_len,
            node_cidr,
            overlay,
            mtu,
            proxy_modes,
        }
    }

    /// A cluster CIDR that is well formed and clear of every special range.
    fn ordinary_cidr(&mut self, what: &str, value: &Spanned<String>) -> Option<Ipv4Net> {
        let cidr = self.cidr(what, value)?;
        if let Some(problem) = special_range_problem(what, cidr) {
            self.error(value.referenced, problem);
            return None;
        }
        Some(cidr)
    }

    /// `proxy`: one mode or a list; `none` alone means no proxy. Without it, a case with
    /// Services runs in both kube-proxy modes and a case without runs with no proxy.
    fn proxy_modes(&mut self, spec: &ClusterSpec, has_services: bool) -> Vec<ProxyMode> {
        let Some(written) = &spec.proxy else {
            return if has_services {
                ProxyMode::ALL.to_vec()
            } else {
                Vec::new()
            };
        };
        let names = PodNames::names(written);
        let mut modes = Vec::new();
        for name in &names {
            match name.value.as_str() {
                "none" if names.len() == 1 => {}
                "none" => self.error(
                    name.referenced,
                    "proxy `none` cannot be listed with other modes",
                ),
                other => match ProxyMode::parse(other) {
                    Some(m) if modes.contains(&m) => self.error(
                        name.referenced,
                        format!("proxy mode {} is listed twice", quoted(other)),
                    ),
                    Some(m) => modes.push(m),
                    None => self.error(
                        name.referenced,
                        format!(
                            "unknown proxy mode {}: expected iptables, nftables or none",
                            quoted(other)
                        ),
                    ),
                },
            }
        }
        if names.is_empty() {
            self.error(
                written.referenced,
                "`proxy` lists no mode: write none for no proxy",
            );
        }
        modes
    }

    /// The Service network: at most a /12 (as kube-apiserver requires), not overlapping the
    /// pod or node networks. The default one is only checked for overlaps when the case has
    /// Services, so that a case without any may use, say, podCIDR 10.100.0.0/16.
    fn service_cidr(
        &mut self,
        spec: &ClusterSpec,
        root: YamlLocation,
        pod_cidr: Option<Ipv4Net>,
        node_cidr: Option<Ipv4Net>,
        has_services: bool,
    ) -> Option<Ipv4Net> {
        let cidr = match &spec.service_cidr {
            None => DEFAULT_SERVICE_CIDR,
            Some(v) => {
                let cidr = self.ordinary_cidr("serviceCIDR", v)?;
                if cidr.prefix_len() < 12 {
                    self.error(
                        v.referenced,
                        format!(
                            "serviceCIDR {cidr} is too large: Kubernetes accepts at most a /12"
                        ),
                    );
                    return None;
                }
                if cidr.prefix_len() > 30 {
                    self.error(
                        v.referenced,
                        format!("serviceCIDR {cidr} is too small: use /30 or shorter, so a Service can get an address (the first host is never allocated)"),
                    );
                    return None;
                }
                cidr
            }
        };
        if spec.service_cidr.is_none() && !has_services {
            return Some(cidr);
        }
        let overlaps =
            |other: Ipv4Net| cidr.contains(&other.network()) || other.contains(&cidr.network());
        let mut ok = true;
        for (what, other, other_at) in [
            ("podCIDR", pod_cidr, &spec.pod_cidr),
            ("nodeCIDR", node_cidr, &spec.node_cidr),
        ] {
            if let Some(other) = other
                && overlaps(other)
            {
                let at = spec
                    .service_cidr
                    .as_ref()
                    .or(other_at.as_ref())
                    .map_or(root, |v| v.referenced);
                let message = if spec.service_cidr.is_some() {
                    format!("serviceCIDR {cidr} overlaps {what} {other}")
                } else {
                    format!(
                        "the default serviceCIDR {cidr} overlaps {what} {other}: set serviceCIDR"
                    )
                };
                self.error(at, message);
                ok = false;
            }
        }
        ok.then_some(cidr)
    }
}
