//! Discovery documents: `/version`, `/api`, `/apis` and each group version's resource list,
//! as kubectl and client-go read them (plain JSON; a client asking for aggregated discovery
//! gets this and falls back, since it also accepts `application/json`).

use std::net::SocketAddrV4;

use serde_json::{Value, json};

use super::store::Resource;

/// The Kubernetes version podpath's API says it is.
pub const KUBERNETES_VERSION: (&str, &str) = ("1", "34");

/// The API groups served besides the core group.
pub const GROUPS: [&str; 3] = ["discovery.k8s.io", "networking.k8s.io", "events.k8s.io"];

pub fn version() -> Value {
    let (major, minor) = KUBERNETES_VERSION;
    json!({
        "major": major, "minor": minor,
        "gitVersion": format!("v{major}.{minor}.0-podpath"),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "", "compiler": "podpath", "platform": "linux/amd64",
    })
}

pub fn api_versions(address: SocketAddrV4) -> Value {
    json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": address.to_string() }],
    })
}

pub fn api_groups() -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|g| {
            let gv = json!({ "groupVersion": format!("{g}/v1"), "version": "v1" });
            json!({ "name": g, "versions": [gv], "preferredVersion": gv })
        })
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// The resources of one group version (`""`: core `v1`).
pub fn resources(group: &str) -> Value {
    let mut list: Vec<Value> = Resource::ALL
        .into_iter()
        .filter(|r| r.group() == group)
        .map(|r| {
            let singular = r.kind().to_ascii_lowercase();
            json!({
                "name": r.plural(), "singularName": singular, "namespaced": r.namespaced(),
                "kind": r.kind(), "verbs": ["get", "list", "watch"], "shortNames": r.short_names(),
            })
        })
        .collect();
    if group.is_empty() || group == "events.k8s.io" {
        list.push(json!({
            "name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
            "verbs": ["create", "patch", "update", "list"], "shortNames": ["ev"],
        }));
    }
    let group_version = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list })
}
