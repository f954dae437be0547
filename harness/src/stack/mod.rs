//! The stack: which implementation each layer of a run uses (pod attach, node network, service
//! proxy, cluster DNS), chosen per run from a stack file, never per case, so the same suite
//! runs against any implementation. The builtin stack is the default.
//!
//! A case's `cluster.overlay` and `cluster.proxy` choose among the builtin drivers: where the
//! stack's layer is `builtin` they apply as they always did (the builtin stack runs exactly as
//! before); where it is not, the stack's driver is used instead, and a case or flow that needs
//! what only a builtin gives (a builtin proxy mode the stack lacks, nodes left unconnected, a
//! hop naming flannel's device) is ignored with the reason ([`Stack::run_applies`],
//! [`Stack::flow_applies`]). The format and the contract of each layer are in
//! `docs/implementations.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netns_runtime::proxy::driver::{ProxyMode, ServiceProxy};
use netns_runtime::proxy::exec::ExecProxy;
use netns_runtime::proxy::restore::RestoreProxy;
use netns_runtime::stack::calico::{CalicoAttach, CalicoMode, CalicoNetwork};
use netns_runtime::stack::{
    BridgeAttach, CniAttach, ConfList, DnsDriver, Drivers, Encapsulation, ExecAttach, ExecDns,
    ExecNetwork, ExecSpec, FlannelNetwork, NoAttach, NoNetwork,
};
use serde_saphyr::Spanned;

use crate::diag::{CaseError, Diagnostic, Diagnostics};
use crate::plan::Datapath;

pub mod applies;
pub mod file;
pub mod show;

use file::{Layer, LayerSpec, StackFile};

/// The environment variable naming the stack file of `cargo test` runs.
pub const STACK_ENV: &str = "PODPATH_STACK";

/// How long an `exec` driver's command may run, unless the stack says otherwise.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// A run's implementation under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// How reports name it: the file's `name`, its stem, or `builtin`.
    pub name: String,
    /// The stack file, `None` for the default builtin stack.
    pub file: Option<PathBuf>,
    pub attach: AttachLayer,
    pub network: NetworkLayer,
    pub proxy: ProxyLayer,
    pub dns: DnsLayer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachLayer {
    /// The CNI bridge plugin's layout with the planned addresses.
    Builtin,
    /// Calico's CNI plugin with Calico IPAM (builtin; `docs/calico.md`).
    Calico,
    Exec {
        spec: ExecSpec,
        interfaces: Vec<String>,
    },
    /// A CNI runtime running a conflist's plugins (`netns_runtime::stack::cni`).
    Cni {
        conflist: ConfList,
        bin_dirs: Vec<PathBuf>,
        timeout: Duration,
        interfaces: Vec<String>,
    },
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkLayer {
    /// flannel, as each case's `cluster.overlay` chooses (VXLAN by default).
    Builtin,
    /// Calico's node network in one mode (builtin; `docs/calico.md`).
    Calico(CalicoMode),
    Exec {
        spec: ExecSpec,
        interfaces: Vec<String>,
        encapsulation: Option<Encapsulation>,
        masquerade: bool,
    },
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyLayer {
    /// podpath's kube-proxy renderers, in these modes (`None`: the modes each case asks for,
    /// both by default).
    Builtin(Option<Vec<ProxyMode>>),
    /// A captured ruleset loaded as it is (`netns_runtime::proxy::restore`).
    Restore {
        mode: ProxyMode,
        /// Absolute; `{node}` and `{case}` are replaced per node and case.
        ruleset: PathBuf,
    },
    /// A proxy command run in every node (`netns_runtime::proxy::exec`).
    Exec {
        mode: ProxyMode,
        spec: ExecSpec,
        /// The configuration template's file and text.
        config: Option<(PathBuf, String)>,
    },
    /// A proxy podpath cannot run or read here (kube-proxy's IPVS mode): every run of a case
    /// with Services is ignored with `reason`.
    Unavailable {
        description: String,
        reason: String,
    },
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsLayer {
    Builtin,
    /// A DNS server command in the DNS pod (`netns_runtime::stack::dns_exec`).
    Exec {
        spec: ExecSpec,
        /// The Corefile template's file and text.
        corefile: Option<(PathBuf, String)>,
    },
    None,
}

impl Default for Stack {
    fn default() -> Stack {
        Stack::builtin()
    }
}

impl Stack {
    /// The builtin stack: what podpath runs when no stack is given.
    pub fn builtin() -> Stack {
        Stack {
            name: "builtin".into(),
            file: None,
            attach: AttachLayer::Builtin,
            network: NetworkLayer::Builtin,
            proxy: ProxyLayer::Builtin(None),
            dns: DnsLayer::Builtin,
        }
    }

    /// The stack named by `PODPATH_STACK`, or the builtin one.
    pub fn from_env() -> Result<Stack, CaseError> {
        match std::env::var_os(STACK_ENV) {
            Some(path) if !path.is_empty() => Stack::load(Path::new(&path)),
            _ => Ok(Stack::builtin()),
        }
    }

    /// Reads and checks a stack file; every problem is reported with its line and column.
    pub fn load(path: &Path) -> Result<Stack, CaseError> {
        let text = fs::read_to_string(path).map_err(|source| CaseError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Stack::load_str(path, &text)
    }

    /// Like [`Stack::load`], from text; `path` names it in errors and is where relative
    /// commands are found.
    pub fn load_str(path: &Path, text: &str) -> Result<Stack, CaseError> {
        let parsed = file::parse(text).map_err(|(location, message)| {
            CaseError::Invalid(vec![Diagnostic {
                file: path.to_path_buf(),
                location,
                message,
            }])
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let dir = fs::canonicalize(&dir).unwrap_or(dir);
        let mut check = Checker {
            found: Diagnostics::new(path),
            dir,
            name: String::new(),
        };
        let stack = check.stack(&parsed.value, path);
        check.found.finish()?;
        Ok(stack)
    }

    /// Whether every layer is one of podpath's own drivers (the reference ones or the Calico
    /// ones): such a stack is deterministic, so it has snapshots ([`Stack::snapshot_name`]).
    pub fn is_builtin_drivers(&self) -> bool {
        matches!(self.attach, AttachLayer::Builtin | AttachLayer::Calico)
            && matches!(
                self.network,
                NetworkLayer::Builtin | NetworkLayer::Calico(_)
            )
            && matches!(self.proxy, ProxyLayer::Builtin(_))
            && self.dns == DnsLayer::Builtin
    }

    /// Whether a layer is Calico's.
    pub fn is_calico(&self) -> bool {
        self.attach == AttachLayer::Calico || matches!(self.network, NetworkLayer::Calico(_))
    }

    /// The Calico mode the stack's pods are attached for: its Calico node network's, routed
    /// (no tunnel address, the underlay's MTU) otherwise.
    pub fn calico_mode(&self) -> CalicoMode {
        match self.network {
            NetworkLayer::Calico(mode) => mode,
            _ => CalicoMode::Routed,
        }
    }

    /// What a builtin stack other than the reference one puts in its snapshots' names
    /// (`<case>__<stack>[__<mode>]__<node>.snap`); `None` for the reference stack, whose names
    /// stay `<case>[__<mode>]__<node>.snap`, and for stacks without snapshots.
    pub fn snapshot_name(&self) -> Option<&str> {
        (self.is_builtin_drivers() && !self.is_builtin()).then_some(self.name.as_str())
    }

    /// Whether every layer is builtin (snapshots record the builtin stack only).
    pub fn is_builtin(&self) -> bool {
        self.attach == AttachLayer::Builtin
            && self.network == NetworkLayer::Builtin
            && matches!(self.proxy, ProxyLayer::Builtin(_))
            && self.dns == DnsLayer::Builtin
    }

    /// The drivers the cluster is built with.
    pub fn drivers(&self) -> Drivers {
        Drivers {
            attach: match &self.attach {
                AttachLayer::Builtin => Box::new(BridgeAttach),
                AttachLayer::Calico => Box::new(CalicoAttach::new(self.calico_mode())),
                AttachLayer::Exec { spec, interfaces } => Box::new(ExecAttach {
                    spec: spec.clone(),
                    node_interfaces: interfaces.clone(),
                }),
                AttachLayer::Cni {
                    conflist,
                    bin_dirs,
                    timeout,
                    interfaces,
                } => Box::new(CniAttach::new(
                    conflist.clone(),
                    bin_dirs.clone(),
                    *timeout,
                    interfaces.clone(),
                )),
                AttachLayer::None => Box::new(NoAttach),
            },
            network: match &self.network {
                NetworkLayer::Builtin => Box::new(FlannelNetwork),
                NetworkLayer::Calico(mode) => Box::new(CalicoNetwork {
                    mode: *mode,
                    nat_outgoing: true,
                }),
                NetworkLayer::Exec {
                    spec,
                    interfaces,
                    encapsulation,
                    masquerade,
                } => Box::new(ExecNetwork {
                    spec: spec.clone(),
                    interfaces: interfaces.clone(),
                    encapsulation: *encapsulation,
                    masquerade: *masquerade,
                }),
                NetworkLayer::None => Box::new(NoNetwork),
            },
            dns: match &self.dns {
                DnsLayer::Builtin => DnsDriver::Builtin,
                DnsLayer::Exec { spec, corefile } => DnsDriver::Exec(ExecDns {
                    spec: spec.clone(),
                    corefile: corefile.as_ref().map(|(_, text)| text.clone()),
                    kubeconfig: None,
                }),
                DnsLayer::None => DnsDriver::None,
            },
        }
    }

    /// The service proxy a run in `mode` programs its nodes with (`None` without a proxy).
    /// `case` names the case in a ruleset's `{case}`; `netns_prefix` keeps the state of
    /// concurrently running cases apart; `kubeconfigs` are the nodes' for the served API.
    pub fn proxy_driver(
        &self,
        mode: ProxyMode,
        case: &str,
        netns_prefix: &str,
        kubeconfigs: BTreeMap<String, PathBuf>,
    ) -> Option<Box<dyn ServiceProxy>> {
        match &self.proxy {
            ProxyLayer::Builtin(_) => Some(mode.builtin()),
            ProxyLayer::Restore { mode, ruleset } => Some(Box::new(RestoreProxy {
                mode: *mode,
                ruleset: ruleset.clone(),
                case: case.to_string(),
            })),
            ProxyLayer::Exec { mode, spec, config } => Some(Box::new(ExecProxy::new(
                *mode,
                spec.clone(),
                config.as_ref().map(|(_, text)| text.clone()),
                PathBuf::from("/run/podpath/proxy").join(netns_prefix.trim_end_matches('.')),
                kubeconfigs,
            ))),
            ProxyLayer::Unavailable { .. } | ProxyLayer::None => None,
        }
    }

    /// What the drivers declare the datapath does, which the planner reasons from.
    pub fn datapath(&self) -> Datapath {
        Datapath {
            node_network_masquerades: match &self.network {
                NetworkLayer::Builtin => None,
                NetworkLayer::Exec { masquerade, .. } => Some(*masquerade),
                NetworkLayer::None => Some(false),
                // natOutgoing on the default pool.
                NetworkLayer::Calico(_) => Some(true),
            },
        }
    }

    /// What `podpath plan` must add for this stack: the parts of the plan that its
    /// implementation decides when the cluster is built, and so are not known before.
    pub fn plan_notes(&self) -> Vec<String> {
        let drivers = self.drivers();
        let mut notes = Vec::new();
        match &self.attach {
            AttachLayer::Builtin => {}
            AttachLayer::Exec { .. } => notes.push(format!(
                "not known before the build: every pod's address, MAC and host-side interface (`host veth` above is what the builtin attach would choose); stack {}'s pod attach ({}) decides them, podpath learns them from its results and plans endpoints, proxy tables, DNS records and flow targets again from them. A pod's fixed `ip:` is passed on (PODPATH_IP).",
                self.name,
                drivers.attach.name()
            )),
            AttachLayer::Cni { .. } => notes.push(format!(
                "not known before the build: every pod's address, MAC and host-side interface (`host veth` above is what the builtin attach would choose); stack {}'s pod attach ({}) decides them, podpath learns them from the final CNI result and plans endpoints, proxy tables, DNS records and flow targets again from them. A pod's fixed `ip:` is passed on as runtimeConfig.ips where a plugin declares the `ips` capability.",
                self.name,
                drivers.attach.name()
            )),
            AttachLayer::None => notes.push(format!(
                "stack {}'s pod attach is none: pods get no interface, and `cni0` above is not made",
                self.name
            )),
            AttachLayer::Calico => notes.push(format!(
                "stack {}'s pod attach is Calico's: the pods' addresses, interfaces and routes are the Calico layout below (its IPAM decides them at build, and podpath learns them), not the bridge layout above",
                self.name
            )),
        }
        match &self.network {
            NetworkLayer::Builtin => {}
            NetworkLayer::Exec { .. } => notes.push(format!(
                "not podpath's: flannel's objects above (flannel.1, the routes, neighbours and FDB entries to peers, flanneld's masquerade rules) are the builtin node network's; stack {}'s node network ({}) programs its own on every node",
                self.name,
                drivers.network.name()
            )),
            NetworkLayer::None => notes.push(format!(
                "stack {}'s node network is none: flannel's objects above are not made, and nothing connects the nodes' pod subnets",
                self.name
            )),
            NetworkLayer::Calico(_) => notes.push(format!(
                "stack {}'s node network is Calico's: flannel's objects above are not made; the Calico layout below is",
                self.name
            )),
        }
        notes
    }

    /// One line per layer, for the start of a run and for reports.
    pub fn describe(&self) -> String {
        let drivers = self.drivers();
        let proxy = match &self.proxy {
            ProxyLayer::Builtin(None) => "builtin (the modes each case asks for)".to_string(),
            ProxyLayer::Builtin(Some(modes)) => format!(
                "builtin ({})",
                modes
                    .iter()
                    .map(|m| m.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ProxyLayer::Restore { mode, ruleset } => {
                format!("restore {} ({mode} rules)", ruleset.display())
            }
            ProxyLayer::Exec { mode, spec, .. } => {
                format!("exec {} ({mode} rules)", spec.argv.join(" "))
            }
            ProxyLayer::Unavailable { description, .. } => description.clone(),
            ProxyLayer::None => "none".into(),
        };
        let network = match &self.network {
            NetworkLayer::Builtin => "flannel (builtin; the overlay each case asks for)".into(),
            _ => drivers.network.name(),
        };
        let attach = match &self.attach {
            AttachLayer::Builtin => "bridge (builtin)".into(),
            _ => drivers.attach.name(),
        };
        let dns = match &self.dns {
            DnsLayer::Builtin => "builtin".to_string(),
            DnsLayer::Exec { spec, .. } => format!("exec {}", spec.argv.join(" ")),
            DnsLayer::None => "none".to_string(),
        };
        let origin = self
            .file
            .as_ref()
            .map(|f| format!(" ({})", f.display()))
            .unwrap_or_default();
        format!(
            "stack {}{origin}: pod attach {attach}; node network {network}; service proxy {proxy}; cluster DNS {dns}",
            self.name
        )
    }

    /// The proxy modes a case runs in on this stack, given the modes it asks for: each is a
    /// run of its own. A mode the case asks for that the stack lacks is returned as `Err` with
    /// the reason, so its trials are reported ignored.
    pub fn proxy_runs(
        &self,
        case_modes: &[ProxyMode],
    ) -> Vec<Result<ProxyMode, (ProxyMode, String)>> {
        match &self.proxy {
            ProxyLayer::Builtin(None) => case_modes.iter().map(|&m| Ok(m)).collect(),
            ProxyLayer::Builtin(Some(modes)) => case_modes
                .iter()
                .map(|&m| {
                    if modes.contains(&m) {
                        Ok(m)
                    } else {
                        Err((
                            m,
                            format!(
                                "the case runs in proxy mode {m}, which stack {} does not give (serviceProxy modes: {})",
                                self.name,
                                modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
                            ),
                        ))
                    }
                })
                .collect(),
            ProxyLayer::Restore { mode, .. } | ProxyLayer::Exec { mode, .. } => case_modes
                .iter()
                .map(|&m| {
                    if m == *mode {
                        Ok(m)
                    } else {
                        Err((
                            m,
                            format!(
                                "the case runs in proxy mode {m}, and stack {}'s service proxy programs {mode} rules (serviceProxy mode: {mode})",
                                self.name
                            ),
                        ))
                    }
                })
                .collect(),
            ProxyLayer::Unavailable { reason, .. } => case_modes
                .iter()
                .map(|&m| Err((m, reason.clone())))
                .collect(),
            ProxyLayer::None => case_modes
                .iter()
                .map(|&m| {
                    Err((
                        m,
                        format!(
                            "the case's Services need a service proxy, and stack {} has none (serviceProxy: none)",
                            self.name
                        ),
                    ))
                })
                .collect(),
        }
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Interprets a parsed stack file, collecting every problem.
struct Checker {
    found: Diagnostics,
    dir: PathBuf,
    /// The stack's name, for reasons given at load.
    name: String,
}

/// The keys a layer's mapping may have, by driver.
const EXEC_KEYS: &[&str] = &["command", "timeout", "env", "interfaces"];

impl Checker {
    fn stack(&mut self, file: &StackFile, path: &Path) -> Stack {
        let name = match &file.name {
            Some(n) if n.value.trim().is_empty() => {
                self.found.error(
                    n.referenced,
                    "`name` is empty; leave it out to use the file stem",
                );
                String::new()
            }
            Some(n) => n.value.clone(),
            None => path
                .file_stem()
                .map_or_else(|| "stack".into(), |s| s.to_string_lossy().into_owned()),
        };
        self.name = name.clone();
        let attach = self.attach(file.pod_attach.as_ref());
        let network = self.network(file.node_network.as_ref());
        let proxy = self.proxy(file.service_proxy.as_ref());
        let dns = self.dns(file.cluster_dns.as_ref());
        Stack {
            name,
            file: Some(path.to_path_buf()),
            attach,
            network,
            proxy,
            dns,
        }
    }

    /// The layer's driver name and mapping (empty for the short form), or `None` when the
    /// driver is missing (reported).
    fn driver<'a>(
        &mut self,
        layer: &'a Spanned<Layer>,
        key: &str,
        drivers: &[&str],
    ) -> Option<(String, serde_saphyr::Location, &'a LayerSpec)> {
        static EMPTY: std::sync::OnceLock<LayerSpec> = std::sync::OnceLock::new();
        let (name, at, spec) = match &layer.value {
            Layer::Short(name) => (
                name.clone(),
                layer.referenced,
                EMPTY.get_or_init(LayerSpec::default),
            ),
            Layer::Full(spec) => match &spec.driver {
                Some(d) => (d.value.clone(), d.referenced, spec.as_ref()),
                None => {
                    self.found.error(
                        layer.referenced,
                        format!("`{key}` has no `driver` (one of {})", drivers.join(", ")),
                    );
                    return None;
                }
            },
        };
        if !drivers.contains(&name.as_str()) {
            self.found.error(
                at,
                format!(
                    "unknown {key} driver `{name}`: expected {}",
                    drivers.join(", ")
                ),
            );
            return None;
        }
        Some((name, at, spec))
    }

    /// Reports every key of `spec` that `driver` does not take.
    fn only_keys(&mut self, spec: &LayerSpec, key: &str, driver: &str, allowed: &[&str]) {
        let present: [(&str, Option<serde_saphyr::Location>); 14] = [
            ("mode", spec.mode.as_ref().map(|v| v.referenced)),
            ("ruleset", spec.ruleset.as_ref().map(|v| v.referenced)),
            ("config", spec.config.as_ref().map(|v| v.referenced)),
            ("corefile", spec.corefile.as_ref().map(|v| v.referenced)),
            ("conflist", spec.conflist.as_ref().map(|v| v.referenced)),
            ("binDir", spec.bin_dir.as_ref().map(|v| v.referenced)),
            ("command", spec.command.as_ref().map(|v| v.referenced)),
            ("timeout", spec.timeout.as_ref().map(|v| v.referenced)),
            (
                "env",
                spec.env
                    .as_ref()
                    .and_then(|e| e.values().next().map(|v| v.referenced)),
            ),
            ("interfaces", spec.interfaces.as_ref().map(|v| v.referenced)),
            ("masquerade", spec.masquerade.as_ref().map(|v| v.referenced)),
            (
                "encapsulation",
                spec.encapsulation.as_ref().map(|v| v.referenced),
            ),
            ("modes", spec.modes.as_ref().map(|v| v.referenced)),
            ("driver", None),
        ];
        for (name, at) in present {
            if let Some(at) = at
                && !allowed.contains(&name)
            {
                self.found.error(
                    at,
                    format!("`{name}` does not apply to the {driver} {key} driver"),
                );
            }
        }
    }

    fn exec_spec(
        &mut self,
        spec: &LayerSpec,
        at: serde_saphyr::Location,
        key: &str,
    ) -> Option<ExecSpec> {
        let argv: Vec<String> = match &spec.command {
            Some(c) if c.value.is_empty() => {
                self.found.error(c.referenced, "`command` is empty");
                return None;
            }
            // `{impl}` is podpath's cache of built implementations, as in `binDir`.
            Some(c) => c
                .value
                .iter()
                .map(|a| match a.value.strip_prefix("{impl}") {
                    Some(rest) => crate::implementations::cache_dir()
                        .join(rest.trim_start_matches('/'))
                        .display()
                        .to_string(),
                    None => a.value.clone(),
                })
                .collect(),
            None => {
                self.found.error(
                    at,
                    format!("the exec {key} driver needs a `command` (a list: [program, args...])"),
                );
                return None;
            }
        };
        let timeout = match &spec.timeout {
            Some(t) => match parse_duration(&t.value) {
                Ok(d) => d,
                Err(e) => {
                    self.found.error(t.referenced, e);
                    DEFAULT_EXEC_TIMEOUT
                }
            },
            None => DEFAULT_EXEC_TIMEOUT,
        };
        let env: BTreeMap<String, String> = spec
            .env
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        Some(ExecSpec {
            argv,
            dir: self.dir.clone(),
            timeout,
            env,
        })
    }

    fn interfaces(&mut self, spec: &LayerSpec) -> Vec<String> {
        let mut out = Vec::new();
        for iface in spec.interfaces.iter().flat_map(|l| &l.value) {
            let name = &iface.value;
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
                self.found.error(
                    iface.referenced,
                    format!(
                        "`{name}` is not an interface name (at most 15 characters, no `/` or space)"
                    ),
                );
            } else {
                out.push(name.clone());
            }
        }
        out
    }

    fn attach(&mut self, layer: Option<&Spanned<Layer>>) -> AttachLayer {
        let Some(layer) = layer else {
            return AttachLayer::Builtin;
        };
        let Some((driver, at, spec)) = self.driver(
            layer,
            "podAttach",
            &["builtin", "calico", "exec", "cni", "none"],
        ) else {
            return AttachLayer::Builtin;
        };
        match driver.as_str() {
            "cni" => {
                self.only_keys(
                    spec,
                    "podAttach",
                    "cni",
                    &["conflist", "binDir", "timeout", "interfaces"],
                );
                let interfaces = self.interfaces(spec);
                self.cni(spec, at, interfaces)
                    .unwrap_or(AttachLayer::Builtin)
            }
            "exec" => {
                self.only_keys(spec, "podAttach", "exec", EXEC_KEYS);
                let interfaces = self.interfaces(spec);
                match self.exec_spec(spec, at, "podAttach") {
                    Some(spec) => AttachLayer::Exec { spec, interfaces },
                    None => AttachLayer::Builtin,
                }
            }
            other => {
                self.only_keys(spec, "podAttach", other, &[]);
                match other {
                    "none" => AttachLayer::None,
                    "calico" => AttachLayer::Calico,
                    _ => AttachLayer::Builtin,
                }
            }
        }
    }

    /// The `cni` pod attach: its conflist read and checked now, so a bad one stops the run
    /// before anything is built.
    fn cni(
        &mut self,
        spec: &LayerSpec,
        at: serde_saphyr::Location,
        interfaces: Vec<String>,
    ) -> Option<AttachLayer> {
        let timeout = match &spec.timeout {
            Some(t) => parse_duration(&t.value)
                .map_err(|e| self.found.error(t.referenced, e))
                .ok()?,
            None => DEFAULT_EXEC_TIMEOUT,
        };
        let bin_dirs: Vec<PathBuf> = match &spec.bin_dir {
            Some(dirs) if !dirs.value.is_empty() => {
                // `{impl}` is podpath's cache of built implementations
                // (`implementations::cache_dir`), where scripts/setup puts the upstream plugins.
                dirs.value
                    .iter()
                    .map(|d| match d.value.strip_prefix("{impl}") {
                        Some(rest) => {
                            crate::implementations::cache_dir().join(rest.trim_start_matches('/'))
                        }
                        None => self.dir.join(&d.value),
                    })
                    .collect()
            }
            Some(dirs) => {
                self.found.error(dirs.referenced, "`binDir` is empty");
                return None;
            }
            None => {
                self.found.error(
                    at,
                    "the cni podAttach driver needs `binDir` (a list of plugin directories)",
                );
                return None;
            }
        };
        let Some(file) = &spec.conflist else {
            self.found.error(
                at,
                "the cni podAttach driver needs `conflist` (a network configuration list file)",
            );
            return None;
        };
        let conflist = ConfList::load(&self.dir.join(&file.value))
            .map_err(|e| self.found.error(file.referenced, e))
            .ok()?;
        Some(AttachLayer::Cni {
            conflist,
            bin_dirs,
            timeout,
            interfaces,
        })
    }

    fn network(&mut self, layer: Option<&Spanned<Layer>>) -> NetworkLayer {
        let Some(layer) = layer else {
            return NetworkLayer::Builtin;
        };
        let Some((driver, at, spec)) = self.driver(
            layer,
            "nodeNetwork",
            &[
                "builtin",
                "calico-routed",
                "calico-vxlan",
                "calico-ipip",
                "exec",
                "none",
            ],
        ) else {
            return NetworkLayer::Builtin;
        };
        match driver.as_str() {
            "exec" => {
                let mut keys = EXEC_KEYS.to_vec();
                keys.extend(["masquerade", "encapsulation"]);
                self.only_keys(spec, "nodeNetwork", "exec", &keys);
                let interfaces = self.interfaces(spec);
                let masquerade = match &spec.masquerade {
                    Some(m) => match m.value.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            self.found.error(
                                m.referenced,
                                format!("`masquerade` is true or false, not `{other}`"),
                            );
                            false
                        }
                    },
                    None => false,
                };
                let encapsulation = spec.encapsulation.as_ref().and_then(|e| {
                    let Some(v) = &e.value.vxlan else {
                        self.found.error(
                            e.referenced,
                            "`encapsulation` needs `vxlan: { vni, port }` (the only one podpath decodes)",
                        );
                        return None;
                    };
                    let number = |c: &mut Checker, what: &str, field: &Option<Spanned<String>>, max: u32| {
                        match field {
                            Some(f) => match f.value.parse::<u32>() {
                                Ok(n) if n <= max => Some(n),
                                _ => {
                                    c.found.error(
                                        f.referenced,
                                        format!("`{what}` is a number from 0 to {max}, not `{}`", f.value),
                                    );
                                    None
                                }
                            },
                            None => {
                                c.found.error(v.referenced, format!("`vxlan` needs `{what}`"));
                                None
                            }
                        }
                    };
                    let vni = number(self, "vni", &v.value.vni, 0xff_ffff);
                    let port = number(self, "port", &v.value.port, u32::from(u16::MAX));
                    Some(Encapsulation::Vxlan {
                        vni: vni?,
                        port: u16::try_from(port?).ok()?,
                    })
                });
                match self.exec_spec(spec, at, "nodeNetwork") {
                    Some(spec) => NetworkLayer::Exec {
                        spec,
                        interfaces,
                        encapsulation,
                        masquerade,
                    },
                    None => NetworkLayer::Builtin,
                }
            }
            other => {
                self.only_keys(spec, "nodeNetwork", other, &[]);
                match other {
                    "none" => NetworkLayer::None,
                    "calico-routed" => NetworkLayer::Calico(CalicoMode::Routed),
                    "calico-vxlan" => NetworkLayer::Calico(CalicoMode::Vxlan),
                    "calico-ipip" => NetworkLayer::Calico(CalicoMode::Ipip),
                    _ => NetworkLayer::Builtin,
                }
            }
        }
    }

    fn proxy(&mut self, layer: Option<&Spanned<Layer>>) -> ProxyLayer {
        let Some(layer) = layer else {
            return ProxyLayer::Builtin(None);
        };
        let Some((driver, at, spec)) = self.driver(
            layer,
            "serviceProxy",
            &["builtin", "exec", "restore", "none"],
        ) else {
            return ProxyLayer::Builtin(None);
        };
        if driver == "none" {
            self.only_keys(spec, "serviceProxy", "none", &[]);
            return ProxyLayer::None;
        }
        if driver == "restore" {
            self.only_keys(spec, "serviceProxy", "restore", &["mode", "ruleset"]);
            let mode = self.proxy_mode(spec, at, "restore");
            let Some(ruleset) = &spec.ruleset else {
                self.found.error(
                    at,
                    "the restore serviceProxy driver needs `ruleset` (an iptables-save dump or an nft ruleset; `{node}` and `{case}` in its name are replaced)",
                );
                return ProxyLayer::Builtin(None);
            };
            if ruleset.value.trim().is_empty() {
                self.found.error(ruleset.referenced, "`ruleset` is empty");
            }
            return match mode {
                Some(mode) => ProxyLayer::Restore {
                    mode,
                    ruleset: self.dir.join(&ruleset.value),
                },
                None => ProxyLayer::Builtin(None),
            };
        }
        if driver == "exec" {
            self.only_keys(
                spec,
                "serviceProxy",
                "exec",
                &["command", "timeout", "env", "mode", "config"],
            );
            let config = spec.config.as_ref().and_then(|c| self.template(c));
            if spec.mode.as_ref().is_some_and(|m| m.value == "ipvs") {
                return match self.exec_spec(spec, at, "serviceProxy") {
                    Some(exec) => self.ipvs(exec),
                    None => ProxyLayer::Builtin(None),
                };
            }
            let mode = self.proxy_mode(spec, at, "exec");
            return match (mode, self.exec_spec(spec, at, "serviceProxy")) {
                (Some(mode), Some(spec)) => ProxyLayer::Exec { mode, spec, config },
                _ => ProxyLayer::Builtin(None),
            };
        }
        self.only_keys(spec, "serviceProxy", "builtin", &["modes"]);
        let Some(modes) = &spec.modes else {
            return ProxyLayer::Builtin(None);
        };
        if modes.value.is_empty() {
            self.found.error(
                modes.referenced,
                "`modes` is empty: list iptables, nftables or both, or use `driver: none`",
            );
        }
        let mut out = Vec::new();
        for m in &modes.value {
            match ProxyMode::parse(&m.value) {
                Some(mode) if !out.contains(&mode) => out.push(mode),
                Some(_) => self
                    .found
                    .error(m.referenced, format!("mode `{}` is listed twice", m.value)),
                None => self.found.error(
                    m.referenced,
                    format!(
                        "unknown proxy mode `{}`: expected iptables or nftables",
                        m.value
                    ),
                ),
            }
        }
        ProxyLayer::Builtin(Some(out))
    }

    fn dns(&mut self, layer: Option<&Spanned<Layer>>) -> DnsLayer {
        let Some(layer) = layer else {
            return DnsLayer::Builtin;
        };
        match self.driver(layer, "clusterDns", &["builtin", "exec", "none"]) {
            Some((driver, at, spec)) if driver == "exec" => {
                self.only_keys(
                    spec,
                    "clusterDns",
                    "exec",
                    &["command", "timeout", "env", "corefile"],
                );
                let corefile = spec.corefile.as_ref().and_then(|c| self.template(c));
                match self.exec_spec(spec, at, "clusterDns") {
                    Some(spec) => DnsLayer::Exec { spec, corefile },
                    None => DnsLayer::Builtin,
                }
            }
            Some((driver, _, spec)) => {
                self.only_keys(spec, "clusterDns", &driver, &[]);
                if driver == "none" {
                    DnsLayer::None
                } else {
                    DnsLayer::Builtin
                }
            }
            None => DnsLayer::Builtin,
        }
    }

    /// An `exec` proxy in kube-proxy's IPVS mode: ignored with what this kernel lacks, or, on a
    /// kernel that has it, because podpath reads no IPVS rules yet.
    fn ipvs(&mut self, spec: ExecSpec) -> ProxyLayer {
        let description = format!("exec {} (ipvs rules)", spec.argv.join(" "));
        let reason = match netns_runtime::proxy::exec::ipvs_support() {
            Err(missing) => format!(
                "stack {}'s service proxy runs in IPVS mode, and {missing}",
                self.name
            ),
            Ok(()) => format!(
                "stack {}'s service proxy runs in IPVS mode, whose rules (IPVS virtual servers, ipsets) podpath does not read yet: readiness and rule tables exist for iptables and nftables only",
                self.name
            ),
        };
        ProxyLayer::Unavailable {
            description,
            reason,
        }
    }

    /// The `mode` an `exec` or `restore` proxy's rules are in (required).
    fn proxy_mode(
        &mut self,
        spec: &LayerSpec,
        at: serde_saphyr::Location,
        driver: &str,
    ) -> Option<ProxyMode> {
        let Some(mode) = &spec.mode else {
            self.found.error(
                at,
                format!(
                    "the {driver} serviceProxy driver needs `mode` (iptables or nftables: the rules it programs)"
                ),
            );
            return None;
        };
        let parsed = ProxyMode::parse(&mode.value);
        if parsed.is_none() {
            self.found.error(
                mode.referenced,
                format!(
                    "unknown proxy mode `{}`: expected iptables or nftables",
                    mode.value
                ),
            );
        }
        parsed
    }

    /// A template file (a proxy's `config`, a `corefile`), relative to the stack file, read now
    /// so a missing one stops the run before anything is built.
    fn template(&mut self, file: &Spanned<String>) -> Option<(PathBuf, String)> {
        let path = self.dir.join(&file.value);
        match fs::read_to_string(&path) {
            Ok(text) => Some((path, text)),
            Err(e) => {
                self.found.error(
                    file.referenced,
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    }
}

/// `30s`, `500ms`, `2m`: a positive duration of at most ten minutes.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration like 30s, 500ms or 2m");
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| text.split_at(i))
        .ok_or_else(bad)?;
    let n: u64 = number.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if d.is_zero() || d > Duration::from_secs(600) {
        return Err(format!("`{text}` is out of range: from 1ms to 10m"));
    }
    Ok(d)
}

/// Where a stack file's problem is, for tests.
#[cfg(test)]
fn errors(text: &str) -> Vec<String> {
    match Stack::load_str(Path::new("s.yaml"), text) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_stack_file_is_the_builtin_stack_with_its_name() {
        let s = Stack::load_str(Path::new("dir/mine.yaml"), "{}\n").unwrap();
        assert_eq!(s.name, "mine");
        assert_eq!(s.attach, AttachLayer::Builtin);
        assert_eq!(s.network, NetworkLayer::Builtin);
        assert_eq!(s.proxy, ProxyLayer::Builtin(None));
        assert!(s.is_builtin());
    }

    #[test]
    fn exec_layers_and_short_forms() {
        let s = Stack::load_str(
            Path::new("/tmp/x/host-gw.yaml"),
            "name: routes by script\nnodeNetwork:\n  driver: exec\n  command: [./host-gw.sh, '{node}']\n  timeout: 5s\n  masquerade: true\n  encapsulation: { vxlan: { vni: 7, port: 4789 } }\nserviceProxy: { driver: builtin, modes: [nftables] }\nclusterDns: none\n",
        )
        .unwrap();
        assert_eq!(s.name, "routes by script");
        let NetworkLayer::Exec {
            spec,
            masquerade,
            encapsulation,
            ..
        } = &s.network
        else {
            panic!("{:?}", s.network)
        };
        assert_eq!(spec.argv, ["./host-gw.sh", "{node}"]);
        assert_eq!(spec.timeout, Duration::from_secs(5));
        assert!(*masquerade);
        assert_eq!(
            *encapsulation,
            Some(Encapsulation::Vxlan { vni: 7, port: 4789 })
        );
        assert_eq!(
            s.proxy,
            ProxyLayer::Builtin(Some(vec![ProxyMode::Nftables]))
        );
        assert_eq!(s.dns, DnsLayer::None);
        assert!(!s.is_builtin());
        let runs = s.proxy_runs(&ProxyMode::ALL);
        assert!(runs[0].is_err() && runs[1] == Ok(ProxyMode::Nftables));
    }

    #[test]
    fn every_mistake_is_located() {
        for (text, want) in [
            (
                "podAttach: cnii\n",
                "s.yaml:1:12: unknown podAttach driver `cnii`: expected builtin, calico, exec, cni, none",
            ),
            (
                "nodeNetwork: { driver: exec }\n",
                "s.yaml:1:24: the exec nodeNetwork driver needs a `command`",
            ),
            (
                "nodeNetwork: { driver: exec, command: [] }\n",
                "s.yaml:1:39: `command` is empty",
            ),
            (
                "nodeNetwork: { command: [x] }\n",
                "s.yaml:1:14: `nodeNetwork` has no `driver`",
            ),
            (
                "serviceProxy: { driver: builtin, modes: [ipvs] }\n",
                "s.yaml:1:42: unknown proxy mode `ipvs`",
            ),
            (
                "podAttach: { driver: builtin, command: [x] }\n",
                "s.yaml:1:40: `command` does not apply to the builtin podAttach driver",
            ),
            (
                "nodeNetwork: { driver: exec, command: [x], timeout: soon }\n",
                "s.yaml:1:53: `soon` is not a duration",
            ),
            (
                "nodeNetwork: { driver: exec, command: [x], masquerade: yes }\n",
                "s.yaml:1:56: `masquerade` is true or false",
            ),
            (
                "nodeNetwork: { driver: exec, command: [x], encapsulation: { vxlan: { vni: 1 } } }\n",
                "s.yaml:1:68: `vxlan` needs `port`",
            ),
            (
                "clusterDns: coredns\n",
                "s.yaml:1:13: unknown clusterDns driver `coredns`: expected builtin, exec, none",
            ),
            (
                "serviceProxy: { driver: restore, mode: iptables }\n",
                "s.yaml:1:25: the restore serviceProxy driver needs `ruleset`",
            ),
            (
                "serviceProxy: { driver: exec, command: [kube-proxy] }\n",
                "s.yaml:1:25: the exec serviceProxy driver needs `mode` (iptables or nftables",
            ),
            (
                "serviceProxy: { driver: restore, mode: iptable, ruleset: r }\n",
                "s.yaml:1:40: unknown proxy mode `iptable`: expected iptables or nftables",
            ),
            (
                "serviceProxy: { driver: restore, mode: iptables, ruleset: r, command: [x] }\n",
                "s.yaml:1:71: `command` does not apply to the restore serviceProxy driver",
            ),
            (
                "serviceProxy: { driver: exec, mode: nftables, command: [x], config: /nonexistent/kp.json }\n",
                "s.yaml:1:69: cannot read /nonexistent/kp.json: ",
            ),
            (
                "clusterDns: { driver: exec, command: [x], corefile: /nonexistent/Corefile }\n",
                "s.yaml:1:53: cannot read /nonexistent/Corefile: ",
            ),
            (
                "clusterDns: { driver: exec, command: [x], mode: iptables }\n",
                "s.yaml:1:49: `mode` does not apply to the exec clusterDns driver",
            ),
            (
                "clusterDns: { driver: builtin, corefile: C }\n",
                "s.yaml:1:42: `corefile` does not apply to the builtin clusterDns driver",
            ),
        ] {
            let found = errors(text);
            assert!(
                found.iter().any(|e| e.starts_with(want)),
                "{text:?}: want {want:?}, found {found:?}"
            );
        }
    }

    #[test]
    fn exec_and_restore_proxies_and_exec_dns() {
        let dir = std::env::temp_dir().join(format!("podpath-stack-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("kp.json"), "{\"hostnameOverride\": \"{node}\"}").unwrap();
        fs::write(dir.join("Corefile"), ".:53 { file {zonefile} }").unwrap();
        let s = Stack::load_str(
            &dir.join("s.yaml"),
            "serviceProxy: { driver: exec, mode: nftables, command: ['{impl}/kp/kube-proxy', '--config={config}'], config: kp.json, timeout: 5s }\nclusterDns: { driver: exec, command: [dns, '{corefile}'], corefile: Corefile }\n",
        )
        .unwrap();
        let ProxyLayer::Exec { mode, spec, config } = &s.proxy else {
            panic!("{:?}", s.proxy)
        };
        assert_eq!(*mode, ProxyMode::Nftables);
        assert!(
            spec.argv[0].ends_with("/impl/kp/kube-proxy"),
            "{:?}",
            spec.argv
        );
        assert!(!spec.argv[0].contains("{impl}"));
        assert_eq!(spec.timeout, Duration::from_secs(5));
        assert_eq!(
            config.as_ref().unwrap().1,
            "{\"hostnameOverride\": \"{node}\"}"
        );
        let DnsLayer::Exec { corefile, .. } = &s.dns else {
            panic!("{:?}", s.dns)
        };
        assert_eq!(corefile.as_ref().unwrap().1, ".:53 { file {zonefile} }");
        assert!(!s.is_builtin() && !s.is_builtin_drivers());
        // Only the stack's mode runs; the other is ignored with the reason.
        let runs = s.proxy_runs(&ProxyMode::ALL);
        assert_eq!(runs[1], Ok(ProxyMode::Nftables));
        assert_eq!(
            runs[0].as_ref().unwrap_err().1,
            "the case runs in proxy mode iptables, and stack s's service proxy programs nftables rules (serviceProxy mode: nftables)"
        );
        let r = Stack::load_str(
            &dir.join("r.yaml"),
            "serviceProxy: { driver: restore, mode: iptables, ruleset: 'dumps/{node}.rules' }\n",
        )
        .unwrap();
        assert_eq!(
            r.proxy,
            ProxyLayer::Restore {
                mode: ProxyMode::Iptables,
                ruleset: fs::canonicalize(&dir).unwrap().join("dumps/{node}.rules"),
            }
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_location() {
        let found = errors("podAtach: builtin\n");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("s.yaml:1:1: unknown field `podAtach`"),
            "{found:?}"
        );
        let found = errors("nodeNetwork: { driver: exec, command: [x], comand: [y] }\n");
        assert!(found[0].starts_with("s.yaml:1:"), "{found:?}");
        assert!(found[0].contains("unknown field `comand`"), "{found:?}");
    }

    #[test]
    fn relative_commands_are_found_beside_the_stack_file() {
        let dir = std::env::temp_dir();
        let s = Stack::load_str(
            &dir.join("s.yaml"),
            "podAttach: { driver: exec, command: [./attach.sh] }\n",
        )
        .unwrap();
        let AttachLayer::Exec { spec, .. } = s.attach else {
            panic!()
        };
        assert_eq!(spec.dir, fs::canonicalize(&dir).unwrap());
    }
}
