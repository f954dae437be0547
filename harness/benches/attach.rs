//! What attaching a pod costs with podpath's CNI runtime running each real plugin chain
//! (`harness/stacks/cni-*.yaml`: VERSION once per binary, ADD of every plugin, CHECK where the
//! list has it, the result cached) against the builtin attach (netlink calls in-process), at
//! 10, 100 and 1,000 pods on one node (a /22 pod subnet), and what DEL costs at teardown.
//!
//! ```sh
//! cargo bench -p podpath --bench attach               # every scenario
//! cargo bench -p podpath --bench attach -- 100 pods   # scenarios whose name contains "100 pods"
//! PODPATH_BENCH_REPS=1 cargo bench -p podpath --bench attach
//! ```
//!
//! A benchmark, not a test: it prints a Markdown table (per-pod build and teardown, medians, and
//! each stack's ratio to the builtin attach) and fails only when a build fails. Run as a test
//! (`cargo test --benches`), it builds 2 pods once per stack. A stack whose plugins are not
//! installed is left out, saying so. The figures are in `docs/performance.md`.

mod support;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{load_average, nproc, start_watchdog};

use netns_runtime::Cluster;
use netns_runtime::stack::Drivers;
use netns_runtime::topology::Topology;
use podpath::stack::Stack;

const STEP_TIMEOUT: Duration = Duration::from_secs(900);

const STACKS: [&str; 5] = [
    "builtin",
    "cni-debian-bridge",
    "cni-debian-ptp",
    "cni-upstream-bridge",
    "cni-flannel",
];

fn topology(pods: usize) -> Topology {
    let mut y = String::new();
    let _ = writeln!(y, "name: attach bench {pods} pods");
    // A /22: room for 1,000 pods on one node (host-local hands out the node's subnet).
    let _ = writeln!(y, "cluster: {{ overlay: vxlan, subnetLen: 22 }}");
    let _ = writeln!(y, "nodes: [node1]\npods:");
    for p in 1..=pods {
        let _ = writeln!(y, "  - {{ name: p{p}, node: node1 }}");
    }
    match podpath::plan::load_str(Path::new("bench/attach.yaml"), &y) {
        Ok(plan) => plan.topology,
        Err(e) => panic!("the benchmark's own case does not plan: {e}"),
    }
}

fn workspace() -> PathBuf {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
    harness.parent().unwrap_or(harness).to_path_buf()
}

/// The stack's drivers, or why it cannot run here.
fn drivers(stack: &str) -> Result<Drivers, String> {
    let path = workspace()
        .join("harness/stacks")
        .join(format!("{stack}.yaml"));
    let s = Stack::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let podpath::stack::AttachLayer::Cni { bin_dirs, .. } = &s.attach
        && let Some(d) = bin_dirs.iter().find(|d| !d.is_dir())
    {
        return Err(format!("plugin directory {} missing", d.display()));
    }
    Ok(s.drivers())
}

/// Build and teardown of `topo`, `reps` times; the medians.
fn measure(
    stack: &str,
    topo: &Topology,
    reps: usize,
    serial: &mut usize,
) -> Result<(Duration, Duration), String> {
    let d = drivers(stack)?;
    let mut builds = Vec::new();
    let mut downs = Vec::new();
    for _ in 0..reps {
        *serial += 1;
        let prefix = format!("ab{serial}.");
        let start = Instant::now();
        let cluster = Cluster::build_with(topo, &prefix, &d)
            .map_err(|e| format!("{stack}: building {} pods: {e}", topo.pods.len()))?;
        builds.push(start.elapsed());
        let start = Instant::now();
        cluster
            .teardown()
            .map_err(|e| format!("{stack}: teardown: {e:?}"))?;
        downs.push(start.elapsed());
    }
    builds.sort();
    downs.sort();
    Ok((builds[builds.len() / 2], downs[downs.len() / 2]))
}

fn per_pod(d: Duration, pods: usize) -> Duration {
    d / u32::try_from(pods).unwrap_or(u32::MAX)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() {
    let Some((sandbox, args)) = support::bench_start("attach") else {
        return;
    };
    let sizes: &[(usize, usize)] = if args.benching {
        &[(10, 5), (100, 3), (1000, 1)]
    } else {
        &[(2, 1)]
    };
    start_watchdog("attach", STEP_TIMEOUT);
    println!("# podpath attach benchmark\n");
    println!("- command: `cargo bench -p podpath --bench attach`");
    println!("- sandbox: {:?}", sandbox.mode);
    println!("- nproc: {}", nproc());
    println!("- load average before the run: {}", load_average());
    println!(
        "- one node, every pod attached by the stack's pod attach; per pod = the cluster's build (or teardown) / pods, medians of the reps\n"
    );
    println!(
        "| pods | stack | reps | build per pod (ms) | × builtin | teardown per pod (ms) | × builtin |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let mut serial = 0;
    let mut failed = false;
    for &(pods, reps) in sizes {
        let reps = args.reps.unwrap_or(reps);
        let topo = topology(pods);
        let mut builtin: Option<(Duration, Duration)> = None;
        for stack in STACKS {
            let name = format!("{pods} pods {stack}");
            if !args.filters.is_empty() && !args.filters.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            match measure(stack, &topo, reps, &mut serial) {
                Ok((b, t)) => {
                    let (bp, tp) = (per_pod(b, pods), per_pod(t, pods));
                    if stack == "builtin" {
                        builtin = Some((bp, tp));
                    }
                    let ratio = |x: Duration, base: Option<Duration>| {
                        base.map_or("-".into(), |base| {
                            format!("{:.1}", x.as_secs_f64() / base.as_secs_f64().max(1e-9))
                        })
                    };
                    println!(
                        "| {pods} | {stack} | {reps} | {} | {} | {} | {} |",
                        ms(bp),
                        ratio(bp, builtin.map(|b| b.0)),
                        ms(tp),
                        ratio(tp, builtin.map(|b| b.1)),
                    );
                }
                Err(e) if e.contains("missing") => {
                    println!("| {pods} | {stack} | - | left out: {e} | | | |");
                }
                Err(e) => {
                    println!("| {pods} | {stack} | - | FAILED: {e} | | | |");
                    failed = true;
                }
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
