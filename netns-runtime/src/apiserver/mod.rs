//! The served Kubernetes API: the cluster as real API objects, over HTTPS, read-only.
//!
//! Programs under test (kube-proxy, CoreDNS, kubectl) learn the cluster from it exactly as
//! from a kube-apiserver: discovery, LIST with a `resourceVersion`, WATCH as newline-delimited
//! JSON events over a chunked response (bookmarks, `410 Gone`, `sendInitialEvents`), label and
//! field selectors; events are accepted and dropped; every other write is refused. The objects
//! are built by the caller (the harness, from its bound plan) and changed while the server
//! runs with [`ApiServer::apply`], which bumps the store's resourceVersion and delivers the
//! change to every watch. What is served and how faithfully: `docs/api.md`.
//!
//! Threads: one accepting connections (a listener bound by the caller inside the namespace it
//! serves from; the socket keeps that namespace), one per connection. [`ApiServer::stop`] (or
//! dropping it) ends every watch, shuts every connection down and joins them all.

mod discovery;
pub mod http;
pub mod selector;
pub mod store;
pub mod tls;

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery_v1;
use k8s_openapi::api::networking::v1 as networking;
use serde_json::Value;

pub use discovery::KUBERNETES_VERSION;
pub use store::{Resource, Store, StoreError};
pub use tls::Credentials;

/// The port the API listens on (kube-apiserver's secure port, as kind serves it).
pub const API_PORT: u16 = 6443;

/// Where a pod's in-cluster credentials are, in its view of the filesystem.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// An object the API serves, typed.
// Made a few times per case and turned into JSON at once: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Object {
    Node(core::Node),
    Namespace(core::Namespace),
    Service(core::Service),
    Pod(core::Pod),
    EndpointSlice(discovery_v1::EndpointSlice),
    ServiceCidr(networking::ServiceCIDR),
}

impl Object {
    /// The object as JSON, with its `apiVersion` and `kind`.
    pub fn to_value(&self) -> Value {
        let v = match self {
            Object::Node(o) => serde_json::to_value(o),
            Object::Namespace(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::Pod(o) => serde_json::to_value(o),
            Object::EndpointSlice(o) => serde_json::to_value(o),
            Object::ServiceCidr(o) => serde_json::to_value(o),
        };
        // k8s-openapi's types always serialize.
        v.unwrap_or(Value::Null)
    }
}

/// A change to the served cluster.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Change {
    /// Creates the object or replaces the one of the same kind, namespace and name (watches
    /// see ADDED or MODIFIED).
    Apply(Object),
    /// Deletes an object (watches see DELETED with its last state).
    Delete {
        resource: Resource,
        namespace: String,
        name: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("the served objects: {0}")]
    Store(#[from] StoreError),
    #[error("the API server: {0}")]
    Io(#[from] io::Error),
}

/// Every open connection: a handle to shut it down with, and its thread.
type Connections = Arc<Mutex<Vec<(TcpStream, Option<JoinHandle<()>>)>>>;

/// What every connection thread reads.
pub struct Served {
    pub store: Arc<Store>,
    pub token: String,
    pub address: SocketAddrV4,
}

/// A running API server.
pub struct ApiServer {
    served: Arc<Served>,
    ca_pem: String,
    stopping: Arc<AtomicBool>,
    connections: Connections,
    acceptor: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Serves `objects` on `listener` (bound by the caller in the namespace it serves from,
    /// at `address`), with credentials made for `address` and the `default/kubernetes`
    /// ClusterIP `cluster_ip`.
    pub fn start(
        listener: TcpListener,
        address: SocketAddrV4,
        cluster_ip: Ipv4Addr,
        objects: Vec<Object>,
    ) -> Result<ApiServer, ApiError> {
        let credentials = Credentials::generate(*address.ip(), cluster_ip)?;
        let config = credentials.server_config()?;
        let store = Arc::new(Store::new(objects.iter().map(Object::to_value).collect())?);
        let served = Arc::new(Served {
            store,
            token: credentials.token.clone(),
            address,
        });
        listener.set_nonblocking(true)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let connections: Connections = Arc::default();
        let acceptor = {
            let (served, stopping, connections) =
                (served.clone(), stopping.clone(), connections.clone());
            std::thread::Builder::new()
                .name("podpath-api".into())
                .spawn(move || accept_loop(listener, config, served, stopping, connections))?
        };
        Ok(ApiServer {
            served,
            ca_pem: credentials.ca_pem,
            stopping,
            connections,
            acceptor: Some(acceptor),
        })
    }

    /// `address:6443`, where clients reach the server.
    pub fn address(&self) -> SocketAddrV4 {
        self.served.address
    }

    /// `https://address:6443`.
    pub fn url(&self) -> String {
        format!("https://{}", self.served.address)
    }

    /// The CA that signed the serving certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token requests must carry.
    pub fn token(&self) -> &str {
        &self.served.token
    }

    /// The served objects.
    pub fn store(&self) -> &Store {
        &self.served.store
    }

    /// Changes the served cluster; returns the store's new resourceVersion. Every watch of the
    /// object's resource gets the event (if its selectors match).
    pub fn apply(&self, change: Change) -> Result<u64, ApiError> {
        Ok(match change {
            Change::Apply(object) => self.served.store.apply(object.to_value())?,
            Change::Delete {
                resource,
                namespace,
                name,
            } => self.served.store.delete(resource, &namespace, &name)?,
        })
    }

    /// A kubeconfig for this server, for `user` (a node's name): CA, server, token.
    pub fn kubeconfig(&self, user: &str) -> String {
        kubeconfig(&self.url(), &self.ca_pem, &self.served.token, user)
    }

    /// Ends every watch and connection and joins every thread; idempotent.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.served.store.stop();
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let conns = std::mem::take(
            &mut *self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (stream, _) in &conns {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for (_, thread) in conns {
            if let Some(t) = thread {
                let _ = t.join();
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    served: Arc<Served>,
    stopping: Arc<AtomicBool>,
    connections: Connections,
) {
    while !stopping.load(Ordering::SeqCst) {
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
            continue;
        };
        let served = served.clone();
        let thread = std::thread::Builder::new()
            .name("podpath-api-conn".into())
            .spawn(move || {
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let _ = http::serve_connection(&mut tls, &served);
                tls.conn.send_close_notify();
                let _ = tls.conn.complete_io(&mut tls.sock);
            });
        let mut list = connections.lock().unwrap_or_else(PoisonError::into_inner);
        // Forget connections that ended, so a long run does not keep their sockets.
        list.retain(|(_, t)| t.as_ref().is_some_and(|t| !t.is_finished()));
        list.push((handle, thread.ok()));
    }
}

/// A kubeconfig naming one cluster, one user with a bearer token, and a current context.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str, user: &str) -> String {
    let ca = data_encoding::BASE64.encode(ca_pem.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: podpath\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: podpath\n  context:\n    cluster: podpath\n    user: {user}\n    namespace: default\ncurrent-context: podpath\npreferences: {{}}\n"
    )
}
