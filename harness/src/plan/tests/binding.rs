//! Binding a plan to what a pod attach decided: every address that depends on a pod's follows
//! the learned one.

use netns_runtime::stack::Attachment;

use super::*;
use crate::plan::bind;

const CASE: &str = "dns: { node: node1 }
nodes: [node1, node2]
pods:
  - { name: client, node: node1 }
  - { name: web, node: node2, labels: { app: web }, listen: [8080/tcp] }
services:
  - { name: web, selector: { app: web }, ports: [{ port: 80, targetPort: 8080 }] }
flows:
  - { name: direct, from: client, to: 'web:8080', expect: { reach: web, seenSource: client } }
  - { name: by-service, from: client, to: 'svc/web:80', expect: { reach: web } }
";

fn learned(pod: &str, addr: &str, host: &str) -> Attachment {
    Attachment {
        pod: pod.into(),
        iface: "eth0".into(),
        addr: cidr(addr),
        mac: None,
        host_iface: Some(host.into()),
        gateway: Some(ip("10.244.2.1")),
    }
}

#[test]
fn a_learned_address_moves_the_pod_its_endpoints_records_and_flows() {
    let planned = plan(FILE, CASE);
    let web = planned.topology.pod("web").unwrap();
    assert_eq!(web.eth0.addr, cidr("10.244.2.2/24"));
    let bound = bind(&planned, &[learned("web", "10.244.2.77/24", "vethweb")]).unwrap();
    let web = bound.topology.pod("web").unwrap();
    assert_eq!(web.eth0.addr, cidr("10.244.2.77/24"));
    assert_eq!(web.host_veth, "vethweb");
    // What depends on the pod's address follows it: the flow to it, the Service's endpoint
    // in every node's proxy table, the cluster DNS's records.
    let direct = bound.flows.iter().find(|f| f.name == "direct").unwrap();
    assert_eq!(
        direct.target,
        Target::Tcp("10.244.2.77:8080".parse().unwrap())
    );
    for table in &bound.proxy {
        let port = table.services.iter().find(|s| s.name == "web").unwrap();
        assert_eq!(port.endpoints[0].ip, ip("10.244.2.77"));
    }
    let records = format!("{:?}", bound.topology.dns.as_ref().unwrap().records);
    assert!(records.contains("10.244.2.77"), "{records}");
    // What the case decides stays: the Service's ClusterIP, the client's address.
    assert_eq!(bound.services, {
        let mut s = planned.services.clone();
        for svc in &mut s {
            for ep in &mut svc.endpoints {
                if ep.ip == ip("10.244.2.2") {
                    ep.ip = ip("10.244.2.77");
                }
            }
            for port in &mut svc.ports {
                for ep in &mut port.endpoints {
                    if ep.ip == ip("10.244.2.2") {
                        ep.ip = ip("10.244.2.77");
                    }
                }
            }
        }
        s
    });
    assert_eq!(
        bound.topology.pod("client").unwrap().eth0,
        planned.topology.pod("client").unwrap().eth0
    );
}

#[test]
fn binding_to_what_the_plan_decided_changes_nothing() {
    let planned = plan(FILE, CASE);
    let same: Vec<Attachment> = planned
        .topology
        .pods
        .iter()
        .map(Attachment::planned)
        .collect();
    assert_eq!(bind(&planned, &same).unwrap(), planned);
}

#[test]
fn an_address_outside_the_nodes_subnet_or_given_twice_is_the_implementations_error() {
    let planned = plan(FILE, CASE);
    let e = bind(&planned, &[learned("web", "10.9.9.9/24", "v")]).unwrap_err();
    assert!(
        e.to_string().contains(
            "the pod attach gave web the address 10.9.9.9, outside node2's pod subnet 10.244.2.0/24"
        ),
        "{e}"
    );
    let mut client = learned("client", "10.244.1.5/24", "v1");
    client.gateway = None;
    let e = bind(
        &planned,
        &[client, learned("coredns", "10.244.1.5/24", "v2")],
    )
    .unwrap_err();
    assert!(e.to_string().contains("which it gave"), "{e}");
}
