//! The served objects, their resourceVersions and the change log watches are fed from.
//!
//! One counter for the whole store, as etcd's revision: every change bumps it, the changed
//! object carries it as `metadata.resourceVersion`, and a list carries the current one. The
//! log keeps the last [`LOG_LIMIT`] changes; a watch from before them is too old (410 Gone),
//! so the client relists, as against a compacted etcd.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How many changes a watch can be resumed across.
pub const LOG_LIMIT: usize = 1000;

/// A served resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Nodes,
    Namespaces,
    Services,
    Pods,
    EndpointSlices,
    ServiceCidrs,
}

impl Resource {
    pub const ALL: [Resource; 6] = [
        Resource::Nodes,
        Resource::Namespaces,
        Resource::Services,
        Resource::Pods,
        Resource::EndpointSlices,
        Resource::ServiceCidrs,
    ];

    /// The API group (`""` for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Resource::EndpointSlices => "discovery.k8s.io",
            Resource::ServiceCidrs => "networking.k8s.io",
            _ => "",
        }
    }

    /// `v1`, or `group/v1`: the objects' `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            Resource::EndpointSlices => "discovery.k8s.io/v1",
            Resource::ServiceCidrs => "networking.k8s.io/v1",
            _ => "v1",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Resource::Nodes => "nodes",
            Resource::Namespaces => "namespaces",
            Resource::Services => "services",
            Resource::Pods => "pods",
            Resource::EndpointSlices => "endpointslices",
            Resource::ServiceCidrs => "servicecidrs",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Resource::Nodes => "Node",
            Resource::Namespaces => "Namespace",
            Resource::Services => "Service",
            Resource::Pods => "Pod",
            Resource::EndpointSlices => "EndpointSlice",
            Resource::ServiceCidrs => "ServiceCIDR",
        }
    }

    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Resource::Nodes => &["no"],
            Resource::Namespaces => &["ns"],
            Resource::Services => &["svc"],
            Resource::Pods => &["po"],
            _ => &[],
        }
    }

    pub fn namespaced(self) -> bool {
        matches!(
            self,
            Resource::Services | Resource::Pods | Resource::EndpointSlices
        )
    }

    /// The resource of an object, from its `apiVersion` and `kind`.
    pub fn of(object: &Value) -> Option<Resource> {
        let api = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        Resource::ALL
            .into_iter()
            .find(|r| r.api_version() == api && r.kind() == kind)
    }

    /// The resource served under `group` (empty: core) as `plural`.
    pub fn find(group: &str, plural: &str) -> Option<Resource> {
        Resource::ALL
            .into_iter()
            .find(|r| r.group() == group && r.plural() == plural)
    }
}

/// `(resource, namespace, name)`: an object's identity.
pub type Key = (Resource, String, String);

/// What a watch event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One logged change.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub resource: Resource,
    pub kind: EventType,
    pub object: Value,
    /// The object before a MODIFIED change, so a watch whose selectors it matched (and the
    /// new one does not) sees it DELETED, and ADDED the other way round.
    pub previous: Option<Value>,
}

#[derive(Debug, Default)]
struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    log: VecDeque<Event>,
    /// The oldest resourceVersion a watch can start from (the log holds every change after it).
    floor: u64,
    stopped: bool,
}

/// Why an object could not be stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("not an object the API serves (apiVersion/kind {0})")]
    UnknownKind(String),
    #[error("{0} has no metadata.name")]
    NoName(String),
    #[error("{kind} {name}: namespaced objects need metadata.namespace")]
    NoNamespace { kind: &'static str, name: String },
    #[error("no {kind} {name} to delete")]
    NotFound { kind: &'static str, name: String },
}

/// The objects, shared by the server's threads and the store's owner.
#[derive(Debug, Default)]
pub struct Store {
    state: Mutex<State>,
    changed: Condvar,
}

fn key_of(object: &Value) -> Result<Key, StoreError> {
    let resource = Resource::of(object).ok_or_else(|| {
        StoreError::UnknownKind(format!(
            "{}/{}",
            object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            object.get("kind").and_then(Value::as_str).unwrap_or("?")
        ))
    })?;
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| StoreError::NoName(resource.kind().into()))?
        .to_string();
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if resource.namespaced() && namespace.is_empty() {
        return Err(StoreError::NoNamespace {
            kind: resource.kind(),
            name,
        });
    }
    Ok((resource, namespace, name))
}

fn set_rv(object: &mut Value, rv: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

impl Store {
    /// A store holding `objects`; the log starts after them.
    pub fn new(objects: Vec<Value>) -> Result<Store, StoreError> {
        let store = Store::default();
        {
            let mut s = store.lock();
            for object in objects {
                store.put(&mut s, object)?;
            }
            s.log.clear();
            s.floor = s.rv;
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn put(&self, s: &mut State, mut object: Value) -> Result<u64, StoreError> {
        let key = key_of(&object)?;
        s.rv += 1;
        let rv = s.rv;
        set_rv(&mut object, rv);
        let previous = s.objects.insert(key.clone(), object.clone());
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.log(s, key.0, kind, object, previous);
        Ok(rv)
    }

    fn log(
        &self,
        s: &mut State,
        resource: Resource,
        kind: EventType,
        object: Value,
        previous: Option<Value>,
    ) {
        let rv = s.rv;
        s.log.push_back(Event {
            rv,
            resource,
            kind,
            object,
            previous,
        });
        while s.log.len() > LOG_LIMIT {
            if let Some(e) = s.log.pop_front() {
                s.floor = e.rv;
            }
        }
        self.changed.notify_all();
    }

    /// Creates or replaces an object (ADDED or MODIFIED); returns its new resourceVersion.
    pub fn apply(&self, object: Value) -> Result<u64, StoreError> {
        let mut s = self.lock();
        self.put(&mut s, object)
    }

    /// Deletes an object (DELETED, carrying its last state at the new resourceVersion).
    pub fn delete(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
    ) -> Result<u64, StoreError> {
        let mut s = self.lock();
        let key = (resource, namespace.to_string(), name.to_string());
        let Some(mut object) = s.objects.remove(&key) else {
            return Err(StoreError::NotFound {
                kind: resource.kind(),
                name: format!("{namespace}/{name}"),
            });
        };
        s.rv += 1;
        set_rv(&mut object, s.rv);
        self.log(&mut s, resource, EventType::Deleted, object, None);
        Ok(s.rv)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The oldest resourceVersion a watch may start from.
    pub fn floor(&self) -> u64 {
        self.lock().floor
    }

    /// One object.
    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        let key = (resource, namespace.to_string(), name.to_string());
        self.lock().objects.get(&key).cloned()
    }

    /// Every object of `resource` (in `namespace`, when given) and the current version.
    pub fn list(&self, resource: Resource, namespace: Option<&str>) -> (u64, Vec<Value>) {
        let s = self.lock();
        let items = s
            .objects
            .iter()
            .filter(|((r, ns, _), _)| *r == resource && namespace.is_none_or(|n| n == ns))
            .map(|(_, o)| o.clone())
            .collect();
        (s.rv, items)
    }

    /// The changes after `since`, waiting up to `wait` for one; `None` when `since` is older
    /// than the log (410 Gone) or the store has stopped.
    pub fn changes_after(&self, since: u64, wait: Duration) -> Option<(u64, Vec<Event>)> {
        let deadline = Instant::now() + wait;
        let mut s = self.lock();
        loop {
            if s.stopped || since < s.floor {
                return None;
            }
            if s.rv > since {
                let events = s.log.iter().filter(|e| e.rv > since).cloned().collect();
                return Some((s.rv, events));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some((s.rv, Vec::new()));
            }
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Wakes every watch and makes them end.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }

    pub fn stopped(&self) -> bool {
        self.lock().stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(name: &str, ready: bool) -> Value {
        json!({ "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": { "name": name, "namespace": "default" },
                "endpoints": [{ "addresses": ["10.244.1.2"], "conditions": { "ready": ready } }] })
    }

    #[test]
    fn versions_bump_and_changes_are_logged_in_order() {
        let store = Store::new(vec![slice("a", true)]).unwrap();
        assert_eq!(store.resource_version(), 1);
        assert_eq!(store.floor(), 1);
        let (rv, items) = store.list(Resource::EndpointSlices, Some("default"));
        assert_eq!((rv, items.len()), (1, 1));
        assert_eq!(
            items[0].pointer("/metadata/resourceVersion"),
            Some(&json!("1"))
        );
        assert_eq!(store.apply(slice("a", false)).unwrap(), 2);
        assert_eq!(store.apply(slice("b", true)).unwrap(), 3);
        assert_eq!(
            store
                .delete(Resource::EndpointSlices, "default", "a")
                .unwrap(),
            4
        );
        let (rv, events) = store.changes_after(1, Duration::ZERO).unwrap();
        assert_eq!(rv, 4);
        let kinds: Vec<_> = events.iter().map(|e| (e.rv, e.kind)).collect();
        assert_eq!(
            kinds,
            [
                (2, EventType::Modified),
                (3, EventType::Added),
                (4, EventType::Deleted)
            ]
        );
        // Nothing new: an empty answer once the wait is over.
        assert_eq!(store.changes_after(4, Duration::ZERO).unwrap().1.len(), 0);
    }

    #[test]
    fn a_version_before_the_log_is_gone() {
        let store = Store::new(vec![slice("a", true)]).unwrap();
        assert!(store.changes_after(0, Duration::ZERO).is_none());
        for i in 0..LOG_LIMIT + 5 {
            store.apply(slice("a", i % 2 == 0)).unwrap();
        }
        assert!(store.changes_after(2, Duration::ZERO).is_none());
        assert!(store.changes_after(store.floor(), Duration::ZERO).is_some());
    }

    #[test]
    fn bad_objects_are_refused() {
        assert!(matches!(
            Store::new(vec![json!({ "apiVersion": "v1", "kind": "Secret" })]),
            Err(StoreError::UnknownKind(_))
        ));
        let no_ns = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" } });
        assert!(matches!(
            Store::new(vec![no_ns]),
            Err(StoreError::NoNamespace { .. })
        ));
        let store = Store::new(vec![]).unwrap();
        assert!(store.delete(Resource::Pods, "default", "x").is_err());
    }
}
