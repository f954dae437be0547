//! The `exec` cluster DNS driver: a DNS server of the user's (the real CoreDNS) run in the
//! DNS pod's namespace for as long as the cluster lives.
//!
//! podpath writes, in `/run/podpath/dns/<pod netns>/` on the sandbox's private `/run`: the
//! builtin record table as zone files (`cluster.zone`, `reverse.zone`, `reverse6.zone`,
//! [`crate::dns::zonefile`])
//! and, from the stack's template, a `Corefile`. The command is **ready** when it answers an A
//! question for a name the table has (the first Service with a ClusterIP, asked of the pod's
//! own address on port 53) with NOERROR and an address; bounded by the stack's `timeout`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::netns::{self, Netns};
use crate::resolver::{self, ResolvConf};
use crate::stack::daemon::{Daemon, STOP_GRACE};
use crate::stack::exec::expand;
use crate::stack::{DriverError, ExecSpec};
use crate::topology::Topology;

/// The stack's DNS command and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecDns {
    /// The command; `timeout` is how long it may take to answer.
    pub spec: ExecSpec,
    /// The Corefile's template (placeholders expanded), written as `{corefile}`.
    pub corefile: Option<String>,
    /// The kubeconfig the served API gives the DNS server, when there is one.
    pub kubeconfig: Option<PathBuf>,
}

impl ExecDns {
    /// Whether its command or Corefile names `{kubeconfig}`: it reads the served API.
    pub fn wants_kubeconfig(&self) -> bool {
        let p = "{kubeconfig}";
        self.spec.argv.iter().any(|a| a.contains(p))
            || self.corefile.as_ref().is_some_and(|c| c.contains(p))
    }
}

/// The DNS command running in its pod.
pub struct RunningDns {
    pub pod: String,
    daemon: Daemon,
    ready_after: Option<Duration>,
    ended: Option<String>,
}

const LAYER: &str = "cluster DNS";

impl RunningDns {
    /// Writes the files, starts the command in `ns` (the DNS pod's) and waits until it answers.
    pub fn start(
        exec: &ExecDns,
        ns: &Netns,
        topology: &Topology,
        prefix: &str,
    ) -> Result<RunningDns, DriverError> {
        let program = exec.spec.argv.first().cloned().unwrap_or_default();
        let Some(dns) = &topology.dns else {
            return Err(DriverError::Exec {
                layer: LAYER,
                program,
                subject: "the cluster".into(),
                problem: "the case declares no cluster DNS".into(),
            });
        };
        let subject = format!("pod {}", dns.pod);
        let fail = |problem: String| DriverError::Exec {
            layer: LAYER,
            program: program.clone(),
            subject: subject.clone(),
            problem,
        };
        let pod_ip = topology
            .pod(&dns.pod)
            .map(|p| p.eth0.addr.addr())
            .ok_or_else(|| fail("the DNS pod is not in the topology".into()))?;
        let dir = PathBuf::from("/run/podpath/dns").join(format!("{prefix}{}", dns.pod));
        std::fs::create_dir_all(&dir)
            .map_err(|e| fail(format!("cannot make {}: {e}", dir.display())))?;
        let write = |name: &str, text: &str| {
            let file = dir.join(name);
            std::fs::write(&file, text)
                .map(|()| file.display().to_string())
                .map_err(|e| fail(format!("cannot write {}: {e}", file.display())))
        };
        let zone = dns.records.zone.trim_end_matches('.').to_ascii_lowercase();
        let mut values: BTreeMap<&str, String> = BTreeMap::from([
            ("pod", dns.pod.clone()),
            ("podIP", pod_ip.to_string()),
            ("zone", zone.clone()),
            ("stateDir", dir.display().to_string()),
            (
                "zonefile",
                write(
                    "cluster.zone",
                    &crate::dns::zonefile::cluster_zone(&dns.records),
                )?,
            ),
            (
                "reversezonefile",
                write(
                    "reverse.zone",
                    &crate::dns::zonefile::reverse_zone(&dns.records),
                )?,
            ),
            (
                "reverse6zonefile",
                write(
                    "reverse6.zone",
                    &crate::dns::zonefile::reverse6_zone(&dns.records),
                )?,
            ),
        ]);
        let wants = |key: &str| {
            let p = format!("{{{key}}}");
            exec.spec.argv.iter().any(|a| a.contains(&p))
                || exec.corefile.as_ref().is_some_and(|c| c.contains(&p))
        };
        match &exec.kubeconfig {
            Some(k) => {
                values.insert("kubeconfig", k.display().to_string());
            }
            None if wants("kubeconfig") => {
                return Err(fail(
                    "it names `{kubeconfig}`, and this cluster serves no Kubernetes API to give a kubeconfig for".into(),
                ));
            }
            None => {}
        }
        if let Some(template) = &exec.corefile {
            let text = expand(std::slice::from_ref(template), &values).remove(0);
            let file = write("Corefile", &text)?;
            values.insert("corefile", file);
        }
        let env: BTreeMap<String, String> = [
            ("PODPATH_POD", "pod"),
            ("PODPATH_POD_IP", "podIP"),
            ("PODPATH_ZONE", "zone"),
            ("PODPATH_ZONEFILE", "zonefile"),
            ("PODPATH_REVERSE_ZONEFILE", "reversezonefile"),
            ("PODPATH_REVERSE6_ZONEFILE", "reverse6zonefile"),
            ("PODPATH_COREFILE", "corefile"),
            ("PODPATH_KUBECONFIG", "kubeconfig"),
        ]
        .into_iter()
        .filter_map(|(var, key)| Some((var.to_string(), values.get(key)?.clone())))
        .collect();
        let daemon = Daemon::start(&exec.spec, ns, &env, &values).map_err(&fail)?;
        let mut running = RunningDns {
            pod: dns.pod.clone(),
            daemon,
            ready_after: None,
            ended: None,
        };
        // A name the table answers with an address.
        let known = dns
            .records
            .services
            .iter()
            .find(|s| s.cluster_ip.is_some())
            .map(|s| format!("{}.{}.svc.{zone}.", s.name, s.namespace));
        let conf = ResolvConf {
            nameservers: vec![pod_ip],
            search: Vec::new(),
            ndots: 1,
        };
        let started = Instant::now();
        let limit = exec.spec.timeout;
        loop {
            if let Some(how) = running.daemon.exited() {
                return Err(fail(format!(
                    "it ended ({how}) before it answered{}",
                    running.daemon.quoted_output()
                )));
            }
            let name = known.clone().unwrap_or_else(|| format!("{zone}."));
            let answered = netns::run_in(std::os::fd::AsFd::as_fd(ns), || {
                resolver::resolve(&conf, &name, Duration::from_millis(300))
            })
            .map_err(|e| fail(format!("entering the DNS pod: {e}")))?;
            let ready = match &known {
                Some(_) => !answered.addresses().is_empty(),
                None => answered.exchanges.iter().any(|e| e.rcode != "TIMEOUT"),
            };
            if ready {
                running.ready_after = Some(started.elapsed());
                return Ok(running);
            }
            if started.elapsed() >= limit {
                let last = answered
                    .exchanges
                    .last()
                    .map_or_else(|| "nothing".to_string(), |e| e.rcode.clone());
                let problem = format!(
                    "not ready after {limit:?}: {name} A? asked of {pod_ip}:53 got {last}{}",
                    running.daemon.quoted_output()
                );
                running.stop();
                return Err(fail(problem));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How long it took from its start to its first answer.
    pub fn ready_after(&self) -> Option<Duration> {
        self.ready_after
    }

    /// Stops it (SIGTERM, SIGKILL after a grace period). Idempotent.
    pub fn stop(&mut self) {
        if self.ended.is_none() {
            self.ended = Some(self.daemon.stop(STOP_GRACE));
        }
    }

    /// What it wrote, with when it was ready and how it ended.
    pub fn log(&self) -> String {
        let mut text = format!("# {} in pod {}\n", self.daemon.program, self.pod);
        if let Some(d) = self.ready_after {
            text.push_str(&format!("# ready after {d:?}\n"));
        }
        if let Some(ended) = &self.ended {
            text.push_str(&format!("# stopped: {ended}\n"));
        }
        text.push_str(&self.daemon.output());
        text
    }
}

impl Drop for RunningDns {
    fn drop(&mut self) {
        self.stop();
    }
}
