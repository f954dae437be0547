//! Build and teardown wall time of `Cluster::build`, side by side with the kernel floor: the same
//! kernel objects made by `ip -batch` (see `netns_runtime::ipbatch`) in the same run.
//!
//! ```sh
//! cargo bench -p podpath --bench build              # every scenario
//! cargo bench -p podpath --bench build -- 1000      # scenarios whose name contains "1000"
//! PODPATH_BENCH_REPS=3 cargo bench -p podpath --bench build
//! PODPATH_BENCH_DUMPS=/tmp/dumps cargo bench ...  # keep the normalised dumps both ways made
//! PODPATH_BENCH_ONLY=podpath cargo bench ...        # one way only, unverified (for profiling)
//! ```
//!
//! Run as a test (`cargo test --benches`, without `--bench`), it builds one small cluster both
//! ways once and checks that they made the same objects.
//!
//! A benchmark, not a test: it prints a Markdown table and fails only when a build fails or when
//! the two ways did not make the same kernel objects. Without the privileges a sandbox needs, it
//! says why and reports itself skipped (exit 0). The figures and how to read them are in
//! `docs/performance.md`.

mod support;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{arm_watchdog, command_line, load_average, nproc, start_watchdog};

use netns_runtime::Cluster;
use netns_runtime::ipbatch::{self, IpBatch};
use netns_runtime::netlink::Netlink;
use netns_runtime::netns;
use netns_runtime::sandbox::NETNS_RUN_DIR;
use netns_runtime::stack::calico::{self, CalicoAttach, CalicoMode, CalicoNetwork};
use netns_runtime::stack::{DnsDriver, Drivers};
use netns_runtime::topology::Topology;

/// Longest any single step (a build, a teardown, waiting for the kernel) may take before the
/// benchmark gives up; leaving the sandbox's PID 1 takes every process and namespace with it.
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// How long the verification round waits after a build before dumping, so that the kernel's
/// deferred link-state work (linkwatch, at most one second behind) has run for both builds.
const SETTLE_BEFORE_DUMP: Duration = Duration::from_millis(1500);

struct Scenario {
    name: String,
    nodes: usize,
    pods_per_node: usize,
    reps: usize,
    /// Built with the Calico drivers in this mode (and against the Calico floor), not flannel's.
    calico: Option<CalicoMode>,
}

fn main() {
    let Some((sandbox, args)) = support::bench_start("build") else {
        return;
    };
    for tool in ["ip", "bridge"] {
        if let Err(e) = Command::new(tool).arg("-V").stdout(Stdio::null()).status() {
            println!("build benchmark skipped: cannot run `{tool}` (iproute2): {e}");
            return;
        }
    }
    let filters = args.filters;
    let only = match std::env::var("PODPATH_BENCH_ONLY").as_deref() {
        Ok("podpath") => Some(Way::Podpath),
        Ok("floor") => Some(Way::Floor),
        Ok(other) => {
            eprintln!("PODPATH_BENCH_ONLY={other}: expected podpath or floor");
            std::process::exit(2);
        }
        Err(_) => None,
    };
    let reps_override = args.reps;
    // Without `--bench` (`cargo test --benches`, `--all-targets`): one small cluster, once,
    // still verified.
    let benching = args.benching;
    let sizes: &[(usize, usize, usize)] = if benching {
        &[(1, 10, 15), (1, 100, 11), (1, 1000, 5), (10, 10, 11)]
    } else {
        &[(2, 2, 1)]
    };
    let scenarios: Vec<Scenario> = sizes
        .iter()
        .copied()
        .map(|(nodes, pods_per_node, reps)| Scenario {
            name: format!(
                "{nodes} node{} × {pods_per_node} pods",
                if nodes == 1 { "" } else { "s" }
            ),
            nodes,
            pods_per_node,
            reps: reps_override.unwrap_or(reps),
            calico: None,
        })
        // The Calico-style dataplane (`docs/calico.md`), against a floor making its objects.
        .chain(
            calico_sizes(benching)
                .iter()
                .map(|&(mode, nodes, pods_per_node, reps)| Scenario {
                    name: format!(
                        "calico-{} {nodes} node{} × {pods_per_node} pods",
                        mode.name(),
                        if nodes == 1 { "" } else { "s" }
                    ),
                    nodes,
                    pods_per_node,
                    reps: reps_override.unwrap_or(reps),
                    calico: Some(mode),
                }),
        )
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .collect();

    start_watchdog("build", STEP_TIMEOUT);
    println!("# podpath build benchmark\n");
    if benching {
        println!("- command: `cargo bench -p podpath --bench build`");
    } else {
        println!("- command: `cargo test -p podpath --bench build` (smoke run: one small cluster)");
    }
    println!("- sandbox: {:?}", sandbox.mode);
    println!("- nproc: {}", nproc());
    println!("- kernel: {}", command_line("uname", &["-r"]));
    println!("- iproute2: {}", command_line("ip", &["-V"]));
    println!("- load average before the run: {}", load_average());
    println!("- overlay: vxlan (flannel.1, one neighbour, FDB entry and route per peer node)");
    println!();

    let mut bench = Bench::new(only);
    bench.calico = None;
    let mut rows = Vec::new();
    let mut failed = false;
    for scenario in &scenarios {
        bench.calico = scenario.calico;
        eprintln!("{}: planning", scenario.name);
        let topo = topology(scenario);
        match bench.run(scenario, &topo) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("{}: {e}", scenario.name);
                failed = true;
            }
        }
    }
    println!(
        "| scenario | reps | podpath build | floor build | ratio | podpath teardown | floor teardown | ratio | same objects |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.reps,
            ms(r.podpath.map(|t| t.build)),
            ms(r.floor.map(|t| t.build)),
            ratio(r.podpath.map(|t| t.build), r.floor.map(|t| t.build)),
            ms(r.podpath.map(|t| t.teardown)),
            ms(r.floor.map(|t| t.teardown)),
            ratio(r.podpath.map(|t| t.teardown), r.floor.map(|t| t.teardown)),
            match r.same {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not checked",
            },
        );
    }
    println!();
    println!(
        "Medians. Teardown is until every name is removed; the kernel then destroys the \
         namespaces asynchronously. The time until it has (a probe namespace deleted after them \
         is gone, twice), median:\n"
    );
    println!("| scenario | podpath teardown + kernel cleanup | floor teardown + kernel cleanup |");
    println!("| --- | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {} |",
            r.name,
            ms(r.podpath.map(|t| t.cleaned)),
            ms(r.floor.map(|t| t.cleaned))
        );
    }
    println!();
    println!(
        "The floor's build without its process start-ups: the same `ip`/`bridge` processes run \
         with empty batch files (median), subtracted. An estimate of the kernel work alone:\n"
    );
    println!(
        "| scenario | floor build | of which process start-ups | floor without start-ups | podpath build | ratio |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let Some(floor) = r.floor else { continue };
        let kernel = floor.build.saturating_sub(floor.startups);
        let podpath = r.podpath.map(|t| t.build);
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.name,
            ms(Some(floor.build)),
            ms(Some(floor.startups)),
            ms(Some(kernel)),
            ms(podpath),
            ratio(podpath, Some(kernel)),
        );
    }
    println!();
    println!("- load average after the run: {}", load_average());
    drop(bench);
    if failed || rows.iter().any(|r| r.same == Some(false)) {
        std::process::exit(1);
    }
}

/// The case YAML of a scenario, planned by the real planner.
fn topology(s: &Scenario) -> Topology {
    let yaml = case_yaml(s);
    let path = PathBuf::from(format!("bench/{}x{}.yaml", s.nodes, s.pods_per_node));
    match podpath::plan::load_str(&path, &yaml) {
        Ok(plan) => {
            // flanneld's masquerade rules are netfilter rules, not objects `ip` makes: the
            // floor has no counterpart, so both ways build the network without them.
            let mut topology = plan.topology;
            for node in &mut topology.nodes {
                node.network.masquerade = None;
            }
            topology
        }
        Err(e) => panic!("the benchmark's own case does not plan: {e}\n{yaml}"),
    }
}

fn case_yaml(s: &Scenario) -> String {
    let mut y = String::new();
    let _ = writeln!(
        y,
        "name: bench {} nodes x {} pods",
        s.nodes, s.pods_per_node
    );
    // /22 per node: room for 1000 pods on one node.
    let _ = writeln!(y, "cluster: {{ overlay: vxlan, subnetLen: 22 }}");
    let nodes: Vec<String> = (1..=s.nodes).map(|n| format!("node{n}")).collect();
    let _ = writeln!(y, "nodes: [{}]", nodes.join(", "));
    let _ = writeln!(y, "pods:");
    for (n, node) in nodes.iter().enumerate() {
        for p in 1..=s.pods_per_node {
            let _ = writeln!(y, "  - {{ name: p{}-{p}, node: {node} }}", n + 1);
        }
    }
    y
}

#[derive(Clone, Copy, Default)]
struct Times {
    build: Duration,
    teardown: Duration,
    /// Teardown start until the kernel has destroyed the namespaces.
    cleaned: Duration,
    /// Floor only: the same `ip`/`bridge` processes with empty batch files, in the built
    /// cluster (not part of `build`): what process start-ups alone cost.
    startups: Duration,
}

struct Row {
    name: String,
    reps: usize,
    /// Medians; `None` for a way that was not measured.
    podpath: Option<Times>,
    floor: Option<Times>,
    /// Whether both ways made the same objects; `None` when not checked.
    same: Option<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Way {
    Podpath,
    Floor,
}

struct Bench {
    /// A netlink socket in the sandbox's own namespace (the main thread never changes
    /// namespace), where the canaries of [`Bench::settle`] live.
    home: Netlink,
    dir: PathBuf,
    /// Measure only this way (and verify nothing).
    only: Option<Way>,
    /// The scenario's Calico mode: podpath builds with the Calico drivers, the floor makes
    /// the Calico objects.
    calico: Option<CalicoMode>,
}

/// The Calico scenarios: (mode, nodes, pods per node, reps).
fn calico_sizes(benching: bool) -> &'static [(CalicoMode, usize, usize, usize)] {
    if benching {
        &[
            (CalicoMode::Vxlan, 1, 100, 11),
            (CalicoMode::Vxlan, 10, 10, 11),
            (CalicoMode::Routed, 10, 10, 11),
        ]
    } else {
        &[(CalicoMode::Vxlan, 2, 2, 1)]
    }
}

/// The floor's scripts, written to files once per scenario (not timed).
struct FloorFiles {
    batch: IpBatch,
    global: String,
    teardown: String,
    scripts: Vec<String>,
}

impl Bench {
    fn new(only: Option<Way>) -> Bench {
        let home = Netlink::open().expect("netlink socket in the sandbox");
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("podpath-bench-{stamp}"));
        fs::create_dir_all(&dir).expect("temporary directory for the batch files");
        Bench {
            home,
            dir,
            only,
            calico: None,
        }
    }

    fn run(&mut self, s: &Scenario, topo: &Topology) -> Result<Row, String> {
        let files = self.write_floor(topo)?;
        eprintln!(
            "{}: {} namespaces; the floor builds with {} processes; verifying",
            s.name,
            files.batch.sysctls.len(),
            1 + files.batch.scripts.len()
        );
        // Warm-up and verification: one build each way, dumped and compared.
        let same = match self.only {
            None => Some(self.verify(topo, &files)?),
            Some(_) => None,
        };
        let mut podpath = Vec::with_capacity(s.reps);
        let mut floor = Vec::with_capacity(s.reps);
        for rep in 0..s.reps {
            // Alternate which way goes first, so that drift hits both alike.
            let order = if rep % 2 == 0 {
                [Way::Podpath, Way::Floor]
            } else {
                [Way::Floor, Way::Podpath]
            };
            for way in order {
                if self.only.is_some_and(|o| o != way) {
                    continue;
                }
                let t = self.measure(way, topo, &files)?;
                eprintln!(
                    "{}: rep {}/{} {:?}: build {} teardown {} cleaned {} start-ups {}",
                    s.name,
                    rep + 1,
                    s.reps,
                    way,
                    ms_of(t.build),
                    ms_of(t.teardown),
                    ms_of(t.cleaned),
                    ms_of(t.startups)
                );
                match way {
                    Way::Podpath => podpath.push(t),
                    Way::Floor => floor.push(t),
                }
            }
        }
        Ok(Row {
            name: s.name.clone(),
            reps: s.reps,
            podpath: median(&podpath),
            floor: median(&floor),
            same,
        })
    }

    fn write_floor(&self, topo: &Topology) -> Result<FloorFiles, String> {
        let batch = match self.calico {
            Some(mode) => calico::ip_batch(topo, mode)?,
            None => ipbatch::render(topo),
        };
        let write = |name: String, text: &str| -> Result<String, String> {
            let path = self.dir.join(name);
            fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
            Ok(path.to_string_lossy().into_owned())
        };
        let global = write("global.batch".into(), &batch.global)?;
        let teardown = write("teardown.batch".into(), &batch.teardown)?;
        let scripts = batch
            .scripts
            .iter()
            .enumerate()
            .map(|(i, s)| {
                write(
                    format!("{i:05}-{}-{}.batch", s.tool.program(), s.netns),
                    &s.script,
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(FloorFiles {
            batch,
            global,
            teardown,
            scripts,
        })
    }

    /// [`floor_build`], and on failure the floor's teardown (what exists of the cluster) so
    /// that the next scenario starts from an empty sandbox.
    fn floor_build(&mut self, files: &FloorFiles) -> Result<(), String> {
        floor_build(files).inspect_err(|_| {
            let _ = run_tool("ip", &["-force", "-batch", &files.teardown]);
            let _ = support::settle(&mut self.home);
        })
    }

    fn measure(&mut self, way: Way, topo: &Topology, files: &FloorFiles) -> Result<Times, String> {
        arm_watchdog();
        let t0 = Instant::now();
        let cluster = match way {
            Way::Podpath => Some(self.build(topo)?),
            Way::Floor => {
                self.floor_build(files)?;
                None
            }
        };
        let build = t0.elapsed();
        let startups = match way {
            Way::Podpath => Duration::ZERO,
            Way::Floor => floor_startups(files)?,
        };
        arm_watchdog();
        let t1 = Instant::now();
        match cluster {
            Some(c) => c.teardown().map_err(|errors| {
                let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                format!("podpath teardown: {}", list.join("; "))
            })?,
            None => run_tool("ip", &["-batch", &files.teardown])?,
        }
        let teardown = t1.elapsed();
        support::settle(&mut self.home)?;
        let cleaned = t1.elapsed();
        Ok(Times {
            build,
            teardown,
            cleaned,
            startups,
        })
    }

    /// podpath's build of `topo`: flannel's drivers, or the Calico ones without natOutgoing
    /// (the floor makes no netfilter rules).
    fn build(&self, topo: &Topology) -> Result<Cluster, String> {
        let drivers = match self.calico {
            None => Drivers::builtin(),
            Some(mode) => Drivers {
                attach: Box::new(CalicoAttach::new(mode)),
                network: Box::new(CalicoNetwork {
                    mode,
                    nat_outgoing: false,
                }),
                dns: DnsDriver::Builtin,
            },
        };
        Cluster::build_with(topo, "", &drivers).map_err(|e| format!("podpath build: {e}"))
    }

    /// Builds once each way, dumps the same namespaces after each, and compares them.
    fn verify(&mut self, topo: &Topology, files: &FloorFiles) -> Result<bool, String> {
        let known = known_macs(topo);
        let mut sample: Vec<String> = vec![topo.underlay.netns.clone()];
        sample.push(topo.nodes[0].name.clone());
        if topo.nodes.len() > 1 {
            sample.push(topo.nodes[topo.nodes.len() - 1].name.clone());
        }
        if let Some(p) = topo.pods.first() {
            sample.push(p.name.clone());
        }
        if topo.pods.len() > 1 {
            sample.push(topo.pods[topo.pods.len() - 1].name.clone());
        }
        let mut dumps = Vec::new();
        for way in [Way::Podpath, Way::Floor] {
            arm_watchdog();
            let cluster = match way {
                Way::Podpath => Some(self.build(topo)?),
                Way::Floor => {
                    self.floor_build(files)?;
                    None
                }
            };
            std::thread::sleep(SETTLE_BEFORE_DUMP);
            let mut dump = String::new();
            for ns in &sample {
                dump.push_str(&dump_netns(ns, &known)?);
            }
            dumps.push(dump);
            match cluster {
                Some(c) => c
                    .teardown()
                    .map_err(|e| format!("podpath teardown: {e:?}"))?,
                None => run_tool("ip", &["-batch", &files.teardown])?,
            }
            support::settle(&mut self.home)?;
        }
        let same = dumps[0] == dumps[1];
        if let Some(dir) = std::env::var_os("PODPATH_BENCH_DUMPS") {
            let dir = PathBuf::from(dir);
            let stem = format!("{}x{}", topo.nodes.len(), topo.pods.len());
            let _ = fs::create_dir_all(&dir);
            let _ = fs::write(dir.join(format!("{stem}-podpath.dump")), &dumps[0]);
            let _ = fs::write(dir.join(format!("{stem}-floor.dump")), &dumps[1]);
        }
        if !same {
            let a = self.dir.join("podpath.dump");
            let b = self.dir.join("floor.dump");
            let _ = fs::write(&a, &dumps[0]);
            let _ = fs::write(&b, &dumps[1]);
            eprintln!(
                "the two builds differ: diff -u {} {}",
                a.display(),
                b.display()
            );
            let _ = Command::new("diff")
                .args(["-u", &a.to_string_lossy(), &b.to_string_lossy()])
                .status();
        }
        Ok(same)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The floor: one `ip -batch` creating every namespace, the sysctls written from inside each
/// (one thread visiting them all), then `ip -n NS -batch` / `bridge -n NS -batch` per script.
fn floor_build(files: &FloorFiles) -> Result<(), String> {
    run_tool("ip", &["-batch", &files.global])?;
    let sysctls = &files.batch.sysctls;
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<(), String> {
                for ns in sysctls {
                    let path = Path::new(NETNS_RUN_DIR).join(&ns.netns);
                    let fd = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    netns::enter(fd.as_fd()).map_err(|e| format!("{}: {e}", ns.netns))?;
                    for s in &ns.sysctls {
                        match netns::write_sysctl(&s.key, &s.value) {
                            Err(e) if s.optional && e.kind() == std::io::ErrorKind::NotFound => {}
                            r => r.map_err(|e| format!("{}: {e}", ns.netns))?,
                        }
                    }
                }
                Ok(())
            })
            .join()
            .map_err(|_| "the sysctl thread panicked".to_string())?
    })?;
    for (script, file) in files.batch.scripts.iter().zip(&files.scripts) {
        let args = script.args(file);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_tool(script.tool.program(), &args)?;
    }
    Ok(())
}

/// Runs every process of the floor's build once more, each with an empty batch file: the cost
/// of starting `ip` and `bridge`, entering the namespace (`-n`: a new mount namespace and a
/// fresh `/sys`) and exiting, without any kernel object work.
fn floor_startups(files: &FloorFiles) -> Result<Duration, String> {
    let t = Instant::now();
    run_tool("ip", &["-batch", "/dev/null"])?;
    for script in &files.batch.scripts {
        let args = script.args("/dev/null");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_tool(script.tool.program(), &args)?;
    }
    Ok(t.elapsed())
}

fn run_tool(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}: {}",
            args.join(" "),
            netns_runtime::sandbox::describe_status(out.status),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// --- comparing the two builds -----------------------------------------------------------------

/// Every MAC the topology fixes; any other unicast MAC in a dump is kernel-random.
fn known_macs(topo: &Topology) -> BTreeSet<String> {
    let mut macs = BTreeSet::new();
    macs.insert(netns_runtime::cluster::UNDERLAY_BRIDGE_MAC.to_string());
    for n in &topo.nodes {
        macs.insert(n.eth0.mac.to_string());
        macs.insert(n.bridge.mac.to_string());
        if let Some(v) = &n.network.vxlan {
            macs.insert(v.mac.to_string());
        }
        macs.extend(n.network.neighbours.iter().map(|x| x.mac.to_string()));
        macs.extend(n.network.fdb.iter().map(|x| x.mac.to_string()));
    }
    for p in &topo.pods {
        macs.insert(p.eth0.mac.to_string());
    }
    macs
}

/// Links (with details), addresses, routes of every table, neighbours, the FDB and the sysctls
/// of one namespace, with what legitimately differs between two builds blanked out.
fn dump_netns(ns: &str, known: &BTreeSet<String>) -> Result<String, String> {
    let mut out = String::new();
    let views: [(&str, &[&str]); 5] = [
        ("ip", &["-d", "-o", "link", "show"]),
        ("ip", &["-o", "address", "show"]),
        ("ip", &["-d", "route", "show", "table", "all"]),
        ("ip", &["neigh", "show"]),
        ("bridge", &["fdb", "show"]),
    ];
    for (program, args) in views {
        let mut full = vec!["-n", ns];
        full.extend_from_slice(args);
        let o = Command::new(program)
            .args(&full)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "{program} {}: {}",
                full.join(" "),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        let mut lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| normalise(l, known))
            .collect();
        // Dump order follows hash tables and ifindexes; the set of objects is what counts.
        lines.sort();
        let _ = writeln!(out, "== {ns}: {program} {}", args.join(" "));
        for l in lines {
            let _ = writeln!(out, "{l}");
        }
    }
    let path = Path::new(NETNS_RUN_DIR).join(ns);
    let fd = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let sysctls = netns::run_in(fd.as_fd(), || {
        let mut s = String::new();
        for key in [
            "net/ipv4/ip_forward",
            "net/ipv6/conf/all/disable_ipv6",
            "net/ipv6/conf/default/disable_ipv6",
            "net/ipv6/conf/lo/disable_ipv6",
            "net/ipv6/conf/eth0/disable_ipv6",
        ] {
            let v = fs::read_to_string(Path::new("/proc/sys").join(key))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|_| "-".into());
            let _ = writeln!(s, "{key} = {v}");
        }
        s
    })
    .map_err(|e| format!("{ns}: {e}"))?;
    let _ = writeln!(out, "== {ns}: sysctls");
    out.push_str(&sysctls);
    Ok(out)
}

/// Blanks ifindexes (`12: `, `@if12`, `link-netnsid 0`), kernel-random MACs and running timers.
fn normalise(line: &str, known: &BTreeSet<String>) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut blank_next = false;
    for (i, w) in line.split_whitespace().enumerate() {
        if blank_next {
            words.push("?".into());
            blank_next = false;
            continue;
        }
        if i == 0 && w.ends_with(':') && w[..w.len() - 1].chars().all(|c| c.is_ascii_digit()) {
            words.push("N:".into());
            continue;
        }
        if w.ends_with("_timer") || w == "link-netnsid" {
            blank_next = true;
            words.push(w.into());
            continue;
        }
        let w = match w.find("@if") {
            Some(at) => format!(
                "{}@if?{}",
                &w[..at],
                if w.ends_with(':') { ":" } else { "" }
            ),
            None => w.to_string(),
        };
        let w = if is_mac(&w) && !known.contains(&w) && is_unicast(&w) {
            "<random-mac>".to_string()
        } else {
            w
        };
        words.push(w);
    }
    words.join(" ")
}

fn is_mac(w: &str) -> bool {
    w.len() == 17
        && w.split(':').count() == 6
        && w.split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_unicast(mac: &str) -> bool {
    u8::from_str_radix(&mac[..2], 16).is_ok_and(|b| b & 1 == 0) && mac != "00:00:00:00:00:00"
}

// --- odds and ends ------------------------------------------------------------------------------

fn median(times: &[Times]) -> Option<Times> {
    if times.is_empty() {
        return None;
    }
    let pick = |f: fn(&Times) -> Duration| {
        let mut v: Vec<Duration> = times.iter().map(f).collect();
        v.sort();
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2
        }
    };
    Some(Times {
        build: pick(|t| t.build),
        teardown: pick(|t| t.teardown),
        cleaned: pick(|t| t.cleaned),
        startups: pick(|t| t.startups),
    })
}

/// One figure of a median, or a dash for a way that was not measured.
fn ms(d: Option<Duration>) -> String {
    d.map(ms_of).unwrap_or_else(|| "–".into())
}

fn ms_of(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64().max(1e-9)),
        _ => "–".into(),
    }
}
