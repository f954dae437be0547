//! kube-proxy iptables mode: [`ServiceTable`] -> `iptables-restore --noflush` input.
//!
//! # What this reproduces
//!
//! The ruleset of kube-proxy's iptables proxier (`pkg/proxy/iptables/proxier.go`,
//! `syncProxyRules`, with `proxy.CategorizeEndpoints` and the EndpointSlice cache), as of
//! Kubernetes v1.33 and v1.34 (two upstream revisions were read: the one whose
//! `CategorizeEndpoints` takes the node name for `PreferSameNode`, and the later one with the
//! `pkg/proxy/runner` sync runner; they generate the same rules), on a node whose kube-proxy
//! runs with its defaults: `--detect-local-mode=ClusterCIDR` with
//! `--cluster-cidr` = [`ServiceTable::cluster_cidr`], `--masquerade-all=false`,
//! `--iptables-masquerade-bit=14`, `iptables.localhostNodePorts=true`, no
//! `--nodeport-addresses`, `nf_conntrack_tcp_be_liberal=0`, an `iptables` that supports
//! `--random-fully`, and (see [`Options::nfacct`]) no nfacct counters. [`Options`] changes
//! those knobs.
//!
//! Every rule is written with kube-proxy's own argument order and comment text (so the text is
//! what kube-proxy hands `iptables-restore`, not what `iptables-save` prints back), and:
//!
//! * chain names hash like kube-proxy: the first 16 characters of
//!   `base32(sha256(<ServicePortName> + <lowercase protocol>))` behind `KUBE-SVC-` (Cluster
//!   policy endpoints), `KUBE-SVL-` (Local policy endpoints) and `KUBE-EXT-` (external
//!   destinations), and with `<ip>:<port>` appended behind `KUBE-SEP-` (one endpoint);
//! * endpoints are deduplicated by `ip:port` and sorted by that string, as kube-proxy's
//!   EndpointSlice cache does, then split into Cluster and Local endpoints as
//!   `proxy.CategorizeEndpoints` does (ready endpoints, else serving-and-terminating ones;
//!   no topology hints exist in the model);
//! * the probability of the *i*-th of *n* endpoint rules (all but the last) is `1/(n-i)` with
//!   ten decimals;
//! * more than 1000 endpoints in the table switch to kube-proxy's "large cluster mode" (no
//!   comments on the `KUBE-SVC`/`KUBE-SVL` -> `KUBE-SEP` and `KUBE-SEP` rules).
//!
//! # Output and ordering
//!
//! [`render`] is a complete `iptables-restore --noflush` input for a fresh node: a `*mangle`,
//! a `*filter` and a `*nat` section, each with `:CHAIN - [0:0]` declarations for kube-proxy's
//! own chains only (declaring a chain under `--noflush` creates or flushes it; the builtin
//! chains are neither declared nor flushed), then kube-proxy's jump rules into its chains,
//! then the rules of one sync, then `COMMIT`.
//!
//! * The jump rules (`PREROUTING`/`OUTPUT` -> `KUBE-SERVICES`, `POSTROUTING` ->
//!   `KUBE-POSTROUTING`, `INPUT`/`FORWARD`/`OUTPUT` -> the filter chains, and `KUBE-FIREWALL`)
//!   are the ones kube-proxy "ensures" with `iptables -I` before its restore; they are written
//!   as `-I` lines in kube-proxy's order, so the builtin chains end up exactly as kube-proxy
//!   leaves them on a fresh node. They are not idempotent: applying [`render`] twice inserts
//!   them twice. To re-program Services on a node that already has them, apply
//!   [`render_sync`], which is exactly the text one kube-proxy sync restores (it flushes and
//!   refills kube-proxy's chains, and does not delete chains of Services that disappeared), or
//!   [`render_resync`], which also deletes them as kube-proxy's full sync does after reading
//!   `iptables-save -t nat` (what the builtin driver applies to a node that has rules).
//! * `KUBE-PROXY-CANARY` is declared (empty) in mangle, filter and nat: kube-proxy's monitor
//!   creates it in those three tables to notice a flush. `KUBE-KUBELET-CANARY` belongs to
//!   kubelet and is not written.
//! * Services are rendered in the order of [`ServiceTable::services`] (kube-proxy walks a Go
//!   map, so its order varies from sync to sync; no rule's meaning depends on the order between
//!   Services, only on the order within a chain, which is kube-proxy's). The `KUBE-SERVICES`
//!   jump to `KUBE-NODEPORTS` is the last rule of that chain, as kube-proxy requires. When a
//!   Service's endpoint chains are the union of its Cluster and Local endpoints (the
//!   terminating fallback), kube-proxy writes them in map order; here they are sorted.
//!
//! # Deviations from kube-proxy
//!
//! * The masquerade mark is written `0x4000`, as kube-proxy's unit tests and `iptables-save`
//!   show it; kube-proxy itself formats it with Go's `%#08x`, i.e. `0x00004000`. The kernel rule
//!   is the same.
//! * The model has no externalIPs, LoadBalancer ingress, `loadBalancerSourceRanges` or
//!   `healthCheckNodePort`, so no `KUBE-FW-` chains, no `KUBE-PROXY-FIREWALL` rules and no
//!   health-check `ACCEPT` in filter `KUBE-NODEPORTS` are ever written (the chains themselves
//!   are declared and jumped to, as kube-proxy always does). SCTP is not modelled.
//! * A Service is "externally accessible" when it has a `node_port` (kube-proxy: a NodePort,
//!   an externalIP or a LoadBalancer IP), and `externalTrafficPolicy: Local` only counts for it
//!   (kube-proxy reads it only for NodePort and LoadBalancer Services).

use std::collections::HashMap;
use std::fmt::Write as _;

use data_encoding::BASE32;
use sha2::{Digest, Sha256};

use super::{Endpoint, ServicePort, ServiceTable, TrafficPolicy};

/// nat and filter: the entry chain for Service IPs.
pub const KUBE_SERVICES: &str = "KUBE-SERVICES";
/// filter: rejects or drops traffic to external destinations without usable endpoints.
pub const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
/// nat: NodePort dispatch; filter: health-check node ports.
pub const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
/// nat: masquerades what `KUBE-MARK-MASQ` marked.
pub const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
/// nat: marks a packet for masquerading.
pub const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
/// filter: lets forwarded Service traffic through a `DROP` FORWARD policy.
pub const KUBE_FORWARD: &str = "KUBE-FORWARD";
/// filter: `loadBalancerSourceRanges` drops.
pub const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";
/// mangle, nat, filter: the empty chain whose disappearance tells kube-proxy it was flushed.
pub const KUBE_PROXY_CANARY: &str = "KUBE-PROXY-CANARY";
/// filter: kubelet's anti-martian rule for localhost NodePorts, duplicated by kube-proxy.
pub const KUBE_FIREWALL: &str = "KUBE-FIREWALL";

/// Above this many endpoints kube-proxy drops the per-endpoint comments.
const LARGE_CLUSTER_ENDPOINTS_THRESHOLD: usize = 1000;

/// The comment of the last `KUBE-SERVICES` rule.
const NODEPORTS_COMMENT: &str =
    "\"kubernetes service nodeports; NOTE: this must be the last rule in this chain\"";

/// kube-proxy's names for its nfacct counters.
const NFACCT_CT_INVALID: &str = "ct_state_invalid_dropped_pkts";
const NFACCT_LOCALHOST_NODEPORTS: &str = "localhost_nps_accepted_pkts";

/// The kube-proxy configuration knobs that change the rules. [`Default`] is kube-proxy's
/// default configuration on a typical node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--masquerade-all`: masquerade all ClusterIP traffic, not only traffic from outside the
    /// cluster CIDR. Default `false`.
    pub masquerade_all: bool,
    /// `--iptables-masquerade-bit`: the mark bit for masquerading. Default 14 (`0x4000`).
    pub masquerade_bit: u8,
    /// `iptables.localhostNodePorts`: NodePorts answer on 127.0.0.0/8 (kube-proxy then also
    /// writes the `KUBE-FIREWALL` anti-martian rule and sets `route_localnet=1`, which the
    /// applier must do). Default `true`.
    pub localhost_node_ports: bool,
    /// Whether `iptables` supports `MASQUERADE --random-fully` (every iptables since 1.6.2).
    /// Default `true`.
    pub random_fully: bool,
    /// Whether `net.netfilter.nf_conntrack_tcp_be_liberal` is set on the node; kube-proxy then
    /// omits the `ctstate INVALID` drop. Default `false`.
    pub conntrack_tcp_be_liberal: bool,
    /// Whether kube-proxy could create its nfacct counters (`ct_state_invalid_dropped_pkts`,
    /// `localhost_nps_accepted_pkts`) over nfnetlink; it then adds `-m nfacct` to the INVALID
    /// drop and an extra localhost rule per NodePort. The applier must create the counters
    /// first (`nfacct add NAME`, or NFNL_MSG_ACCT_NEW over nfnetlink as kube-proxy does), or the
    /// restore fails. Default `false`, which is kube-proxy on a kernel without
    /// `nfnetlink_acct`/`xt_nfacct` (it then silently goes without them): it needs nothing
    /// besides `iptables-restore`.
    pub nfacct: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            masquerade_all: false,
            masquerade_bit: 14,
            localhost_node_ports: true,
            random_fully: true,
            conntrack_tcp_be_liberal: false,
            nfacct: false,
        }
    }
}

/// The complete `iptables-restore --noflush` input for a fresh node, with kube-proxy's default
/// [`Options`]. See the module documentation for what it contains.
pub fn render(table: &ServiceTable) -> String {
    render_with(table, &Options::default())
}

/// [`render`] with other kube-proxy options.
pub fn render_with(table: &ServiceTable, opts: &Options) -> String {
    let sync = SyncRules::build(table, opts);
    let mut out = String::new();

    out.push_str("*mangle\n");
    out.push_str(&chain_line(KUBE_PROXY_CANARY));
    out.push_str("COMMIT\n");

    for (name, chains, rules) in [
        ("filter", &sync.filter_chains, &sync.filter_rules),
        ("nat", &sync.nat_chains, &sync.nat_rules),
    ] {
        let _ = writeln!(out, "*{name}");
        let mut declared = vec![chain_line(KUBE_PROXY_CANARY)];
        declared.extend(chains.iter().cloned());
        // The chains kube-proxy's jump rules point at always exist (it `-N`s them first), even
        // those this sync does not fill (KUBE-FIREWALL without localhost NodePorts).
        let jumps: Vec<&Jump> = JUMPS.iter().filter(|j| j.table == name).collect();
        for j in &jumps {
            let line = chain_line(j.target);
            if !declared.contains(&line) {
                declared.push(line);
            }
        }
        declared.iter().for_each(|l| out.push_str(l));
        for j in &jumps {
            out.push_str(&j.insert_line());
        }
        for r in rules {
            out.push_str(r);
        }
        out.push_str("COMMIT\n");
    }
    out
}

/// Exactly the text one kube-proxy sync passes to `iptables-restore --noflush` (filter, then
/// nat): kube-proxy's chains flushed and refilled. Safe to apply again on a node that has
/// [`render`]'s jump rules.
pub fn render_sync(table: &ServiceTable) -> String {
    render_sync_with(table, &Options::default())
}

/// The prefixes of the chains kube-proxy makes per Service and endpoint (`isServiceChainName`):
/// the ones a full sync deletes when they are no longer in use.
pub const SERVICE_CHAIN_PREFIXES: [&str; 5] = [
    "KUBE-SVC-",
    "KUBE-SVL-",
    "KUBE-EXT-",
    "KUBE-FW-",
    "KUBE-SEP-",
];

/// One kube-proxy full sync on a node that already has kube-proxy's rules: [`render_sync`],
/// plus, as kube-proxy's full sync does after reading `iptables-save -t nat`, every Service or
/// endpoint chain of `existing_nat_chains` this sync no longer uses declared (which flushes it)
/// and deleted (`-X`) after the rules. Applying it moves the node from any earlier table to
/// exactly what [`render`] gives for `table` on a fresh node.
pub fn render_resync(table: &ServiceTable, existing_nat_chains: &[String]) -> String {
    let opts = Options::default();
    let mut sync = SyncRules::build(table, &opts);
    let active: std::collections::HashSet<String> = declared_chains(&sync.nat_chains.concat())
        .into_iter()
        .collect();
    let mut stale: Vec<&String> = existing_nat_chains
        .iter()
        .filter(|c| SERVICE_CHAIN_PREFIXES.iter().any(|p| c.starts_with(p)))
        .filter(|c| !active.contains(c.as_str()))
        .collect();
    stale.sort();
    stale.dedup();
    for chain in stale {
        sync.nat_chains.push(chain_line(chain));
        sync.nat_rules.push(format!("-X {chain}\n"));
    }
    sync.restore_input()
}

/// The chains an `iptables-save` of one table declares (`:NAME POLICY [counters]` lines).
pub fn declared_chains(save: &str) -> Vec<String> {
    save.lines()
        .filter_map(|l| l.strip_prefix(':')?.split(' ').next())
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// [`render_sync`] with other kube-proxy options.
pub fn render_sync_with(table: &ServiceTable, opts: &Options) -> String {
    SyncRules::build(table, opts).restore_input()
}

/// The masquerade mark for `--iptables-masquerade-bit`, as written in the rules (`0x4000`).
pub fn masquerade_mark(bit: u8) -> String {
    format!("{:#x}", 1u64 << bit)
}

/// kube-proxy's 16-character chain-name hash of a `ServicePortName` string and a lowercase
/// protocol: base32 of their SHA-256.
pub fn port_proto_hash(service_port_name: &str, protocol: &str) -> String {
    hash16(&[service_port_name, protocol])
}

/// `KUBE-SVC-<hash>`: the chain dispatching to a Service port's Cluster-policy endpoints.
pub fn svc_chain(sp: &ServicePort) -> String {
    format!("KUBE-SVC-{}", sp_hash(sp))
}

/// `KUBE-SVL-<hash>`: the chain dispatching to a Service port's Local-policy endpoints.
pub fn svl_chain(sp: &ServicePort) -> String {
    format!("KUBE-SVL-{}", sp_hash(sp))
}

/// `KUBE-EXT-<hash>`: where a Service port's external (NodePort) traffic goes first.
pub fn ext_chain(sp: &ServicePort) -> String {
    format!("KUBE-EXT-{}", sp_hash(sp))
}

/// `KUBE-FW-<hash>`: a Service port's `loadBalancerSourceRanges` chain (never rendered: the
/// model has no LoadBalancers).
pub fn fw_chain(sp: &ServicePort) -> String {
    format!("KUBE-FW-{}", sp_hash(sp))
}

/// `KUBE-SEP-<hash>`: the chain of one endpoint of a Service port.
pub fn sep_chain(sp: &ServicePort, ep: &Endpoint) -> String {
    let proto = sp.protocol.to_string();
    format!(
        "KUBE-SEP-{}",
        hash16(&[&sp.port_name_string(), &proto, &endpoint_string(ep)])
    )
}

/// The probability kube-proxy gives the rule choosing one of `n` remaining endpoints: `1/n`
/// with ten decimals.
pub fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

fn sp_hash(sp: &ServicePort) -> String {
    port_proto_hash(&sp.port_name_string(), &sp.protocol.to_string())
}

fn hash16(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    let mut s = BASE32.encode(&h.finalize());
    s.truncate(16);
    s
}

/// kube-proxy's endpoint string, `ip:port`.
fn endpoint_string(ep: &Endpoint) -> String {
    format!("{}:{}", ep.ip, ep.port)
}

fn chain_line(chain: &str) -> String {
    format!(":{chain} - [0:0]\n")
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// One of the rules kube-proxy ensures (`iptables -I <chain> ...`) from a builtin chain into
/// its own chains, in the order it ensures them.
struct Jump {
    table: &'static str,
    chain: &'static str,
    target: &'static str,
    /// `-m conntrack --ctstate NEW` before the comment.
    new_only: bool,
    comment: Option<&'static str>,
}

impl Jump {
    fn insert_line(&self) -> String {
        let mut l = format!("-I {}", self.chain);
        if self.new_only {
            l.push_str(" -m conntrack --ctstate NEW");
        }
        if let Some(c) = self.comment {
            let _ = write!(l, " -m comment --comment {}", quoted(c));
        }
        let _ = writeln!(l, " -j {}", self.target);
        l
    }
}

/// Whether a jump matches only new connections (`-m conntrack --ctstate NEW`).
const NEW: bool = true;
const ANY: bool = false;

const EXTERNAL: Option<&str> = Some("kubernetes externally-visible service portals");
const HEALTH_CHECKS: Option<&str> = Some("kubernetes health check service ports");
const PORTALS: Option<&str> = Some("kubernetes service portals");
const FORWARDING: Option<&str> = Some("kubernetes forwarding rules");
const LB_FIREWALL: Option<&str> = Some("kubernetes load balancer firewall");
const POSTROUTING: Option<&str> = Some("kubernetes postrouting rules");

const fn jump(
    table: &'static str,
    chain: &'static str,
    target: &'static str,
    new_only: bool,
    comment: Option<&'static str>,
) -> Jump {
    Jump {
        table,
        chain,
        target,
        new_only,
        comment,
    }
}

/// kube-proxy's `iptablesJumpChains` followed by its `iptablesKubeletJumpChains`, in its order.
const JUMPS: &[Jump] = &[
    jump("filter", "INPUT", KUBE_EXTERNAL_SERVICES, NEW, EXTERNAL),
    jump("filter", "FORWARD", KUBE_EXTERNAL_SERVICES, NEW, EXTERNAL),
    jump("filter", "INPUT", KUBE_NODEPORTS, ANY, HEALTH_CHECKS),
    jump("filter", "FORWARD", KUBE_SERVICES, NEW, PORTALS),
    jump("filter", "OUTPUT", KUBE_SERVICES, NEW, PORTALS),
    jump("filter", "FORWARD", KUBE_FORWARD, ANY, FORWARDING),
    jump("filter", "INPUT", KUBE_PROXY_FIREWALL, NEW, LB_FIREWALL),
    jump("filter", "OUTPUT", KUBE_PROXY_FIREWALL, NEW, LB_FIREWALL),
    jump("filter", "FORWARD", KUBE_PROXY_FIREWALL, NEW, LB_FIREWALL),
    jump("nat", "OUTPUT", KUBE_SERVICES, ANY, PORTALS),
    jump("nat", "PREROUTING", KUBE_SERVICES, ANY, PORTALS),
    jump("nat", "POSTROUTING", KUBE_POSTROUTING, ANY, POSTROUTING),
    jump("filter", "INPUT", KUBE_FIREWALL, ANY, None),
    jump("filter", "OUTPUT", KUBE_FIREWALL, ANY, None),
];

/// One endpoint as kube-proxy's EndpointSlice cache holds it.
struct Ep<'a> {
    ep: &'a Endpoint,
    /// `ip:port`.
    key: String,
    local: bool,
    chain: String,
}

/// A Service port's endpoints: deduplicated by `ip:port` (a non-terminating duplicate wins),
/// sorted by that string.
fn cached_endpoints<'a>(sp: &'a ServicePort, node: &str) -> Vec<Ep<'a>> {
    let mut eps: Vec<Ep<'a>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for ep in &sp.endpoints {
        let key = endpoint_string(ep);
        let e = Ep {
            ep,
            local: !node.is_empty() && ep.node_name.as_deref() == Some(node),
            chain: sep_chain(sp, ep),
            key: key.clone(),
        };
        match index.get(&key) {
            Some(&i) if !ep.terminating => eps[i] = e,
            Some(_) => {}
            None => {
                index.insert(key, eps.len());
                eps.push(e);
            }
        }
    }
    eps.sort_by(|a, b| a.key.cmp(&b.key));
    eps
}

/// The endpoints of a Service port as `proxy.CategorizeEndpoints` splits them.
struct Categorized<'e, 'a> {
    cluster: Vec<&'e Ep<'a>>,
    local: Vec<&'e Ep<'a>>,
    /// Every endpoint this node may DNAT to (each gets a `KUBE-SEP-` chain).
    reachable: Vec<&'e Ep<'a>>,
    /// Whether the Service has usable endpoints anywhere in the cluster.
    has_any: bool,
}

fn categorize<'e, 'a>(eps: &'e [Ep<'a>], pol: &Policy) -> Categorized<'e, 'a> {
    let ready = |e: &&Ep| e.ep.ready;
    let serving_terminating = |e: &&Ep| e.ep.serving && e.ep.terminating;
    let mut c = Categorized {
        cluster: Vec::new(),
        local: Vec::new(),
        reachable: Vec::new(),
        has_any: false,
    };
    if pol.uses_cluster_endpoints {
        c.cluster = eps.iter().filter(ready).collect();
        if c.cluster.is_empty() {
            c.cluster = eps.iter().filter(serving_terminating).collect();
        }
        c.has_any = !c.cluster.is_empty();
    }
    if !pol.uses_local_endpoints {
        c.reachable = c.cluster.clone();
        return c;
    }
    let (mut local_ready, mut local_serving_terminating) = (false, false);
    for e in eps {
        if e.ep.ready {
            c.has_any = true;
            local_ready |= e.local;
        } else if e.ep.serving && e.ep.terminating {
            c.has_any = true;
            local_serving_terminating |= e.local;
        }
    }
    let mut fallback = false;
    if local_ready {
        c.local = eps.iter().filter(|e| e.local && e.ep.ready).collect();
    } else if local_serving_terminating {
        fallback = true;
        c.local = eps
            .iter()
            .filter(|e| e.local && serving_terminating(e))
            .collect();
    }
    if !pol.uses_cluster_endpoints {
        c.reachable = c.local.clone();
    } else if !fallback {
        // The local endpoints are ready ones, all of which are cluster endpoints too.
        c.reachable = c.cluster.clone();
    } else {
        let mut all = c.cluster.clone();
        for e in &c.local {
            if !all.iter().any(|a| a.key == e.key) {
                all.push(e);
            }
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        c.reachable = all;
    }
    c
}

/// What kube-proxy's `BaseServicePortInfo` derives from the Service's policies.
struct Policy {
    externally_accessible: bool,
    external_local: bool,
    internal_local: bool,
    uses_cluster_endpoints: bool,
    uses_local_endpoints: bool,
}

impl Policy {
    fn of(sp: &ServicePort) -> Policy {
        let externally_accessible = sp.node_port.is_some();
        let external_local =
            externally_accessible && sp.external_traffic_policy == TrafficPolicy::Local;
        let internal_local = sp.internal_traffic_policy == TrafficPolicy::Local;
        Policy {
            externally_accessible,
            external_local,
            internal_local,
            uses_cluster_endpoints: !internal_local || externally_accessible,
            uses_local_endpoints: internal_local || external_local,
        }
    }
}

/// The four line buffers of one kube-proxy sync.
#[derive(Default)]
struct SyncRules {
    filter_chains: Vec<String>,
    filter_rules: Vec<String>,
    nat_chains: Vec<String>,
    nat_rules: Vec<String>,
}

impl SyncRules {
    /// The `iptables-restore` input: the filter table, then the nat table.
    fn restore_input(&self) -> String {
        let mut out = String::from("*filter\n");
        out.extend(self.filter_chains.iter().map(String::as_str));
        out.extend(self.filter_rules.iter().map(String::as_str));
        out.push_str("COMMIT\n*nat\n");
        out.extend(self.nat_chains.iter().map(String::as_str));
        out.extend(self.nat_rules.iter().map(String::as_str));
        out.push_str("COMMIT\n");
        out
    }

    fn build(table: &ServiceTable, opts: &Options) -> SyncRules {
        let mark = masquerade_mark(opts.masquerade_bit);
        let mut s = SyncRules::default();
        for c in [
            KUBE_SERVICES,
            KUBE_EXTERNAL_SERVICES,
            KUBE_FORWARD,
            KUBE_NODEPORTS,
            KUBE_PROXY_FIREWALL,
        ] {
            s.filter_chains.push(chain_line(c));
        }
        for c in [
            KUBE_SERVICES,
            KUBE_NODEPORTS,
            KUBE_POSTROUTING,
            KUBE_MARK_MASQ,
        ] {
            s.nat_chains.push(chain_line(c));
        }

        s.nat(format!(
            "-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN"
        ));
        // Clear the mark so a packet that goes through the stack again is not masqueraded twice.
        s.nat(format!("-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}"));
        let mut masq = format!(
            "-A {KUBE_POSTROUTING} -m comment --comment {} -j MASQUERADE",
            quoted("kubernetes service traffic requiring SNAT")
        );
        if opts.random_fully {
            masq.push_str(" --random-fully");
        }
        s.nat(masq);
        s.nat(format!("-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}"));

        if opts.localhost_node_ports {
            s.filter_chains.push(chain_line(KUBE_FIREWALL));
            s.filter(format!(
                "-A {KUBE_FIREWALL} -m comment --comment {} -d 127.0.0.0/8 ! -s 127.0.0.0/8 \
                 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
                quoted("block incoming localnet connections")
            ));
        }

        // Headless Services are not Services to kube-proxy.
        let services: Vec<&ServicePort> = table
            .services
            .iter()
            .filter(|sp| sp.cluster_ip.is_some())
            .collect();
        let endpoints: Vec<Vec<Ep>> = services
            .iter()
            .map(|sp| cached_endpoints(sp, &table.node_name))
            .collect();
        let total: usize = endpoints.iter().map(Vec::len).sum();
        let large = total > LARGE_CLUSTER_ENDPOINTS_THRESHOLD;

        for (sp, eps) in services.iter().zip(&endpoints) {
            s.service(table, opts, sp, eps, large);
        }

        let mut last = format!(
            "-A {KUBE_SERVICES} -m comment --comment {NODEPORTS_COMMENT} \
             -m addrtype --dst-type LOCAL"
        );
        if !opts.localhost_node_ports {
            last.push_str(" ! -d 127.0.0.0/8");
        }
        let _ = write!(last, " -j {KUBE_NODEPORTS}");
        s.nat(last);

        if !opts.conntrack_tcp_be_liberal {
            let mut l = format!("-A {KUBE_FORWARD} -m conntrack --ctstate INVALID");
            if opts.nfacct {
                let _ = write!(l, " -m nfacct --nfacct-name {NFACCT_CT_INVALID}");
            }
            l.push_str(" -j DROP");
            s.filter(l);
        }
        s.filter(format!(
            "-A {KUBE_FORWARD} -m comment --comment {} -m mark --mark {mark}/{mark} -j ACCEPT",
            quoted("kubernetes forwarding rules")
        ));
        s.filter(format!(
            "-A {KUBE_FORWARD} -m comment --comment {} -m conntrack --ctstate RELATED,ESTABLISHED \
             -j ACCEPT",
            quoted("kubernetes forwarding conntrack rule")
        ));
        s
    }

    fn filter(&mut self, line: String) {
        self.filter_rules.push(line + "\n");
    }

    fn nat(&mut self, line: String) {
        self.nat_rules.push(line + "\n");
    }

    /// The rules of one Service port, in kube-proxy's order.
    fn service(
        &mut self,
        table: &ServiceTable,
        opts: &Options,
        sp: &ServicePort,
        eps: &[Ep],
        large: bool,
    ) {
        let Some(cluster_ip) = sp.cluster_ip else {
            return;
        };
        let proto = sp.protocol.to_string();
        let name = sp.port_name_string();
        let pol = Policy::of(sp);
        let cat = categorize(eps, &pol);
        let has_endpoints = cat.has_any;

        let cluster_chain = svc_chain(sp);
        let uses_cluster_chain = !cat.cluster.is_empty() && pol.uses_cluster_endpoints;
        let local_chain = svl_chain(sp);
        let uses_local_chain = !cat.local.is_empty() && pol.uses_local_endpoints;

        let (internal_chain, has_internal) = if pol.internal_local {
            (&local_chain, has_endpoints && !cat.local.is_empty())
        } else {
            (&cluster_chain, has_endpoints)
        };
        let (external_policy_chain, has_external) = if pol.external_local {
            (&local_chain, has_endpoints && !cat.local.is_empty())
        } else {
            (&cluster_chain, has_endpoints)
        };
        let external_chain = ext_chain(sp);
        let uses_external_chain = has_endpoints && pol.externally_accessible;

        let (internal_filter, external_filter) = if !has_endpoints {
            let c = quoted(&format!("{name} has no endpoints"));
            (("REJECT", c.clone()), ("REJECT", c))
        } else {
            let c = quoted(&format!("{name} has no local endpoints"));
            (("DROP", c.clone()), ("DROP", c))
        };

        let cluster_ip_comment = quoted(&format!("{name} cluster IP"));
        let dst = format!("-m {proto} -p {proto} -d {cluster_ip} --dport {}", sp.port);

        // Capture the ClusterIP.
        if has_internal {
            self.nat(format!(
                "-A {KUBE_SERVICES} -m comment --comment {cluster_ip_comment} {dst} -j {internal_chain}"
            ));
        } else {
            let (target, comment) = &internal_filter;
            self.filter(format!(
                "-A {KUBE_SERVICES} -m comment --comment {comment} {dst} -j {target}"
            ));
        }

        // Capture the NodePort.
        if let Some(node_port) = sp.node_port {
            if has_endpoints {
                if opts.localhost_node_ports && opts.nfacct {
                    self.nat(format!(
                        "-A {KUBE_NODEPORTS} -m comment --comment {name} -m {proto} -p {proto} \
                         -d 127.0.0.0/8 --dport {node_port} \
                         -m nfacct --nfacct-name {NFACCT_LOCALHOST_NODEPORTS} -j {external_chain}"
                    ));
                }
                self.nat(format!(
                    "-A {KUBE_NODEPORTS} -m comment --comment {name} -m {proto} -p {proto} \
                     --dport {node_port} -j {external_chain}"
                ));
            }
            if !has_external {
                let (target, comment) = &external_filter;
                self.filter(format!(
                    "-A {KUBE_EXTERNAL_SERVICES} -m comment --comment {comment} \
                     -m addrtype --dst-type LOCAL -m {proto} -p {proto} --dport {node_port} \
                     -j {target}"
                ));
            }
        }

        // Masquerade ClusterIP traffic from outside the cluster CIDR (it may be routed to this
        // node from anywhere, and may leave it again towards a remote endpoint).
        if has_internal {
            let cidr = table.cluster_cidr.trunc();
            let source = if opts.masquerade_all {
                String::new()
            } else {
                format!(" ! -s {cidr}")
            };
            self.nat(format!(
                "-A {internal_chain} -m comment --comment {cluster_ip_comment} {dst}{source} \
                 -j {KUBE_MARK_MASQ}"
            ));
        }

        // External destinations (NodePorts) go through the EXT chain.
        if uses_external_chain {
            self.nat_chains.push(chain_line(&external_chain));
            if !pol.external_local {
                self.nat(format!(
                    "-A {external_chain} -m comment --comment {} -j {KUBE_MARK_MASQ}",
                    quoted(&format!(
                        "masquerade traffic for {name} external destinations"
                    ))
                ));
            } else {
                let cidr = table.cluster_cidr.trunc();
                // Pods reaching an external destination are not subject to the policy: as if
                // they had gone out to a load balancer and come back.
                self.nat(format!(
                    "-A {external_chain} -m comment --comment {} -s {cidr} -j {cluster_chain}",
                    quoted(&format!("pod traffic for {name} external destinations"))
                ));
                // The node itself: its source address is local, so it must be masqueraded,
                // and it may use any endpoint.
                self.nat(format!(
                    "-A {external_chain} -m comment --comment {} -m addrtype --src-type LOCAL \
                     -j {KUBE_MARK_MASQ}",
                    quoted(&format!(
                        "masquerade LOCAL traffic for {name} external destinations"
                    ))
                ));
                self.nat(format!(
                    "-A {external_chain} -m comment --comment {} -m addrtype --src-type LOCAL \
                     -j {cluster_chain}",
                    quoted(&format!(
                        "route LOCAL traffic for {name} external destinations"
                    ))
                ));
            }
            if has_external {
                self.nat(format!("-A {external_chain} -j {external_policy_chain}"));
            }
        }

        if uses_cluster_chain {
            self.nat_chains.push(chain_line(&cluster_chain));
            self.service_to_endpoints(sp, &name, &cluster_chain, &cat.cluster, large);
        }
        if uses_local_chain {
            self.nat_chains.push(chain_line(&local_chain));
            self.service_to_endpoints(sp, &name, &local_chain, &cat.local, large);
        }

        // One chain per endpoint: masquerade hairpin traffic, remember affinity, DNAT.
        for e in &cat.reachable {
            self.nat_chains.push(chain_line(&e.chain));
            let head = if large {
                format!("-A {}", e.chain)
            } else {
                format!("-A {} -m comment --comment {name}", e.chain)
            };
            self.nat(format!("{head} -s {} -j {KUBE_MARK_MASQ}", e.ep.ip));
            let affinity = if sp.affinity_timeout.is_some() {
                format!(" -m recent --name {} --set", e.chain)
            } else {
                String::new()
            };
            self.nat(format!(
                "{head}{affinity} -m {proto} -p {proto} -j DNAT --to-destination {}",
                e.key
            ));
        }
    }

    /// kube-proxy's `writeServiceToEndpointRules`: affinity rules, then one rule per endpoint,
    /// each but the last taken with probability `1/(endpoints left)`.
    fn service_to_endpoints(
        &mut self,
        sp: &ServicePort,
        name: &str,
        chain: &str,
        eps: &[&Ep],
        large: bool,
    ) {
        let head = |e: &Ep| {
            if large {
                format!("-A {chain}")
            } else {
                format!(
                    "-A {chain} -m comment --comment {}",
                    quoted(&format!("{name} -> {}", e.key))
                )
            }
        };
        if let Some(seconds) = sp.affinity_timeout {
            for e in eps {
                self.nat(format!(
                    "{} -m recent --name {c} --rcheck --seconds {seconds} --reap -j {c}",
                    head(e),
                    c = e.chain
                ));
            }
        }
        let n = eps.len();
        for (i, e) in eps.iter().enumerate() {
            let statistic = if i + 1 < n {
                format!(
                    " -m statistic --mode random --probability {}",
                    probability(n - i)
                )
            } else {
                String::new()
            };
            self.nat(format!("{}{statistic} -j {}", head(e), e.chain));
        }
    }
}

#[cfg(test)]
mod tests;
