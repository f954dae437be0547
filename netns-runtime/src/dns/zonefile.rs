//! The builtin record table as RFC 1035 zone files, for DNS servers that take a zone and no
//! Kubernetes API (CoreDNS's `file` plugin, NSD, BIND): the cluster zone and the IPv4 reverse
//! zone. Pure.
//!
//! What a static zone cannot say that the `kubernetes` plugin answers is in `docs/dns.md`
//! (`pods insecure` answers any dashed address; here only the case's pods are listed).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use crate::dns::records::{SCHEMA_TTL, SCHEMA_VERSION};
use crate::dns::{ClusterDns, RData, Record, RecordTable, RecordType};

/// The reverse zones' origins.
pub const REVERSE_ZONE: &str = "in-addr.arpa.";
pub const REVERSE6_ZONE: &str = "ip6.arpa.";

/// The cluster zone (`$ORIGIN cluster.local.`): its SOA and NS, the name server's address,
/// every Service's records as the zone transfer lists them, the endpoint names, the schema TXT
/// and each pod's dashed A record.
pub fn cluster_zone(dns: &ClusterDns) -> String {
    let table = RecordTable::new(dns);
    let zone = table.zone().to_string();
    let mut records = table.zone_transfer();
    // The listing ends with the SOA again, as a transfer does; a zone file has it once.
    if records.len() > 1 && records.first() == records.last() {
        records.pop();
    }
    // SRV records as a query answers them: the transfer gives every record weight 100, the
    // plugin shares 100 between the records of one answer (two ports: 50 each).
    let srv_names: Vec<String> = records
        .iter()
        .filter(|r| r.data.record_type() == RecordType::Srv)
        .map(|r| r.name.clone())
        .collect();
    records.retain(|r| r.data.record_type() != RecordType::Srv);
    for name in dedup_names(srv_names) {
        records.extend(table.lookup(&name, RecordType::Srv).answers);
    }
    // The name server's own name, which the plugin answers when no Service names it.
    records.extend(
        table
            .lookup(&format!("ns.dns.{zone}"), RecordType::A)
            .answers,
    );
    records.push(Record {
        name: format!("dns-version.{zone}"),
        ttl: SCHEMA_TTL,
        data: RData::Txt(SCHEMA_VERSION.to_string()),
    });
    for pod in &dns.pods {
        let name = format!(
            "{}.{}.pod.{zone}",
            pod.ip.to_string().replace('.', "-"),
            pod.namespace.to_ascii_lowercase()
        );
        records.push(Record {
            name,
            ttl: dns.ttl,
            data: RData::A(pod.ip),
        });
    }
    render(&zone, &dedup(records))
}

/// The IPv4 reverse zone (`$ORIGIN in-addr.arpa.`): a PTR for every ClusterIP and every ready
/// endpoint address the cluster zone names, as the table answers them.
pub fn reverse_zone(dns: &ClusterDns) -> String {
    let table = RecordTable::new(dns);
    let soa = table
        .lookup(REVERSE_ZONE, RecordType::Soa)
        .answers
        .into_iter()
        .next();
    let mut records: Vec<Record> = soa.into_iter().collect();
    let addresses: BTreeSet<Ipv4Addr> = table
        .zone_transfer()
        .iter()
        .filter_map(|r| match r.data {
            RData::A(ip) => Some(ip),
            _ => None,
        })
        .collect();
    for ip in addresses {
        let o = ip.octets();
        let name = format!("{}.{}.{}.{}.{REVERSE_ZONE}", o[3], o[2], o[1], o[0]);
        for target in table.reverse(IpAddr::V4(ip)) {
            records.push(Record {
                name: name.clone(),
                ttl: dns.ttl,
                data: RData::Ptr(target),
            });
        }
    }
    render(REVERSE_ZONE, &dedup(records))
}

/// The IPv6 reverse zone: its SOA only (the clusters are IPv4), so that its names are NXDOMAIN
/// with the SOA, as the plugin answers them.
pub fn reverse6_zone(dns: &ClusterDns) -> String {
    let table = RecordTable::new(dns);
    let soa = table.lookup(REVERSE6_ZONE, RecordType::Soa).answers;
    render(REVERSE6_ZONE, &soa)
}

/// The questions two cluster DNS servers are compared on (`podpath compare`): every name and
/// type of the cluster zone, the schema TXT, AAAA of every Service, the PTR of every address
/// the zone names, each pod's dashed name, and names that do not exist (in each namespace, a
/// missing namespace, the `svc` and `pod` subtrees, the apex, a name outside the zones).
pub fn questions(dns: &ClusterDns) -> Vec<(String, RecordType)> {
    let table = RecordTable::new(dns);
    let zone = table.zone().to_string();
    let mut out: Vec<(String, RecordType)> = Vec::new();
    let mut add = |name: String, t: RecordType| {
        if !out.iter().any(|(n, q)| *n == name && *q == t) {
            out.push((name, t));
        }
    };
    let records = table.zone_transfer();
    for r in &records {
        add(r.name.clone(), r.data.record_type());
    }
    add(format!("dns-version.{zone}"), RecordType::Txt);
    for svc in &dns.services {
        add(
            format!("{}.{}.svc.{zone}", svc.name, svc.namespace),
            RecordType::Aaaa,
        );
        add(
            format!("nosuch.{}.svc.{zone}", svc.namespace),
            RecordType::A,
        );
        add(format!("{}.svc.{zone}", svc.namespace), RecordType::A);
    }
    for r in &records {
        if let RData::A(ip) = r.data {
            let o = ip.octets();
            add(
                format!("{}.{}.{}.{}.{REVERSE_ZONE}", o[3], o[2], o[1], o[0]),
                RecordType::Ptr,
            );
        }
    }
    for pod in &dns.pods {
        add(
            format!(
                "{}.{}.pod.{zone}",
                pod.ip.to_string().replace('.', "-"),
                pod.namespace
            ),
            RecordType::A,
        );
    }
    for ns in &dns.namespaces {
        add(format!("{ns}.svc.{zone}"), RecordType::A);
    }
    if let Some(svc) = dns.services.iter().find(|s| s.cluster_ip.is_some()) {
        let upper = format!("{}.{}.svc.{zone}", svc.name, svc.namespace).to_ascii_uppercase();
        add(upper, RecordType::A);
    }
    for name in [
        format!("192-0-2-1.default.pod.{zone}"),
        format!("nosuch-namespace.svc.{zone}"),
        format!("svc.{zone}"),
        format!("pod.{zone}"),
        zone.clone(),
        format!("ns.dns.{zone}"),
        "example.com.".to_string(),
    ] {
        add(name, RecordType::A);
    }
    add(zone.clone(), RecordType::Ns);
    add(zone, RecordType::Soa);
    out
}

fn dedup_names(names: Vec<String>) -> Vec<String> {
    let mut seen = Vec::new();
    for n in names {
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    seen
}

fn dedup(records: Vec<Record>) -> Vec<Record> {
    let mut seen = Vec::new();
    for r in records {
        if !seen.contains(&r) {
            seen.push(r);
        }
    }
    seen
}

fn render(origin: &str, records: &[Record]) -> String {
    let mut out = format!("; written by podpath from the builtin record table\n$ORIGIN {origin}\n");
    for r in records {
        out.push_str(&r.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Endpoint, Pod, Port, Service};
    use crate::topology::Proto;

    fn dns() -> ClusterDns {
        ClusterDns {
            services: vec![
                Service {
                    namespace: "default".into(),
                    name: "web".into(),
                    cluster_ip: Some([10, 96, 1, 20].into()),
                    ports: vec![Port {
                        name: "http".into(),
                        protocol: Proto::Tcp,
                        port: 80,
                    }],
                    endpoints: vec![Endpoint {
                        ip: [10, 244, 1, 10].into(),
                        hostname: None,
                        pod: Some("web-0".into()),
                        ready: true,
                        ports: vec![Port {
                            name: "http".into(),
                            protocol: Proto::Tcp,
                            port: 8080,
                        }],
                    }],
                },
                Service {
                    namespace: "default".into(),
                    name: "db".into(),
                    cluster_ip: None,
                    ports: Vec::new(),
                    endpoints: vec![Endpoint {
                        ip: [10, 244, 2, 5].into(),
                        hostname: Some("db-0".into()),
                        pod: None,
                        ready: true,
                        ports: Vec::new(),
                    }],
                },
            ],
            pods: vec![Pod {
                namespace: "default".into(),
                name: "web-0".into(),
                ip: [10, 244, 1, 10].into(),
                hostname: None,
                subdomain: None,
            }],
            ..ClusterDns::default()
        }
    }

    #[test]
    fn the_cluster_zone_lists_services_endpoints_pods_and_the_schema() {
        let z = cluster_zone(&dns());
        for line in [
            "$ORIGIN cluster.local.",
            "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30",
            "web.default.svc.cluster.local. 30 IN A 10.96.1.20",
            "_http._tcp.web.default.svc.cluster.local. 30 IN SRV 0 100 80 web.default.svc.cluster.local.",
            "db.default.svc.cluster.local. 30 IN A 10.244.2.5",
            "db-0.db.default.svc.cluster.local. 30 IN A 10.244.2.5",
            "dns-version.cluster.local. 28800 IN TXT \"1.1.0\"",
            "10-244-1-10.default.pod.cluster.local. 30 IN A 10.244.1.10",
        ] {
            assert!(z.lines().any(|l| l == line), "{line:?} missing from\n{z}");
        }
        assert_eq!(z.matches(" IN SOA ").count(), 1, "{z}");
    }

    #[test]
    fn the_reverse_zone_has_a_ptr_per_address() {
        let z = reverse_zone(&dns());
        for line in [
            "$ORIGIN in-addr.arpa.",
            "20.1.96.10.in-addr.arpa. 30 IN PTR web.default.svc.cluster.local.",
            "5.2.244.10.in-addr.arpa. 30 IN PTR db-0.db.default.svc.cluster.local.",
        ] {
            assert!(z.lines().any(|l| l == line), "{line:?} missing from\n{z}");
        }
        assert!(z.lines().nth(2).unwrap().contains(" IN SOA "), "{z}");
        let z6 = reverse6_zone(&dns());
        assert!(
            z6.ends_with(
                "ip6.arpa. 30 IN SOA ns.dns.ip6.arpa. hostmaster.ip6.arpa. 1 7200 1800 86400 30\n"
            ),
            "{z6}"
        );
    }
}
