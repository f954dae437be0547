//! The `exec` service proxy: a command of the user's (the real kube-proxy, a replacement of
//! it) run in every node's namespace for as long as the case runs.
//!
//! Started after the pods are attached ([`ServiceProxy::apply`] starts one node's and returns),
//! it is **ready** when the node's rule dump has every Service the node's table plans
//! ([`missing`]): each ClusterIP:port and each NodePort of the case, in the rules of the mode it
//! declares. Waiting is bounded by the stack's `timeout`; a command that exits first, or is not
//! ready by then, fails the build with its output. It is stopped after the last flow: SIGTERM
//! to its process group, SIGKILL after [`STOP_GRACE`].

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::proxy::ServiceTable;
use crate::proxy::driver::{ProxyError, ProxyMode, ServiceProxy};
use crate::stack::daemon::{Daemon, STOP_GRACE};
use crate::stack::exec::expand;
use crate::stack::{ExecSpec, RuleTable};
use crate::tool;

/// How often the rule dump is read while waiting.
const POLL: Duration = Duration::from_millis(100);

/// A proxy command per node.
pub struct ExecProxy {
    /// The mode its rules are in: how readiness and snapshots read them.
    pub mode: ProxyMode,
    /// Its command; `timeout` is how long a node may take to be ready.
    pub spec: ExecSpec,
    /// The configuration file's template (placeholders expanded per node), written to
    /// `<state>/<node>/config` and passed as `{config}`.
    pub config: Option<String>,
    /// Where podpath writes each node's files (on the sandbox's private `/run`).
    pub state_dir: PathBuf,
    /// Each node's kubeconfig, when the cluster serves an API.
    pub kubeconfigs: BTreeMap<String, PathBuf>,
    running: Mutex<Vec<Running>>,
}

struct Running {
    node: String,
    netns: OwnedFd,
    table: ServiceTable,
    daemon: Daemon,
    started: Instant,
    ready_after: Option<Duration>,
    ended: Option<String>,
}

impl ExecProxy {
    pub fn new(
        mode: ProxyMode,
        spec: ExecSpec,
        config: Option<String>,
        state_dir: PathBuf,
        kubeconfigs: BTreeMap<String, PathBuf>,
    ) -> ExecProxy {
        ExecProxy {
            mode,
            spec,
            config,
            state_dir,
            kubeconfigs,
            running: Mutex::new(Vec::new()),
        }
    }

    fn program(&self) -> String {
        self.spec.argv.first().cloned().unwrap_or_default()
    }

    fn fail(&self, node: &str, problem: String) -> ProxyError {
        ProxyError::Exec {
            node: node.to_string(),
            program: self.program(),
            problem,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The placeholders of a node: in the command, its environment and the config template.
    fn values(&self, table: &ServiceTable) -> Result<BTreeMap<&'static str, String>, String> {
        let node = &table.node_name;
        let mut values = BTreeMap::from([
            ("node", node.clone()),
            ("clusterCIDR", table.cluster_cidr.to_string()),
            ("serviceCIDR", table.service_cidr.to_string()),
            ("mode", self.mode.name().to_string()),
            (
                "nodeIP",
                table
                    .node_ips
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
        ]);
        let dir = self.state_dir.join(node);
        values.insert("stateDir", dir.display().to_string());
        let wants = |key: &str| {
            let p = format!("{{{key}}}");
            self.spec.argv.iter().any(|a| a.contains(&p))
                || self.config.as_ref().is_some_and(|c| c.contains(&p))
        };
        match self.kubeconfigs.get(node) {
            Some(k) => {
                values.insert("kubeconfig", k.display().to_string());
            }
            None if wants("kubeconfig") => {
                return Err(
                    "it names `{kubeconfig}`, and this cluster serves no Kubernetes API to give a kubeconfig for"
                        .into(),
                );
            }
            None => {}
        }
        if let Some(template) = &self.config {
            let text = expand(std::slice::from_ref(template), &values).remove(0);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
            let file = dir.join("config");
            std::fs::write(&file, text)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            values.insert("config", file.display().to_string());
        }
        Ok(values)
    }

    /// The node's rule dump in this mode (empty when there is none yet).
    fn dump(&self, ns: &impl AsFd) -> String {
        let out = match self.mode {
            ProxyMode::Iptables => tool::run(ns, "iptables-save", &[], None, POLL * 50),
            ProxyMode::Nftables => tool::run(
                ns,
                "nft",
                &["list", "table", "ip", "kube-proxy"],
                None,
                POLL * 50,
            ),
        };
        out.unwrap_or_default()
    }
}

/// What the node's `dump` lacks of what its `table` plans: each ClusterIP:port/protocol and
/// NodePort/protocol not yet in the rules, in the table's order. Empty: the node is ready.
///
/// - iptables mode (`iptables-save`): any rule with `-d IP/32`, `-p PROTO` and `--dport PORT`
///   (kube-proxy's jump in nat `KUBE-SERVICES`, or its REJECT in filter for a Service without
///   endpoints), and for a NodePort a rule of `KUBE-NODEPORTS` or `KUBE-EXTERNAL-SERVICES` with
///   `--dport NODEPORT`.
/// - nftables mode (`nft list table ip kube-proxy`): the element `IP . PROTO . PORT` (of the
///   `service-ips` or `no-endpoint-services` map) and `PROTO . NODEPORT`.
pub fn missing(mode: ProxyMode, table: &ServiceTable, dump: &str) -> Vec<String> {
    let mut out = Vec::new();
    let rules: Vec<&str> = dump.lines().filter(|l| l.starts_with("-A ")).collect();
    for svc in &table.services {
        let Some(ip) = svc.cluster_ip else { continue };
        let proto = svc.protocol.to_string();
        let port = svc.port;
        let found = match mode {
            ProxyMode::Iptables => rules.iter().any(|r| {
                has(r, "-d", &ip.to_string())
                    && has(r, "-p", &proto)
                    && has(r, "--dport", &port.to_string())
            }),
            ProxyMode::Nftables => dump.contains(&format!("{ip} . {proto} . {port} ")),
        };
        if !found {
            out.push(format!("{ip}:{port}/{proto} ({})", svc.port_name_string()));
        }
        let Some(np) = svc.node_port else { continue };
        let found = match mode {
            ProxyMode::Iptables => rules.iter().any(|r| {
                (r.starts_with("-A KUBE-NODEPORTS ") || r.starts_with("-A KUBE-EXTERNAL-SERVICES "))
                    && has(r, "-p", &proto)
                    && has(r, "--dport", &np.to_string())
            }),
            ProxyMode::Nftables => dump.contains(&format!("{proto} . {np} ")),
        };
        if !found {
            out.push(format!(
                "NodePort {np}/{proto} ({})",
                svc.port_name_string()
            ));
        }
    }
    out
}

/// Whether kube-proxy's IPVS mode can run here: the kernel's IP_VS (`/proc/net/ip_vs` in a
/// scratch network namespace) and its dummy device (`kube-ipvs0`, made in that namespace).
/// Asked once; never in the caller's namespace.
pub fn ipvs_support() -> Result<(), String> {
    static ANSWER: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let probe = "test -e /proc/net/ip_vs && echo ip_vs=yes || echo ip_vs=no; \
                         ip link add kube-ipvs0 type dummy 2>&1 && echo dummy=yes || echo dummy=no";
            let out = std::process::Command::new("unshare")
                .args(["-n", "sh", "-c", probe])
                .output()
                .map_err(|e| format!("could not probe the kernel (`unshare -n sh`): {e}"))?;
            let said = String::from_utf8_lossy(&out.stdout);
            let mut missing = Vec::new();
            if !said.contains("ip_vs=yes") {
                missing.push(
                    "no IP_VS (no /proc/net/ip_vs in a scratch namespace: the ip_vs module is not loaded)"
                        .to_string(),
                );
            }
            if !said.contains("dummy=yes") {
                let why = said
                    .lines()
                    .find(|l| !l.contains('='))
                    .unwrap_or("it failed")
                    .trim()
                    .to_string();
                missing.push(format!(
                    "no dummy device for kube-ipvs0 (`ip link add kube-ipvs0 type dummy` in a scratch namespace: {why})"
                ));
            }
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("this kernel has {}", missing.join(" and ")))
            }
        })
        .clone()
}

/// Whether an iptables rule has option `opt` with `value` (an address also as `value/32`).
fn has(rule: &str, opt: &str, value: &str) -> bool {
    let words: Vec<&str> = rule.split_whitespace().collect();
    words
        .windows(2)
        .any(|w| w[0] == opt && (w[1] == value || w[1].strip_suffix("/32") == Some(value)))
}

impl ServiceProxy for ExecProxy {
    fn name(&self) -> &str {
        self.spec.argv.first().map_or("exec", String::as_str)
    }

    fn apply(&self, node: &Netns, table: &ServiceTable) -> Result<(), ProxyError> {
        let name = &table.node_name;
        let values = self.values(table).map_err(|p| self.fail(name, p))?;
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for (var, key) in [
            ("PODPATH_NODE", "node"),
            ("PODPATH_NODE_IP", "nodeIP"),
            ("PODPATH_CLUSTER_CIDR", "clusterCIDR"),
            ("PODPATH_SERVICE_CIDR", "serviceCIDR"),
            ("PODPATH_PROXY_MODE", "mode"),
            ("PODPATH_KUBECONFIG", "kubeconfig"),
            ("PODPATH_CONFIG", "config"),
            ("PODPATH_STATE_DIR", "stateDir"),
        ] {
            if let Some(v) = values.get(key) {
                env.insert(var.to_string(), v.clone());
            }
        }
        let netns = node
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| self.fail(name, format!("cannot hold the node's namespace: {e}")))?;
        let daemon =
            Daemon::start(&self.spec, node, &env, &values).map_err(|p| self.fail(name, p))?;
        self.lock().push(Running {
            node: name.clone(),
            netns,
            table: table.clone(),
            daemon,
            started: Instant::now(),
            ready_after: None,
            ended: None,
        });
        Ok(())
    }

    fn wait_ready(&self) -> Result<(), ProxyError> {
        let limit = self.spec.timeout;
        let mut running = self.lock();
        loop {
            let mut pending = false;
            for r in running.iter_mut().filter(|r| r.ready_after.is_none()) {
                if let Some(how) = r.daemon.exited() {
                    return Err(self.fail(
                        &r.node,
                        format!(
                            "it ended ({how}) before its rules were programmed{}",
                            r.daemon.quoted_output()
                        ),
                    ));
                }
                let lacking = missing(self.mode, &r.table, &self.dump(&r.netns));
                if lacking.is_empty() {
                    r.ready_after = Some(r.started.elapsed());
                    continue;
                }
                if r.started.elapsed() >= limit {
                    return Err(self.fail(
                        &r.node,
                        format!(
                            "not ready after {limit:?}: the node's {} rules lack {}{}",
                            self.mode,
                            lacking.join(", "),
                            r.daemon.quoted_output()
                        ),
                    ));
                }
                pending = true;
            }
            if !pending {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }

    fn stop(&self) -> Vec<ProxyError> {
        let mut running = self.lock();
        for r in running.iter_mut().filter(|r| r.ended.is_none()) {
            r.ended = Some(r.daemon.stop(STOP_GRACE));
        }
        Vec::new()
    }

    fn logs(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .map(|r| {
                let mut text = format!("# {} on {}\n", self.program(), r.node);
                match r.ready_after {
                    Some(d) => text.push_str(&format!("# ready after {d:?}\n")),
                    None => text.push_str("# never ready\n"),
                }
                if let Some(ended) = &r.ended {
                    text.push_str(&format!("# stopped: {ended}\n"));
                }
                text.push_str(&r.daemon.output());
                (r.node.clone(), text)
            })
            .collect()
    }

    fn rule_tables(&self) -> Vec<RuleTable> {
        self.mode.builtin().rule_tables()
    }

    fn ready_times(&self) -> Vec<(String, Option<Duration>)> {
        self.lock()
            .iter()
            .map(|r| (r.node.clone(), r.ready_after))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{Endpoint, ServicePort, TrafficPolicy, iptables, nftables};
    use crate::topology::Proto;

    fn table() -> ServiceTable {
        let port = |name: &str, ip: [u8; 4], port, node_port, endpoints: bool| ServicePort {
            namespace: "default".into(),
            name: name.into(),
            port_name: String::new(),
            protocol: Proto::Tcp,
            cluster_ip: Some(ip.into()),
            port,
            node_port,
            affinity_timeout: None,
            external_traffic_policy: TrafficPolicy::Cluster,
            internal_traffic_policy: TrafficPolicy::Cluster,
            endpoints: if endpoints {
                vec![Endpoint {
                    ip: [10, 244, 1, 10].into(),
                    port: 8080,
                    node_name: Some("node1".into()),
                    ready: true,
                    serving: true,
                    terminating: false,
                }]
            } else {
                Vec::new()
            },
        };
        ServiceTable {
            node_name: "node1".into(),
            node_ips: vec![[172, 18, 0, 2].into()],
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/12".parse().unwrap(),
            services: vec![
                port("web", [10, 96, 1, 20], 80, Some(30080), true),
                port("empty", [10, 96, 1, 21], 81, Some(30081), false),
            ],
        }
    }

    /// kube-proxy's own rules (the builtin renders them exactly) are ready; an empty dump or
    /// one that lacks a Service is not, and says what it lacks.
    #[test]
    fn the_builtin_rules_are_ready_and_a_partial_dump_is_not() {
        let t = table();
        // The renderers' text is what the kernel gives back in these respects.
        let ipt = iptables::render(&t);
        assert_eq!(missing(ProxyMode::Iptables, &t, &ipt), Vec::<String>::new());
        assert_eq!(missing(ProxyMode::Iptables, &t, "").len(), 4);
        let partial: String = ipt
            .lines()
            .filter(|l| !l.contains("10.96.1.21"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            missing(ProxyMode::Iptables, &t, &partial),
            ["10.96.1.21:81/tcp (default/empty)"]
        );
        let nft = nftables::render(&t);
        assert_eq!(missing(ProxyMode::Nftables, &t, &nft), Vec::<String>::new());
        assert_eq!(
            missing(ProxyMode::Nftables, &t, "table ip kube-proxy {\n}\n"),
            [
                "10.96.1.20:80/tcp (default/web)",
                "NodePort 30080/tcp (default/web)",
                "10.96.1.21:81/tcp (default/empty)",
                "NodePort 30081/tcp (default/empty)"
            ]
        );
    }
}
