//! A CNI runtime as a pod attach: runs a network configuration list's plugins for every pod
//! the way containerd does (CNI spec 1.x and the 0.3/0.4 versions before it), so real plugins
//! (bridge, ptp, host-local, portmap, flannel's) attach the pods, and podpath learns what they
//! decided from the final result.
//!
//! Per pod: `VERSION` once per plugin (the list's version must be one it supports), `ADD`
//! plugin by plugin in the list's order (each gets the previous one's result as `prevResult`),
//! then `CHECK` with the final result unless the list says `disableCheck` (or its version
//! predates CHECK), and at teardown, before the namespaces go, `DEL` in reverse order with the
//! cached result. Every plugin runs in the node's namespace with a timeout. A list of version
//! 1.1.0 also gets `STATUS` on each node before its first ADD; `GC` runs as libcni's does
//! ([`CniAttach::gc`]). The same calls are public ([`CniAttach::attachment`], `add`, `check`,
//! `del`, [`CniAttach::node`], `status`, `gc`), for lifecycle trials on one attachment.
//!
//! State is kept per node under the sandbox's private `/run` ([`STATE_ROOT`]`/<node>/`):
//! the result cache in libcni's layout (`results/<network>-<containerID>-<ifname>`),
//! host-local's `dataDir`, flannel's `subnetFile` and `dataDir`, so simulated nodes never
//! share IPAM state and nothing is written to the host's `/var/lib/cni`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::netns::command_in;
use crate::stack::attach::{Detach, check_attachment, parse_result_with};
use crate::stack::exec::quoted_stderr;
use crate::stack::{Attachment, DriverError, NodeContext, PodAttach, PodContext};
use crate::tool;
use crate::topology::{Node, Pod, Topology};

/// Where every node's CNI state lives, on the sandbox's private `/run`.
pub const STATE_ROOT: &str = "/run/podpath/cni";

/// The pod interface name podpath asks for (`CNI_IFNAME`).
pub const IFNAME: &str = "eth0";

/// The placeholders a conflist's strings may hold, replaced per node (see [`Placeholders`]).
pub const PLACEHOLDERS: &[&str] = &[
    "podCIDR",
    "gateway",
    "bridge",
    "mtu",
    "node",
    "clusterCIDR",
    "stateDir",
];

/// CNI versions whose results podpath reads and whose commands it knows.
const KNOWN_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A network configuration list as read from its file, placeholders not yet replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfList {
    pub file: PathBuf,
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    /// Each plugin's configuration as written (every one is an object with a `type`).
    pub plugins: Vec<Value>,
}

impl ConfList {
    /// Reads and checks a conflist; every error names the file.
    pub fn load(path: &Path) -> Result<ConfList, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("conflist {}: {e}", path.display()))?;
        ConfList::parse(path, &text)
    }

    /// Like [`ConfList::load`], from text.
    pub fn parse(path: &Path, text: &str) -> Result<ConfList, String> {
        let bad = |what: String| format!("conflist {}: {what}", path.display());
        let value: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let string = |key: &str| -> Result<String, String> {
            match obj.get(key) {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
                Some(Value::String(_)) => Err(bad(format!("`{key}` is empty"))),
                Some(other) => Err(bad(format!("`{key}` is not a string: {other}"))),
                None => Err(bad(format!("no `{key}`"))),
            }
        };
        let name = string("name")?;
        let cni_version = string("cniVersion")?;
        if !KNOWN_VERSIONS.contains(&cni_version.as_str()) {
            return Err(bad(format!(
                "`cniVersion` {cni_version} is not one podpath runs ({})",
                KNOWN_VERSIONS.join(", ")
            )));
        }
        let flag = |key: &str| -> Result<bool, String> {
            match obj.get(key) {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(other) => Err(bad(format!("`{key}` is true or false, not {other}"))),
            }
        };
        let disable_check = flag("disableCheck")?;
        let disable_gc = flag("disableGC")?;
        let plugins = match obj.get("plugins") {
            Some(Value::Array(p)) if !p.is_empty() => p.clone(),
            Some(Value::Array(_)) => return Err(bad("`plugins` is empty".into())),
            Some(_) => return Err(bad("`plugins` is not a list".into())),
            None => {
                return Err(bad(
                    "no `plugins` (a single network configuration is not a list: wrap it in `plugins`)"
                        .into(),
                ));
            }
        };
        for (i, p) in plugins.iter().enumerate() {
            match p.get("type") {
                Some(Value::String(t)) if !t.is_empty() && !t.contains('/') => {}
                _ => return Err(bad(format!("plugin {i} has no `type` (a plugin's name)"))),
            }
            let mut unknown = Vec::new();
            placeholders_in(p, &mut unknown);
            if let Some(u) = unknown.first() {
                return Err(bad(format!(
                    "plugin {i} ({}) names placeholder {{{u}}}; known: {}",
                    plugin_type(p),
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(ConfList {
            file: path.to_path_buf(),
            name,
            cni_version,
            disable_check,
            disable_gc,
            plugins,
        })
    }
}

impl ConfList {
    /// Whether a plugin of the list declares `capability` (`ips`, `portMappings`, `mac`).
    pub fn declares(&self, capability: &str) -> bool {
        self.plugins.iter().any(|p| {
            p.get("capabilities").and_then(|c| c.get(capability)) == Some(&Value::Bool(true))
        })
    }
}

fn plugin_type(p: &Value) -> &str {
    p.get("type").and_then(Value::as_str).unwrap_or("?")
}

/// Collects every `{word}` in `v`'s strings that is not a known placeholder.
fn placeholders_in(v: &Value, unknown: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find('{') {
                let after = &rest[start + 1..];
                let Some(end) = after.find('}') else { break };
                let word = &after[..end];
                if !word.is_empty()
                    && word.chars().all(|c| c.is_ascii_alphanumeric())
                    && !PLACEHOLDERS.contains(&word)
                {
                    unknown.push(word.to_string());
                }
                rest = &after[end + 1..];
            }
        }
        Value::Array(a) => a.iter().for_each(|x| placeholders_in(x, unknown)),
        Value::Object(o) => o.values().for_each(|x| placeholders_in(x, unknown)),
        _ => {}
    }
}

/// What a node's placeholders stand for: `{podCIDR}` (the node's pod subnet), `{gateway}` (its
/// first address, the bridge's), `{bridge}` (`cni0`), `{mtu}` (the pods' MTU; a string that is
/// only `{mtu}` becomes a number), `{node}`, `{clusterCIDR}`, `{stateDir}` (the node's private
/// state directory).
pub struct Placeholders(BTreeMap<&'static str, String>);

impl Placeholders {
    pub fn for_node(topology: &Topology, node: &Node, state_dir: &Path) -> Placeholders {
        Placeholders(BTreeMap::from([
            ("podCIDR", node.pod_cidr.to_string()),
            ("gateway", node.bridge.addr.addr().to_string()),
            ("bridge", node.bridge.name.clone()),
            ("mtu", node.bridge.mtu.to_string()),
            ("node", node.name.clone()),
            ("clusterCIDR", topology.cluster_cidr.to_string()),
            ("stateDir", state_dir.display().to_string()),
        ]))
    }

    pub fn expand(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => {
                if s == "{mtu}" {
                    if let Ok(n) = self.0["mtu"].parse::<u64>() {
                        return Value::from(n);
                    }
                }
                let mut out = s.clone();
                for (k, val) in &self.0 {
                    out = out.replace(&format!("{{{k}}}"), val);
                }
                Value::String(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.expand(x)).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, x)| (k.clone(), self.expand(x))).collect())
            }
            other => other.clone(),
        }
    }
}

/// The CNI pod attach, and the runtime API under it: [`CniAttach::attachment`] describes one
/// pod's attachment, [`CniAttach::add`], [`CniAttach::check`] and [`CniAttach::del`] run the
/// list's plugins for it, [`CniAttach::status`] and [`CniAttach::gc`] for a node's network
/// (lists of version 1.1.0). Clones share what the attach remembers (versions, pods, dirs).
#[derive(Clone)]
pub struct CniAttach {
    pub conflist: ConfList,
    /// Where plugins are looked for, in order (`CNI_PATH`).
    pub bin_dirs: Vec<PathBuf>,
    /// How long one plugin call may take.
    pub timeout: Duration,
    /// Interfaces the plugins make on every node besides the pods' host sides (`cni0`).
    pub interfaces: Vec<String>,
    state: Arc<State>,
}

impl CniAttach {
    pub fn new(
        conflist: ConfList,
        bin_dirs: Vec<PathBuf>,
        timeout: Duration,
        interfaces: Vec<String>,
    ) -> CniAttach {
        CniAttach {
            conflist,
            bin_dirs,
            timeout,
            interfaces,
            state: Arc::new(State::default()),
        }
    }
}

/// What the attach remembers across pods, and for DEL.
#[derive(Default)]
struct State {
    /// Supported versions by plugin binary.
    versions: Mutex<HashMap<PathBuf, Vec<String>>>,
    /// Every pod an ADD was started for, in order.
    pods: Mutex<Vec<CniAttachment>>,
    /// The per-node state directories made.
    dirs: Mutex<Vec<PathBuf>>,
}

/// One pod's attachment to the list's network on its node: what ADD, CHECK and DEL of it
/// need (the environment, each plugin's configuration and binary, the result cache file).
#[derive(Clone)]
pub struct CniAttachment {
    runner: Runner,
    /// Each plugin's configuration (placeholders and per-node state injected), and its binary.
    plugins: Vec<(Value, PathBuf)>,
    /// The result file (libcni's layout).
    cache_file: PathBuf,
}

impl CniAttachment {
    /// The pod's name.
    pub fn pod(&self) -> &str {
        &self.runner.pod
    }

    /// `CNI_CONTAINERID`.
    pub fn container_id(&self) -> &str {
        &self.runner.env["CNI_CONTAINERID"]
    }

    /// Where the final result of its ADD is cached.
    pub fn cache_file(&self) -> &Path {
        &self.cache_file
    }

    /// The attachment as `cni.dev/valid-attachments` names it.
    fn gc_attachment(&self) -> Value {
        json!({ "containerID": self.container_id(), "ifname": IFNAME })
    }
}

/// A node's side of the list's network: what STATUS and GC need (no pod).
pub struct CniNode {
    runner: Runner,
    plugins: Vec<(Value, PathBuf)>,
    dir: PathBuf,
}

impl CniNode {
    /// The node's private state directory (`/run/podpath/cni/<node>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Everything a plugin call needs: whom it is for, the node's namespace, the environment.
#[derive(Clone)]
struct Runner {
    /// The pod's name (empty for a node's STATUS and GC).
    pod: String,
    /// How errors name what the call is for: `pod client`, `node node1`.
    subject: String,
    node_netns: PathBuf,
    env: BTreeMap<String, String>,
    timeout: Duration,
    version: String,
}

impl Runner {
    /// Runs `binary` for `command` with `config` on stdin in the node's namespace; its
    /// standard output when it exits 0.
    fn call(
        &self,
        binary: &Path,
        ptype: &str,
        command: &str,
        config: &Value,
    ) -> Result<String, DriverError> {
        let err = |problem: String| DriverError::Exec {
            layer: "pod attach",
            program: format!("CNI plugin {ptype} ({})", binary.display()),
            subject: format!("{}, CNI_COMMAND={command}", self.subject),
            problem,
        };
        let ns = std::fs::File::open(&self.node_netns)
            .map_err(|e| err(format!("opening {}: {e}", self.node_netns.display())))?;
        let mut c = command_in(&ns, binary);
        c.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .envs(&self.env)
            .env("CNI_COMMAND", command)
            .current_dir("/");
        let stdin = serde_json::to_vec(config).expect("a JSON value serialises");
        let program = binary.display().to_string();
        let done = tool::run_command(c, &program, &[], Some(&stdin), self.timeout)
            .map_err(|e| err(crate::stack::exec::problem_of(e)))?;
        if done.code != Some(0) {
            return Err(err(format!(
                "{}{}{}",
                done.status,
                cni_error(&done.stdout),
                quoted_stderr(&done.stderr)
            )));
        }
        Ok(done.stdout)
    }
}

/// A CNI error on a failing plugin's standard output, for a message: `; CNI error CODE: MSG
/// (DETAILS)`, or what it printed instead.
fn cni_error(stdout: &str) -> String {
    let text = stdout.trim();
    if text.is_empty() {
        return String::new();
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.get("code").is_some() || v.get("msg").is_some() => {
            let code = v.get("code").map(|c| c.to_string()).unwrap_or("?".into());
            let msg = v.get("msg").and_then(Value::as_str).unwrap_or("");
            let details = match v.get("details").and_then(Value::as_str) {
                Some(d) if !d.is_empty() => format!(" ({d})"),
                _ => String::new(),
            };
            format!("; CNI error {code}: {msg}{details}")
        }
        _ => format!(
            "; its stdout: {}",
            text.chars().take(400).collect::<String>()
        ),
    }
}

/// A container ID as the spec allows (`[A-Za-z0-9][A-Za-z0-9_.-]*`), stable per pod.
fn container_id(prefix: &str, pod: &str) -> String {
    let raw = format!("podpath-{prefix}{pod}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A UUID-shaped pod UID derived from the pod's names.
fn pod_uid(prefix: &str, pod: &Pod) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(format!("{prefix}{}/{}", pod.namespace, pod.name));
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Whether a CNI version has CHECK (0.4.0 and later).
fn has_check(version: &str) -> bool {
    !version.starts_with("0.1") && !version.starts_with("0.2") && !version.starts_with("0.3")
}

/// Whether a CNI version has STATUS and GC (1.1.0 and later).
pub fn has_status_and_gc(version: &str) -> bool {
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    parts >= vec![1, 1, 0]
}

impl CniAttach {
    fn node_dir(prefix: &str, node: &Node) -> PathBuf {
        Path::new(STATE_ROOT).join(format!("{prefix}{}", node.name))
    }

    /// Whether the list's version has STATUS and GC (1.1.0).
    pub fn has_status_and_gc(&self) -> bool {
        has_status_and_gc(&self.conflist.cni_version)
    }

    /// Whether the list's version has CHECK and the list does not disable it.
    pub fn runs_check(&self) -> bool {
        !self.conflist.disable_check && has_check(&self.conflist.cni_version)
    }

    fn cni_path(&self) -> String {
        self.bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    fn generic(&self, subject: String) -> impl Fn(String) -> DriverError + '_ {
        move |problem| DriverError::Exec {
            layer: "pod attach",
            program: format!("cni {}", self.conflist.name),
            subject: subject.clone(),
            problem,
        }
    }

    /// Each plugin's configuration for `pod` (or for the node alone: STATUS, GC) and its
    /// binary.
    fn plugins_for(
        &self,
        topology: &Topology,
        node: &Node,
        pod: Option<&Pod>,
        node_dir: &Path,
    ) -> Result<Vec<(Value, PathBuf)>, String> {
        let places = Placeholders::for_node(topology, node, node_dir);
        self.conflist
            .plugins
            .iter()
            .map(|p| {
                let binary = self.find(plugin_type(p))?;
                Ok((
                    self.plugin_config(&places.expand(p), node_dir, pod, node),
                    binary,
                ))
            })
            .collect()
    }

    /// Describes `pod`'s attachment on `node`: the environment a runtime gives the plugins
    /// (`CNI_CONTAINERID`, `CNI_NETNS` = `pod_netns`, `CNI_ARGS` as containerd passes it, ...)
    /// and each plugin's configuration. Nothing is run.
    pub fn attachment(
        &self,
        topology: &Topology,
        node: &Node,
        pod: &Pod,
        pod_netns: &Path,
        node_netns: &Path,
        prefix: &str,
    ) -> Result<CniAttachment, DriverError> {
        let node_dir = CniAttach::node_dir(prefix, node);
        let id = container_id(prefix, &pod.name);
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={id};K8S_POD_UID={}",
            pod.namespace,
            pod.name,
            pod_uid(prefix, pod)
        );
        let env = BTreeMap::from([
            ("CNI_CONTAINERID".to_string(), id.clone()),
            ("CNI_NETNS".to_string(), pod_netns.display().to_string()),
            ("CNI_IFNAME".to_string(), IFNAME.to_string()),
            ("CNI_PATH".to_string(), self.cni_path()),
            ("CNI_ARGS".to_string(), args),
        ]);
        let plugins = self
            .plugins_for(topology, node, Some(pod), &node_dir)
            .map_err(self.generic(format!("pod {}", pod.name)))?;
        Ok(CniAttachment {
            runner: Runner {
                pod: pod.name.clone(),
                subject: format!("pod {}", pod.name),
                node_netns: node_netns.to_path_buf(),
                env,
                timeout: self.timeout,
                version: self.conflist.cni_version.clone(),
            },
            plugins,
            cache_file: node_dir
                .join("results")
                .join(format!("{}-{id}-{IFNAME}", self.conflist.name)),
        })
    }

    /// Describes `node`'s side of the network, for STATUS and GC.
    pub fn node(
        &self,
        topology: &Topology,
        node: &Node,
        node_netns: &Path,
        prefix: &str,
    ) -> Result<CniNode, DriverError> {
        let dir = CniAttach::node_dir(prefix, node);
        let plugins = self
            .plugins_for(topology, node, None, &dir)
            .map_err(self.generic(format!("node {}", node.name)))?;
        Ok(CniNode {
            runner: Runner {
                pod: String::new(),
                subject: format!("node {}", node.name),
                node_netns: node_netns.to_path_buf(),
                env: BTreeMap::from([("CNI_PATH".to_string(), self.cni_path())]),
                timeout: self.timeout,
                version: self.conflist.cni_version.clone(),
            },
            plugins,
            dir,
        })
    }

    /// Every attachment an ADD was started for, in order.
    pub fn attachments(&self) -> Vec<CniAttachment> {
        self.state.pods.lock().expect("poisoned").clone()
    }

    /// ADD, plugin by plugin in the list's order (VERSION first, once per binary), each given
    /// the previous result; the final result is cached in libcni's layout and returned. The
    /// attachment is remembered, so teardown DELs it whatever becomes of the ADD.
    pub fn add(&self, a: &CniAttachment) -> Result<Value, DriverError> {
        {
            let mut pods = self.state.pods.lock().expect("poisoned");
            if !pods.iter().any(|p| p.cache_file == a.cache_file) {
                pods.push(a.clone());
            }
        }
        let runner = &a.runner;
        let mut prev: Option<Value> = None;
        for (conf, binary) in &a.plugins {
            let ptype = plugin_type(conf).to_string();
            self.negotiate(runner, binary, &ptype)?;
            let out = runner.call(
                binary,
                &ptype,
                "ADD",
                &CniAttach::with_prev(conf, prev.as_ref()),
            )?;
            let bad = |problem: String| DriverError::Exec {
                layer: "pod attach",
                program: format!("CNI plugin {ptype} ({})", binary.display()),
                subject: format!("{}, CNI_COMMAND=ADD", runner.subject),
                problem,
            };
            if out.trim().is_empty() {
                return Err(bad("it exited 0 but printed no result".into()));
            }
            let result: Value = serde_json::from_str(&out).map_err(|e| {
                bad(format!(
                    "its output is not a JSON result ({e}): {}",
                    out.trim().chars().take(200).collect::<String>()
                ))
            })?;
            if !result.is_object() {
                return Err(bad(format!(
                    "its output is not a JSON object: {}",
                    out.trim()
                )));
            }
            prev = Some(result);
        }
        let result = prev.expect("a list has at least one plugin");
        let cached = json!({
            "kind": "cniCacheV1",
            "containerId": runner.env["CNI_CONTAINERID"],
            "config": data_encoding::BASE64.encode(
                serde_json::to_string(&json!({
                    "name": self.conflist.name,
                    "cniVersion": self.conflist.cni_version,
                    "plugins": a.plugins.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
                })).unwrap_or_default().as_bytes()),
            "ifName": IFNAME,
            "networkName": self.conflist.name,
            "netns": runner.env["CNI_NETNS"],
            "cniArgs": runner.env["CNI_ARGS"].split(';').filter_map(|kv| kv.split_once('=')).map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "result": result,
        });
        std::fs::write(
            &a.cache_file,
            serde_json::to_vec_pretty(&cached).unwrap_or_default(),
        )
        .map_err(|e| {
            self.generic(runner.subject.clone())(format!(
                "caching the result in {}: {e}",
                a.cache_file.display()
            ))
        })?;
        Ok(result)
    }

    /// The result cached for `a` by its ADD, if any.
    pub fn cached_result(&self, a: &CniAttachment) -> Option<Value> {
        std::fs::read(&a.cache_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.get("result").cloned())
    }

    /// CHECK of every plugin with `result` (the final result of the ADD; the cached one when
    /// `None`). The caller decides whether the list runs CHECK ([`CniAttach::runs_check`]).
    pub fn check(&self, a: &CniAttachment, result: Option<&Value>) -> Result<(), DriverError> {
        let cached;
        let result = match result {
            Some(r) => r,
            None => {
                cached = self.cached_result(a).ok_or_else(|| {
                    self.generic(a.runner.subject.clone())(format!(
                        "CHECK needs the cached result, and there is none in {}",
                        a.cache_file.display()
                    ))
                })?;
                &cached
            }
        };
        for (conf, binary) in &a.plugins {
            let ptype = plugin_type(conf).to_string();
            a.runner.call(
                binary,
                &ptype,
                "CHECK",
                &CniAttach::with_prev(conf, Some(result)),
            )?;
        }
        Ok(())
    }

    /// DEL, plugins in reverse order, with the cached result as `prevResult` (lists of 0.4.0
    /// and later); every plugin is run whatever the others did, every failure returned. The
    /// cache entry goes once every plugin succeeded. DEL of what is already gone, or without
    /// the pod's namespace, must succeed (the spec says so; plugins are tested on it).
    pub fn del(&self, a: &CniAttachment) -> Result<(), Vec<DriverError>> {
        let cached = self.cached_result(a);
        let prev = cached.as_ref().filter(|_| has_check(&a.runner.version));
        let errors: Vec<DriverError> = a
            .plugins
            .iter()
            .rev()
            .filter_map(|(conf, binary)| {
                a.runner
                    .call(
                        binary,
                        plugin_type(conf),
                        "DEL",
                        &CniAttach::with_prev(conf, prev),
                    )
                    .err()
            })
            .collect();
        if errors.is_empty() {
            let _ = std::fs::remove_file(&a.cache_file);
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// STATUS of every plugin (lists of version 1.1.0; an error otherwise): whether the
    /// network is ready for ADDs on the node.
    pub fn status(&self, n: &CniNode) -> Result<(), DriverError> {
        if !self.has_status_and_gc() {
            return Err(self.generic(n.runner.subject.clone())(format!(
                "STATUS is CNI 1.1.0's, and the list is version {} (conflist {})",
                self.conflist.cni_version,
                self.conflist.file.display()
            )));
        }
        for (conf, binary) in &n.plugins {
            let ptype = plugin_type(conf).to_string();
            self.negotiate(&n.runner, binary, &ptype)?;
            n.runner.call(binary, &ptype, "STATUS", conf)?;
        }
        Ok(())
    }

    /// GC as libcni does it (nothing when the list says `disableGC`): first DEL every
    /// attachment of this network cached on the node that is not in `valid`, from its cache
    /// entry; then, for lists of version 1.1.0, GC of every plugin with
    /// `cni.dev/valid-attachments`, so plugins release what they hold for attachments the
    /// runtime no longer knows (host-local's reservations). Every failure is returned.
    pub fn gc(&self, n: &CniNode, valid: &[CniAttachment]) -> Result<(), Vec<DriverError>> {
        if self.conflist.disable_gc {
            return Ok(());
        }
        let keep: Vec<&Path> = valid.iter().map(|a| a.cache_file.as_path()).collect();
        let mut errors = Vec::new();
        let prefix = format!("{}-", self.conflist.name);
        let mut stale: Vec<PathBuf> = std::fs::read_dir(n.dir.join("results"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with(&prefix))
                    && !keep.contains(&p.as_path())
            })
            .collect();
        stale.sort();
        for file in stale {
            match self.cached_attachment(n, &file) {
                Ok(a) => {
                    if let Err(e) = self.del(&a) {
                        errors.extend(e);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if self.has_status_and_gc() {
            let attachments: Vec<Value> = valid.iter().map(CniAttachment::gc_attachment).collect();
            for (conf, binary) in &n.plugins {
                let ptype = plugin_type(conf).to_string();
                let mut c = conf.clone();
                if let Some(o) = c.as_object_mut() {
                    o.insert(
                        "cni.dev/valid-attachments".into(),
                        Value::Array(attachments.clone()),
                    );
                }
                if let Err(e) = self
                    .negotiate(&n.runner, binary, &ptype)
                    .and_then(|_| n.runner.call(binary, &ptype, "GC", &c))
                {
                    errors.push(e);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// An attachment as its cache entry on node `n` records it (for GC's DELs).
    fn cached_attachment(&self, n: &CniNode, file: &Path) -> Result<CniAttachment, DriverError> {
        let bad = |problem: String| {
            self.generic(n.runner.subject.clone())(format!(
                "cache entry {}: {problem}",
                file.display()
            ))
        };
        let v: Value = std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(bad)?;
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let config: Value = data_encoding::BASE64
            .decode(field("config").as_bytes())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| bad("its `config` is not a base64 JSON list".into()))?;
        let mut plugins = Vec::new();
        for p in config
            .get("plugins")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            plugins.push((p.clone(), self.find(plugin_type(p)).map_err(bad)?));
        }
        let args: Vec<String> = v
            .get("cniArgs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|kv| Some(format!("{}={}", kv.get(0)?.as_str()?, kv.get(1)?.as_str()?)))
            .collect();
        let id = field("containerId");
        let pod = args
            .iter()
            .find_map(|a| a.strip_prefix("K8S_POD_NAME="))
            .unwrap_or(&id)
            .to_string();
        Ok(CniAttachment {
            runner: Runner {
                subject: format!("pod {pod} (GC of a stale attachment)"),
                pod,
                node_netns: n.runner.node_netns.clone(),
                env: BTreeMap::from([
                    ("CNI_CONTAINERID".to_string(), id),
                    ("CNI_NETNS".to_string(), field("netns")),
                    ("CNI_IFNAME".to_string(), field("ifName")),
                    ("CNI_PATH".to_string(), self.cni_path()),
                    ("CNI_ARGS".to_string(), args.join(";")),
                ]),
                timeout: self.timeout,
                version: self.conflist.cni_version.clone(),
            },
            plugins,
            cache_file: file.to_path_buf(),
        })
    }

    /// The plugin binary for `ptype`, from the bin dirs in order.
    fn find(&self, ptype: &str) -> Result<PathBuf, String> {
        self.bin_dirs
            .iter()
            .map(|d| d.join(ptype))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "plugin {ptype} (conflist {}) is in none of the bin dirs: {}",
                    self.conflist.file.display(),
                    self.bin_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// VERSION, once per binary: the list's version must be one it supports.
    fn negotiate(&self, runner: &Runner, binary: &Path, ptype: &str) -> Result<(), DriverError> {
        let known = self
            .state
            .versions
            .lock()
            .expect("poisoned")
            .get(binary)
            .cloned();
        let supported = match known {
            Some(s) => s,
            None => {
                let out = runner.call(
                    binary,
                    ptype,
                    "VERSION",
                    &json!({ "cniVersion": self.conflist.cni_version }),
                )?;
                let v: Value = serde_json::from_str(&out).map_err(|e| DriverError::Exec {
                    layer: "pod attach",
                    program: format!("CNI plugin {ptype} ({})", binary.display()),
                    subject: format!("{}, CNI_COMMAND=VERSION", runner.subject),
                    problem: format!("its VERSION answer is not JSON ({e}): {}", out.trim()),
                })?;
                let s: Vec<String> = v
                    .get("supportedVersions")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                self.state
                    .versions
                    .lock()
                    .expect("poisoned")
                    .insert(binary.to_path_buf(), s.clone());
                s
            }
        };
        if supported.contains(&self.conflist.cni_version) {
            return Ok(());
        }
        Err(DriverError::Exec {
            layer: "pod attach",
            program: format!("CNI plugin {ptype} ({})", binary.display()),
            subject: format!("{}, CNI_COMMAND=VERSION", runner.subject),
            problem: format!(
                "plugin {ptype} supports {}; the list says {} (conflist {})",
                if supported.is_empty() {
                    "no version it names".to_string()
                } else {
                    supported.join(", ")
                },
                self.conflist.cni_version,
                self.conflist.file.display()
            ),
        })
    }

    /// A plugin's configuration for this pod, as the spec derives it from the list: `name`
    /// and `cniVersion` injected, `capabilities` consumed into `runtimeConfig`, the node's
    /// private IPAM and flannel state injected where not set.
    fn plugin_config(
        &self,
        plugin: &Value,
        node_dir: &Path,
        pod: Option<&Pod>,
        node: &Node,
    ) -> Value {
        let mut conf: Map<String, Value> = plugin.as_object().cloned().unwrap_or_default();
        conf.insert("name".into(), Value::String(self.conflist.name.clone()));
        conf.insert(
            "cniVersion".into(),
            Value::String(self.conflist.cni_version.clone()),
        );
        if let Some(Value::Object(caps)) = conf.remove("capabilities") {
            let enabled = |k: &str| caps.get(k) == Some(&Value::Bool(true));
            let mut rc = match conf.remove("runtimeConfig") {
                Some(Value::Object(o)) => o,
                _ => Map::new(),
            };
            if enabled("portMappings")
                && let Some(pod) = pod
            {
                let maps: Vec<Value> = pod
                    .host_ports
                    .iter()
                    .map(|h| {
                        json!({
                            "hostPort": h.host_port,
                            "containerPort": h.container_port,
                            "protocol": h.proto.to_string(),
                        })
                    })
                    .collect();
                rc.insert("portMappings".into(), Value::Array(maps));
            }
            if enabled("ips")
                && let Some(ip) = pod.and_then(|p| p.requested_ip)
            {
                rc.insert(
                    "ips".into(),
                    json!([format!("{ip}/{}", node.pod_cidr.prefix_len())]),
                );
            }
            if enabled("mac")
                && let Some(mac) = pod.and_then(|p| p.requested_mac)
            {
                rc.insert("mac".into(), Value::String(mac.to_string()));
            }
            if !rc.is_empty() {
                conf.insert("runtimeConfig".into(), Value::Object(rc));
            }
        }
        if let Some(Value::Object(ipam)) = conf.get_mut("ipam")
            && ipam.get("type").and_then(Value::as_str) == Some("host-local")
            && !ipam.contains_key("dataDir")
        {
            ipam.insert(
                "dataDir".into(),
                Value::String(node_dir.join("host-local").display().to_string()),
            );
        }
        if conf.get("type").and_then(Value::as_str) == Some("flannel") {
            conf.entry("subnetFile").or_insert_with(|| {
                Value::String(node_dir.join("flannel/subnet.env").display().to_string())
            });
            conf.entry("dataDir").or_insert_with(|| {
                Value::String(node_dir.join("flannel/data").display().to_string())
            });
            // flannel builds its delegate's host-local IPAM from its own `ipam`: the node's
            // private dataDir goes there, or host-local would use /var/lib/cni/networks.
            if let Value::Object(ipam) = conf
                .entry("ipam")
                .or_insert_with(|| Value::Object(Map::new()))
                && !ipam.contains_key("dataDir")
            {
                ipam.insert(
                    "dataDir".into(),
                    Value::String(node_dir.join("host-local").display().to_string()),
                );
            }
        }
        Value::Object(conf)
    }

    fn with_prev(conf: &Value, prev: Option<&Value>) -> Value {
        let mut c = conf.clone();
        if let (Some(p), Some(o)) = (prev, c.as_object_mut()) {
            o.insert("prevResult".into(), p.clone());
        }
        c
    }

    /// flanneld's `subnet.env` for a node, from its plan.
    fn write_subnet_env(topology: &Topology, node: &Node, node_dir: &Path) -> std::io::Result<()> {
        let dir = node_dir.join("flannel");
        std::fs::create_dir_all(&dir)?;
        let masq = node.network.masquerade.is_some();
        std::fs::write(
            dir.join("subnet.env"),
            format!(
                "FLANNEL_NETWORK={}\nFLANNEL_SUBNET={}\nFLANNEL_MTU={}\nFLANNEL_IPMASQ={masq}\n",
                topology.cluster_cidr, node.bridge.addr, node.bridge.mtu
            ),
        )
    }
}

impl PodAttach for CniAttach {
    fn name(&self) -> String {
        format!(
            "cni {} ({})",
            self.conflist.name,
            self.conflist
                .plugins
                .iter()
                .map(plugin_type)
                .collect::<Vec<_>>()
                .join(" + ")
        )
    }

    fn prepare_node(&self, ctx: &mut NodeContext<'_>) -> Result<(), DriverError> {
        let dir = CniAttach::node_dir(ctx.prefix, ctx.node);
        let io = |e: std::io::Error| DriverError::Exec {
            layer: "pod attach",
            program: format!("cni {}", self.conflist.name),
            subject: format!("node {}", ctx.node.name),
            problem: format!("preparing its state directory {}: {e}", dir.display()),
        };
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io)?;
        }
        std::fs::create_dir_all(dir.join("results")).map_err(io)?;
        self.state.dirs.lock().expect("poisoned").push(dir.clone());
        if self
            .conflist
            .plugins
            .iter()
            .any(|p| plugin_type(p) == "flannel")
        {
            CniAttach::write_subnet_env(ctx.topology, ctx.node, &dir).map_err(io)?;
        }
        // A runtime asks a 1.1.0 network whether it is ready before its first ADD.
        if self.has_status_and_gc() {
            let n = self.node(ctx.topology, ctx.node, ctx.netns.path(), ctx.prefix)?;
            self.status(&n)?;
        }
        Ok(())
    }

    fn attach(&self, ctx: &mut PodContext<'_>) -> Result<Option<Attachment>, DriverError> {
        let (pod, node) = (ctx.pod, ctx.node);
        let a = self.attachment(
            ctx.topology,
            node,
            pod,
            ctx.pod_netns.path(),
            ctx.node_netns.path(),
            ctx.prefix,
        )?;
        let result = self.add(&a)?;
        let (last, last_bin) = a
            .plugins
            .last()
            .map(|(c, b)| (plugin_type(c).to_string(), b.clone()))
            .unwrap_or_default();
        let bad_result = |problem: String| DriverError::Exec {
            layer: "pod attach",
            program: format!("CNI plugin {last} ({})", last_bin.display()),
            subject: format!(
                "pod {}, CNI_COMMAND=ADD (the list's final result)",
                pod.name
            ),
            problem,
        };
        let text = result.to_string();
        let att =
            parse_result_with(&text, &pod.name, IFNAME, &self.interfaces).map_err(&bad_result)?;
        if !node.pod_cidr.contains(&att.addr.addr()) {
            return Err(bad_result(format!(
                "it gave address {}, outside node {}'s pod range {}",
                att.addr, node.name, node.pod_cidr
            )));
        }
        check_attachment(ctx, &att).map_err(&bad_result)?;
        if let Some(want) = pod.requested_ip
            && att.addr.addr() != want
        {
            return Err(bad_result(format!(
                "the case fixes the pod's address to {want} (runtimeConfig.ips), and it gave {}",
                att.addr.addr()
            )));
        }
        if let Some(want) = pod.requested_mac
            && att.mac != Some(want)
        {
            return Err(bad_result(format!(
                "the case fixes the pod's MAC to {want} (runtimeConfig.mac), and it gave {}",
                att.mac.map_or("none".to_string(), |m| m.to_string())
            )));
        }
        if self.runs_check() {
            self.check(&a, Some(&result))?;
        }
        Ok(Some(att))
    }

    fn node_interfaces(&self, _node: &Node) -> Vec<String> {
        self.interfaces.clone()
    }

    fn detacher(&self) -> Option<Arc<dyn Detach>> {
        Some(Arc::new(self.clone()))
    }
}

impl Detach for CniAttach {
    fn detach_all(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let pods = std::mem::take(&mut *self.state.pods.lock().expect("poisoned"));
        for a in pods.iter().rev() {
            if let Err(e) = self.del(a) {
                errors.extend(e.into_iter().map(|e| e.to_string()));
            }
        }
        for dir in std::mem::take(&mut *self.state.dirs.lock().expect("poisoned")) {
            let _ = std::fs::remove_dir_all(&dir);
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfList, String> {
        ConfList::parse(Path::new("x.conflist"), text)
    }

    #[test]
    fn a_conflist_is_read_and_its_mistakes_name_the_file() {
        let l = parse(r#"{"name":"n","cniVersion":"1.0.0","disableCheck":true,"plugins":[{"type":"bridge"}]}"#).unwrap();
        assert_eq!(l.name, "n");
        assert!(l.disable_check && !l.disable_gc);
        for (text, want) in [
            ("nope", "not JSON"),
            (
                r#"{"cniVersion":"1.0.0","plugins":[{"type":"a"}]}"#,
                "no `name`",
            ),
            (
                r#"{"name":"n","cniVersion":"9.9.9","plugins":[{"type":"a"}]}"#,
                "9.9.9 is not one",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","type":"bridge"}"#,
                "no `plugins`",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[]}"#,
                "`plugins` is empty",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"x":1}]}"#,
                "plugin 0 has no `type`",
            ),
            (
                r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"a","b":"{podCidr}"}]}"#,
                "placeholder {podCidr}",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.starts_with("conflist x.conflist: ") && e.contains(want),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn placeholders_expand_and_mtu_becomes_a_number() {
        let p = Placeholders(BTreeMap::from([
            ("podCIDR", "10.244.1.0/24".to_string()),
            ("mtu", "1450".to_string()),
        ]));
        let v = p.expand(&json!({"a":"{mtu}","r":[[{"subnet":"{podCIDR}"}]],"s":"x{mtu}"}));
        assert_eq!(
            v,
            json!({"a":1450,"r":[[{"subnet":"10.244.1.0/24"}]],"s":"x1450"})
        );
    }

    #[test]
    fn cni_errors_are_shown_with_code_message_and_details() {
        assert_eq!(
            cni_error(r#"{"code":7,"msg":"bad","details":"why"}"#),
            "; CNI error 7: bad (why)"
        );
        assert_eq!(cni_error("junk"), "; its stdout: junk");
        assert_eq!(cni_error(""), "");
    }

    #[test]
    fn container_ids_are_what_the_spec_allows() {
        assert_eq!(container_id("c.", "pod a"), "podpath-c.pod-a");
        assert!(!has_check("0.3.1") && has_check("0.4.0") && has_check("1.1.0"));
    }
}
