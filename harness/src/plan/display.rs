//! The human-readable plan, as `podpath plan CASE` prints it.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use netns_runtime::proxy::TrafficPolicy;
use netns_runtime::topology::{ClusterDnsServer, Iface, Listener, Route, Topology};

use super::dns::{self};
use super::flow_dns::describe_expect;
use super::hops::{self};
use super::model::{ExecPlan, Expect, FlowPlan, Plan, ServiceVia, Target};
use super::services::{ServicePlan, ServiceType};
use super::topology::POD_BRIDGE;

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topo = &self.topology;
        writeln!(f, "case {} ({})", self.name, self.file.display())?;
        let u = &topo.underlay;
        writeln!(
            f,
            "underlay netns {} bridge {} {} mtu {}",
            u.netns, u.bridge, u.cidr, u.mtu
        )?;
        for node in &topo.nodes {
            writeln!(f, "node {} (pod subnet {})", node.name, node.pod_cidr)?;
            write_iface(f, &node.eth0)?;
            writeln!(f, " (underlay port {})", node.underlay_port)?;
            write_iface(f, &node.bridge)?;
            writeln!(f)?;
            if let Some(v) = &node.network.vxlan {
                writeln!(
                    f,
                    "  {:<10} {} {} mtu {} vni {} port {} local {} dev {} learning {}",
                    v.name,
                    v.addr,
                    v.mac,
                    v.mtu,
                    v.vni,
                    v.port,
                    v.local,
                    v.underlay_dev,
                    if v.learning { "on" } else { "off" }
                )?;
            }
            for route in node.network.routes.iter().chain(&node.routes) {
                write_route(f, route)?;
            }
            for n in &node.network.neighbours {
                writeln!(
                    f,
                    "  {:<10} {} lladdr {} dev {}",
                    "neigh", n.ip, n.mac, n.dev
                )?;
            }
            for e in &node.network.fdb {
                writeln!(f, "  {:<10} {} dst {} dev {}", "fdb", e.mac, e.dst, e.dev)?;
            }
            for (key, value) in &node.sysctls {
                writeln!(f, "  {:<10} {key}={value}", "sysctl")?;
            }
        }
        if let Some(external) = &topo.external {
            writeln!(
                f,
                "{} (a host outside the cluster, at the underlay gateway)",
                external.name
            )?;
            write_iface(f, &external.eth0)?;
            writeln!(f, " (underlay port {})", external.underlay_port)?;
            write_listeners(f, &external.listeners)?;
        }
        for pod in &topo.pods {
            let node = topo.nodes.get(pod.node).map_or("?", |n| n.name.as_str());
            writeln!(
                f,
                "pod {} (namespace {}) on {node}",
                pod.name, pod.namespace
            )?;
            write_iface(f, &pod.eth0)?;
            writeln!(f)?;
            writeln!(
                f,
                "  {:<10} {} (port of {node}'s {POD_BRIDGE})",
                "host veth", pod.host_veth
            )?;
            for route in &pod.routes {
                write_route(f, route)?;
            }
            write_listeners(f, &pod.listeners)?;
            for h in &pod.host_ports {
                writeln!(
                    f,
                    "  {:<10} {}/{} on its node -> {}/{} (CNI portMappings)",
                    "hostPort", h.host_port, h.proto, h.container_port, h.proto
                )?;
            }
            if let Some(entry) = pod.hosts.as_deref().and_then(|h| h.lines().last()) {
                writeln!(f, "  {:<10} {}", "hosts", entry.replace('\t', " "))?;
            }
        }
        for service in &self.services {
            write_service(f, service)?;
            let absent = !self.revisions.first().is_none_or(|r| {
                r.services
                    .iter()
                    .any(|s| s.namespace == service.namespace && s.name == service.name)
            });
            if absent {
                writeln!(f, "  {:<10} absent until a step creates it", "initially")?;
            }
        }
        if let Some(dns) = &topo.dns {
            write_dns(f, topo, dns)?;
        }
        let mut shown = 0;
        let mut last_revision = None;
        for flow in &self.flows {
            // The steps before the flow, and the revision they leave the cluster in.
            while shown < flow.revision {
                if let Some(step) = self.steps.get(shown) {
                    write_step(f, step, self.revisions.get(step.revision))?;
                }
                shown += 1;
            }
            if !self.steps.is_empty() && last_revision != Some(flow.revision) {
                writeln!(f, "flows at revision {}:", flow.revision)?;
                last_revision = Some(flow.revision);
            }
            if let Some(exec) = &flow.exec {
                write_exec_flow(f, flow, exec)?;
                continue;
            }
            let owner = match &flow.service {
                Some(svc) => {
                    let port = self
                        .services
                        .get(svc.service)
                        .and_then(|s| s.ports.get(svc.port))
                        .map_or_else(String::new, |p| format!(" port {}", p.label()));
                    match &svc.via {
                        ServiceVia::ClusterIp => {
                            format!(" (Service {}/{}{port})", svc.namespace, svc.name)
                        }
                        ServiceVia::NodePort { node } => format!(
                            " ({node}'s NodePort to Service {}/{}{port})",
                            svc.namespace, svc.name
                        ),
                    }
                }
                None => topo
                    .owner_of(flow.target.ip())
                    .map_or_else(String::new, |name| format!(" ({name})")),
            };
            let target = match (&flow.dns_name, &flow.resolution) {
                (Some(name), Some(resolution)) => {
                    let port = match flow.target {
                        Target::Tcp(addr) => format!(":{} (tcp)", addr.port()),
                        Target::Udp(addr) => format!(":{} (udp)", addr.port()),
                        Target::Icmp(_) => " (icmp)".to_owned(),
                    };
                    match resolution.addrs.as_slice() {
                        [] => format!("{name}{port}, which resolves to no address"),
                        [_] => format!(
                            "{name}{port} = {}{owner}, resolved as {}",
                            flow.target,
                            resolution.fqdn.as_deref().unwrap_or("?")
                        ),
                        _ => format!(
                            "{name}{port}, resolved as {}",
                            dns::describe_resolution(resolution)
                        ),
                    }
                }
                _ => format!("{}{owner}", flow.target),
            };
            write!(
                f,
                "flow {} (line {}): {} -> {target}, timeout {}",
                flow.name,
                flow.location.line,
                flow.from,
                DisplayDuration(flow.timeout)
            )?;
            if flow.attempts > 1 {
                write!(f, ", {} attempts", flow.attempts)?;
            }
            writeln!(f)?;
            if let Some(resolution) = &flow.resolution {
                writeln!(f, "  {:<10} {}", "asks", resolution.asked.join(" "))?;
            }
            if let Some(expect) = &flow.expect_dns {
                writeln!(f, "  expect dns {}", describe_expect(expect))?;
            }
            if flow.sends_traffic() {
                write!(f, "  expect {}", flow.expect)?;
                if flow.sticky {
                    write!(f, ", every attempt answered by the same pod")?;
                } else if flow.each_reach_pod_answers()
                    && matches!(flow.expect, Expect::Reach { .. })
                {
                    write!(f, ", each of them at least once")?;
                }
                writeln!(f)?;
            }
            hops::write_hops(f, &flow.hops)?;
        }
        for step in self.steps.iter().skip(shown) {
            write_step(f, step, self.revisions.get(step.revision))?;
        }
        Ok(())
    }
}

/// A step, and what the Services' endpoints are after it.
fn write_step(
    f: &mut fmt::Formatter<'_>,
    step: &super::StepPlan,
    revision: Option<&super::Revision>,
) -> fmt::Result {
    writeln!(
        f,
        "step (line {}): {} -> revision {}",
        step.location.line, step.change, step.revision
    )?;
    let Some(revision) = revision else {
        return Ok(());
    };
    for service in &revision.services {
        let ready: Vec<String> = service
            .endpoints
            .iter()
            .filter(|e| e.ready)
            .map(|e| e.pod.clone().unwrap_or_else(|| e.ip.to_string()))
            .collect();
        let ready = if ready.is_empty() {
            "none".to_owned()
        } else {
            ready.join(" ")
        };
        writeln!(
            f,
            "  {:<10} {} ready endpoints: {ready}",
            "service",
            service.id()
        )?;
    }
    Ok(())
}

/// The DNS server, and the resolv.conf of each namespace's pods (the same for all of them).
fn write_dns(f: &mut fmt::Formatter<'_>, topo: &Topology, dns: &ClusterDnsServer) -> fmt::Result {
    let records = &dns.records;
    let server = topo.pod(&dns.pod);
    let node = server
        .and_then(|p| topo.nodes.get(p.node))
        .map_or("?", |n| n.name.as_str());
    let ips: Vec<String> = records.server_ips.iter().map(Ipv4Addr::to_string).collect();
    writeln!(
        f,
        "dns {} (namespace {}) on {node} at {}: zone {}, ttl {}, {} Services, {} pods",
        dns.pod,
        server.map_or("?", |p| p.namespace.as_str()),
        ips.join(" "),
        records.zone,
        records.ttl,
        records.services.len(),
        records.pods.len()
    )?;
    let mut shown: Vec<&str> = Vec::new();
    for pod in &topo.pods {
        let Some(resolv) = &pod.resolv_conf else {
            continue;
        };
        if shown.contains(&pod.namespace.as_str()) {
            continue;
        }
        shown.push(&pod.namespace);
        let lines: Vec<&str> = resolv.lines().collect();
        writeln!(
            f,
            "  {:<10} namespace {}: {}",
            "resolv",
            pod.namespace,
            lines.join("; ")
        )?;
    }
    Ok(())
}

/// An `exec` flow: the command and what it must do.
fn write_exec_flow(f: &mut fmt::Formatter<'_>, flow: &FlowPlan, exec: &ExecPlan) -> fmt::Result {
    let argv: Vec<String> = exec
        .argv
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                format!("{a:?}")
            } else {
                a.clone()
            }
        })
        .collect();
    writeln!(
        f,
        "flow {} (line {}): {} runs {}, timeout {}",
        flow.name,
        flow.location.line,
        flow.from,
        argv.join(" "),
        DisplayDuration(flow.timeout)
    )?;
    write!(f, "  expect exit {}", exec.exit)?;
    for line in &exec.output {
        write!(f, ", line {line:?}")?;
    }
    for pattern in &exec.output_matches {
        write!(f, ", a line matching {pattern:?}")?;
    }
    writeln!(f)
}

fn write_service(f: &mut fmt::Formatter<'_>, service: &ServicePlan) -> fmt::Result {
    write!(f, "service {} {}", service.id(), service.service_type)?;
    match service.cluster_ip {
        Some(ip) => write!(f, " {ip}")?,
        None => write!(f, " None (headless)")?,
    }
    if (service.namespace.as_str(), service.name.as_str()) == super::API_SERVICE {
        writeln!(f, " (the served API's, declared by podpath)")?;
    } else {
        writeln!(f, " (line {})", service.location.line)?;
    }
    match &service.selector {
        Some(selector) => {
            let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(f, "  {:<10} {}", "selector", labels.join(","))?;
        }
        None => writeln!(f, "  {:<10} none (endpoints listed)", "selector")?,
    }
    if let Some(timeout) = service.session_affinity {
        writeln!(f, "  {:<10} ClientIP {timeout}s", "affinity")?;
    }
    if service.service_type == ServiceType::NodePort {
        writeln!(
            f,
            "  {:<10} external {:?}, internal {:?}",
            "policy", service.external_traffic_policy, service.internal_traffic_policy
        )?;
    } else if service.internal_traffic_policy != TrafficPolicy::Cluster {
        writeln!(
            f,
            "  {:<10} internal {:?}",
            "policy", service.internal_traffic_policy
        )?;
    }
    for port in &service.ports {
        write!(f, "  {:<10} {}", "port", port.label())?;
        if let Some(node_port) = port.node_port {
            write!(f, " nodePort {node_port}")?;
        }
        writeln!(f, " -> targetPort {}", port.target_port)?;
        for e in &port.endpoints {
            write!(f, "    endpoint {}:{}", e.ip, e.port)?;
            if let Some(pod) = &e.pod {
                write!(f, " {pod}")?;
            }
            if let Some(node) = &e.node {
                write!(f, " on {node}")?;
            }
            writeln!(f, "{}", if e.ready { "" } else { " (not ready)" })?;
        }
        if port.endpoints.is_empty() {
            writeln!(f, "    no endpoints")?;
        }
    }
    if service.ports.is_empty() {
        for e in &service.endpoints {
            write!(f, "  {:<10} {}", "endpoint", e.ip)?;
            if let Some(pod) = &e.pod {
                write!(f, " {pod}")?;
            }
            if let Some(node) = &e.node {
                write!(f, " on {node}")?;
            }
            writeln!(f, "{}", if e.ready { "" } else { " (not ready)" })?;
        }
    }
    Ok(())
}

fn write_listeners(f: &mut fmt::Formatter<'_>, listeners: &[Listener]) -> fmt::Result {
    if listeners.is_empty() {
        return Ok(());
    }
    let listen: Vec<String> = listeners.iter().map(Listener::to_string).collect();
    writeln!(f, "  {:<10} {}", "listen", listen.join(" "))
}

fn write_iface(f: &mut fmt::Formatter<'_>, iface: &Iface) -> fmt::Result {
    write!(
        f,
        "  {:<10} {} {} mtu {}",
        iface.name, iface.addr, iface.mac, iface.mtu
    )
}

fn write_route(f: &mut fmt::Formatter<'_>, route: &Route) -> fmt::Result {
    let dst = if route.dst.prefix_len() == 0 {
        "default".to_owned()
    } else {
        route.dst.to_string()
    };
    write!(f, "  {:<10} {dst}", "route")?;
    if let Some(via) = route.via {
        write!(f, " via {via}")?;
    }
    write!(f, " dev {}", route.dev)?;
    if route.onlink {
        write!(f, " onlink")?;
    }
    writeln!(f)
}

struct DisplayDuration(Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis % 1000 == 0 {
            write!(f, "{}s", millis / 1000)
        } else {
            write!(f, "{millis}ms")
        }
    }
}
