//! What hop observation costs a flow: the suite's own flows, run unobserved and observed on
//! one cluster, and the parts an observed flow is made of.
//!
//! ```sh
//! cargo bench -p podpath --bench observe                    # both cases, every flow
//! cargo bench -p podpath --bench observe -- clusterip       # one case (or one flow: `tcp`)
//! PODPATH_BENCH_REPS=20 cargo bench -p podpath --bench observe
//! PODPATH_BENCH_BUSY=2 cargo bench -p podpath --bench observe   # two spinning threads meanwhile
//! cargo test -p podpath --bench observe -- --bench          # the same in the debug profile
//! ```
//!
//! Run as a test (`cargo test --benches`, without `--bench`) it does 3 runs of everything and
//! still checks every flow.
//!
//! # The cases
//!
//! Two of the suite's own cases, loaded from `cases/` and planned as the suite plans them:
//! `services/clusterip` in iptables mode (a client pod on node1, a ClusterIP Service with its
//! endpoint on node1 and one with its endpoint on node2, flannel VXLAN between the nodes) and
//! `cross-node-vxlan` (TCP, UDP and ICMP between pods on two nodes over flannel VXLAN). The
//! cluster is built and programmed by [`CaseRun`], exactly as `cargo test --test cases` does,
//! and every flow of the case is measured.
//!
//! # What is measured, per flow
//!
//! - **run_flow**: `CaseRun::run_flow` with `RunOptions { observe: false | true, artifacts:
//!   ArtifactPolicy::None }`, N times each, alternating, after a few unobserved warm-up runs
//!   (neighbours resolved, echo servers awake). The observed run is what every flow of the suite
//!   does by default: captures on every interface of the cluster, the netfilter trace and the
//!   conntrack events of every node, the settle, the journey. Only its verdict is checked.
//! - **first observed flow**: the first observed `run_flow` of the cluster, which also switches
//!   the netfilter trace on in every node (`nft -f`, one per node) and reads every node's rules
//!   once (`nft -a list ruleset` and `iptables-save`); once per cluster, hence once per case run
//!   in the suite. Those two are also timed apart (`nftrace::enable`, `RuleBook::read`).
//! - **the parts of an observed flow**, N times: the pieces `Observer::observe` is made of,
//!   called directly in the same order (trace sockets, conntrack event sockets, capture
//!   sockets, the flow itself, the captures' settle, the trace's settle, stopping the captures,
//!   the trace and the conntrack listeners), then `journey::assemble`.
//! - **the settle's quiet period**: the same observation with a shorter quiet period in the
//!   captures' settle (5, 2, 1 and 0 ms), after which the captures keep listening for
//!   [`TAIL_QUIET`] more to catch anything the shorter settle would have missed. A frame
//!   stamped by the kernel after the shorter settle returned counts as missed (the frames of the
//!   flow's own conversations apart from other traffic, such as ARP and IGMP reports), and the
//!   journey assembled without those frames is compared with the whole one in the steps of the
//!   flow's conversations (netfilter rule steps left out: they carry no time of their own).
//!   Also printed: when the flow's last frame was stamped, from the moment the probe returned.
//!
//! A benchmark, not a test: it fails only when a flow fails or something cannot be done.
//! Without the privileges a sandbox needs, it says why and reports itself skipped (exit 0).
//! The figures and how to read them are in `docs/performance.md`.

mod support;

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{arm_watchdog, command_line, load_average, nproc, start_watchdog};

use netns_runtime::Cluster;
use netns_runtime::Outcome;
use netns_runtime::capture::{CaptureSet, Captured};
use netns_runtime::netlink::Netlink;
use netns_runtime::proxy::driver::ProxyMode;
use netns_runtime::trace::assembly::{Journey, Observation, Role, Step, StepKind, assemble};
use netns_runtime::trace::conntrack::EventSet;
use netns_runtime::trace::nftrace::{self, RuleBook, TraceSet};
use netns_runtime::trace::observe::{SETTLE_MAX, SETTLE_QUIET};
use podpath::plan::{self, FlowPlan};
use podpath::report::ArtifactPolicy;
use podpath::suite::{self, CaseRun, RunOptions, probe_target};
use podpath::verdict::judge;

/// Longest any single step may take before the benchmark gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// Unobserved runs of every flow before anything is timed.
const WARMUP: usize = 3;

/// Quiet periods tried in the captures' settle (the first is the library's).
const QUIETS: [Duration; 4] = [
    SETTLE_QUIET,
    Duration::from_millis(2),
    Duration::from_millis(1),
    Duration::ZERO,
];

/// How long the captures keep listening after a shorter settle, to see what it missed.
const TAIL_QUIET: Duration = Duration::from_millis(50);
const TAIL_MAX: Duration = Duration::from_millis(500);

/// Reads of each node's rules and switches of its trace, for their medians.
const SETUP_REPS: usize = 5;

struct Scenario {
    /// Below `cases/`.
    file: &'static str,
    proxy: Option<ProxyMode>,
}

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        file: "services/clusterip.yaml",
        proxy: Some(ProxyMode::Iptables),
    },
    Scenario {
        file: "cross-node-vxlan.yaml",
        proxy: None,
    },
];

fn main() {
    let Some((sandbox, args)) = support::bench_start("observe") else {
        return;
    };
    let (filters, benching) = (args.filters, args.benching);
    let reps = args.reps.unwrap_or(if benching { 50 } else { 3 });
    let busy = std::env::var("PODPATH_BENCH_BUSY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);

    start_watchdog("observe", STEP_TIMEOUT);
    arm_watchdog();
    println!("# podpath hop observation benchmark\n");
    if benching && cfg!(debug_assertions) {
        println!("- command: `cargo test -p podpath --bench observe -- --bench` (debug profile)");
    } else if benching {
        println!("- command: `cargo bench -p podpath --bench observe`");
    } else {
        println!("- command: `cargo test -p podpath --bench observe` (smoke run)");
    }
    println!("- sandbox: {:?}", sandbox.mode);
    println!("- nproc: {}", nproc());
    println!("- kernel: {}", command_line("uname", &["-r"]));
    println!("- nft: {}", command_line("nft", &["--version"]));
    println!(
        "- iptables: {}",
        command_line("iptables-restore", &["--version"])
    );
    println!(
        "- profile: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!("- N = {reps} runs per flow and way; {WARMUP} unobserved warm-up runs first");
    println!(
        "- library settle: quiet {} ms, at most {} ms",
        SETTLE_QUIET.as_millis(),
        SETTLE_MAX.as_millis()
    );
    if busy > 0 {
        println!("- {busy} spinning threads run throughout");
    }
    println!("- load average before the run: {}", load_average());
    println!();

    let spinning = Arc::new(AtomicBool::new(busy > 0));
    for _ in 0..busy {
        let spinning = spinning.clone();
        std::thread::spawn(move || {
            while spinning.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
    }

    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
    // A netlink socket in the sandbox's own namespace, for `support::settle`.
    let mut home = Netlink::open().expect("netlink socket in the sandbox");
    let mut results = Vec::new();
    let mut failed = false;
    for scenario in &SCENARIOS {
        match run_scenario(&cases, scenario, reps, &filters) {
            Ok(Some(r)) => results.push(r),
            Ok(None) => continue,
            Err(e) => {
                eprintln!("{}: {e}", scenario.file);
                failed = true;
            }
        }
        // The next case starts once the kernel has destroyed this one's namespaces.
        arm_watchdog();
        if let Err(e) = support::settle(&mut home) {
            eprintln!("waiting for the kernel's cleanup: {e}");
        }
    }
    spinning.store(false, Ordering::Relaxed);
    println!("- load average after the run: {}\n", load_average());
    print_tables(&results, reps);
    if failed {
        std::process::exit(1);
    }
}

/// One case's figures.
struct CaseResult {
    name: String,
    points: usize,
    nodes: usize,
    build: Duration,
    first_observed: (String, Duration),
    enable: Duration,
    rulebook: Duration,
    flows: Vec<FlowResult>,
}

struct FlowResult {
    name: String,
    unobserved: Vec<Duration>,
    observed: Vec<Duration>,
    parts: Parts,
    quiet: Vec<QuietResult>,
}

/// Samples of the parts of an observed flow.
#[derive(Default)]
struct Parts {
    trace_start: Vec<Duration>,
    conntrack_start: Vec<Duration>,
    capture_start: Vec<Duration>,
    flow: Vec<Duration>,
    capture_settle: Vec<Duration>,
    trace_settle: Vec<Duration>,
    capture_stop: Vec<Duration>,
    trace_stop: Vec<Duration>,
    conntrack_stop: Vec<Duration>,
    assemble: Vec<Duration>,
    total: Vec<Duration>,
    frames: Vec<usize>,
    rule_events: Vec<usize>,
    steps: Vec<usize>,
}

/// One quiet period's samples.
struct QuietResult {
    quiet: Duration,
    settle: Vec<Duration>,
    /// Frames of the flow's own conversations (VXLAN packets carrying them included) stamped
    /// after the settle returned, per run.
    missed_flow: Vec<usize>,
    /// Other frames (ARP, IGMP reports) stamped after the settle returned, per run.
    missed_other: Vec<usize>,
    /// Runs whose journey without the missed frames differs from the whole one in the steps of
    /// the flow's conversations.
    journeys_differing: usize,
    frames: Vec<usize>,
    /// The flow's last frame's kernel timestamp minus the moment the probe returned, in ms
    /// (negative: before it returned).
    last_flow: Vec<f64>,
    /// The missed frames, one line each, with how long after the probe returned they came.
    missed_frames: Vec<String>,
}

fn run_scenario(
    cases: &Path,
    scenario: &Scenario,
    reps: usize,
    filters: &[String],
) -> Result<Option<CaseResult>, String> {
    let path: PathBuf = cases.join(scenario.file);
    let mut plan = plan::load(&path).map_err(|e| e.to_string())?;
    // A flow with hop expectations is always observed: without them, `observe: false` really
    // runs it unobserved, so the two ways compare.
    for flow in &mut plan.flows {
        flow.hops = Default::default();
    }
    let id = scenario.file.trim_end_matches(".yaml");
    let kind = suite::runs_of(id, &plan, &podpath::stack::Stack::builtin())
        .into_iter()
        .find(|k| k.proxy == scenario.proxy)
        .ok_or_else(|| format!("{id} has no run with proxy {:?}", scenario.proxy))?;
    // Every word given must name the case (a part of its path) or one of its flows.
    let flows: Vec<usize> = (0..plan.flows.len())
        .filter(|&i| {
            filters
                .iter()
                .all(|f| id.contains(f.as_str()) || plan.flows[i].name == *f)
        })
        .collect();
    if flows.is_empty() {
        return Ok(None);
    }
    // Calls of `with_cluster` (directly or through `run_flow`): the cluster goes down after the
    // last one. The build, the warm-up, the first observed flow, the runs, the parts.
    let calls = 1 + flows.len() * WARMUP + 1 + flows.len() * 2 * reps + 1;
    let run = CaseRun::new(plan, kind.proxy, calls, kind.netns_prefix.clone());
    let name = kind.name.clone();
    let unobserved = RunOptions {
        observe: false,
        artifacts: ArtifactPolicy::None,
        rule_texts: false,
    };
    let observed = RunOptions {
        observe: true,
        artifacts: ArtifactPolicy::None,
        rule_texts: false,
    };
    let run_flow = |index: usize, options: &RunOptions| -> Result<Duration, String> {
        let started = Instant::now();
        let r = run.run_flow(index, options).map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        if !r.verdict.passed {
            return Err(format!(
                "flow {} failed:\n{}",
                run.plan().flows[index].name,
                r.verdict.render(&run.plan().flows[index])
            ));
        }
        Ok(elapsed)
    };

    eprintln!("{name}: building");
    arm_watchdog();
    let started = Instant::now();
    run.with_cluster(|_| ()).map_err(|e| e.to_string())?;
    let build = started.elapsed();
    for &i in &flows {
        for _ in 0..WARMUP {
            run_flow(i, &unobserved)?;
        }
    }
    let first_observed = (
        run.plan().flows[flows[0]].name.clone(),
        run_flow(flows[0], &observed)?,
    );
    let mut results: Vec<FlowResult> = Vec::new();
    for &i in &flows {
        eprintln!(
            "{name}: {} unobserved and observed",
            run.plan().flows[i].name
        );
        arm_watchdog();
        let (mut u, mut o) = (Vec::new(), Vec::new());
        for round in 0..reps {
            // Alternating which goes first.
            if round % 2 == 0 {
                u.push(run_flow(i, &unobserved)?);
                o.push(run_flow(i, &observed)?);
            } else {
                o.push(run_flow(i, &observed)?);
                u.push(run_flow(i, &unobserved)?);
            }
        }
        results.push(FlowResult {
            name: run.plan().flows[i].name.clone(),
            unobserved: u,
            observed: o,
            parts: Parts::default(),
            quiet: Vec::new(),
        });
    }

    eprintln!("{name}: parts");
    arm_watchdog();
    let parts = run.with_cluster(|cluster| {
        let (enable, rulebook) = time_setup(cluster)?;
        for (r, &i) in results.iter_mut().zip(&flows) {
            let flow = &run.plan().flows[i];
            arm_watchdog();
            for _ in 0..reps {
                observe_parts(&run, cluster, flow, &mut r.parts)?;
            }
            arm_watchdog();
            r.quiet = QUIETS
                .iter()
                .map(|&quiet| QuietResult {
                    quiet,
                    settle: Vec::new(),
                    missed_flow: Vec::new(),
                    missed_other: Vec::new(),
                    journeys_differing: 0,
                    frames: Vec::new(),
                    last_flow: Vec::new(),
                    missed_frames: Vec::new(),
                })
                .collect();
            for _ in 0..reps {
                for q in &mut r.quiet {
                    observe_quiet(&run, cluster, flow, q)?;
                }
            }
        }
        Ok::<_, String>((
            cluster.capture_points().len(),
            cluster.topology().nodes.len(),
            enable,
            rulebook,
        ))
    });
    let (points, nodes, enable, rulebook) = parts.map_err(|e| e.to_string())??;
    Ok(Some(CaseResult {
        name,
        points,
        nodes,
        build,
        first_observed,
        enable,
        rulebook,
        flows: results,
    }))
}

/// Medians of what the first observed flow of a cluster does once: switching the trace on in
/// every node, and reading every node's rules. Each is a sum over the nodes.
fn time_setup(cluster: &Cluster) -> Result<(Duration, Duration), String> {
    let (mut enable, mut read) = (Vec::new(), Vec::new());
    for _ in 0..SETUP_REPS {
        let (mut e, mut r) = (Duration::ZERO, Duration::ZERO);
        for n in &cluster.topology().nodes {
            let ns = cluster.node_netns(&n.name).ok_or("no node namespace")?;
            let started = Instant::now();
            nftrace::enable(ns.as_fd()).map_err(|e| e.to_string())?;
            e += started.elapsed();
            let started = Instant::now();
            RuleBook::read(ns.as_fd()).map_err(|e| e.to_string())?;
            r += started.elapsed();
        }
        enable.push(e);
        read.push(r);
    }
    Ok((median(&enable), median(&read)))
}

/// What `Observer::observe` listens on: (capture points, nodes).
type Targets<'a> = (
    Vec<(String, BorrowedFd<'a>, String)>,
    Vec<(String, BorrowedFd<'a>)>,
);

fn targets(cluster: &Cluster) -> Targets<'_> {
    (cluster.capture_points(), cluster.trace_points())
}

/// Sends `flow` once and checks the answer.
fn send(cluster: &Cluster, flow: &FlowPlan) -> Result<Outcome, String> {
    let outcome = cluster.probe(&flow.from, probe_target(flow), flow.timeout);
    let verdict = judge(flow, cluster.topology(), std::slice::from_ref(&outcome));
    if !verdict.passed {
        return Err(format!("flow {}:\n{}", flow.name, verdict.render(flow)));
    }
    Ok(outcome)
}

/// One observed flow, piece by piece, as `Observer::observe` and `CaseRun::run_flow` do it.
fn observe_parts(
    run: &CaseRun,
    cluster: &Cluster,
    flow: &FlowPlan,
    parts: &mut Parts,
) -> Result<(), String> {
    let (points, nodes) = targets(cluster);
    let capture_args: Vec<(&str, BorrowedFd<'_>, &str)> = points
        .iter()
        .map(|(n, fd, i)| (n.as_str(), *fd, i.as_str()))
        .collect();
    let trace_args: Vec<(&str, BorrowedFd<'_>)> =
        nodes.iter().map(|(n, fd)| (n.as_str(), *fd)).collect();

    let t0 = Instant::now();
    let mut traces = TraceSet::start(&trace_args).map_err(|e| e.to_string())?;
    let t1 = Instant::now();
    let events = EventSet::start(&trace_args).map_err(|e| e.to_string())?;
    let t2 = Instant::now();
    let mut captures = CaptureSet::start(&capture_args).map_err(|e| e.to_string())?;
    let t3 = Instant::now();
    send(cluster, flow)?;
    let t4 = Instant::now();
    captures.settle(SETTLE_QUIET, SETTLE_MAX);
    let t5 = Instant::now();
    traces.settle(Duration::ZERO, SETTLE_MAX.saturating_sub(t5 - t4));
    let t6 = Instant::now();
    let capture_points = captures.points();
    let (captured, _) = captures.stop_with_stats();
    let t7 = Instant::now();
    // As `Observer::observe` does: rule texts are read later, only for journeys people read.
    let (mut rules, _) = traces.stop_with_stats();
    rules.retain(|e| e.table != nftrace::TRACE_TABLE);
    let t8 = Instant::now();
    let (tables, problems) = events.stop();
    let t9 = Instant::now();
    let obs = Observation {
        captures: captured,
        points: capture_points,
        rules,
        conntrack: tables,
        problems,
        nodes: nodes.into_iter().map(|(n, _)| n).collect(),
    };
    let journey = assemble(&obs, &run.hints(flow));
    let t10 = Instant::now();

    parts.trace_start.push(t1 - t0);
    parts.conntrack_start.push(t2 - t1);
    parts.capture_start.push(t3 - t2);
    parts.flow.push(t4 - t3);
    parts.capture_settle.push(t5 - t4);
    parts.trace_settle.push(t6 - t5);
    parts.capture_stop.push(t7 - t6);
    parts.trace_stop.push(t8 - t7);
    parts.conntrack_stop.push(t9 - t8);
    parts.assemble.push(t10 - t9);
    parts.total.push(t10 - t0);
    parts.frames.push(obs.captures.len());
    parts.rule_events.push(obs.rules.len());
    parts.steps.push(journey.steps.len());
    Ok(())
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// One observed flow whose captures settle with `q.quiet`, then keep listening for
/// [`TAIL_QUIET`]: what came after the shorter settle is what it would have missed.
fn observe_quiet(
    run: &CaseRun,
    cluster: &Cluster,
    flow: &FlowPlan,
    q: &mut QuietResult,
) -> Result<(), String> {
    let (points, nodes) = targets(cluster);
    let capture_args: Vec<(&str, BorrowedFd<'_>, &str)> = points
        .iter()
        .map(|(n, fd, i)| (n.as_str(), *fd, i.as_str()))
        .collect();
    let trace_args: Vec<(&str, BorrowedFd<'_>)> =
        nodes.iter().map(|(n, fd)| (n.as_str(), *fd)).collect();
    let mut traces = TraceSet::start(&trace_args).map_err(|e| e.to_string())?;
    let events = EventSet::start(&trace_args).map_err(|e| e.to_string())?;
    let mut captures = CaptureSet::start(&capture_args).map_err(|e| e.to_string())?;
    send(cluster, flow)?;
    let sent = since_epoch();
    let started = Instant::now();
    captures.settle(q.quiet, SETTLE_MAX);
    q.settle.push(started.elapsed());
    let cut = since_epoch();
    captures.settle(TAIL_QUIET, TAIL_MAX);
    traces.settle(Duration::ZERO, SETTLE_MAX);
    let capture_points = captures.points();
    let captured = captures.stop();
    let mut rules = traces.stop();
    rules.retain(|e| e.table != nftrace::TRACE_TABLE);
    let (tables, problems) = events.stop();
    let whole = Observation {
        captures: captured,
        points: capture_points,
        rules,
        conntrack: tables,
        problems,
        nodes: nodes.into_iter().map(|(n, _)| n).collect(),
    };
    let kept: Vec<Captured> = whole
        .captures
        .iter()
        .filter(|c| c.ts <= cut)
        .cloned()
        .collect();
    let hints = run.hints(flow);
    let journey = assemble(&whole, &hints);
    // The frames of the flow's own conversations (its connection, its DNS questions), by index
    // into the captures; the rest (ARP, IGMP reports of interfaces just up) is other traffic.
    let flow_frames: HashSet<usize> = journey
        .steps
        .iter()
        .filter(|s| is_flow_step(&journey, s))
        .filter_map(|s| match &s.kind {
            StepKind::Packet(p) => Some(p.capture),
            _ => None,
        })
        .collect();
    let (mut own, mut other) = (0, 0);
    for (i, c) in whole
        .captures
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ts > cut)
    {
        if flow_frames.contains(&i) {
            own += 1;
        } else {
            other += 1;
        }
        q.missed_frames.push(format!(
            "+{} after the probe: {c}",
            ms(c.ts.saturating_sub(sent))
        ));
    }
    q.missed_flow.push(own);
    q.missed_other.push(other);
    q.frames.push(whole.captures.len());
    if let Some(last) = flow_frames.iter().map(|&i| whole.captures[i].ts).max() {
        q.last_flow
            .push((last.as_secs_f64() - sent.as_secs_f64()) * 1000.0);
    }
    let cut_obs = Observation {
        captures: kept,
        ..whole.clone()
    };
    if flow_steps(&journey) != flow_steps(&assemble(&cut_obs, &hints)) {
        q.journeys_differing += 1;
    }
    Ok(())
}

/// Whether a step belongs to one of the flow's own conversations.
fn is_flow_step(j: &Journey, s: &Step) -> bool {
    s.conversation
        .and_then(|c| j.conversations.get(c))
        .is_some_and(|c| c.role != Role::Other)
}

/// The steps of the flow's own conversations (its packets and the rewrites seen between them),
/// as comparable text. Netfilter rule steps are left out: they carry no time of their own, so a
/// cut cannot be applied to them.
fn flow_steps(j: &Journey) -> Vec<String> {
    j.steps
        .iter()
        .filter(|s| is_flow_step(j, s) && !matches!(s.kind, StepKind::Rule(_)))
        .map(|s| format!("{s:?}"))
        .collect()
}

fn print_tables(cases: &[CaseResult], reps: usize) {
    println!("## One flow, unobserved and observed (`CaseRun::run_flow`, N = {reps} each)\n");
    println!(
        "| case | flow | unobserved: median (p10 to p90) | observed: median (p10 to p90) | observation adds |"
    );
    println!("| --- | --- | ---: | ---: | ---: |");
    for c in cases {
        for f in &c.flows {
            let (u, o) = (median(&f.unobserved), median(&f.observed));
            println!(
                "| {} | {} | {} ({} to {}) | {} ({} to {}) | {} |",
                c.name,
                f.name,
                ms(u),
                ms(pct(&f.unobserved, 10)),
                ms(pct(&f.unobserved, 90)),
                ms(o),
                ms(pct(&f.observed, 10)),
                ms(pct(&f.observed, 90)),
                ms(o.saturating_sub(u)),
            );
        }
    }
    println!();
    println!("## Once per cluster\n");
    println!(
        "| case | nodes | capture points | build + proxy | first observed flow | `nftrace::enable`, every node | `RuleBook::read`, every node |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for c in cases {
        println!(
            "| {} | {} | {} | {} | {} ({}) | {} | {} |",
            c.name,
            c.nodes,
            c.points,
            ms(c.build),
            ms(c.first_observed.1),
            c.first_observed.0,
            ms(c.enable),
            ms(c.rulebook),
        );
    }
    println!();
    println!("## The parts of one observed flow (medians of N = {reps})\n");
    let columns: Vec<(String, &FlowResult)> = cases
        .iter()
        .flat_map(|c| {
            c.flows
                .iter()
                .map(move |f| (format!("{} {}", c.name, f.name), f))
        })
        .collect();
    print!("| part |");
    for (name, _) in &columns {
        print!(" {name} |");
    }
    println!();
    print!("| --- |");
    for _ in &columns {
        print!(" ---: |");
    }
    println!();
    type Pick = fn(&Parts) -> &Vec<Duration>;
    let rows: [(&str, Pick); 11] = [
        ("trace start (`TraceSet::start`)", |p| &p.trace_start),
        ("conntrack events (`EventSet::start`)", |p| {
            &p.conntrack_start
        }),
        ("capture start (`CaptureSet::start`)", |p| &p.capture_start),
        ("the flow (probe)", |p| &p.flow),
        ("capture settle (quiet `SETTLE_QUIET`)", |p| {
            &p.capture_settle
        }),
        ("trace settle", |p| &p.trace_settle),
        ("capture stop", |p| &p.capture_stop),
        ("trace stop", |p| &p.trace_stop),
        ("conntrack stop", |p| &p.conntrack_stop),
        ("journey (`assemble`)", |p| &p.assemble),
        ("**total**", |p| &p.total),
    ];
    for (label, pick) in rows {
        print!("| {label} |");
        for (_, f) in &columns {
            print!(" {} |", ms(median(pick(&f.parts))));
        }
        println!();
    }
    type Count = fn(&Parts) -> &Vec<usize>;
    let counts: [(&str, Count); 3] = [
        ("frames captured", |p| &p.frames),
        ("trace events", |p| &p.rule_events),
        ("journey steps", |p| &p.steps),
    ];
    for (label, pick) in counts {
        print!("| {label} |");
        for (_, f) in &columns {
            print!(" {} |", median_count(pick(&f.parts)));
        }
        println!();
    }
    println!();
    println!(
        "## The captures' settle with other quiet periods (N = {reps} each; then {} ms more listening)\n",
        TAIL_QUIET.as_millis()
    );
    println!(
        "| case | flow | quiet | settle: median (max) | frames | flow's frames missed (runs) | other frames missed (runs) | journeys differing | flow's last frame, from the probe's return: median (max) |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let runs = |v: &[usize]| v.iter().filter(|&&m| m > 0).count();
    for c in cases {
        for f in &c.flows {
            for q in &f.quiet {
                let mut last = q.last_flow.clone();
                last.sort_by(f64::total_cmp);
                println!(
                    "| {} | {} | {} ms | {} ({}) | {} | {} ({}) | {} ({}) | {} | {:+.2} ms ({:+.2} ms) |",
                    c.name,
                    f.name,
                    q.quiet.as_millis(),
                    ms(median(&q.settle)),
                    ms(pct(&q.settle, 100)),
                    median_count(&q.frames),
                    q.missed_flow.iter().sum::<usize>(),
                    runs(&q.missed_flow),
                    q.missed_other.iter().sum::<usize>(),
                    runs(&q.missed_other),
                    q.journeys_differing,
                    last.get(last.len() / 2).copied().unwrap_or(f64::NAN),
                    last.last().copied().unwrap_or(f64::NAN),
                );
            }
        }
    }
    let missed: Vec<String> = cases
        .iter()
        .flat_map(|c| {
            c.flows.iter().flat_map(move |f| {
                f.quiet.iter().flat_map(move |q| {
                    q.missed_frames.iter().map(move |line| {
                        format!(
                            "- {} {}, quiet {} ms: {line}",
                            c.name,
                            f.name,
                            q.quiet.as_millis()
                        )
                    })
                })
            })
        })
        .collect();
    if !missed.is_empty() {
        println!("\nFrames a settle missed (all of them, from every run):\n");
        for line in missed {
            println!("{line}");
        }
    }
}

fn median(samples: &[Duration]) -> Duration {
    let mut v = samples.to_vec();
    v.sort();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// The `p`th percentile (nearest rank).
fn pct(samples: &[Duration], p: usize) -> Duration {
    let mut v = samples.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * v.len()).div_ceil(100).clamp(1, v.len());
    v[rank - 1]
}

fn median_count(samples: &[usize]) -> usize {
    let mut v = samples.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}
