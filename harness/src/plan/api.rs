//! The served API's place in the plan: its address on the underlay (the control plane, as in
//! kind) and the `default/kubernetes` Service that points at it, which every case with a
//! service proxy gets (the builtin proxy programs it and the cluster DNS serves
//! `kubernetes.default.svc.cluster.local`). Its ClusterIP is the first host of the service
//! CIDR, which no case Service may take.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netns_runtime::apiserver::API_PORT;
use serde_saphyr::Spanned;

use super::context::{ClusterParams, NodeDraft, Planner, PodDraft, YamlLocation};
use super::topology::underlay_gateway;
use crate::case::{EndpointEntry, EndpointSpec, ServicePortSpec, ServiceSpec};

/// The API Service's name and namespace.
pub const API_SERVICE: (&str, &str) = ("default", "kubernetes");

/// Where the API is served and what the objects need beyond the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPlan {
    /// The control plane's address on the underlay, with nodeCIDR's prefix length.
    pub address: Ipv4Net,
    /// The `default/kubernetes` ClusterIP (the service CIDR's first host).
    pub cluster_ip: Ipv4Addr,
    /// Per pod (by name): its labels and whether it is ready.
    pub pods: BTreeMap<String, (BTreeMap<String, String>, bool)>,
}

/// The highest host of nodeCIDR that is neither the gateway nor a node's.
pub(super) fn api_address(node_cidr: Ipv4Net, nodes: &[NodeDraft]) -> Option<Ipv4Addr> {
    let gateway = underlay_gateway(node_cidr);
    let first = u32::from(node_cidr.network()) + 1;
    (first..u32::from(node_cidr.broadcast()))
        .rev()
        .map(Ipv4Addr::from)
        .find(|ip| *ip != gateway && nodes.iter().all(|n| n.address != Some(*ip)))
}

/// `default/kubernetes` as kube-apiserver declares it: port `https` 443/TCP to the API's
/// 6443, its one endpoint the API address. Located at the case's root.
pub(super) fn api_service(
    cluster_ip: Ipv4Addr,
    api: Ipv4Addr,
    at: YamlLocation,
) -> Spanned<ServiceSpec> {
    let text = |s: &str| Some(Spanned::new(s.to_owned(), at, at));
    let port = ServicePortSpec {
        name: text("https"),
        protocol: text("TCP"),
        port: text("443"),
        target_port: text(&API_PORT.to_string()),
        node_port: None,
    };
    let endpoint = EndpointEntry::Spec(Box::new(EndpointSpec {
        ip: text(&api.to_string()),
        port: None,
        node: None,
    }));
    Spanned::new(
        ServiceSpec {
            name: text(API_SERVICE.1),
            namespace: text(API_SERVICE.0),
            service_type: None,
            cluster_ip: text(&cluster_ip.to_string()),
            selector: None,
            ports: Some(Spanned::new(vec![Spanned::new(port, at, at)], at, at)),
            session_affinity: None,
            session_affinity_timeout: None,
            external_traffic_policy: None,
            internal_traffic_policy: None,
            endpoints: Some(Spanned::new(vec![Spanned::new(endpoint, at, at)], at, at)),
            initially: None,
        },
        at,
        at,
    )
}

impl Planner {
    /// Whether the case's Services leave the API Service its name and address; each one that
    /// does not is reported.
    pub(super) fn api_service_free(
        &mut self,
        specs: &[Spanned<ServiceSpec>],
        cluster_ip: Ipv4Addr,
    ) -> bool {
        let mut free = true;
        for spec in specs {
            let s = &spec.value;
            let namespace = s.namespace.as_ref().map_or("default", |n| n.value.as_str());
            if let Some(name) = &s.name
                && (namespace, name.value.as_str()) == API_SERVICE
            {
                self.error(
                    name.referenced,
                    "Service default/kubernetes is the API's, which podpath declares itself (its ClusterIP is the service CIDR's first host); name yours otherwise",
                );
                free = false;
            }
            if let Some(ip) = &s.cluster_ip
                && ip.value.parse::<Ipv4Addr>() == Ok(cluster_ip)
            {
                self.error(
                    ip.referenced,
                    format!("clusterIP {cluster_ip} is the kubernetes API Service's (default/kubernetes, the service CIDR's first host)"),
                );
                free = false;
            }
        }
        free
    }

    /// The API's plan, once the cluster parameters and pods are known.
    pub(super) fn api_plan(
        cluster: &ClusterParams,
        nodes: &[NodeDraft],
        pods: &[PodDraft],
    ) -> Option<ApiPlan> {
        let node_cidr = cluster.node_cidr?;
        let service_cidr = cluster.service_cidr?;
        let address = api_address(node_cidr, nodes)?;
        Some(ApiPlan {
            address: Ipv4Net::new(address, node_cidr.prefix_len()).ok()?,
            cluster_ip: Ipv4Addr::from(u32::from(service_cidr.network()) + 1),
            pods: pods
                .iter()
                .filter_map(|p| Some((p.name.clone()?, (p.labels.clone(), p.ready))))
                .collect(),
        })
    }
}
