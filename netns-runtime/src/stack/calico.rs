//! A Calico-style dataplane: the pod attach of Calico's CNI plugin with Calico IPAM blocks,
//! and the node networks Calico programs (BGP-routed as BIRD does, VXLAN as Felix does,
//! IP-in-IP where the kernel has it), with Felix's `natOutgoing` masquerade.
//!
//! Everything the drivers make is a pure function of the topology ([`ipam`], [`node_layout`],
//! [`pod_layout`]), so `podpath plan` can print it without privileges; the drivers only turn
//! it into kernel objects. The layout and how it differs from the `ptp` CNI plugin are in
//! `docs/calico.md`.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::sync::OnceLock;

use ipnet::Ipv4Net;

use crate::netlink::Netlink;
use crate::stack::{
    Attachment, DriverError, Encapsulation, NodeContext, NodeNetwork, PodAttach, PodContext, nl_err,
};
use crate::topology::{Mac, Node, Pod, Topology, Vxlan};

/// Calico's default IPAM block size (`blockSize: 26`).
pub const BLOCK_PREFIX: u8 = 26;
/// The MAC Calico's CNI plugin gives every host-side veth.
pub const HOST_MAC: Mac = Mac([0xee; 6]);
/// The link-local gateway every Calico pod routes through, answered by proxy ARP.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// Felix's VXLAN device, VNI and port (`vxlanVNI: 4096`, `vxlanPort: 4789`).
pub const VXLAN_DEV: &str = "vxlan.calico";
pub const VXLAN_VNI: u32 = 4096;
pub const VXLAN_PORT: u16 = 4789;
/// What VXLAN costs in MTU (Felix: underlay MTU minus 50).
pub const VXLAN_OVERHEAD: u32 = 50;
/// IP-in-IP's device and overhead.
pub const IPIP_DEV: &str = "tunl0";
pub const IPIP_OVERHEAD: u32 = 20;
/// The node devices the Calico node networks make.
pub const DEVICES: [&str; 2] = [VXLAN_DEV, IPIP_DEV];
/// The prefix of the host-side veth names (Calico's `cali`).
pub const VETH_PREFIX: &str = "cali";

/// How pods of different nodes reach each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalicoMode {
    /// Each node's blocks routed via its address, as BIRD programs what BGP learnt.
    Routed,
    /// Felix's VXLAN: `vxlan.calico`, a route per remote block via its tunnel address.
    Vxlan,
    /// Felix's IP-in-IP: `tunl0`, a route per remote block via its node, `onlink`.
    Ipip,
}

impl CalicoMode {
    pub fn name(self) -> &'static str {
        match self {
            CalicoMode::Routed => "routed",
            CalicoMode::Vxlan => "vxlan",
            CalicoMode::Ipip => "ipip",
        }
    }

    /// Whether the mode needs a tunnel address per node (VXLAN and IP-in-IP do).
    pub fn has_tunnel(self) -> bool {
        self != CalicoMode::Routed
    }

    /// The MTU of the pods' interfaces and the tunnel device for an underlay of `mtu`.
    pub fn mtu(self, underlay: u32) -> u32 {
        match self {
            CalicoMode::Routed => underlay,
            CalicoMode::Vxlan => underlay - VXLAN_OVERHEAD,
            CalicoMode::Ipip => underlay - IPIP_OVERHEAD,
        }
    }
}

/// The host-side veth name Calico's CNI plugin gives a workload (`VethNameForWorkload`):
/// `cali` and the first 11 hex digits of the SHA-1 of `namespace.pod`.
pub fn veth_name(namespace: &str, pod: &str) -> String {
    let digest = sha1(format!("{namespace}.{pod}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{VETH_PREFIX}{}", &hex[..11])
}

/// What Calico IPAM decided for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIpam {
    /// The blocks affine to the node, in the order it claimed them.
    pub blocks: Vec<Ipv4Net>,
    /// The node's tunnel address (VXLAN, IP-in-IP), allocated before any pod.
    pub tunnel: Option<Ipv4Addr>,
}

/// What Calico IPAM decided for the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipam {
    /// Per node, in topology order.
    pub nodes: Vec<NodeIpam>,
    /// Per pod, in topology order.
    pub pods: Vec<Ipv4Addr>,
}

/// Calico IPAM over the topology. Blocks are `/26`s carved from each node's pod CIDR (its
/// lease from the planner), the first one claimed first, so every address stays inside the
/// node's pod subnet; a block is claimed when the node needs one more (or when a pod asks for
/// an address in it). Within its blocks a node allocates the lowest free address (ordinal 0
/// first, as Calico does): the tunnel address first, then each pod in the topology's order;
/// an address the case fixes (`ip:`) is given as asked and never to another pod.
pub fn ipam(topology: &Topology, mode: CalicoMode) -> Result<Ipam, String> {
    let mut pods = vec![Ipv4Addr::UNSPECIFIED; topology.pods.len()];
    let mut nodes = Vec::with_capacity(topology.nodes.len());
    for (index, node) in topology.nodes.iter().enumerate() {
        let cidr = node.pod_cidr;
        let block_len = BLOCK_PREFIX.max(cidr.prefix_len());
        let all_blocks: Vec<Ipv4Net> = cidr
            .subnets(block_len)
            .map_err(|e| format!("node {}: {e}", node.name))?
            .collect();
        let on_node: Vec<usize> = (0..topology.pods.len())
            .filter(|&p| topology.pods[p].node == index)
            .collect();
        let fixed: Vec<Ipv4Addr> = on_node
            .iter()
            .filter_map(|&p| topology.pods[p].requested_ip)
            .collect();
        let mut blocks = vec![all_blocks[0]];
        let mut used: HashSet<Ipv4Addr> = fixed.iter().copied().collect();
        // Blocks before this one are full (addresses are only ever taken, never freed here).
        let mut full = 0usize;
        let mut next_free = |blocks: &mut Vec<Ipv4Net>, used: &mut HashSet<Ipv4Addr>| {
            loop {
                for (i, b) in blocks.iter().enumerate().skip(full) {
                    if let Some(a) = b.hosts_all().find(|a| !used.contains(a)) {
                        used.insert(a);
                        return Ok(a);
                    }
                    if i == full {
                        full += 1;
                    }
                }
                match all_blocks.iter().find(|b| !blocks.contains(b)) {
                    Some(b) => blocks.push(*b),
                    None => return Err(format!("node {}: its pod CIDR {cidr} is full", node.name)),
                }
            }
        };
        let tunnel = if mode.has_tunnel() {
            Some(next_free(&mut blocks, &mut used)?)
        } else {
            None
        };
        for &p in &on_node {
            let pod = &topology.pods[p];
            pods[p] = match pod.requested_ip {
                Some(ip) => {
                    if let Some(b) = all_blocks.iter().find(|b| b.contains(&ip))
                        && !blocks.contains(b)
                    {
                        blocks.push(*b);
                    }
                    ip
                }
                None => next_free(&mut blocks, &mut used)?,
            };
        }
        nodes.push(NodeIpam { blocks, tunnel });
    }
    Ok(Ipam { nodes, pods })
}

/// Every address of a `/n` block, network and broadcast included (Calico hands out both).
trait HostsAll {
    fn hosts_all(&self) -> Box<dyn Iterator<Item = Ipv4Addr>>;
}

impl HostsAll for Ipv4Net {
    fn hosts_all(&self) -> Box<dyn Iterator<Item = Ipv4Addr>> {
        let first = u32::from(self.network());
        let last = u32::from(self.broadcast());
        Box::new((first..=last).map(Ipv4Addr::from))
    }
}

/// A route as Calico programs it on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalicoRoute {
    pub dst: Ipv4Net,
    pub via: Option<Ipv4Addr>,
    /// `None`: a blackhole route.
    pub dev: Option<String>,
    pub onlink: bool,
}

/// What the Calico node network makes on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    pub node: String,
    pub blocks: Vec<Ipv4Net>,
    /// The tunnel device, its MAC (VXLAN) and address, as a `/32`.
    pub tunnel: Option<(String, Option<Mac>, Ipv4Addr, u32)>,
    /// Per remote node (VXLAN): its tunnel address -> its VTEP MAC.
    pub neighbours: Vec<(Ipv4Addr, Mac)>,
    /// Per remote node (VXLAN): its VTEP MAC -> its address.
    pub fdb: Vec<(Mac, Ipv4Addr)>,
    /// Routes to every remote block, then a blackhole route per local block.
    pub routes: Vec<CalicoRoute>,
    /// Felix's natOutgoing rules (`iptables-restore --noflush` input).
    pub nat_outgoing: String,
}

/// The VTEP MAC of a node's `vxlan.calico`. Felix chooses a random one and publishes it on the
/// node resource; podpath derives a stable one from the tunnel address (`66:6b:<ip>`).
pub fn vtep_mac(tunnel: Ipv4Addr) -> Mac {
    Mac::from_ip([0x66, 0x6b], tunnel)
}

/// What the Calico node network makes on node `index`.
pub fn node_layout(topology: &Topology, ipam: &Ipam, mode: CalicoMode, index: usize) -> NodeLayout {
    let node = &topology.nodes[index];
    let own = &ipam.nodes[index];
    let mtu = mode.mtu(node.eth0.mtu);
    let tunnel = own.tunnel.map(|addr| match mode {
        CalicoMode::Vxlan => (VXLAN_DEV.to_string(), Some(vtep_mac(addr)), addr, mtu),
        _ => (IPIP_DEV.to_string(), None, addr, mtu),
    });
    let mut neighbours = Vec::new();
    let mut fdb = Vec::new();
    let mut routes = Vec::new();
    for (i, peer) in topology.nodes.iter().enumerate() {
        if i == index {
            continue;
        }
        let theirs = &ipam.nodes[i];
        let peer_ip = peer.eth0.addr.addr();
        if mode == CalicoMode::Vxlan
            && let Some(t) = theirs.tunnel
        {
            neighbours.push((t, vtep_mac(t)));
            fdb.push((vtep_mac(t), peer_ip));
        }
        for &block in &theirs.blocks {
            routes.push(match mode {
                CalicoMode::Routed => CalicoRoute {
                    dst: block,
                    via: Some(peer_ip),
                    dev: Some(node.eth0.name.clone()),
                    onlink: false,
                },
                CalicoMode::Vxlan => CalicoRoute {
                    dst: block,
                    via: theirs.tunnel,
                    dev: Some(VXLAN_DEV.into()),
                    onlink: true,
                },
                CalicoMode::Ipip => CalicoRoute {
                    dst: block,
                    via: Some(peer_ip),
                    dev: Some(IPIP_DEV.into()),
                    onlink: true,
                },
            });
        }
    }
    for &block in &own.blocks {
        routes.push(CalicoRoute {
            dst: block,
            via: None,
            dev: None,
            onlink: false,
        });
    }
    NodeLayout {
        node: node.name.clone(),
        blocks: own.blocks.clone(),
        tunnel,
        neighbours,
        fdb,
        routes,
        nat_outgoing: nat_outgoing_rules(topology.cluster_cidr, mode),
    }
}

/// Felix's `natOutgoing` for the default pool, as `iptables-restore --noflush` input: pod
/// traffic leaving the pool is masqueraded (`cali-nat-outgoing`; Felix matches the pools by
/// ipset, podpath by prefix, there being one pool). With VXLAN, host traffic into the tunnel
/// that is not from a local address of the tunnel is masqueraded to it, as Felix does.
pub fn nat_outgoing_rules(pool: Ipv4Net, mode: CalicoMode) -> String {
    let c = r#"-m comment --comment "calico natOutgoing""#;
    let mut out = String::from("*nat\n:cali-POSTROUTING - [0:0]\n:cali-nat-outgoing - [0:0]\n");
    out.push_str(&format!("-I POSTROUTING 1 {c} -j cali-POSTROUTING\n"));
    out.push_str(&format!("-A cali-POSTROUTING {c} -j cali-nat-outgoing\n"));
    if let Some(dev) = match mode {
        CalicoMode::Vxlan => Some(VXLAN_DEV),
        CalicoMode::Ipip => Some(IPIP_DEV),
        CalicoMode::Routed => None,
    } {
        out.push_str(&format!(
            "-A cali-POSTROUTING -o {dev} -m addrtype ! --src-type LOCAL --limit-iface-out -m addrtype --src-type LOCAL {c} -j MASQUERADE --random-fully\n"
        ));
    }
    out.push_str(&format!(
        "-A cali-nat-outgoing -s {pool} ! -d {pool} {c} -j MASQUERADE --random-fully\nCOMMIT\n"
    ));
    out
}

/// What the Calico attach makes for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLayout {
    pub pod: String,
    pub host_veth: String,
    pub addr: Ipv4Net,
    pub mac: Mac,
    pub mtu: u32,
}

/// What the Calico attach makes for pod `index`.
pub fn pod_layout(topology: &Topology, ipam: &Ipam, mode: CalicoMode, index: usize) -> PodLayout {
    let pod = &topology.pods[index];
    let addr = ipam.pods[index];
    PodLayout {
        pod: pod.name.clone(),
        host_veth: veth_name(&pod.namespace, &pod.name),
        addr: Ipv4Net::new(addr, 32).expect("/32"),
        // Calico leaves the pod's MAC to the kernel; podpath derives a stable one.
        mac: Mac::from_ip([0x0a, 0x58], addr),
        mtu: mode.mtu(topology.nodes[pod.node].eth0.mtu),
    }
}

/// The whole Calico layout in `ip`'s words, for `podpath plan`.
pub fn describe(topology: &Topology, mode: CalicoMode) -> Result<String, String> {
    let ipam = ipam(topology, mode)?;
    let mut out = format!(
        "calico ({}): IPAM blocks /{BLOCK_PREFIX} from each node's pod CIDR, pool {} natOutgoing\n",
        mode.name(),
        topology.cluster_cidr
    );
    for (i, node) in topology.nodes.iter().enumerate() {
        let l = node_layout(topology, &ipam, mode, i);
        out.push_str(&format!(
            "node {} (pod CIDR {}): blocks {}\n",
            node.name,
            node.pod_cidr,
            l.blocks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if let Some((dev, mac, addr, mtu)) = &l.tunnel {
            let kind = match mode {
                CalicoMode::Vxlan => format!(
                    "vxlan id {VXLAN_VNI} dstport {VXLAN_PORT} local {} dev {} nolearning",
                    node.eth0.addr.addr(),
                    node.eth0.name
                ),
                _ => "ipip".into(),
            };
            let mac = mac.map(|m| format!(" address {m}")).unwrap_or_default();
            out.push_str(&format!(
                "  ip link add {dev}{mac} mtu {mtu} type {kind}\n  ip addr add {addr}/32 dev {dev}\n"
            ));
        }
        for (ip, mac) in &l.neighbours {
            out.push_str(&format!(
                "  ip neigh add {ip} lladdr {mac} dev {VXLAN_DEV} nud permanent\n"
            ));
        }
        for (mac, dst) in &l.fdb {
            out.push_str(&format!(
                "  bridge fdb add {mac} dev {VXLAN_DEV} dst {dst} self permanent\n"
            ));
        }
        for r in &l.routes {
            out.push_str(&format!("  ip route add {}\n", route_words(r)));
        }
        for (p, pod) in topology.pods.iter().enumerate() {
            if pod.node != i {
                continue;
            }
            let pl = pod_layout(topology, &ipam, mode, p);
            out.push_str(&format!(
                "  pod {}: {} (eth0 {} mtu {}) <-> {} address {HOST_MAC}, proxy_arp 1, proxy_delay 0, forwarding 1\n    ip route add {} dev {} scope link\n    in the pod: ip route add {GATEWAY} dev eth0 scope link; ip route add default via {GATEWAY} dev eth0\n",
                pod.name,
                pl.addr,
                pl.mac,
                pl.mtu,
                pl.host_veth,
                pl.addr,
                pl.host_veth
            ));
        }
        out.push_str("  iptables (nat):\n");
        for line in l.nat_outgoing.lines().filter(|l| l.starts_with('-')) {
            out.push_str(&format!("    {line}\n"));
        }
    }
    Ok(out)
}

fn route_words(r: &CalicoRoute) -> String {
    match &r.dev {
        None => format!("blackhole {}", r.dst),
        Some(dev) => {
            let via = r.via.map(|v| format!(" via {v}")).unwrap_or_default();
            let onlink = if r.onlink { " onlink" } else { "" };
            format!("{}{via} dev {dev}{onlink}", r.dst)
        }
    }
}

/// Whether the kernel can make IP-in-IP devices: tried once, in a scratch network namespace
/// (`unshare -n`), never in the caller's. `Err` says why not.
pub fn ipip_support() -> Result<(), String> {
    static ANSWER: OnceLock<Result<(), String>> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let out = std::process::Command::new("unshare")
                .args([
                    "-n",
                    "ip",
                    "link",
                    "add",
                    "pp-ipip-probe",
                    "type",
                    "ipip",
                    "remote",
                    "192.0.2.1",
                ])
                .output()
                .map_err(|e| format!("could not run `unshare -n ip link add ... type ipip`: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "this kernel cannot make IP-in-IP devices (`ip link add ... type ipip` in a scratch namespace: {})",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
        .clone()
}

/// Calico's CNI plugin with Calico IPAM.
pub struct CalicoAttach {
    /// The node network's mode: the pods' MTU, and whether a tunnel address comes first.
    pub mode: CalicoMode,
    /// The IPAM of the topology being attached, computed at its first pod.
    ipam: Mutex<Option<(Topology, Ipam)>>,
}

impl CalicoAttach {
    pub fn new(mode: CalicoMode) -> CalicoAttach {
        CalicoAttach {
            mode,
            ipam: Mutex::new(None),
        }
    }

    fn ipam_of(&self, topology: &Topology) -> Result<Ipam, String> {
        let mut cache = self.ipam.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, ipam)) = cache.as_ref()
            && t == topology
        {
            return Ok(ipam.clone());
        }
        let ipam = ipam(topology, self.mode)?;
        *cache = Some((topology.clone(), ipam.clone()));
        Ok(ipam)
    }
}

impl PodAttach for CalicoAttach {
    fn name(&self) -> String {
        "calico".into()
    }

    fn prepare_node(&self, _ctx: &mut NodeContext<'_>) -> Result<(), DriverError> {
        Ok(())
    }

    fn attach(&self, ctx: &mut PodContext<'_>) -> Result<Option<Attachment>, DriverError> {
        let (pod, node) = (ctx.pod, ctx.node);
        let index = ctx
            .topology
            .pods
            .iter()
            .position(|p| p.name == pod.name)
            .expect("the pod is the topology's");
        let ipam = self
            .ipam_of(ctx.topology)
            .map_err(|problem| DriverError::Exec {
                layer: "pod attach",
                program: "calico-ipam".into(),
                subject: format!("pod {}", pod.name),
                problem,
            })?;
        let l = pod_layout(ctx.topology, &ipam, self.mode, index);
        let node_err = nl_err(&node.name);
        let nl_node: &mut Netlink = ctx.node_netlink;
        let host = nl_node
            .add_veth(
                &l.host_veth,
                Some(HOST_MAC),
                &pod.eth0.name,
                Some(l.mac),
                Some(ctx.pod_netns.as_fd()),
                l.mtu,
            )
            .map_err(&node_err)?;
        let sysctls = [
            format!("net/ipv4/conf/{}/proxy_arp", l.host_veth),
            format!("net/ipv4/neigh/{}/proxy_delay", l.host_veth),
            format!("net/ipv4/conf/{}/forwarding", l.host_veth),
        ];
        let values = ["1", "0", "1"];
        crate::netns::run_in(ctx.node_netns.as_fd(), || {
            sysctls
                .iter()
                .zip(values)
                .try_for_each(|(k, v)| crate::netns::write_sysctl(k, v))
        })
        .and_then(|r| r)
        .map_err(|e| DriverError::Exec {
            layer: "pod attach",
            program: "calico".into(),
            subject: format!("pod {}", pod.name),
            problem: format!("sysctls of {}: {e}", l.host_veth),
        })?;
        nl_node.set_up(host).map_err(&node_err)?;

        let err = nl_err(&pod.name);
        let nl = &mut *ctx.pod_netlink;
        let eth0 = nl.link_index(&pod.eth0.name).map_err(&err)?;
        nl.add_addr(eth0, l.addr).map_err(&err)?;
        nl.set_up(eth0).map_err(&err)?;
        nl.add_route(Ipv4Net::new(GATEWAY, 32).expect("/32"), None, eth0, false)
            .map_err(&err)?;
        nl.add_route(Ipv4Net::default(), Some(GATEWAY), eth0, false)
            .map_err(&err)?;
        // The node's route to the pod, through its veth.
        nl_node
            .add_route(l.addr, None, host, false)
            .map_err(&node_err)?;
        Ok(Some(Attachment {
            pod: pod.name.clone(),
            iface: pod.eth0.name.clone(),
            addr: l.addr,
            mac: Some(l.mac),
            host_iface: Some(l.host_veth),
            gateway: Some(GATEWAY),
        }))
    }

    fn node_interfaces(&self, _node: &Node) -> Vec<String> {
        Vec::new()
    }
}

/// Calico's node network in one of its modes, with natOutgoing on the default pool.
pub struct CalicoNetwork {
    pub mode: CalicoMode,
    /// Felix's natOutgoing rules (off only in the build benchmark, whose floor makes no
    /// netfilter rules).
    pub nat_outgoing: bool,
}

impl NodeNetwork for CalicoNetwork {
    fn name(&self) -> String {
        format!("calico-{}", self.mode.name())
    }

    fn setup(&self, ctx: &mut NodeContext<'_>) -> Result<(), DriverError> {
        let node = ctx.node;
        let index = ctx
            .topology
            .nodes
            .iter()
            .position(|n| n.name == node.name)
            .expect("the node is the topology's");
        let ipam = ipam(ctx.topology, self.mode).map_err(|problem| DriverError::Exec {
            layer: "node network",
            program: "calico-ipam".into(),
            subject: format!("node {}", node.name),
            problem,
        })?;
        let l = node_layout(ctx.topology, &ipam, self.mode, index);
        let err = nl_err(&node.name);
        let nl = &mut *ctx.netlink;
        let tool = |what: &str, program: &str, args: &[&str]| {
            crate::tool::run(ctx.netns, program, args, None, crate::tool::DEFAULT_TIMEOUT)
                .map(drop)
                .map_err(|source| DriverError::Tool {
                    node: node.name.clone(),
                    what: what.to_string(),
                    source,
                })
        };
        let underlay = nl.link_index(&node.eth0.name).map_err(&err)?;
        let mut tunnel_index = None;
        if let Some((dev, mac, addr, mtu)) = &l.tunnel {
            let index = match self.mode {
                CalicoMode::Vxlan => nl
                    .add_vxlan(
                        &Vxlan {
                            name: dev.clone(),
                            vni: VXLAN_VNI,
                            port: VXLAN_PORT,
                            mac: mac.expect("a VXLAN device has a MAC"),
                            addr: Ipv4Net::new(*addr, 32).expect("/32"),
                            mtu: *mtu,
                            local: node.eth0.addr.addr(),
                            underlay_dev: node.eth0.name.clone(),
                            learning: false,
                        },
                        underlay,
                    )
                    .map_err(&err)?,
                _ => {
                    ipip_support().map_err(|problem| DriverError::Exec {
                        layer: "node network",
                        program: "calico-ipip".into(),
                        subject: format!("node {}", node.name),
                        problem,
                    })?;
                    // Loading ipip makes the fallback device tunl0 in every namespace.
                    let mtu = mtu.to_string();
                    tool("tunl0", "ip", &["link", "set", IPIP_DEV, "mtu", &mtu])?;
                    nl.link_index(IPIP_DEV).map_err(&err)?
                }
            };
            nl.add_addr(index, Ipv4Net::new(*addr, 32).expect("/32"))
                .map_err(&err)?;
            nl.set_up(index).map_err(&err)?;
            tunnel_index = Some(index);
        }
        for (ip, mac) in &l.neighbours {
            let dev = tunnel_index.expect("neighbours come with a tunnel");
            nl.add_neighbour(dev, *ip, *mac).map_err(&err)?;
        }
        for (mac, dst) in &l.fdb {
            let dev = tunnel_index.expect("FDB entries come with a tunnel");
            nl.add_fdb(dev, *mac, *dst).map_err(&err)?;
        }
        for r in &l.routes {
            match &r.dev {
                Some(dev) => {
                    let ifindex = if *dev == node.eth0.name {
                        underlay
                    } else {
                        tunnel_index.expect("tunnel routes come with a tunnel")
                    };
                    nl.add_route(r.dst, r.via, ifindex, r.onlink)
                        .map_err(&err)?;
                }
                None => {
                    let dst = r.dst.to_string();
                    tool(
                        "blackhole route",
                        "ip",
                        &["route", "add", "blackhole", &dst, "proto", "bird"],
                    )?;
                }
            }
        }
        if !self.nat_outgoing {
            return Ok(());
        }
        crate::tool::run(
            ctx.netns,
            "iptables-restore",
            &["-w", "5", "--noflush"],
            Some(l.nat_outgoing.as_bytes()),
            crate::tool::DEFAULT_TIMEOUT,
        )
        .map_err(|source| DriverError::Tool {
            node: node.name.clone(),
            what: "Felix's natOutgoing rules".into(),
            source,
        })?;
        Ok(())
    }

    fn interfaces(&self, _node: &Node) -> Vec<String> {
        match self.mode {
            CalicoMode::Routed => Vec::new(),
            CalicoMode::Vxlan => vec![VXLAN_DEV.into()],
            CalicoMode::Ipip => vec![IPIP_DEV.into()],
        }
    }

    fn encapsulation(&self, _node: &Node) -> Option<Encapsulation> {
        (self.mode == CalicoMode::Vxlan).then_some(Encapsulation::Vxlan {
            vni: VXLAN_VNI,
            port: VXLAN_PORT,
        })
    }

    fn masquerades(&self) -> bool {
        true
    }
}

/// The addresses a node has on a Calico stack: its `eth0`'s and its tunnel address.
pub fn node_addresses(topology: &Topology, mode: CalicoMode, node: &str) -> Vec<Ipv4Addr> {
    let Some(index) = topology.nodes.iter().position(|n| n.name == node) else {
        return Vec::new();
    };
    let mut out = vec![topology.nodes[index].eth0.addr.addr()];
    if let Ok(ipam) = ipam(topology, mode) {
        out.extend(ipam.nodes[index].tunnel);
    }
    out
}

/// The pods a node runs, with their Calico veth names.
pub fn host_veths<'t>(topology: &'t Topology, index: usize) -> impl Iterator<Item = String> + 't {
    topology
        .pods
        .iter()
        .filter(move |p: &&Pod| p.node == index)
        .map(|p| veth_name(&p.namespace, &p.name))
}

/// SHA-1 (FIPS 180-4), for the veth names only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// The Calico layout as iproute2 batch scripts, for the build benchmark's floor: the same
/// namespaces, underlay and node `eth0`s as [`crate::ipbatch::render`], then per node its
/// tunnel device, neighbours, routes (blackholes included) and pods' veths, its FDB entries
/// (`bridge -batch`), and per pod its address and routes. Not made: the three sysctls per
/// host-side veth (the benchmark's dumps do not compare sysctls) and natOutgoing's rules (no
/// netfilter on either side).
pub fn ip_batch(topology: &Topology, mode: CalicoMode) -> Result<crate::ipbatch::IpBatch, String> {
    use crate::ipbatch::{NetnsScript, Tool};
    use std::fmt::Write as _;
    let ipam = ipam(topology, mode)?;
    let mut batch = crate::ipbatch::render(topology);
    // The underlay's script is the flannel floor's; everything after it is Calico's.
    batch.scripts.truncate(1);
    for (index, node) in topology.nodes.iter().enumerate() {
        let l = node_layout(topology, &ipam, mode, index);
        let mut s = String::new();
        let _ = writeln!(s, "link set dev lo up");
        let a = node.eth0.addr;
        let _ = writeln!(
            s,
            "address add {a} broadcast {} dev {}",
            a.broadcast(),
            node.eth0.name
        );
        let _ = writeln!(s, "link set dev {} up", node.eth0.name);
        if let Some((dev, mac, addr, mtu)) = &l.tunnel {
            let mac = mac.map(|m| format!(" address {m}")).unwrap_or_default();
            let _ = writeln!(
                s,
                "link add {dev}{mac} mtu {mtu} type vxlan id {VXLAN_VNI} local {} dev {} dstport {VXLAN_PORT} nolearning",
                node.eth0.addr.addr(),
                node.eth0.name
            );
            let _ = writeln!(s, "address add {addr}/32 dev {dev}");
            let _ = writeln!(s, "link set dev {dev} up");
        }
        for (ip, mac) in &l.neighbours {
            let _ = writeln!(
                s,
                "neigh replace {ip} lladdr {mac} dev {VXLAN_DEV} nud permanent"
            );
        }
        for r in &l.routes {
            match &r.dev {
                None => {
                    let _ = writeln!(s, "route add blackhole {} proto bird", r.dst);
                }
                Some(dev) => {
                    let via = r.via.map(|v| format!(" via {v}")).unwrap_or_default();
                    let onlink = if r.onlink { " onlink" } else { "" };
                    let _ = writeln!(s, "route add {}{via} dev {dev}{onlink} proto boot", r.dst);
                }
            }
        }
        for r in &node.routes {
            let dst = if r.dst.prefix_len() == 0 {
                "default".to_string()
            } else {
                r.dst.to_string()
            };
            let via = r.via.map(|v| format!(" via {v}")).unwrap_or_default();
            let _ = writeln!(s, "route add {dst}{via} dev {} proto boot", r.dev);
        }
        for (p, pod) in topology.pods.iter().enumerate() {
            if pod.node != index {
                continue;
            }
            let pl = pod_layout(topology, &ipam, mode, p);
            let _ = writeln!(
                s,
                "link add {} address {HOST_MAC} mtu {mtu} type veth peer name {} address {} mtu {mtu} netns {}",
                pl.host_veth,
                pod.eth0.name,
                pl.mac,
                pod.name,
                mtu = pl.mtu
            );
            let _ = writeln!(s, "link set dev {} up", pl.host_veth);
            let _ = writeln!(
                s,
                "route add {} dev {} scope link proto boot",
                pl.addr, pl.host_veth
            );
        }
        batch.scripts.push(NetnsScript {
            tool: Tool::Ip,
            netns: node.name.clone(),
            script: s,
        });
        if !l.fdb.is_empty() {
            let mut b = String::new();
            for (mac, dst) in &l.fdb {
                let _ = writeln!(
                    b,
                    "fdb append {mac} dev {VXLAN_DEV} dst {dst} self permanent"
                );
            }
            batch.scripts.push(NetnsScript {
                tool: Tool::Bridge,
                netns: node.name.clone(),
                script: b,
            });
        }
    }
    for (p, pod) in topology.pods.iter().enumerate() {
        let pl = pod_layout(topology, &ipam, mode, p);
        let mut s = String::new();
        let _ = writeln!(s, "link set dev lo up");
        let _ = writeln!(s, "address add {} dev {}", pl.addr, pod.eth0.name);
        let _ = writeln!(s, "link set dev {} up", pod.eth0.name);
        let _ = writeln!(
            s,
            "route add {GATEWAY}/32 dev {} scope link proto boot",
            pod.eth0.name
        );
        let _ = writeln!(
            s,
            "route add default via {GATEWAY} dev {} proto boot",
            pod.eth0.name
        );
        batch.scripts.push(NetnsScript {
            tool: Tool::Ip,
            netns: pod.name.clone(),
            script: s,
        });
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_the_standard_vectors() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn veth_names_are_calicos() {
        // sha1("default.pod-a") = 5e1c4d6c68c...
        assert_eq!(veth_name("default", "pod-a"), "cali5e1c4d6c68c");
    }

    #[test]
    fn nat_outgoing_masquerades_what_leaves_the_pool() {
        let rules = nat_outgoing_rules("10.244.0.0/16".parse().unwrap(), CalicoMode::Routed);
        assert!(rules.contains("-A cali-nat-outgoing -s 10.244.0.0/16 ! -d 10.244.0.0/16"));
        assert!(!rules.contains(VXLAN_DEV));
    }
}
