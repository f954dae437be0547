//! Kubernetes manifests in a case: `Service`, `EndpointSlice` and `Pod` objects written as
//! `kubectl apply` takes them (`apiVersion`, `kind`, `metadata`, `spec`), under a case's
//! `manifests:`, alone or beside the short forms (`pods:`, `services:`). Each becomes the short
//! form it means before the case is planned, keeping its locations, so every later error points
//! into the manifest; what podpath cannot take from a manifest is an error located there.
//!
//! - `Pod` (`v1`): `metadata.name`, `namespace`, `labels`; `spec.nodeName` (required: there is
//!   no scheduler), `hostname`, `subdomain`, and every `containers[].ports[]` (`containerPort`,
//!   `protocol`, `name`) as a listener.
//! - `Service` (`v1`): `metadata.name`, `namespace`; `spec.type`, `clusterIP`, `selector`,
//!   `ports`, `sessionAffinity`, `sessionAffinityConfig.clientIP.timeoutSeconds`,
//!   `externalTrafficPolicy`, `internalTrafficPolicy`.
//! - `EndpointSlice` (`discovery.k8s.io/v1`): the endpoints of a Service without a selector,
//!   named by the label `kubernetes.io/service-name`: every `endpoints[].addresses[]` (with
//!   `nodeName`) on the slice's one port.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::case::{
    Case, EndpointEntry, EndpointSpec, ListenEntry, ListenSpec, PodSpec, ServicePortSpec,
    ServiceSpec,
};
use crate::diag::Location;

/// A Kubernetes object in a case's `manifests:`. The fields of every kind podpath takes; which
/// belong to which kind is checked when it is read ([`merge`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub metadata: Option<Spanned<ObjectMeta>>,
    pub spec: Option<Spanned<ManifestSpec>>,
    /// EndpointSlice: `IPv4`.
    #[serde(rename = "addressType")]
    pub address_type: Option<Spanned<String>>,
    /// EndpointSlice.
    pub endpoints: Option<Vec<Spanned<SliceEndpoint>>>,
    /// EndpointSlice.
    pub ports: Option<Vec<Spanned<SlicePort>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectMeta {
    pub name: Option<Spanned<String>>,
    pub namespace: Option<Spanned<String>>,
    pub labels: Option<Spanned<BTreeMap<String, String>>>,
    pub annotations: Option<Spanned<BTreeMap<String, String>>>,
}

/// The `spec` of a Pod or a Service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSpec {
    #[serde(rename = "nodeName")]
    pub node_name: Option<Spanned<String>>,
    pub hostname: Option<Spanned<String>>,
    pub subdomain: Option<Spanned<String>>,
    pub containers: Option<Vec<Spanned<Container>>>,
    #[serde(rename = "type")]
    pub service_type: Option<Spanned<String>>,
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<Spanned<String>>,
    pub selector: Option<Spanned<BTreeMap<String, String>>>,
    pub ports: Option<Spanned<Vec<Spanned<ServicePortSpec>>>>,
    #[serde(rename = "sessionAffinity")]
    pub session_affinity: Option<Spanned<String>>,
    #[serde(rename = "sessionAffinityConfig")]
    pub session_affinity_config: Option<Spanned<AffinityConfig>>,
    #[serde(rename = "externalTrafficPolicy")]
    pub external_traffic_policy: Option<Spanned<String>>,
    #[serde(rename = "internalTrafficPolicy")]
    pub internal_traffic_policy: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub name: Option<Spanned<String>>,
    pub image: Option<Spanned<String>>,
    pub ports: Option<Vec<Spanned<ContainerPort>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerPort {
    #[serde(rename = "containerPort")]
    pub container_port: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    pub name: Option<Spanned<String>>,
    #[serde(rename = "hostPort")]
    pub host_port: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffinityConfig {
    #[serde(rename = "clientIP")]
    pub client_ip: Option<Spanned<ClientIpConfig>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpConfig {
    #[serde(rename = "timeoutSeconds")]
    pub timeout_seconds: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceEndpoint {
    pub addresses: Option<Vec<Spanned<String>>>,
    #[serde(rename = "nodeName")]
    pub node_name: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlicePort {
    pub name: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    pub port: Option<Spanned<String>>,
}

/// A located error.
pub type Error = (Option<Location>, String);

fn at<T>(s: &Spanned<T>) -> Option<Location> {
    Location::from_yaml(s.referenced)
}

fn err<T>(s: &Spanned<T>, message: impl Into<String>) -> Error {
    (at(s), message.into())
}

/// The label an EndpointSlice names its Service by.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Turns the case's `manifests` into the short forms they mean, after the case's own `pods` and
/// `services`. The first problem is the error, at the key or value it is about.
pub fn merge(case: &mut Case) -> Result<(), Error> {
    let Some(manifests) = case.manifests.take() else {
        return Ok(());
    };
    let mut slices = Vec::new();
    for m in manifests {
        let Some(kind) = &m.value.kind else {
            return Err(err(
                &m,
                "a manifest needs `kind`: Service, EndpointSlice or Pod",
            ));
        };
        let want_api = match kind.value.as_str() {
            "Pod" | "Service" => "v1",
            "EndpointSlice" => "discovery.k8s.io/v1",
            other => {
                return Err(err(
                    kind,
                    format!(
                        "unsupported kind `{other}`: a case takes Service, EndpointSlice and Pod manifests"
                    ),
                ));
            }
        };
        match &m.value.api_version {
            None => {
                return Err(err(
                    &m,
                    format!("a {} needs `apiVersion: {want_api}`", kind.value),
                ));
            }
            Some(v) if v.value != want_api => {
                return Err(err(
                    v,
                    format!(
                        "a {} is `apiVersion: {want_api}`, not `{}`",
                        kind.value, v.value
                    ),
                ));
            }
            Some(_) => {}
        }
        let Some(meta) = &m.value.metadata else {
            return Err(err(
                &m,
                format!("a {} needs `metadata` with a `name`", kind.value),
            ));
        };
        if meta.value.name.is_none() {
            return Err(err(meta, format!("a {} needs `metadata.name`", kind.value)));
        }
        match kind.value.as_str() {
            "Pod" => {
                let pod = pod(&m, meta)?;
                case.pods.get_or_insert_with(Vec::new).push(pod);
            }
            "Service" => {
                let service = service(&m, meta)?;
                case.services.get_or_insert_with(Vec::new).push(service);
            }
            _ => slices.push(m),
        }
    }
    for slice in slices {
        endpoint_slice(case, &slice)?;
    }
    Ok(())
}

fn not_for<T>(field: &Option<Spanned<T>>, name: &str, kind: &str) -> Result<(), Error> {
    match field {
        Some(f) => Err(err(f, format!("`{name}` is not a field of a {kind}"))),
        None => Ok(()),
    }
}

fn pod(m: &Spanned<Manifest>, meta: &Spanned<ObjectMeta>) -> Result<Spanned<PodSpec>, Error> {
    if let Some(e) = m.value.endpoints.as_ref().and_then(|e| e.first()) {
        return Err(err(e, "`endpoints` is not a field of a Pod"));
    }
    not_for(&m.value.address_type, "addressType", "Pod")?;
    let Some(spec) = &m.value.spec else {
        return Err(err(
            m,
            "a Pod needs `spec.nodeName`: there is no scheduler, say where it runs",
        ));
    };
    let s = &spec.value;
    not_for(&s.service_type, "type", "Pod's spec")?;
    not_for(&s.cluster_ip, "clusterIP", "Pod's spec")?;
    not_for(&s.selector, "selector", "Pod's spec")?;
    not_for(&s.ports, "ports", "Pod's spec (ports are the containers')")?;
    not_for(&s.session_affinity, "sessionAffinity", "Pod's spec")?;
    not_for(
        &s.session_affinity_config,
        "sessionAffinityConfig",
        "Pod's spec",
    )?;
    not_for(
        &s.external_traffic_policy,
        "externalTrafficPolicy",
        "Pod's spec",
    )?;
    not_for(
        &s.internal_traffic_policy,
        "internalTrafficPolicy",
        "Pod's spec",
    )?;
    let Some(node) = &s.node_name else {
        return Err(err(
            spec,
            "a Pod needs `spec.nodeName`: there is no scheduler, say where it runs",
        ));
    };
    let mut listen = Vec::new();
    for c in s.containers.iter().flatten() {
        for p in c.value.ports.iter().flatten() {
            if p.value.container_port.is_none() {
                return Err(err(p, "a container port needs `containerPort`"));
            }
            listen.push(Spanned::new(
                ListenEntry::Spec(Box::new(ListenSpec {
                    port: p.value.container_port.clone(),
                    protocol: p.value.protocol.clone(),
                    name: p.value.name.clone(),
                    host_port: p.value.host_port.clone(),
                })),
                p.referenced,
                p.defined,
            ));
        }
    }
    Ok(Spanned::new(
        PodSpec {
            name: meta.value.name.clone(),
            node: Some(node.clone()),
            namespace: meta.value.namespace.clone(),
            ip: None,
            mac: None,
            labels: meta.value.labels.clone(),
            ready: None,
            listen: (!listen.is_empty()).then_some(listen),
            hostname: s.hostname.clone(),
            subdomain: s.subdomain.clone(),
        },
        m.referenced,
        m.defined,
    ))
}

fn service(
    m: &Spanned<Manifest>,
    meta: &Spanned<ObjectMeta>,
) -> Result<Spanned<ServiceSpec>, Error> {
    if let Some(e) = m.value.endpoints.as_ref().and_then(|e| e.first()) {
        return Err(err(
            e,
            "`endpoints` is not a field of a Service: use an EndpointSlice",
        ));
    }
    if let Some(p) = m.value.ports.as_ref().and_then(|p| p.first()) {
        return Err(err(p, "a Service's `ports` go in its `spec`"));
    }
    not_for(&m.value.address_type, "addressType", "Service")?;
    let Some(spec) = &m.value.spec else {
        return Err(err(m, "a Service needs a `spec` with its `ports`"));
    };
    let s = &spec.value;
    not_for(&s.node_name, "nodeName", "Service's spec")?;
    not_for(&s.hostname, "hostname", "Service's spec")?;
    not_for(&s.subdomain, "subdomain", "Service's spec")?;
    if let Some(c) = s.containers.as_ref().and_then(|c| c.first()) {
        return Err(err(c, "`containers` is not a field of a Service's spec"));
    }
    let timeout = s
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.value.client_ip.as_ref())
        .and_then(|c| c.value.timeout_seconds.clone());
    Ok(Spanned::new(
        ServiceSpec {
            name: meta.value.name.clone(),
            namespace: meta.value.namespace.clone(),
            service_type: s.service_type.clone(),
            cluster_ip: s.cluster_ip.clone(),
            selector: s.selector.clone(),
            ports: s.ports.clone(),
            session_affinity: s.session_affinity.clone(),
            session_affinity_timeout: timeout,
            external_traffic_policy: s.external_traffic_policy.clone(),
            internal_traffic_policy: s.internal_traffic_policy.clone(),
            endpoints: None,
            initially: None,
        },
        m.referenced,
        m.defined,
    ))
}

fn endpoint_slice(case: &mut Case, m: &Spanned<Manifest>) -> Result<(), Error> {
    not_for(
        &m.value.spec,
        "spec",
        "EndpointSlice (its endpoints and ports are top-level)",
    )?;
    if let Some(t) = &m.value.address_type
        && t.value != "IPv4"
    {
        return Err(err(
            t,
            format!("podpath's clusters are IPv4: `addressType: {}`", t.value),
        ));
    }
    let meta = m.value.metadata.as_ref().expect("checked by merge");
    let Some(service_name) = meta
        .value
        .labels
        .as_ref()
        .and_then(|l| l.value.get(SERVICE_NAME_LABEL).cloned())
    else {
        return Err(err(
            meta,
            format!("an EndpointSlice names its Service with the label `{SERVICE_NAME_LABEL}`"),
        ));
    };
    let namespace = meta.value.namespace.as_ref().map(|n| n.value.clone());
    let ports = m.value.ports.as_deref().unwrap_or_default();
    let port = match ports {
        [] => None,
        [one] => one.value.port.clone(),
        [_, second, ..] => {
            return Err(err(
                second,
                "an EndpointSlice with more than one port is not supported: one slice per port",
            ));
        }
    };
    let services = case.services.get_or_insert_with(Vec::new);
    let Some(svc) = services.iter_mut().find(|s| {
        s.value
            .name
            .as_ref()
            .is_some_and(|n| n.value == service_name)
            && s.value.namespace.as_ref().map(|n| n.value.clone()) == namespace
    }) else {
        return Err(err(
            meta,
            format!("no Service `{service_name}` in this case for this EndpointSlice"),
        ));
    };
    if let Some(selector) = &svc.value.selector {
        return Err(err(
            selector,
            format!(
                "Service `{service_name}` has a selector, so its endpoints are its pods: an \
                 EndpointSlice is for a Service without one"
            ),
        ));
    }
    let mut entries = Vec::new();
    for e in m.value.endpoints.iter().flatten() {
        let Some(addresses) = &e.value.addresses else {
            return Err(err(e, "an endpoint needs `addresses`"));
        };
        for a in addresses {
            entries.push(Spanned::new(
                EndpointEntry::Spec(Box::new(EndpointSpec {
                    ip: Some(a.clone()),
                    port: port.clone(),
                    node: e.value.node_name.clone(),
                })),
                a.referenced,
                a.defined,
            ));
        }
    }
    match &mut svc.value.endpoints {
        Some(existing) => existing.value.extend(entries),
        None => svc.value.endpoints = Some(Spanned::new(entries, m.referenced, m.defined)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::plan::load_str;

    const SHORT: &str = "\
name: m
nodes: [node1, node2]
pods:
  - { name: client, node: node1 }
  - { name: web-1, node: node2, labels: { app: web }, listen: [{ port: 8080, name: http }] }
services:
  - name: web
    type: NodePort
    selector: { app: web }
    sessionAffinity: ClientIP
    sessionAffinityTimeout: 60
    ports: [{ port: 80, targetPort: http, nodePort: 30080 }]
  - name: ext
    ports: [{ port: 81, targetPort: 8080 }]
    endpoints: [{ ip: 10.244.2.2, port: 8080, node: node2 }]
flows:
  - { name: tcp, from: client, to: svc/web:80, expect: { reach: web-1 } }
";

    const MANIFESTS: &str = "\
name: m
nodes: [node1, node2]
pods:
  - { name: client, node: node1 }
manifests:
  - apiVersion: v1
    kind: Pod
    metadata: { name: web-1, labels: { app: web } }
    spec:
      nodeName: node2
      containers:
        - name: web
          image: registry.k8s.io/e2e-test-images/agnhost:2.47
          ports: [{ containerPort: 8080, name: http }]
  - apiVersion: v1
    kind: Service
    metadata: { name: web }
    spec:
      type: NodePort
      selector: { app: web }
      sessionAffinity: ClientIP
      sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } }
      ports: [{ port: 80, targetPort: http, nodePort: 30080 }]
  - apiVersion: v1
    kind: Service
    metadata: { name: ext }
    spec:
      ports: [{ port: 81, targetPort: 8080 }]
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: { name: ext-abc, labels: { kubernetes.io/service-name: ext } }
    addressType: IPv4
    ports: [{ port: 8080 }]
    endpoints: [{ addresses: [10.244.2.2], nodeName: node2 }]
flows:
  - { name: tcp, from: client, to: svc/web:80, expect: { reach: web-1 } }
";

    #[test]
    fn manifests_beside_short_forms_plan_as_the_short_forms_do() {
        let path = Path::new("m.yaml");
        let short = load_str(path, SHORT).unwrap_or_else(|e| panic!("{e}"));
        let manifests = load_str(path, MANIFESTS).unwrap_or_else(|e| panic!("{e}"));
        // The same plan; only the lines it points at differ (into the manifests).
        let lines = regex::Regex::new(r"\(line \d+\)").unwrap();
        let strip = |p: &crate::plan::Plan| lines.replace_all(&p.to_string(), "").into_owned();
        assert_eq!(strip(&manifests), strip(&short));
        assert!(
            manifests
                .to_string()
                .contains("service default/web NodePort 10.96.0.2 (line 15)")
        );
    }

    fn error(text: &str) -> String {
        load_str(Path::new("m.yaml"), text).unwrap_err().to_string()
    }

    #[test]
    fn what_a_manifest_cannot_say_is_a_located_error() {
        let base = "nodes: [node1]\nmanifests:\n";
        let e = error(&format!(
            "{base}  - {{ apiVersion: apps/v1, kind: Deployment, metadata: {{ name: d }} }}\n"
        ));
        assert!(
            e.contains("m.yaml:3:") && e.contains("unsupported kind `Deployment`"),
            "{e}"
        );
        let e = error(&format!(
            "{base}  - apiVersion: v1\n    kind: Pod\n    metadata: {{ name: p }}\n    spec: {{ containers: [] }}\n"
        ));
        assert!(
            e.contains("m.yaml:6:") && e.contains("spec.nodeName"),
            "{e}"
        );
        let e = error(&format!(
            "{base}  - apiVersion: v1\n    kind: Service\n    metadata: {{ name: s }}\n    spec: {{ nodeName: node1, ports: [{{ port: 80 }}] }}\n"
        ));
        assert!(
            e.contains("m.yaml:6:") && e.contains("`nodeName` is not a field"),
            "{e}"
        );
        let e = error(&format!(
            "{base}  - apiVersion: discovery.k8s.io/v1\n    kind: EndpointSlice\n    metadata: {{ name: e, labels: {{ kubernetes.io/service-name: nope }} }}\n"
        ));
        assert!(
            e.contains("m.yaml:5:") && e.contains("no Service `nope`"),
            "{e}"
        );
        let e = error(&format!(
            "{base}  - {{ apiVersion: v2, kind: Pod, metadata: {{ name: p }} }}\n"
        ));
        assert!(e.contains("`apiVersion: v1`, not `v2`"), "{e}");
    }
}
