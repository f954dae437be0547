//! kube-proxy's conntrack cleanup after a sync (`pkg/proxy/conntrack/cleanup.go`,
//! `CleanStaleEntries`, v1.31 and later): UDP has no connection to close, so an entry DNATed to
//! an endpoint that went away would keep sending a client's datagrams there. After every sync
//! kube-proxy deletes each UDP entry whose original destination is a Service's ClusterIP and
//! port, or one of its NodePorts (any address), and whose reply source (the endpoint it was
//! DNATed to) is not one of that Service port's serving endpoints. A Service port without any
//! serving endpoint is left alone (its traffic is rejected by the rules, entries or not), and
//! so are entries of Services that no longer exist (nothing in the table names them).
//!
//! [`stale_udp`] is the pure part; [`flush_stale_udp`] reads a node's table and deletes them.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::netns::Netns;
use crate::proxy::ServiceTable;
use crate::tool::{self, ToolError};
use crate::topology::Proto;
use crate::trace::conntrack::{self, Entry};

const IPPROTO_UDP: u8 = 17;
const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

/// The entries of `entries` kube-proxy's cleanup deletes after programming `table`.
pub fn stale_udp<'a>(table: &ServiceTable, entries: &'a [Entry]) -> Vec<&'a Entry> {
    let mut by_frontend: HashMap<(Ipv4Addr, u16), HashSet<Ipv4Addr>> = HashMap::new();
    let mut by_node_port: HashMap<u16, HashSet<Ipv4Addr>> = HashMap::new();
    for sp in table.services.iter().filter(|sp| sp.protocol == Proto::Udp) {
        let serving: HashSet<Ipv4Addr> = sp
            .endpoints
            .iter()
            .filter(|e| e.serving)
            .map(|e| e.ip)
            .collect();
        if serving.is_empty() {
            continue;
        }
        if let Some(ip) = sp.cluster_ip {
            by_frontend.insert((ip, sp.port), serving.clone());
        }
        if let Some(node_port) = sp.node_port {
            by_node_port.insert(node_port, serving);
        }
    }
    entries
        .iter()
        .filter(|e| e.orig.proto == IPPROTO_UDP)
        .filter(|e| {
            let endpoint = e.reply.src;
            if let Some(serving) = by_frontend.get(&(e.orig.dst, e.orig.dport)) {
                return !serving.contains(&endpoint);
            }
            by_node_port
                .get(&e.orig.dport)
                .is_some_and(|serving| !serving.contains(&endpoint))
        })
        .collect()
}

/// Deletes the stale UDP entries of node `node` (see [`stale_udp`]); how many it deleted. An
/// entry that went away between the dump and its deletion is not an error.
pub fn flush_stale_udp(node: &Netns, table: &ServiceTable) -> Result<usize, ToolError> {
    let entries = conntrack::dump(node.as_fd()).map_err(|source| ToolError::Io {
        program: "conntrack dump".into(),
        source,
    })?;
    let mut deleted = 0;
    for e in stale_udp(table, &entries) {
        let (src, dst) = (e.orig.src.to_string(), e.orig.dst.to_string());
        let (sport, dport) = (e.orig.sport.to_string(), e.orig.dport.to_string());
        let reply_src = e.reply.src.to_string();
        let args = [
            "-D",
            "-p",
            "udp",
            "--orig-src",
            &src,
            "--orig-dst",
            &dst,
            "--sport",
            &sport,
            "--dport",
            &dport,
            "--reply-src",
            &reply_src,
        ];
        match tool::run(node, "conntrack", &args, None, TOOL_TIMEOUT) {
            Ok(_) => deleted += 1,
            // conntrack exits 1 when nothing matched: the entry expired meanwhile.
            Err(ToolError::Failed { status, .. }) if status == "exit code 1" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{Endpoint, ServicePort, TrafficPolicy};
    use crate::trace::Tuple;

    fn entry(dst: &str, dport: u16, endpoint: &str, proto: u8) -> Entry {
        let (dst, endpoint): (Ipv4Addr, Ipv4Addr) =
            (dst.parse().unwrap(), endpoint.parse().unwrap());
        let client: Ipv4Addr = "10.244.1.2".parse().unwrap();
        Entry {
            orig: Tuple {
                proto,
                src: client,
                dst,
                sport: 40000,
                dport,
            },
            reply: Tuple {
                proto,
                src: endpoint,
                dst: client,
                sport: 5353,
                dport: 40000,
            },
            status: 0,
            tcp_state: None,
            timeout: None,
            mark: None,
            zone: None,
            id: None,
            orig_icmp: None,
            reply_icmp: None,
            use_count: None,
        }
    }

    fn table(endpoints: &[(&str, bool)]) -> ServiceTable {
        ServiceTable {
            node_name: "node1".into(),
            node_ips: vec!["172.18.0.2".parse().unwrap()],
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            services: vec![ServicePort {
                namespace: "default".into(),
                name: "dns".into(),
                port_name: String::new(),
                protocol: Proto::Udp,
                cluster_ip: Some("10.96.0.5".parse().unwrap()),
                port: 53,
                node_port: Some(30053),
                affinity_timeout: None,
                external_traffic_policy: TrafficPolicy::Cluster,
                internal_traffic_policy: TrafficPolicy::Cluster,
                endpoints: endpoints
                    .iter()
                    .map(|(ip, serving)| Endpoint {
                        ip: ip.parse().unwrap(),
                        port: 5353,
                        node_name: None,
                        ready: *serving,
                        serving: *serving,
                        terminating: false,
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn entries_to_endpoints_that_stopped_serving_are_stale() {
        let entries = vec![
            entry("10.96.0.5", 53, "10.244.2.2", IPPROTO_UDP), // to the endpoint that left
            entry("10.96.0.5", 53, "10.244.2.3", IPPROTO_UDP), // to the one still serving
            entry("172.18.0.2", 30053, "10.244.2.2", IPPROTO_UDP), // NodePort, left
            entry("10.96.0.5", 53, "10.244.2.2", 6),           // TCP: never
            entry("10.96.0.9", 53, "10.244.2.2", IPPROTO_UDP), // another address
        ];
        let t = table(&[("10.244.2.2", false), ("10.244.2.3", true)]);
        let stale = stale_udp(&t, &entries);
        assert_eq!(stale, vec![&entries[0], &entries[2]]);
        // A Service port with no serving endpoint at all is left alone.
        let none = table(&[("10.244.2.2", false)]);
        assert!(stale_udp(&none, &entries).is_empty());
    }
}
