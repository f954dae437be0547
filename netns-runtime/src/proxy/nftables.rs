//! kube-proxy nftables mode: `ServiceTable` -> `nft -f` input (table ip kube-proxy).
//!
//! [`render`] produces the ruleset kube-proxy **v1.33** programs in nftables mode
//! (`pkg/proxy/nftables/proxier.go`, the layout used from v1.31, when `cluster-ips-check` and
//! `filter-output-post-dnat` appeared, through v1.33; v1.34 renamed and re-prioritised the filter
//! chains). It is written the way kube-proxy's own transactions and its unit tests write it
//! (knftables syntax: one `add ...` command a line), so a line here can be compared with a line
//! of kube-proxy's test expectations.
//!
//! # The file
//!
//! ```text
//! add table ip kube-proxy { comment "rules for kube-proxy" ; }
//! delete table ip kube-proxy
//! add table ip kube-proxy { comment "rules for kube-proxy" ; }
//! add chain ...      every chain, sorted by name (base chains with their hook and priority)
//! add set ...        every set, sorted by name
//! add map ...        every verdict map, sorted by name
//! add rule ...       chains sorted by name, each chain's rules in kube-proxy's order
//! add element ...    sets then maps, sorted by name; elements sorted by address, protocol, port
//! ```
//!
//! `nft -f` runs the whole file as one transaction, so applying it is atomic, and because it
//! starts by deleting whatever table was there (the first `add` makes the `delete` valid on a
//! fresh namespace), the result is exactly the rendered ruleset whatever was applied before:
//! applying it twice gives the same ruleset as applying it once. kube-proxy reaches the same
//! state differently: a full sync adds and flushes every object it owns, and chains of Services
//! that went away are flushed at once and deleted a second later. A pure renderer cannot know
//! what was there before, so it deletes the table instead. The one observable difference is that
//! re-applying empties the session-affinity sets (kube-proxy keeps their entries across syncs).
//!
//! Ordering is the only other freedom: kube-proxy iterates Go maps, so the order in which it
//! adds chains and elements is random; its tests compare sorted dumps. Here everything is sorted
//! as above, so equal tables render byte-identical files.
//!
//! # What the [`ServiceTable`] fields become
//!
//! - `node_name`: kube-proxy's `--hostname-override`; an endpoint is local when its
//!   `node_name` equals it (Local traffic policies).
//! - `node_ips`: the NodePort addresses. kube-proxy's nftables default is
//!   `--nodeport-addresses primary`, i.e. the node's own IPs: they fill `@nodeport-ips`, and
//!   NodePorts and `nodeport-endpoints-check` match `ip daddr @nodeport-ips`. Loopback addresses
//!   are skipped, as kube-proxy does. An empty list means `--nodeport-addresses 0.0.0.0/0`:
//!   no `nodeport-ips` set, and NodePorts match `fib daddr type local ip daddr != 127.0.0.0/8`.
//! - `cluster_cidr`: `--detect-local-mode ClusterCIDR`: `ip saddr != CIDR` masquerades
//!   off-cluster traffic to ClusterIPs, `ip saddr CIDR` short-circuits pod traffic to
//!   `externalTrafficPolicy: Local` NodePorts.
//! - `service_cidr`: the ServiceCIDR(s): `cluster-ips-check` drops traffic to addresses in it
//!   that are not an allocated ClusterIP (and rejects unknown ports of allocated ones).
//! - each [`ServicePort`] is one kube-proxy `ServicePortName`; `cluster_ip: None` (headless)
//!   renders nothing. `node_port` makes it externally accessible (NodePort or LoadBalancer
//!   type), and only then does `external_traffic_policy` matter, as in kube-proxy.
//! - endpoints are taken as the EndpointSlice cache hands them to kube-proxy: de-duplicated by
//!   `ip:port` (a non-terminating one wins), sorted by the `ip:port` string (so `10.0.0.10:80`
//!   sorts before `10.0.0.2:80`, and `numgen` indexes follow that order), then categorised:
//!   ready endpoints, falling back to serving-and-terminating ones when none is ready,
//!   independently for the Cluster and Local policies.
//!
//! Fixed kube-proxy settings: IPv4 only (`table ip`), `--masquerade-bit 14` (mark
//! `0x00004000`, written as kube-proxy's `%#08x` writes it), `--masquerade-all=false`, no
//! topology hints. The model has no LoadBalancer ingress, `externalIPs` or
//! `loadBalancerSourceRanges`, so `firewall-ips` stays empty and no `firewall-` chain is made,
//! exactly as kube-proxy does for a cluster without them.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use data_encoding::BASE32;
use sha2::{Digest, Sha256};

use super::{Endpoint, ServicePort, ServiceTable, TrafficPolicy};

/// The kube-proxy release whose nftables ruleset this module reproduces.
pub const KUBE_PROXY_VERSION: &str = "v1.33";
/// The nftables family and table kube-proxy uses for IPv4.
pub const FAMILY: &str = "ip";
pub const TABLE: &str = "kube-proxy";
/// `1 << 14` (`--masquerade-bit` default), formatted as kube-proxy formats it (`%#08x`).
pub const MASQUERADE_MARK: &str = "0x00004000";

// Base chains, named "${type}-${hook}".
pub const FILTER_PREROUTING: &str = "filter-prerouting";
pub const FILTER_INPUT: &str = "filter-input";
pub const FILTER_FORWARD: &str = "filter-forward";
pub const FILTER_OUTPUT: &str = "filter-output";
pub const FILTER_OUTPUT_POST_DNAT: &str = "filter-output-post-dnat";
pub const NAT_PREROUTING: &str = "nat-prerouting";
pub const NAT_OUTPUT: &str = "nat-output";
pub const NAT_POSTROUTING: &str = "nat-postrouting";

// Service dispatch.
pub const SERVICES: &str = "services";
pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NODEPORT_IPS: &str = "nodeport-ips";
pub const CLUSTER_IPS: &str = "cluster-ips";

// Services without (usable) endpoints.
pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub const REJECT_CHAIN: &str = "reject-chain";

// Unallocated ClusterIPs and undefined ports of ClusterIPs.
pub const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";

// LoadBalancerSourceRanges.
pub const FIREWALL_IPS: &str = "firewall-ips";
pub const FIREWALL_CHECK: &str = "firewall-check";

// Masquerading.
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
pub const MASQUERADING: &str = "masquerading";

// Per-service and per-endpoint object prefixes.
pub const SERVICE_PREFIX: &str = "service-";
pub const LOCAL_PREFIX: &str = "local-";
pub const EXTERNAL_PREFIX: &str = "external-";
pub const ENDPOINT_PREFIX: &str = "endpoint-";
pub const AFFINITY_PREFIX: &str = "affinity-";

/// nftables' limit on object names (knftables `NameLengthMax`).
const NAME_LENGTH_MAX: usize = 256;
/// Room kept for the longest prefix (`service-`, `endpoint-`, ...), hyphen included.
const CHAIN_NAME_PREFIX_LENGTH_MAX: usize = 16;
const CHAIN_NAME_BASE_LENGTH_MAX: usize = NAME_LENGTH_MAX - CHAIN_NAME_PREFIX_LENGTH_MAX;

/// kube-proxy's base chains: name, type, hook, priority. Filter chains run at `dstnat - 10`
/// (before DNAT, on the original destination), except `filter-output-post-dnat` at
/// `dstnat + 10`; knftables writes priorities as numbers (for the `ip` family, dstnat = -100
/// and srcnat = 100).
const BASE_CHAINS: [(&str, &str, &str, i32); 8] = [
    (FILTER_PREROUTING, "filter", "prerouting", -110),
    (FILTER_INPUT, "filter", "input", -110),
    (FILTER_FORWARD, "filter", "forward", -110),
    (FILTER_OUTPUT, "filter", "output", -110),
    (FILTER_OUTPUT_POST_DNAT, "filter", "output", -90),
    (NAT_PREROUTING, "nat", "prerouting", -100),
    (NAT_OUTPUT, "nat", "output", -100),
    (NAT_POSTROUTING, "nat", "postrouting", 100),
];

/// The regular chains jumped to from base chains: (target, from, match), in kube-proxy's order,
/// which is the order of the rules within each base chain.
const JUMP_CHAINS: [(&str, &str, &str); 11] = [
    (NODEPORT_ENDPOINTS_CHECK, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_INPUT, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_FORWARD, "ct state new"),
    (SERVICE_ENDPOINTS_CHECK, FILTER_OUTPUT, "ct state new"),
    (FIREWALL_CHECK, FILTER_PREROUTING, "ct state new"),
    (FIREWALL_CHECK, FILTER_OUTPUT, "ct state new"),
    (SERVICES, NAT_OUTPUT, ""),
    (SERVICES, NAT_PREROUTING, ""),
    (MASQUERADING, NAT_POSTROUTING, ""),
    (CLUSTER_IPS_CHECK, FILTER_FORWARD, "ct state new"),
    (CLUSTER_IPS_CHECK, FILTER_OUTPUT_POST_DNAT, "ct state new"),
];

/// Renders `table` as the `nft -f` input that makes a node's `table ip kube-proxy` exactly
/// what kube-proxy v1.33 in nftables mode would program for it. See the module documentation
/// for the layout, the ordering and how the table's fields are interpreted.
pub fn render(table: &ServiceTable) -> String {
    let mut rs = Ruleset::default();
    setup(&mut rs, table);
    for sp in &table.services {
        service(&mut rs, table, sp);
    }
    rs.write(&table.node_name)
}

/// kube-proxy's `ServicePortName.String()`: `namespace/name:port`, or `namespace/name` when
/// the port is unnamed. Used as the comment of `no-endpoint-*` elements.
pub fn service_port_name(sp: &ServicePort) -> String {
    if sp.port_name.is_empty() {
        format!("{}/{}", sp.namespace, sp.name)
    } else {
        format!("{}/{}:{}", sp.namespace, sp.name, sp.port_name)
    }
}

/// kube-proxy's `hashAndTruncate`: the first 8 characters of the base32 (RFC 4648 alphabet)
/// SHA-256 of `name`, a hyphen, then `name`; cut to 240 characters ending in `...` if longer.
pub fn hash_and_truncate(name: &str) -> String {
    let hash = Sha256::digest(name.as_bytes());
    let encoded = BASE32.encode(&hash);
    let mut out = format!("{}-{}", &encoded[..8], name);
    if out.len() > CHAIN_NAME_BASE_LENGTH_MAX {
        // Kubernetes names, protocols and IPv4 endpoints are ASCII: byte positions are
        // character positions.
        out.truncate(CHAIN_NAME_BASE_LENGTH_MAX - 3);
        out.push_str("...");
    }
    out
}

/// kube-proxy's `servicePortChainNameBase`: `HASH-namespace/name/protocol/portname`, e.g.
/// `ULMVA6XW-ns1/svc1/tcp/p80`. Prefixed with `service-`, `local-` or `external-`.
pub fn service_chain_base(sp: &ServicePort) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        sp.namespace, sp.name, sp.protocol, sp.port_name
    ))
}

/// kube-proxy's `servicePortEndpointChainNameBase`:
/// `HASH-namespace/name/protocol/portname__ip/port`, e.g.
/// `5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80`. Prefixed with `endpoint-` or `affinity-`.
pub fn endpoint_chain_base(sp: &ServicePort, ip: Ipv4Addr, port: u16) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        sp.namespace, sp.name, sp.protocol, sp.port_name, ip, port
    ))
}

/// The `numgen` load-balancing rule of a policy chain over `targets` (endpoint chains), as
/// kube-proxy writes it: `numgen random mod N vmap { 0 : goto A , 1 : goto B }`.
pub fn numgen_rule(targets: &[String]) -> String {
    let elements: Vec<String> = targets
        .iter()
        .enumerate()
        .map(|(i, chain)| format!("{i} : goto {chain}"))
        .collect();
    format!(
        "numgen random mod {} vmap {{ {} }}",
        targets.len(),
        elements.join(" , ")
    )
}

/// The table-wide objects kube-proxy's `setupNFTables` creates on every full sync.
fn setup(rs: &mut Ruleset, table: &ServiceTable) {
    for (name, kind, hook, priority) in BASE_CHAINS {
        rs.chain_with(
            name,
            format!(" {{ type {kind} hook {hook} priority {priority} ; }}"),
        );
    }
    for (target, from, matches) in JUMP_CHAINS {
        rs.chain(target);
        rs.rule(from, join(&[matches, "jump", target]));
    }
    for name in [
        SERVICES,
        CLUSTER_IPS_CHECK,
        MASQUERADING,
        MARK_FOR_MASQUERADE,
    ] {
        rs.chain(name);
    }

    rs.rule(
        MARK_FOR_MASQUERADE,
        format!("mark set mark or {MASQUERADE_MARK}"),
    );
    rs.rule(
        MASQUERADING,
        format!("mark and {MASQUERADE_MARK} == 0 return"),
    );
    rs.rule(MASQUERADING, format!("mark set mark xor {MASQUERADE_MARK}"));
    rs.rule(MASQUERADING, "masquerade fully-random".into());

    rs.set(CLUSTER_IPS, "ipv4_addr", "Active ClusterIPs");
    rs.rule(
        CLUSTER_IPS_CHECK,
        commented(
            &format!("ip daddr @{CLUSTER_IPS} reject"),
            "Reject traffic to invalid ports of ClusterIPs",
        ),
    );
    rs.rule(
        CLUSTER_IPS_CHECK,
        commented(
            &format!("ip daddr {{ {} }} drop", table.service_cidr.trunc()),
            "Drop traffic to unallocated ClusterIPs",
        ),
    );

    let nodeport_ips: Vec<Ipv4Addr> = table
        .node_ips
        .iter()
        .copied()
        .filter(|ip| !ip.is_loopback())
        .collect();
    // kube-proxy matches NodePorts on every local address only when --nodeport-addresses
    // covers everything; that is what an empty `node_ips` stands for.
    let match_all = table.node_ips.is_empty();
    if !match_all {
        rs.set(
            NODEPORT_IPS,
            "ipv4_addr",
            "IPs that accept NodePort traffic",
        );
        for ip in nodeport_ips {
            rs.element(NODEPORT_IPS, ElemKey::addr(ip), ip.to_string());
        }
    }

    rs.map(
        NO_ENDPOINT_SERVICES,
        "ipv4_addr . inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to services with no endpoints",
    );
    rs.map(
        NO_ENDPOINT_NODEPORTS,
        "inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to service nodeports with no endpoints",
    );
    rs.chain_with(
        REJECT_CHAIN,
        format!(
            " {{ comment {} ; }}",
            quote("helper for @no-endpoint-services / @no-endpoint-nodeports")
        ),
    );
    rs.rule(REJECT_CHAIN, "reject".into());
    rs.rule(
        SERVICE_ENDPOINTS_CHECK,
        format!("ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"),
    );
    let nodeport_daddr = if match_all {
        "ip daddr != 127.0.0.0/8".to_string()
    } else {
        format!("ip daddr @{NODEPORT_IPS}")
    };
    rs.rule(
        NODEPORT_ENDPOINTS_CHECK,
        format!("{nodeport_daddr} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"),
    );

    rs.map(
        FIREWALL_IPS,
        "ipv4_addr . inet_proto . inet_service : verdict",
        "destinations that are subject to LoadBalancerSourceRanges",
    );
    rs.rule(
        FIREWALL_CHECK,
        format!("ip daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}"),
    );

    rs.map(
        SERVICE_IPS,
        "ipv4_addr . inet_proto . inet_service : verdict",
        "ClusterIP, ExternalIP and LoadBalancer IP traffic",
    );
    rs.map(
        SERVICE_NODEPORTS,
        "inet_proto . inet_service : verdict",
        "NodePort traffic",
    );
    rs.rule(
        SERVICES,
        format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
    );
    let nodeport_match = if match_all {
        "fib daddr type local ip daddr != 127.0.0.0/8".to_string()
    } else {
        format!("ip daddr @{NODEPORT_IPS}")
    };
    rs.rule(
        SERVICES,
        format!("{nodeport_match} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
    );
}

/// Endpoints of one Service port, sorted and split the way kube-proxy's
/// `CategorizeEndpoints` splits them (without topology hints, which the model lacks).
struct Categorized<'a> {
    /// Usable endpoints under the Cluster policy (empty when the port never uses it).
    cluster: Vec<&'a Endpoint>,
    /// Usable endpoints on this node under the Local policy (empty when never used).
    local: Vec<&'a Endpoint>,
    /// Every endpoint this node may DNAT to: the union of the two, sorted.
    reachable: Vec<&'a Endpoint>,
    /// Whether the port has a usable endpoint anywhere in the cluster.
    has_any: bool,
}

fn ep_key(ep: &Endpoint) -> String {
    format!("{}:{}", ep.ip, ep.port)
}

fn categorize<'a>(
    sp: &'a ServicePort,
    node: &str,
    uses_cluster: bool,
    uses_local: bool,
) -> Categorized<'a> {
    // The EndpointSlice cache: one endpoint per ip:port (a terminating duplicate never
    // replaces another), sorted by the ip:port string.
    let mut by_key: BTreeMap<String, &Endpoint> = BTreeMap::new();
    for ep in &sp.endpoints {
        let key = ep_key(ep);
        if !by_key.contains_key(&key) || !ep.terminating {
            by_key.insert(key, ep);
        }
    }
    let endpoints: Vec<&Endpoint> = by_key.into_values().collect();
    let local = |ep: &Endpoint| sp.is_local(ep, node);
    let serving_terminating = |ep: &Endpoint| ep.serving && ep.terminating;

    let mut has_any = false;
    let mut cluster = Vec::new();
    if uses_cluster {
        cluster = endpoints.iter().copied().filter(|ep| ep.ready).collect();
        if cluster.is_empty() {
            cluster = endpoints
                .iter()
                .copied()
                .filter(|ep| serving_terminating(ep))
                .collect();
        }
        has_any = !cluster.is_empty();
    }
    if !uses_local {
        let reachable = cluster.clone();
        return Categorized {
            cluster,
            local: Vec::new(),
            reachable,
            has_any,
        };
    }

    let (mut local_ready, mut local_serving_terminating) = (false, false);
    for ep in &endpoints {
        if ep.ready {
            has_any = true;
            local_ready |= local(ep);
        } else if serving_terminating(ep) {
            has_any = true;
            local_serving_terminating |= local(ep);
        }
    }
    let mut uses_serving_terminating = false;
    let local_eps: Vec<&Endpoint> = if local_ready {
        endpoints
            .iter()
            .copied()
            .filter(|ep| local(ep) && ep.ready)
            .collect()
    } else if local_serving_terminating {
        uses_serving_terminating = true;
        endpoints
            .iter()
            .copied()
            .filter(|ep| local(ep) && serving_terminating(ep))
            .collect()
    } else {
        Vec::new()
    };

    let reachable = if !uses_cluster {
        local_eps.clone()
    } else if !uses_serving_terminating {
        // Without topology, the Cluster endpoints are every ready endpoint, a superset of
        // the local ready ones.
        cluster.clone()
    } else {
        let mut union: BTreeMap<String, &Endpoint> = BTreeMap::new();
        for ep in cluster.iter().chain(&local_eps) {
            union.insert(ep_key(ep), ep);
        }
        union.into_values().collect()
    };
    Categorized {
        cluster,
        local: local_eps,
        reachable,
        has_any,
    }
}

/// Everything kube-proxy's `syncProxyRules` writes for one Service port.
fn service(rs: &mut Ruleset, table: &ServiceTable, sp: &ServicePort) {
    let Some(cluster_ip) = sp.cluster_ip else {
        // Headless: kube-proxy skips the Service entirely.
        return;
    };
    let proto = sp.protocol.to_string();
    let proto_key: &'static str = match sp.protocol {
        crate::topology::Proto::Tcp => "tcp",
        crate::topology::Proto::Udp => "udp",
    };
    let name_string = service_port_name(sp);
    let cluster_cidr = table.cluster_cidr.trunc();

    let externally_accessible = sp.node_port.is_some();
    let internal_local = sp.internal_traffic_policy == TrafficPolicy::Local;
    // `ExternalPolicyLocal` only holds for NodePort and LoadBalancer Services, which are
    // exactly those with a node port here.
    let external_local =
        sp.external_traffic_policy == TrafficPolicy::Local && externally_accessible;
    let uses_cluster = !internal_local || externally_accessible;
    let uses_local = internal_local || external_local;
    let eps = categorize(sp, &table.node_name, uses_cluster, uses_local);

    let base = service_chain_base(sp);
    let cluster_chain = format!("{SERVICE_PREFIX}{base}");
    let local_chain = format!("{LOCAL_PREFIX}{base}");
    let external_chain = format!("{EXTERNAL_PREFIX}{base}");
    let endpoint_chain = |ep: &Endpoint| {
        format!(
            "{ENDPOINT_PREFIX}{}",
            endpoint_chain_base(sp, ep.ip, ep.port)
        )
    };
    let affinity_set = |ep: &Endpoint| {
        format!(
            "{AFFINITY_PREFIX}{}",
            endpoint_chain_base(sp, ep.ip, ep.port)
        )
    };

    for ep in &eps.reachable {
        rs.chain(&endpoint_chain(ep));
    }
    let uses_cluster_chain = !eps.cluster.is_empty() && uses_cluster;
    if uses_cluster_chain {
        rs.chain(&cluster_chain);
    }
    let uses_local_chain = !eps.local.is_empty() && uses_local;
    if uses_local_chain {
        rs.chain(&local_chain);
    }

    let (internal_chain, has_internal) = if internal_local {
        (&local_chain, eps.has_any && !eps.local.is_empty())
    } else {
        (&cluster_chain, eps.has_any)
    };
    let (external_policy_chain, has_external) = if external_local {
        (&local_chain, eps.has_any && !eps.local.is_empty())
    } else {
        (&cluster_chain, eps.has_any)
    };
    let uses_external_chain = eps.has_any && externally_accessible;
    if uses_external_chain {
        rs.chain(&external_chain);
    }

    // No endpoints at all: reject. Endpoints, but none for a Local policy: drop.
    let (internal_verdict, external_verdict) = if !eps.has_any {
        let reject = format!("goto {REJECT_CHAIN}");
        (reject.clone(), reject)
    } else {
        ("drop".to_string(), "drop".to_string())
    };

    let vip_key = ElemKey {
        addr: Some(cluster_ip),
        proto: proto_key,
        port: sp.port,
    };
    let vip = format!("{cluster_ip} . {proto} . {}", sp.port);
    rs.element(
        CLUSTER_IPS,
        ElemKey::addr(cluster_ip),
        cluster_ip.to_string(),
    );
    if has_internal {
        rs.element(
            SERVICE_IPS,
            vip_key,
            format!("{vip} : goto {internal_chain}"),
        );
    } else {
        rs.element(
            NO_ENDPOINT_SERVICES,
            vip_key,
            format!("{vip} comment {} : {internal_verdict}", quote(&name_string)),
        );
    }

    if let Some(node_port) = sp.node_port {
        let np_key = ElemKey {
            addr: None,
            proto: proto_key,
            port: node_port,
        };
        if eps.has_any {
            rs.element(
                SERVICE_NODEPORTS,
                np_key,
                format!("{proto} . {node_port} : goto {external_chain}"),
            );
        }
        if !has_external {
            rs.element(
                NO_ENDPOINT_NODEPORTS,
                np_key,
                format!(
                    "{proto} . {node_port} comment {} : {external_verdict}",
                    quote(&name_string)
                ),
            );
        }
    }

    // Internal traffic: masquerade what comes to the ClusterIP from outside the cluster CIDR.
    if has_internal {
        rs.rule(
            internal_chain,
            format!(
                "ip daddr {cluster_ip} {proto} dport {} ip saddr != {cluster_cidr} jump {MARK_FOR_MASQUERADE}",
                sp.port
            ),
        );
    }

    // External traffic (NodePorts).
    if uses_external_chain {
        if !external_local {
            rs.rule(&external_chain, format!("jump {MARK_FOR_MASQUERADE}"));
        } else {
            rs.rule(
                &external_chain,
                commented(
                    &format!("ip saddr {cluster_cidr} goto {cluster_chain}"),
                    "short-circuit pod traffic",
                ),
            );
            rs.rule(
                &external_chain,
                commented(
                    &format!("fib saddr type local jump {MARK_FOR_MASQUERADE}"),
                    "masquerade local traffic",
                ),
            );
            rs.rule(
                &external_chain,
                commented(
                    &format!("fib saddr type local goto {cluster_chain}"),
                    "short-circuit local traffic",
                ),
            );
        }
        if has_external {
            rs.rule(&external_chain, format!("goto {external_policy_chain}"));
        }
    }

    if let Some(timeout) = sp.affinity_timeout {
        for ep in &eps.reachable {
            rs.set_with(
                &affinity_set(ep),
                format!(" {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"),
            );
        }
    }

    let policy_rules = |rs: &mut Ruleset, chain: &str, endpoints: &[&Endpoint]| {
        if sp.affinity_timeout.is_some() {
            for ep in endpoints {
                rs.rule(
                    chain,
                    format!("ip saddr @{} goto {}", affinity_set(ep), endpoint_chain(ep)),
                );
            }
        }
        let targets: Vec<String> = endpoints.iter().map(|ep| endpoint_chain(ep)).collect();
        rs.rule(chain, numgen_rule(&targets));
    };
    if uses_cluster_chain {
        policy_rules(rs, &cluster_chain, &eps.cluster);
    }
    if uses_local_chain {
        policy_rules(rs, &local_chain, &eps.local);
    }

    for ep in &eps.reachable {
        let chain = endpoint_chain(ep);
        rs.rule(
            &chain,
            format!("ip saddr {} jump {MARK_FOR_MASQUERADE}", ep.ip),
        );
        if sp.affinity_timeout.is_some() {
            rs.rule(
                &chain,
                format!("update @{} {{ ip saddr }}", affinity_set(ep)),
            );
        }
        rs.rule(
            &chain,
            format!("meta l4proto {proto} dnat to {}:{}", ep.ip, ep.port),
        );
    }
}

/// Joins non-empty words with single spaces (knftables' `Concat`).
fn join(words: &[&str]) -> String {
    words
        .iter()
        .filter(|w| !w.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A rule followed by its comment, as knftables appends it.
fn commented(rule: &str, comment: &str) -> String {
    format!("{rule} comment {}", quote(comment))
}

/// A double-quoted nft string (Go's `%q` for the ASCII text kube-proxy writes).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The sort key of a set or map element: address, then protocol, then port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ElemKey {
    addr: Option<Ipv4Addr>,
    proto: &'static str,
    port: u16,
}

impl ElemKey {
    fn addr(ip: Ipv4Addr) -> Self {
        ElemKey {
            addr: Some(ip),
            proto: "",
            port: 0,
        }
    }
}

#[derive(Default)]
struct Chain {
    /// What follows the name in `add chain`: empty, or ` { ... }`.
    spec: String,
    rules: Vec<String>,
}

struct Container {
    /// What follows the name in `add set` / `add map`.
    spec: String,
    /// Element text (between the braces of `add element`), by sort key.
    elements: BTreeMap<ElemKey, String>,
}

/// The table being built: kube-proxy's transaction, collected into sorted objects.
#[derive(Default)]
struct Ruleset {
    chains: BTreeMap<String, Chain>,
    sets: BTreeMap<String, Container>,
    maps: BTreeMap<String, Container>,
}

impl Ruleset {
    /// kube-proxy's `ensureChain` for a regular chain.
    fn chain(&mut self, name: &str) {
        self.chains.entry(name.to_string()).or_default();
    }

    fn chain_with(&mut self, name: &str, spec: String) {
        self.chains.entry(name.to_string()).or_default().spec = spec;
    }

    fn rule(&mut self, chain: &str, rule: String) {
        self.chains
            .get_mut(chain)
            .unwrap_or_else(|| panic!("rule for chain {chain} before the chain was added"))
            .rules
            .push(rule);
    }

    fn set(&mut self, name: &str, kind: &str, comment: &str) {
        self.set_with(
            name,
            format!(" {{ type {kind} ; comment {} ; }}", quote(comment)),
        );
    }

    fn set_with(&mut self, name: &str, spec: String) {
        self.sets.entry(name.to_string()).or_insert(Container {
            spec,
            elements: BTreeMap::new(),
        });
    }

    fn map(&mut self, name: &str, kind: &str, comment: &str) {
        self.maps.entry(name.to_string()).or_insert(Container {
            spec: format!(" {{ type {kind} ; comment {} ; }}", quote(comment)),
            elements: BTreeMap::new(),
        });
    }

    fn element(&mut self, container: &str, key: ElemKey, text: String) {
        let target = match self.sets.get_mut(container) {
            Some(set) => set,
            None => self
                .maps
                .get_mut(container)
                .unwrap_or_else(|| panic!("element for {container} before it was added")),
        };
        target.elements.insert(key, text);
    }

    fn write(&self, node: &str) -> String {
        // The header is an nft comment: keep it on one line whatever the name holds.
        let node: String = node
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let prefix = format!("{FAMILY} {TABLE}");
        let table = format!(
            "add table {prefix} {{ comment {} ; }}",
            quote("rules for kube-proxy")
        );
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# kube-proxy {KUBE_PROXY_VERSION} nftables mode, node {node}: a full, idempotent apply for nft -f"
        );
        let _ = writeln!(out, "{table}");
        let _ = writeln!(out, "delete table {prefix}");
        let _ = writeln!(out, "{table}");
        for (name, chain) in &self.chains {
            let _ = writeln!(out, "add chain {prefix} {name}{}", chain.spec);
        }
        for (name, set) in &self.sets {
            let _ = writeln!(out, "add set {prefix} {name}{}", set.spec);
        }
        for (name, map) in &self.maps {
            let _ = writeln!(out, "add map {prefix} {name}{}", map.spec);
        }
        for (name, chain) in &self.chains {
            for rule in &chain.rules {
                let _ = writeln!(out, "add rule {prefix} {name} {rule}");
            }
        }
        for (name, container) in self.sets.iter().chain(&self.maps) {
            for element in container.elements.values() {
                let _ = writeln!(out, "add element {prefix} {name} {{ {element} }}");
            }
        }
        out
    }
}

/// Every object name `text` (a rendered file) declares, by kind (`chain`, `set`, `map`).
pub fn declared_objects(text: &str) -> HashMap<&'static str, Vec<String>> {
    let mut out: HashMap<&'static str, Vec<String>> = HashMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("add") {
            continue;
        }
        let kind: &'static str = match words.next() {
            Some("chain") => "chain",
            Some("set") => "set",
            Some("map") => "map",
            _ => continue,
        };
        if let (Some(_family), Some(_table), Some(name)) =
            (words.next(), words.next(), words.next())
        {
            out.entry(kind).or_default().push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests;
