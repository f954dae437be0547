//! The served API's objects, from the bound plan: the same planned data the builtin proxy's
//! `ServiceTable`s and the DNS records are made from, so every implementation under test sees
//! the cluster the builtin ones program.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as disc;
use k8s_openapi::api::networking::v1 as net;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use netns_runtime::apiserver::{ApiError, ApiServer, Change, Object, Resource};
use netns_runtime::change::ClusterChange;
use netns_runtime::dns::records::DEFAULT_NAMESPACES;
use netns_runtime::proxy::TrafficPolicy;
use netns_runtime::topology::Proto;

use crate::plan::{API_SERVICE, Plan, ServicePlan, ServiceType, TargetPort};

/// The label EndpointSlices name their Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Who manages the EndpointSlices podpath serves (the controller kube-controller-manager runs).
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// The process's start, second-rounded: every object made from a plan carries the same
/// timestamps, so two sets of objects differ only where the cluster does ([`sync`]).
fn now() -> Time {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let secs = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    });
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}

fn meta(namespace: Option<&str>, name: &str, labels: BTreeMap<String, String>) -> ObjectMeta {
    // A uid derived from the identity: the same case always serves the same objects.
    let id = format!("{}/{name}", namespace.unwrap_or_default());
    let digest = sha_hex(&id);
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: (!labels.is_empty()).then_some(labels),
        uid: Some(format!(
            "{}-{}-{}-{}-{}",
            &digest[0..8],
            &digest[8..12],
            &digest[12..16],
            &digest[16..20],
            &digest[20..32]
        )),
        creation_timestamp: Some(now()),
        ..ObjectMeta::default()
    }
}

fn sha_hex(text: &str) -> String {
    // FNV-1a, twice with different seeds: enough for stable ids, no new dependency.
    let hash = |seed: u64| {
        text.bytes()
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
    };
    format!(
        "{:016x}{:016x}",
        hash(0xcbf29ce484222325),
        hash(0x84222325cbf29ce4)
    )
}

fn proto(p: Proto) -> String {
    match p {
        Proto::Tcp => "TCP".into(),
        Proto::Udp => "UDP".into(),
    }
}

fn policy(p: TrafficPolicy) -> String {
    match p {
        TrafficPolicy::Cluster => "Cluster".into(),
        TrafficPolicy::Local => "Local".into(),
    }
}

fn condition(kind: &str, ok: bool) -> core::PodCondition {
    core::PodCondition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(now()),
        ..core::PodCondition::default()
    }
}

/// Every object of the plan as declared (revision 0): Namespaces, Nodes, Pods, Services,
/// EndpointSlices, ServiceCIDRs.
pub fn objects(plan: &Plan) -> Vec<Object> {
    objects_at(plan, 0)
}

/// The pods of revision `revision`: labels and readiness by name, deleted ones left out (the
/// steps' changes replayed from the declared state).
fn pods_at(plan: &Plan, revision: usize) -> BTreeMap<String, (BTreeMap<String, String>, bool)> {
    let declared: BTreeMap<String, (BTreeMap<String, String>, bool)> = plan
        .topology
        .pods
        .iter()
        .map(|p| {
            let meta = plan.api.as_ref().and_then(|a| a.pods.get(&p.name).cloned());
            (
                p.name.clone(),
                meta.unwrap_or_else(|| (BTreeMap::new(), true)),
            )
        })
        .collect();
    let mut pods = declared.clone();
    for change in netns_runtime::change::between(&plan.changes(), 0, revision) {
        match change {
            ClusterChange::PodReady { name, ready, .. } => {
                if let Some(p) = pods.get_mut(&name) {
                    p.1 = ready;
                }
            }
            ClusterChange::PodDeleted { name, .. } => {
                pods.remove(&name);
            }
            ClusterChange::PodCreated { name, .. } => {
                if let Some(p) = declared.get(&name) {
                    pods.insert(name, p.clone());
                }
            }
            _ => {}
        }
    }
    pods
}

/// Makes the served objects those of revision `to`: every object that differs is applied
/// (ADDED or MODIFIED for the watches), every one that is no longer there deleted. Returns
/// how many changes that made.
pub fn sync(api: &ApiServer, plan: &Plan, to: usize) -> Result<usize, ApiError> {
    let store = api.store();
    let mut current: BTreeMap<(Resource, String, String), serde_json::Value> = BTreeMap::new();
    for resource in Resource::ALL {
        for mut object in store.list(resource, None).1 {
            if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                meta.remove("resourceVersion");
            }
            current.insert(key(resource, &object), object);
        }
    }
    let mut changed = 0;
    for object in objects_at(plan, to) {
        let value = object.to_value();
        let Some(resource) = Resource::of(&value) else {
            continue;
        };
        if current.remove(&key(resource, &value)).as_ref() != Some(&value) {
            api.apply(Change::Apply(object))?;
            changed += 1;
        }
    }
    for (resource, namespace, name) in current.into_keys() {
        api.apply(Change::Delete {
            resource,
            namespace,
            name,
        })?;
        changed += 1;
    }
    Ok(changed)
}

fn key(resource: Resource, object: &serde_json::Value) -> (Resource, String, String) {
    let text = |p: &str| {
        object
            .pointer(p)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    (
        resource,
        text("/metadata/namespace"),
        text("/metadata/name"),
    )
}

/// The objects of revision `revision` of the plan (its Services and endpoints, its pods as
/// the steps left them).
pub fn objects_at(plan: &Plan, revision: usize) -> Vec<Object> {
    let services = plan
        .revisions
        .get(revision)
        .map_or(plan.services.as_slice(), |r| r.services.as_slice());
    let pods = pods_at(plan, revision);
    let topo = &plan.topology;
    let mut out = Vec::new();
    let mut namespaces: BTreeSet<String> =
        DEFAULT_NAMESPACES.iter().map(|s| s.to_string()).collect();
    namespaces.extend(topo.pods.iter().map(|p| p.namespace.clone()));
    namespaces.extend(services.iter().map(|s| s.namespace.clone()));
    for ns in namespaces {
        let labels = BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.clone())]);
        out.push(Object::Namespace(core::Namespace {
            metadata: meta(None, &ns, labels),
            spec: Some(core::NamespaceSpec {
                finalizers: Some(vec!["kubernetes".into()]),
            }),
            status: Some(core::NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            }),
        }));
    }
    for node in &topo.nodes {
        let labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), node.name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ]);
        out.push(Object::Node(core::Node {
            metadata: meta(None, &node.name, labels),
            spec: Some(core::NodeSpec {
                pod_cidr: Some(node.pod_cidr.to_string()),
                pod_cidrs: Some(vec![node.pod_cidr.to_string()]),
                ..Default::default()
            }),
            status: Some(core::NodeStatus {
                addresses: Some(vec![
                    core::NodeAddress {
                        type_: "InternalIP".into(),
                        address: node.eth0.addr.addr().to_string(),
                    },
                    core::NodeAddress {
                        type_: "Hostname".into(),
                        address: node.name.clone(),
                    },
                ]),
                conditions: Some(vec![core::NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    reason: Some("KubeletReady".into()),
                    message: Some("podpath node".into()),
                    last_transition_time: Some(now()),
                    last_heartbeat_time: Some(now()),
                }]),
                node_info: Some(core::NodeSystemInfo {
                    kubelet_version: format!(
                        "v{}.{}.0",
                        netns_runtime::apiserver::KUBERNETES_VERSION.0,
                        netns_runtime::apiserver::KUBERNETES_VERSION.1
                    ),
                    operating_system: "linux".into(),
                    architecture: "amd64".into(),
                    container_runtime_version: "podpath://netns".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }));
    }
    for pod in &topo.pods {
        if let Some((labels, ready)) = pods.get(&pod.name).cloned() {
            out.push(Object::Pod(pod_object(plan, pod, labels, ready)));
        }
    }
    for service in services {
        out.push(Object::Service(service_object(service)));
        out.extend(
            endpoint_slices(service)
                .into_iter()
                .map(|slice| with_hostnames(plan, slice))
                .map(Object::EndpointSlice),
        );
    }
    out.push(Object::ServiceCidr(net::ServiceCIDR {
        metadata: meta(None, "kubernetes", BTreeMap::new()),
        spec: Some(net::ServiceCIDRSpec {
            cidrs: Some(vec![plan.service_cidr.to_string()]),
        }),
        status: Some(net::ServiceCIDRStatus {
            conditions: Some(vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "".into(),
                message: "".into(),
                last_transition_time: now(),
                observed_generation: None,
            }]),
        }),
    }));
    out
}

/// A pod as the kubelet reports it running: phase Running, its address, its node's.
pub fn pod_object(
    plan: &Plan,
    pod: &netns_runtime::topology::Pod,
    labels: BTreeMap<String, String>,
    ready: bool,
) -> core::Pod {
    let node = plan.topology.node_of(pod);
    let ip = pod.eth0.addr.addr().to_string();
    let host = node.eth0.addr.addr().to_string();
    let ports: Vec<core::ContainerPort> = pod
        .listeners
        .iter()
        .map(|l| core::ContainerPort {
            container_port: i32::from(l.port),
            protocol: Some(proto(l.proto)),
            ..Default::default()
        })
        .collect();
    core::Pod {
        metadata: meta(Some(&pod.namespace), &pod.name, labels),
        spec: Some(core::PodSpec {
            node_name: Some(node.name.clone()),
            containers: vec![core::Container {
                name: "echo".into(),
                image: Some("podpath/echo".into()),
                ports: (!ports.is_empty()).then_some(ports),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![core::PodIP { ip }]),
            host_ip: Some(host.clone()),
            host_ips: Some(vec![core::HostIP { ip: host }]),
            conditions: Some(vec![
                condition("PodScheduled", true),
                condition("Initialized", true),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ]),
            ..Default::default()
        }),
    }
}

/// A Service as declared, with its allocated ClusterIP and NodePorts.
pub fn service_object(s: &ServicePlan) -> core::Service {
    let ports = s
        .ports
        .iter()
        .map(|p| core::ServicePort {
            name: (!p.name.is_empty()).then(|| p.name.clone()),
            protocol: Some(proto(p.protocol)),
            port: i32::from(p.port),
            target_port: Some(match &p.target_port {
                TargetPort::Number(n) => IntOrString::Int(i32::from(*n)),
                TargetPort::Name(n) => IntOrString::String(n.clone()),
            }),
            node_port: p.node_port.map(i32::from),
            ..Default::default()
        })
        .collect();
    let cluster_ip = s
        .cluster_ip
        .map_or_else(|| "None".to_string(), |ip| ip.to_string());
    let mut labels = BTreeMap::new();
    if (s.namespace.as_str(), s.name.as_str()) == API_SERVICE {
        labels.insert("component".to_string(), "apiserver".to_string());
        labels.insert("provider".to_string(), "kubernetes".to_string());
    }
    let node_port = s.service_type == ServiceType::NodePort;
    core::Service {
        metadata: meta(Some(&s.namespace), &s.name, labels),
        spec: Some(core::ServiceSpec {
            type_: Some(s.service_type.to_string()),
            cluster_ip: Some(cluster_ip.clone()),
            cluster_ips: Some(vec![cluster_ip]),
            selector: s.selector.clone(),
            ports: Some(ports),
            session_affinity: Some(
                if s.session_affinity.is_some() {
                    "ClientIP"
                } else {
                    "None"
                }
                .into(),
            ),
            session_affinity_config: s.session_affinity.map(|t| core::SessionAffinityConfig {
                client_ip: Some(core::ClientIPConfig {
                    timeout_seconds: Some(t as i32),
                }),
            }),
            external_traffic_policy: node_port.then(|| policy(s.external_traffic_policy)),
            internal_traffic_policy: Some(policy(s.internal_traffic_policy)),
            ip_families: Some(vec!["IPv4".into()]),
            ip_family_policy: Some("SingleStack".into()),
            ..Default::default()
        }),
        status: Some(core::ServiceStatus::default()),
    }
}

/// Each endpoint's `hostname`, as the EndpointSlice controller sets it (the pod's `hostname`
/// when its `subdomain` is the Service's name, or the one the case gives), from the DNS
/// records: CoreDNS's kubernetes plugin names endpoints by it.
fn with_hostnames(plan: &Plan, mut slice: disc::EndpointSlice) -> disc::EndpointSlice {
    let Some(dns) = plan.topology.dns.as_ref().map(|d| &d.records) else {
        return slice;
    };
    let ns = slice.metadata.namespace.clone().unwrap_or_default();
    let Some(name) = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL).cloned())
    else {
        return slice;
    };
    let Some(svc) = dns
        .services
        .iter()
        .find(|s| s.namespace == ns && s.name == name)
    else {
        return slice;
    };
    for ep in slice.endpoints.iter_mut().flatten() {
        let Some(ip) = ep.addresses.first() else {
            continue;
        };
        let Some(rec) = svc.endpoints.iter().find(|e| e.ip.to_string() == *ip) else {
            continue;
        };
        let pod = rec
            .pod
            .as_ref()
            .and_then(|p| dns.pods.iter().find(|x| &x.name == p && x.namespace == ns));
        ep.hostname = rec.hostname.clone().or_else(|| {
            pod.filter(|p| p.subdomain.as_deref() == Some(name.as_str()))
                .and_then(|p| p.hostname.clone())
        });
    }
    slice
}

/// A Service's EndpointSlices, as the EndpointSlice controller writes them: one per set of
/// endpoint ports (pods whose named target ports differ get slices of their own).
pub fn endpoint_slices(s: &ServicePlan) -> Vec<disc::EndpointSlice> {
    // (port name, protocol, number) per Service port, for one endpoint address.
    type PortSet = Vec<(String, String, i32)>;
    let mut groups: BTreeMap<PortSet, Vec<disc::Endpoint>> = BTreeMap::new();
    for e in &s.endpoints {
        let ports: PortSet = s
            .ports
            .iter()
            .filter_map(|p| {
                let pe = p.endpoints.iter().find(|pe| pe.ip == e.ip)?;
                Some((p.name.clone(), proto(p.protocol), i32::from(pe.port)))
            })
            .collect();
        let endpoint = disc::Endpoint {
            addresses: vec![e.ip.to_string()],
            conditions: Some(disc::EndpointConditions {
                ready: Some(e.ready),
                serving: Some(e.ready),
                terminating: Some(false),
            }),
            node_name: e.node.clone(),
            target_ref: e.pod.as_ref().map(|p| core::ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(s.namespace.clone()),
                name: Some(p.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        groups.entry(ports).or_default().push(endpoint);
    }
    if groups.is_empty() {
        // A Service without endpoints still has its (empty) slice.
        groups.insert(Vec::new(), Vec::new());
    }
    let api = (s.namespace.as_str(), s.name.as_str()) == API_SERVICE;
    groups
        .into_iter()
        .enumerate()
        .map(|(i, (ports, endpoints))| {
            let mut labels = BTreeMap::from([
                (SERVICE_NAME_LABEL.to_string(), s.name.clone()),
                (
                    "endpointslice.kubernetes.io/managed-by".to_string(),
                    MANAGED_BY.to_string(),
                ),
            ]);
            if s.cluster_ip.is_none() {
                labels.insert("service.kubernetes.io/headless".into(), String::new());
            }
            let name = if api {
                s.name.clone()
            } else {
                format!(
                    "{}-{}",
                    s.name,
                    &sha_hex(&format!("{}/{}/{i}", s.namespace, s.name))[..5]
                )
            };
            disc::EndpointSlice {
                metadata: meta(Some(&s.namespace), &name, labels),
                address_type: "IPv4".into(),
                endpoints: Some(endpoints),
                ports: Some(
                    ports
                        .into_iter()
                        .map(|(name, protocol, port)| disc::EndpointPort {
                            name: Some(name),
                            protocol: Some(protocol),
                            port: Some(port),
                            app_protocol: None,
                        })
                        .collect(),
                ),
            }
        })
        .collect()
}
