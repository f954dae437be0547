//! Pod attach: what gives a pod its interface and address on its node (a CNI plugin's job).
//!
//! - [`BridgeAttach`], builtin: as the CNI bridge plugin with host-local IPAM does it (a `cni0`
//!   bridge per node holding the gateway, one veth pair per pod whose node end joins `cni0`
//!   with hairpin mode on, the planned address and a default route via the gateway);
//! - [`ExecAttach`]: a command of the user's run in the node's namespace for every pod, which
//!   answers with a CNI result; what it decided (address, MAC, host-side interface) is learned;
//! - [`NoAttach`]: pods get no interface.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::netlink::Netlink;
use crate::stack::exec;
use crate::stack::{DriverError, ExecSpec, NodeContext, PodContext, nl_err};
use crate::topology::{Mac, Node, Pod};

/// What a pod's attachment turned out to be: what the implementation decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub pod: String,
    /// The pod's interface (`eth0`).
    pub iface: String,
    /// Its address, with the prefix length it was given.
    pub addr: Ipv4Net,
    pub mac: Option<Mac>,
    /// The node end of the pod's link (a veth), when there is one.
    pub host_iface: Option<String>,
    pub gateway: Option<Ipv4Addr>,
}

impl Attachment {
    /// The attachment the plan itself decided (the builtin attach's).
    pub fn planned(pod: &Pod) -> Attachment {
        Attachment {
            pod: pod.name.clone(),
            iface: pod.eth0.name.clone(),
            addr: pod.eth0.addr,
            mac: Some(pod.eth0.mac),
            host_iface: Some(pod.host_veth.clone()),
            gateway: pod.routes.iter().find_map(|r| r.via),
        }
    }
}

/// Gives pods their interface, and says what it made.
pub trait PodAttach: Send + Sync {
    /// How reports and trial reasons name it (`bridge`, `exec ./attach.sh`, `none`).
    fn name(&self) -> String;
    /// Whether this is the builtin attach, which uses the planned addresses.
    fn is_builtin(&self) -> bool {
        false
    }
    /// Whether each pod's attachment names the node end of its link (a veth), which
    /// observation captures and hops may name by role.
    fn reports_host_side(&self) -> bool {
        true
    }
    /// Prepares a node before its first pod is attached (the builtin makes `cni0`).
    fn prepare_node(&self, ctx: &mut NodeContext<'_>) -> Result<(), DriverError>;
    /// Attaches one pod; `None` when the pod got no interface.
    fn attach(&self, ctx: &mut PodContext<'_>) -> Result<Option<Attachment>, DriverError>;
    /// The interfaces it makes on `node` besides each pod's host side, which observation
    /// captures.
    fn node_interfaces(&self, node: &Node) -> Vec<String>;
    /// What undoes the pods' attachments before their namespaces go (a CNI runtime's DEL),
    /// when the attach needs that; the cluster keeps it until teardown.
    fn detacher(&self) -> Option<std::sync::Arc<dyn Detach>> {
        None
    }
}

/// Undoes an attach's work at teardown, before the namespaces are removed.
pub trait Detach: Send + Sync {
    /// Undoes every pod's attachment; every failure is returned, and the rest still done.
    fn detach_all(&self) -> Vec<String>;
}

/// The builtin attach: the CNI bridge plugin's layout with the planned addresses.
pub struct BridgeAttach;

impl PodAttach for BridgeAttach {
    fn name(&self) -> String {
        "bridge".into()
    }

    fn is_builtin(&self) -> bool {
        true
    }

    fn prepare_node(&self, ctx: &mut NodeContext<'_>) -> Result<(), DriverError> {
        let node = ctx.node;
        let err = nl_err(&node.name);
        let b = &node.bridge;
        let nl = &mut *ctx.netlink;
        let cni0 = nl.add_bridge(&b.name, b.mac, b.mtu).map_err(&err)?;
        nl.add_addr(cni0, b.addr).map_err(&err)?;
        nl.set_up(cni0).map_err(&err)
    }

    fn attach(&self, ctx: &mut PodContext<'_>) -> Result<Option<Attachment>, DriverError> {
        let (pod, node) = (ctx.pod, ctx.node);
        let node_err = nl_err(&node.name);
        let nl_node: &mut Netlink = ctx.node_netlink;
        let cni0 = nl_node.link_index(&node.bridge.name).map_err(&node_err)?;
        let host = nl_node
            .add_veth(
                &pod.host_veth,
                None,
                &pod.eth0.name,
                Some(pod.eth0.mac),
                Some(std::os::fd::AsFd::as_fd(ctx.pod_netns)),
                pod.eth0.mtu,
            )
            .map_err(&node_err)?;
        nl_node.set_master(host, cni0).map_err(&node_err)?;
        nl_node.set_hairpin(host, true).map_err(&node_err)?;
        nl_node.set_up(host).map_err(&node_err)?;

        let err = nl_err(&pod.name);
        let nl = &mut *ctx.pod_netlink;
        let eth0 = nl.link_index(&pod.eth0.name).map_err(&err)?;
        nl.add_addr(eth0, pod.eth0.addr).map_err(&err)?;
        nl.set_up(eth0).map_err(&err)?;
        for r in &pod.routes {
            if r.dev != pod.eth0.name {
                return Err(DriverError::UnknownDevice {
                    netns: pod.name.clone(),
                    what: format!("route {}", r.dst),
                    dev: r.dev.clone(),
                });
            }
            nl.add_route(r.dst, r.via, eth0, r.onlink).map_err(&err)?;
        }
        Ok(Some(Attachment::planned(pod)))
    }

    fn node_interfaces(&self, node: &Node) -> Vec<String> {
        vec![node.bridge.name.clone()]
    }
}

/// No attach: pods have only their loopback.
pub struct NoAttach;

impl PodAttach for NoAttach {
    fn name(&self) -> String {
        "none".into()
    }

    fn reports_host_side(&self) -> bool {
        false
    }

    fn prepare_node(&self, _ctx: &mut NodeContext<'_>) -> Result<(), DriverError> {
        Ok(())
    }

    fn attach(&self, _ctx: &mut PodContext<'_>) -> Result<Option<Attachment>, DriverError> {
        Ok(None)
    }

    fn node_interfaces(&self, _node: &Node) -> Vec<String> {
        Vec::new()
    }
}

/// A command of the user's, run in the node's namespace once per pod, the way a container
/// runtime runs a CNI plugin's ADD: it must give the pod named by its environment an
/// interface and print a CNI result (`interfaces`, `ips`) on standard output. What it says is
/// checked against the pod's namespace and learned.
pub struct ExecAttach {
    pub spec: ExecSpec,
    /// Interfaces it makes on every node besides the pods' host sides (a bridge).
    pub node_interfaces: Vec<String>,
}

impl ExecAttach {
    /// What the command is told: `PODPATH_POD`, `PODPATH_POD_NAMESPACE`, `PODPATH_NETNS` (the
    /// path of the pod's network namespace), `PODPATH_IFNAME`, `PODPATH_NODE`,
    /// `PODPATH_POD_CIDR` (the node's), `PODPATH_MTU`, and `PODPATH_IP` when the case fixes
    /// the pod's address (the attach must give it that one, as a CNI plugin does with the `ips`
    /// capability).
    pub fn environment(ctx: &PodContext<'_>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::from([
            ("PODPATH_POD".to_string(), ctx.pod.name.clone()),
            (
                "PODPATH_POD_NAMESPACE".to_string(),
                ctx.pod.namespace.clone(),
            ),
            (
                "PODPATH_NETNS".to_string(),
                ctx.pod_netns.path().display().to_string(),
            ),
            ("PODPATH_IFNAME".to_string(), ctx.pod.eth0.name.clone()),
            ("PODPATH_NODE".to_string(), ctx.node.name.clone()),
            (
                "PODPATH_POD_CIDR".to_string(),
                ctx.node.pod_cidr.to_string(),
            ),
            ("PODPATH_MTU".to_string(), ctx.pod.eth0.mtu.to_string()),
        ]);
        if let Some(ip) = ctx.pod.requested_ip {
            env.insert("PODPATH_IP".to_string(), ip.to_string());
        }
        env
    }
}

impl PodAttach for ExecAttach {
    fn name(&self) -> String {
        format!("exec {}", self.spec.argv.join(" "))
    }

    fn prepare_node(&self, _ctx: &mut NodeContext<'_>) -> Result<(), DriverError> {
        Ok(())
    }

    fn attach(&self, ctx: &mut PodContext<'_>) -> Result<Option<Attachment>, DriverError> {
        let env = ExecAttach::environment(ctx);
        let values = BTreeMap::from([
            ("pod", ctx.pod.name.clone()),
            ("node", ctx.node.name.clone()),
            ("netns", ctx.pod_netns.path().display().to_string()),
        ]);
        let subject = format!("pod {}", ctx.pod.name);
        let done = exec::run(
            &self.spec,
            "pod attach",
            &subject,
            ctx.node_netns,
            &env,
            &values,
        )?;
        let program = self.spec.argv.first().cloned().unwrap_or_default();
        let bad = |problem: String| DriverError::Exec {
            layer: "pod attach",
            program: program.clone(),
            subject: subject.clone(),
            problem,
        };
        let result = parse_result(&done.stdout, &ctx.pod.name, &ctx.pod.eth0.name)
            .map_err(|e| bad(format!("{e}{}", exec::quoted_stderr(&done.stderr))))?;
        check_attachment(ctx, &result).map_err(&bad)?;
        if let Some(want) = ctx.pod.requested_ip
            && result.addr.addr() != want
        {
            return Err(bad(format!(
                "the case fixes the pod's address to {want} (PODPATH_IP), and it gave {}",
                result.addr.addr()
            )));
        }
        Ok(Some(result))
    }

    fn node_interfaces(&self, _node: &Node) -> Vec<String> {
        self.node_interfaces.clone()
    }
}

/// Reads a CNI result (the parts podpath needs: the pod's interface, its IPv4 address and
/// gateway, the host-side interface), saying exactly what is wrong with one that is unusable.
pub fn parse_result(stdout: &str, pod: &str, ifname: &str) -> Result<Attachment, String> {
    parse_result_with(stdout, pod, ifname, &[])
}

/// Like [`parse_result`], for results of CNI versions 0.3.0 to 1.1.0 (`ips[].version` and
/// `interface` are optional); `node_interfaces` are the node's own interfaces the result may
/// list (a bridge plugin's `cni0`), which are never the pod's host side.
pub fn parse_result_with(
    stdout: &str,
    pod: &str,
    ifname: &str,
    node_interfaces: &[String],
) -> Result<Attachment, String> {
    if stdout.trim().is_empty() {
        return Err("it exited 0 but printed no result".into());
    }
    let value: serde_json::Value = serde_json::from_str(stdout).map_err(|e| {
        format!(
            "its output is not a JSON result ({e}): {}",
            stdout.trim().chars().take(200).collect::<String>()
        )
    })?;
    let interfaces = value
        .get("interfaces")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    let ips = value
        .get("ips")
        .and_then(|v| v.as_array())
        .ok_or("its result has no `ips`")?;
    let ip = ips
        .iter()
        .find(|ip| {
            ip.get("address")
                .and_then(|a| a.as_str())
                .is_some_and(|a| a.parse::<Ipv4Net>().is_ok())
        })
        .ok_or("its result has no IPv4 address in `ips`")?;
    let addr: Ipv4Net = ip["address"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(|e| format!("its address is not an IPv4 prefix: {e}"))?;
    let gateway = match ip.get("gateway").and_then(|g| g.as_str()) {
        Some(g) => Some(
            g.parse::<Ipv4Addr>()
                .map_err(|e| format!("its gateway {g:?} is not an IPv4 address: {e}"))?,
        ),
        None => None,
    };
    let name_of = |i: &serde_json::Value| i.get("name").and_then(|n| n.as_str()).map(String::from);
    let in_pod = match ip.get("interface").and_then(|i| i.as_u64()) {
        Some(index) => Some(interfaces.get(index as usize).ok_or_else(|| {
            format!(
                "its address names interface {index}, but the result lists {} interfaces",
                interfaces.len()
            )
        })?),
        None => interfaces.iter().find(|i| i.get("sandbox").is_some()),
    };
    let iface = in_pod
        .and_then(name_of)
        .unwrap_or_else(|| ifname.to_string());
    let mac = match in_pod.and_then(|i| i.get("mac")).and_then(|m| m.as_str()) {
        Some(m) => Some(parse_mac(m).ok_or_else(|| format!("its MAC {m:?} is not a MAC"))?),
        None => None,
    };
    let host_iface = interfaces
        .iter()
        .filter(|i| i.get("sandbox").is_none_or(|s| s.as_str() == Some("")))
        .filter_map(name_of)
        .find(|n| !node_interfaces.contains(n));
    Ok(Attachment {
        pod: pod.to_string(),
        iface,
        addr,
        mac,
        host_iface,
        gateway,
    })
}

fn parse_mac(text: &str) -> Option<Mac> {
    let parts: Vec<u8> = text
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    Some(Mac(parts.try_into().ok()?))
}

/// What a result says must be so: the interface exists in the pod with that address, the
/// host-side one exists on the node.
pub(crate) fn check_attachment(ctx: &mut PodContext<'_>, a: &Attachment) -> Result<(), String> {
    let nl = &mut *ctx.pod_netlink;
    let index = nl.link_index(&a.iface).map_err(|_| {
        format!(
            "it reported interface {} but the pod has none by that name",
            a.iface
        )
    })?;
    let addrs = nl
        .addrs()
        .map_err(|e| format!("reading the pod's addresses: {e}"))?;
    if !addrs.iter().any(|x| x.ifindex == index && x.addr == a.addr) {
        return Err(format!(
            "it reported {} on {}, but the pod's {} does not have that address",
            a.addr, a.iface, a.iface
        ));
    }
    if let Some(host) = &a.host_iface
        && ctx.node_netlink.link_index(host).is_err()
    {
        return Err(format!(
            "it reported host interface {host}, but node {} has none by that name",
            ctx.node.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULT: &str = r#"{"cniVersion":"1.0.0",
        "interfaces":[{"name":"veth1234"},{"name":"eth0","mac":"0a:58:0a:f4:01:05","sandbox":"/run/netns/p"}],
        "ips":[{"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":1}]}"#;

    #[test]
    fn a_cni_result_gives_the_pods_interface_address_and_host_side() {
        let a = parse_result(RESULT, "pod-a", "eth0").unwrap();
        assert_eq!(a.addr, "10.244.1.5/24".parse().unwrap());
        assert_eq!(a.iface, "eth0");
        assert_eq!(a.host_iface.as_deref(), Some("veth1234"));
        assert_eq!(a.gateway, Some(Ipv4Addr::new(10, 244, 1, 1)));
        assert_eq!(a.mac.unwrap().to_string(), "0a:58:0a:f4:01:05");
    }

    #[test]
    fn unusable_results_say_what_is_wrong() {
        for (text, want) in [
            ("", "printed no result"),
            ("hello", "not a JSON result"),
            ("{}", "no `ips`"),
            (r#"{"ips":[{"address":"fd00::1/64"}]}"#, "no IPv4 address"),
            (
                r#"{"ips":[{"address":"10.0.0.1/24","interface":3}]}"#,
                "names interface 3",
            ),
            (
                r#"{"ips":[{"address":"10.0.0.1/24","gateway":"x"}]}"#,
                "gateway \"x\"",
            ),
        ] {
            let e = parse_result(text, "p", "eth0").unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
