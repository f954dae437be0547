//! Lifecycle trials of the real CNI plugin chains (`harness/stacks/cni-*.yaml`), as a CNI
//! maintainer wants them from a conformance suite: CHECK after ADD passes; DEL twice succeeds;
//! DEL after the pod's netns is gone succeeds; after DEL nothing of the pod is left on the node;
//! GC removes what the runtime no longer lists; STATUS says the network is ready.
//!
//! Each trial builds `cases/same-node.yaml` in podpath's sandbox with the stack's CNI attach
//! (one of its pods publishing a hostPort, so portmap makes its chains), then attaches one more
//! pod, `extra` (hostPort 18080), through the runtime API (`netns_runtime::stack::cni`) and
//! takes the node's state before and after, as netavark's tests look for leaks: links,
//! addresses, routes of every table, rules, `iptables-save`, `nft list ruleset` and every file
//! of the node's CNI state directory (host-local's reservations, the result cache, flannel's
//! data), less host-local's `last_reserved_ip` and lock, which are kept by design.
//!
//! STATUS and GC are CNI 1.1.0's: on lists of earlier versions (Debian's plugins 1.1.1 support
//! the spec up to 1.0.0) they are reported ignored with the reason, as is CHECK on a 0.3.1
//! list (kube-flannel's). A stack whose plugins are not installed is ignored (a failure with
//! `CI=true`), as is everything when no sandbox can be made.
//!
//! ```sh
//! cargo test -p podpath --test cni_lifecycle
//! cargo test -p podpath --test cni_lifecycle -- upstream-bridge::gc
//! ```

use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netns_runtime::netns::{self, Netns, command_in};
use netns_runtime::stack::cni::{CniAttach, CniAttachment, CniNode};
use netns_runtime::stack::{DnsDriver, Drivers, FlannelNetwork};
use netns_runtime::topology::{HostPort, Pod, Proto, Topology};
use netns_runtime::{Cluster, sandbox};
use podpath::stack::{AttachLayer, Stack};

type Outcome = Result<Completion, Failed>;

const STACKS: [&str; 4] = [
    "cni-debian-bridge",
    "cni-debian-ptp",
    "cni-upstream-bridge",
    "cni-flannel",
];

/// The node every pod of `cases/same-node.yaml` is on.
const NODE: &str = "node1";

fn workspace() -> PathBuf {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
    harness.parent().unwrap_or(harness).to_path_buf()
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok { Ok(()) } else { Err(what().into()) }
}

/// The stack's CNI attach, or why its trials cannot run here.
fn cni_of(stack: &str) -> Result<CniAttach, String> {
    let path = workspace()
        .join("harness/stacks")
        .join(format!("{stack}.yaml"));
    let s = Stack::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    match s.attach {
        AttachLayer::Cni {
            conflist,
            bin_dirs,
            timeout,
            interfaces,
        } => {
            let missing: Vec<String> = bin_dirs
                .iter()
                .filter(|d| !d.is_dir())
                .map(|d| d.display().to_string())
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "plugin directory {} missing (scripts/setup builds the upstream ones; Debian's come from golang-github-containernetworking-plugins)",
                    missing.join(", ")
                ));
            }
            Ok(CniAttach::new(conflist, bin_dirs, timeout, interfaces))
        }
        _ => Err(format!("{} has no cni pod attach", path.display())),
    }
}

/// What a trial of one stack does, given its built cluster.
struct Lab {
    cni: CniAttach,
    cluster: Cluster,
    topology: Topology,
    prefix: String,
}

static SERIAL: AtomicUsize = AtomicUsize::new(0);

impl Lab {
    /// `cases/same-node.yaml` built with the stack's CNI attach (its server publishing
    /// hostPort 19090), every other layer builtin.
    fn build(cni: &CniAttach) -> Result<Lab, Failed> {
        let plan = podpath::plan::load(&workspace().join("cases/same-node.yaml"))
            .map_err(|e| e.to_string())?;
        let mut topology = plan.topology.clone();
        if let Some(server) = topology.pods.iter_mut().find(|p| p.name == "server") {
            server.host_ports = vec![HostPort {
                host_port: 19090,
                container_port: 8080,
                proto: Proto::Tcp,
            }];
        }
        let prefix = format!("lc{}.", SERIAL.fetch_add(1, Ordering::SeqCst));
        // CHECK is a trial of its own (check-after-add): the build runs none, so one plugin's
        // faulty CHECK does not hide what the other trials would find.
        let mut building = cni.clone();
        building.conflist.disable_check = true;
        let drivers = Drivers {
            attach: Box::new(building),
            network: Box::new(FlannelNetwork),
            dns: DnsDriver::Builtin,
        };
        let cluster = Cluster::build_with(&topology, &prefix, &drivers)
            .map_err(|e| format!("building same-node: {e}"))?;
        Ok(Lab {
            cni: cni.clone(),
            cluster,
            topology,
            prefix,
        })
    }

    fn node_netns(&self) -> &Netns {
        self.cluster.node_netns(NODE).expect("node1 exists")
    }

    fn node(&self) -> Result<CniNode, Failed> {
        let node = self.topology.node(NODE).expect("node1 exists");
        Ok(self
            .cni
            .node(&self.topology, node, self.node_netns().path(), &self.prefix)?)
    }

    /// The attachments of the case's own pods.
    fn case_attachments(&self) -> Vec<CniAttachment> {
        self.cni
            .attachments()
            .into_iter()
            .filter(|a| self.topology.pod(a.pod()).is_some())
            .collect()
    }

    /// A pod `extra` on node1 publishing hostPort 18080, with a netns of its own, not yet
    /// attached.
    fn extra(&self) -> Result<(Netns, CniAttachment), Failed> {
        let mut pod: Pod = self.topology.pods[0].clone();
        pod.name = "extra".into();
        pod.requested_ip = None;
        pod.listeners.clear();
        pod.host_ports = vec![HostPort {
            host_port: 18080,
            container_port: 8080,
            proto: Proto::Tcp,
        }];
        let here = netns::current().map_err(|e| e.to_string())?;
        let name = format!("{}extra", self.prefix);
        let ns = netns::run_in(here.as_fd(), || Netns::create_and_enter(&name))
            .and_then(|r| r)
            .map_err(|e| format!("creating netns {name}: {e}"))?;
        let node = self.topology.node(NODE).expect("node1 exists");
        let a = self.cni.attachment(
            &self.topology,
            node,
            &pod,
            ns.path(),
            self.node_netns().path(),
            &self.prefix,
        )?;
        Ok((ns, a))
    }

    /// The node's state a pod's attachment may leave behind, one line per object.
    fn state(&self) -> String {
        let ns = self.node_netns();
        let mut out = String::new();
        for (what, argv) in [
            ("links", &["ip", "-o", "link", "show"][..]),
            ("addresses", &["ip", "-o", "addr", "show"]),
            ("routes", &["ip", "route", "show", "table", "all"]),
            ("rules", &["ip", "rule", "show"]),
            ("iptables", &["iptables-save"]),
            ("nft", &["nft", "list", "ruleset"]),
        ] {
            let o = command_in(ns, argv[0]).args(&argv[1..]).output();
            let text = match o {
                Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
                Err(e) => format!("{}: {e}\n", argv[0]),
            };
            out.push_str(&format!("# {what}\n"));
            for line in text.lines() {
                if let Some(l) = normalise(what, line) {
                    out.push_str(&l);
                    out.push('\n');
                }
            }
        }
        out.push_str("# files\n");
        let node = self.topology.node(NODE).expect("node1 exists");
        let dir = self
            .cni
            .node(&self.topology, node, ns.path(), &self.prefix)
            .map(|n| n.dir().to_path_buf())
            .unwrap_or_default();
        files(&dir, &dir, &mut out);
        out
    }
}

/// A line of a dump with what changes without being state (ifindexes, counters, link state,
/// lifetimes) taken out; `None` for comments.
fn normalise(what: &str, line: &str) -> Option<String> {
    let line = line.trim_end();
    match what {
        "links" => {
            // `7: vethab12@if2: <...> mtu 1500 master cni0 state UP ...`: name and master.
            let mut f = line.split_whitespace();
            let name = f.nth(1)?.trim_end_matches(':');
            let name = name.split('@').next().unwrap_or(name);
            let master = line
                .split_whitespace()
                .skip_while(|w| *w != "master")
                .nth(1)
                .map(|m| format!(" master {m}"))
                .unwrap_or_default();
            Some(format!("{name}{master}"))
        }
        "addresses" => {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() > 3).then(|| format!("{} {} {}", f[1], f[2], f[3]))
        }
        "iptables" if line.starts_with('#') => None,
        // `:CHAIN ACCEPT [12:345]`: the counters go.
        "iptables" if line.starts_with(':') => {
            Some(line.rsplit_once(" [").map_or(line, |(l, _)| l).to_string())
        }
        // An empty table is no pod's state (iptables-nft makes `ip6 nat` when portmap looks
        // at it); what is in a table shows by its chains and rules.
        "nft" if line.starts_with("table ") || line == "}" => None,
        "nft" => Some(strip_counter(line)),
        _ => Some(line.to_string()),
    }
}

/// `counter packets 3 bytes 180` -> `counter`.
fn strip_counter(line: &str) -> String {
    let w: Vec<&str> = line.split(' ').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < w.len() {
        if (w[i] == "packets" || w[i] == "bytes") && i + 1 < w.len() {
            i += 2;
            continue;
        }
        out.push(w[i]);
        i += 1;
    }
    out.join(" ")
}

/// Every file below `dir` with its content, but what host-local keeps by design.
fn files(root: &Path, dir: &Path, out: &mut String) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            files(root, &p, out);
        } else if !name.starts_with("last_reserved_ip") && name != "lock" {
            let content = std::fs::read_to_string(&p).unwrap_or_default();
            let shown: String = content
                .chars()
                .take(120)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            out.push_str(&format!(
                "{} {shown}\n",
                p.strip_prefix(root).unwrap_or(&p).display()
            ));
        }
    }
}

/// What `after` has that `before` has not, and the reverse.
fn diff(before: &str, after: &str) -> String {
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let mut out = String::new();
    for l in &a {
        if !b.contains(l) {
            out.push_str(&format!("+ {l}\n"));
        }
    }
    for l in &b {
        if !a.contains(l) {
            out.push_str(&format!("- {l}\n"));
        }
    }
    out
}

/// Waits (up to 5 s) for the node's state to be `want` again: a netns's links go when the
/// kernel's cleanup worker gets to it, after the last reference.
fn settles_to(lab: &Lab, want: &str) -> String {
    let start = Instant::now();
    loop {
        let now = lab.state();
        let d = diff(want, &now);
        if d.is_empty() || start.elapsed() > Duration::from_secs(5) {
            return d;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn errors(e: Vec<netns_runtime::stack::DriverError>) -> String {
    e.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// ADD of `extra`; its state must show on the node (its host-side interface or address, its
/// IPAM reservation), so a leak check after it can fail.
fn add_extra(lab: &Lab, before: &str) -> Result<(Netns, CniAttachment, String), Failed> {
    let (ns, a) = lab.extra()?;
    let result = lab.cni.add(&a)?;
    let ip = result
        .get("ips")
        .and_then(|i| i.get(0))
        .and_then(|i| i.get("address"))
        .and_then(|a| a.as_str())
        .and_then(|a| a.split('/').next())
        .unwrap_or("?")
        .to_string();
    let added = diff(before, &lab.state());
    check(added.contains(&format!("/{ip} ")), || {
        format!("after ADD of extra ({ip}) no IPAM reservation shows on the node:\n{added}")
    })?;
    check(
        added.contains("+ veth") || added.contains(&format!("+ {ip}")),
        || format!("after ADD of extra no host-side interface shows on the node:\n{added}"),
    )?;
    Ok((ns, a, ip))
}

fn check_after_add(lab: &Lab) -> Outcome {
    if !lab.cni.runs_check() {
        return Ok(Completion::ignored_with(format!(
            "list {} is CNI {}: CHECK is CNI 0.4.0's",
            list_name(lab),
            lab.cni.conflist.cni_version
        )));
    }
    let before = lab.state();
    let (_ns, a, _) = add_extra(lab, &before)?;
    for p in lab.case_attachments().iter().chain([&a]) {
        lab.cni.check(p, None)?;
    }
    Ok(Completion::Completed)
}

fn del_twice(lab: &Lab) -> Outcome {
    let before = lab.state();
    let (_ns, a, _) = add_extra(lab, &before)?;
    lab.cni.del(&a).map_err(errors)?;
    lab.cni
        .del(&a)
        .map_err(|e| format!("the second DEL failed: {}", errors(e)))?;
    let left = settles_to(lab, &before);
    check(left.is_empty(), || {
        format!("after DEL twice the node differs:\n{left}")
    })?;
    Ok(Completion::Completed)
}

fn del_without_netns(lab: &Lab) -> Outcome {
    let before = lab.state();
    let (ns, a, _) = add_extra(lab, &before)?;
    let path = ns.path().to_path_buf();
    ns.remove().map_err(|e| e.to_string())?;
    check(!path.exists(), || {
        format!("{} is still there", path.display())
    })?;
    lab.cni
        .del(&a)
        .map_err(|e| format!("DEL without the pod's netns failed: {}", errors(e)))?;
    let left = settles_to(lab, &before);
    check(left.is_empty(), || {
        format!("after the netns went and DEL the node differs:\n{left}")
    })?;
    Ok(Completion::Completed)
}

fn no_leak_after_del(lab: &Lab) -> Outcome {
    let before = lab.state();
    let (_ns, a, _) = add_extra(lab, &before)?;
    lab.cni.del(&a).map_err(errors)?;
    // The pod's netns is still there: its eth0 must be gone with the host side.
    let left = settles_to(lab, &before);
    check(left.is_empty(), || {
        format!("DEL left this on node1 (+ made by ADD and still there, - gone):\n{left}")
    })?;
    check(!a.cache_file().exists(), || {
        format!(
            "the cached result {} is still there",
            a.cache_file().display()
        )
    })?;
    Ok(Completion::Completed)
}

fn needs_1_1_0(lab: &Lab, what: &str) -> Option<Completion> {
    (!lab.cni.has_status_and_gc()).then(|| {
        let why = if lab
            .cni
            .bin_dirs
            .iter()
            .all(|d| d.starts_with("/usr/lib/cni"))
        {
            " (Debian's plugins 1.1.1 support the spec up to 1.0.0)"
        } else {
            ""
        };
        Completion::ignored_with(format!(
            "list {} is CNI {}: {what} is CNI 1.1.0's{why}",
            list_name(lab),
            lab.cni.conflist.cni_version
        ))
    })
}

fn list_name(lab: &Lab) -> String {
    let f = &lab.cni.conflist.file;
    f.file_name().map_or_else(
        || f.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn status(lab: &Lab) -> Outcome {
    if let Some(c) = needs_1_1_0(lab, "STATUS") {
        return Ok(c);
    }
    lab.cni.status(&lab.node()?)?;
    Ok(Completion::Completed)
}

/// A runtime that lost track of `extra` (its cache entry gone, as after a crash) runs GC with
/// the pods it knows: the plugins release what they held for `extra` (host-local's address).
fn gc_removes_stale(lab: &Lab) -> Outcome {
    if let Some(c) = needs_1_1_0(lab, "GC") {
        return Ok(c);
    }
    let before = lab.state();
    let (_ns, a, ip) = add_extra(lab, &before)?;
    std::fs::remove_file(a.cache_file()).map_err(|e| e.to_string())?;
    let valid = lab.case_attachments();
    lab.cni.gc(&lab.node()?, &valid).map_err(errors)?;
    let now = lab.state();
    let reserved = |s: &str| {
        s.lines()
            .any(|l| l.starts_with("host-local/") && l.contains(&format!("/{ip} ")))
    };
    check(!reserved(&now), || {
        format!("GC left extra's reservation of {ip}:\n{now}")
    })?;
    for p in &valid {
        let r = lab
            .cni
            .cached_result(p)
            .ok_or("a valid pod lost its cache")?;
        let pip = r["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .unwrap_or("?")
            .to_string();
        check(
            now.lines()
                .any(|l| l.starts_with("host-local/") && l.contains(&format!("/{pip} "))),
            || {
                format!(
                    "GC released {pip}, which valid pod {} holds:\n{now}",
                    p.pod()
                )
            },
        )?;
    }
    Ok(Completion::Completed)
}

/// GC's runtime half, on every version (libcni does it before the GC command): a cached
/// attachment the runtime does not list as valid is DELeted from its cache entry.
fn gc_dels_unlisted(lab: &Lab) -> Outcome {
    let before = lab.state();
    let (_ns, _a, _) = add_extra(lab, &before)?;
    lab.cni
        .gc(&lab.node()?, &lab.case_attachments())
        .map_err(errors)?;
    let left = settles_to(lab, &before);
    check(left.is_empty(), || {
        format!("GC did not DEL the attachment it was not given:\n{left}")
    })?;
    Ok(Completion::Completed)
}

type Body = fn(&Lab) -> Outcome;

const TRIALS: [(&str, Body); 7] = [
    ("check-after-add", check_after_add),
    ("del-twice", del_twice),
    ("del-without-netns", del_without_netns),
    ("no-leak-after-del", no_leak_after_del),
    ("gc-dels-unlisted-cached-attachments", gc_dels_unlisted),
    ("gc-removes-stale", gc_removes_stale),
    ("status", status),
];

fn run(stack: &str, name: &str, body: Body, unavailable: Option<String>) -> Outcome {
    if let Some(why) = unavailable {
        return strict_or_ignored(why);
    }
    let cni = match cni_of(stack) {
        Ok(c) => c,
        Err(why) => return strict_or_ignored(why),
    };
    let lab = Lab::build(&cni)?;
    let outcome = body(&lab);
    let down = lab.cluster.teardown();
    let outcome = match outcome {
        Err(e) => match known_bug(stack, name, &e) {
            Some(reason) => Completion::ignored_with(reason),
            None => return Err(e),
        },
        Ok(o) => o,
    };
    down.map_err(|e| format!("teardown: {e:?}"))?;
    Ok(outcome)
}

/// Bugs of the pinned plugin versions these trials found, each by the trial, the stack and
/// what its failure says: such a failure is reported ignored with the bug, never passed; any
/// other failure of the trial fails it. (docs/implementations.md, "Lifecycle trials".)
const KNOWN_BUGS: &[(&str, &str, &str, &str)] = &[
    (
        "cni-debian-bridge",
        "check-after-add",
        "could not check ipv6 dnat",
        "known bug of Debian's portmap 1.1.1: CHECK of an IPv4-only pod with hostPorts looks for the ip6tables chain its ADD never made (containernetworking/plugins#819, fixed in v1.2.0)",
    ),
    (
        "cni-flannel",
        "del-without-netns",
        "-j MASQUERADE",
        "known bug of Debian's bridge 1.1.1 (flannel's delegate, ipMasq on): DEL learns the pod's addresses, and so which ipMasq chain to remove, from inside the pod's netns; when the netns is gone first it returns success and its CNI-... chain stays in nat POSTROUTING",
    ),
    (
        "cni-upstream-bridge",
        "gc-removes-stale",
        "GC left extra's reservation",
        "known gap of the upstream bridge v1.10.0: it implements no GC (its main leaves `/* FIXME GC */`), so its host-local IPAM never sees the GC and the stale reservation stays",
    ),
];

fn known_bug(stack: &str, trial: &str, failure: &Failed) -> Option<String> {
    let text = failure.message().unwrap_or_default();
    KNOWN_BUGS
        .iter()
        .find(|(s, t, sign, _)| *s == stack && *t == trial && text.contains(sign))
        .map(|(_, _, _, reason)| format!("{reason}; observed: {}", first_line(text)))
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with("+ -A") || l.contains("CNI error"))
        .or_else(|| text.lines().next())
        .unwrap_or("")
        .chars()
        .take(240)
        .collect()
}

fn strict_or_ignored(why: String) -> Outcome {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Err(format!("CI=true: {why}").into());
    }
    Ok(Completion::ignored_with(why))
}

fn main() -> ExitCode {
    // Before any thread exists: into podpath's private sandbox (the host is never touched).
    let sandboxed = sandbox::enter();
    let args = Arguments::from_args();
    let unavailable = sandboxed
        .as_ref()
        .err()
        .map(|e| format!("no sandbox can be made here: {e}"));
    let mut trials = Vec::new();
    for stack in STACKS {
        let short = stack.trim_start_matches("cni-");
        for (name, body) in TRIALS {
            let why = unavailable.clone();
            trials.push(Trial::ignorable_test(
                format!("{short}::{name}"),
                move || run(stack, name, body, why),
            ));
        }
    }
    libtest_mimic::run(&args, trials).exit_code()
}
