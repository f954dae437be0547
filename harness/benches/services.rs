//! The Service proxy at scale: for 1,000 and 10,000 ClusterIP Services of 3 endpoints each, in
//! both kube-proxy modes, how long rendering one node's rules takes and how big they are, how
//! long loading them into a fresh node namespace takes, and how long one TCP flow through a
//! ClusterIP takes with them in place.
//!
//! ```sh
//! cargo bench -p podpath --bench services              # every scenario
//! cargo bench -p podpath --bench services -- 1000      # one Service count (1000 or 10000)
//! cargo bench -p podpath --bench services -- nftables  # one mode (iptables or nftables)
//! PODPATH_BENCH_DUMPS=/tmp/d cargo bench ...           # keep each case YAML and rendered table
//! PODPATH_BENCH_REPS=1 cargo bench -p podpath --bench services
//! ```
//!
//! Run as a test (`cargo test --benches`, without `--bench`), it does one small round (20
//! Services) in each mode and checks that every flow is answered.
//!
//! # The case
//!
//! Two nodes (flannel VXLAN). node1 holds the client pod; node2 holds the three endpoint pods,
//! `web-1` to `web-3`, each with an echo server on 8080/tcp. Every Service `svc-NNNNN` selects
//! `app: web` with port 80 -> 8080, so every Service has the same three endpoints. That costs
//! no realism in the rules: kube-proxy's per-Service objects are per Service port and per
//! endpoint *of that Service port* (a `KUBE-SVC-` chain and three `KUBE-SEP-` chains, or a
//! `service-` chain and three `endpoint-` chains, their names hashed from the Service port's
//! name and the endpoint), so shared endpoint addresses are not deduplicated anywhere, and the
//! rule count and text size are what 3 distinct endpoints per Service would give (the
//! addresses are the only text that would differ). What it buys is that every Service answers,
//! so the first and the last one can both be probed. All endpoints are on node2 so that every
//! flow, direct or through a Service, takes the same path (client -> node1 -> VXLAN -> node2 ->
//! endpoint), which makes the direct pod-to-pod flow a like-for-like baseline.
//!
//! # What is measured, per Service count and mode
//!
//! - **render**: `iptables::render` / `nftables::render` of node1's `ServiceTable`, pure; and
//!   the size of that text (lines, bytes).
//! - **apply**: `Cluster::apply_proxy` with node1's table, on a node namespace that was just
//!   built and has no rules: the table is rendered and loaded with `iptables-restore -w 5
//!   --noflush` or `nft -f -`, exactly as the builtin proxies do, but with a limit of
//!   [`APPLY_LIMIT`] instead of their 30 s (see [`BenchProxy`]). Only this call is timed (not
//!   the build); it includes one render, shown on its own as **render**.
//!
//!   Only node1, the client's node, is programmed: it is where a connection to a ClusterIP is
//!   translated, and loading 10,000 Services takes minutes per node. node2's rules would not
//!   change where a flow goes; in iptables mode they would add node2's own walks of
//!   `KUBE-SERVICES` (for the first packet of every new conntrack entry there: the incoming
//!   VXLAN packet, the decapsulated connection, the VXLAN packet of the reply), each costing
//!   what one walk costs on node1 (`docs/performance.md` separates them).
//! - **flows**, each one TCP connection from the client pod answered by an echo server, timed
//!   by the probe (connect, answer, close) and checked against the expected answer (one of the
//!   three endpoints, which saw the client's own address): the direct flow client -> web-N
//!   before the rules are applied and after; the first flow through a ClusterIP after the apply
//!   (to the last Service declared); then more flows to the first and to the last Service. The
//!   rules are rendered in declared order, so in iptables mode the last Service is the one at
//!   the end of `KUBE-SERVICES`, which the first packet of every new connection walks rule by
//!   rule until it matches (to its end when it matches nothing).
//! - **teardown**: taking the cluster down and waiting until the kernel has destroyed its
//!   namespaces (rules included), so the next round starts on a quiet kernel.
//! - **peak RSS** of this process (`VmHWM`, reset through `/proc/self/clear_refs` before each
//!   Service count): planning, rendering and the rendered text held for the tools, not the
//!   tools themselves.
//!
//! Every round builds a fresh cluster; figures are medians over rounds (flows: over every
//! flow of every round). 10,000 Services get one round per mode: one load of them takes
//! minutes on 2 cores (`iptables-restore` alone 3 to 8, see `docs/performance.md`), so a full
//! run takes 5 to 10 minutes there; `-- 1000` takes under a minute.
//!
//! A benchmark, not a test: it fails only when something fails or a flow is not answered as
//! expected. Without the privileges a sandbox needs, it says why and reports itself skipped
//! (exit 0). The figures and how to read them are in `docs/performance.md`.

mod support;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{arm_watchdog, command_line, load_average, nproc, start_watchdog};

use netns_runtime::netlink::Netlink;
use netns_runtime::netns::Netns;
use netns_runtime::proxy::driver::{ProxyError, ProxyMode, ServiceProxy};
use netns_runtime::proxy::{ServiceTable, iptables, nftables};
use netns_runtime::tool;
use netns_runtime::{Cluster, Outcome};
use podpath::plan::{self, FlowPlan, Plan};
use podpath::suite::probe_target;
use podpath::verdict::judge;

/// How long loading one node's rules may take. The builtin proxies allow 30 s
/// (`netns_runtime::proxy::driver`), which 10,000 Services exceed on a small machine.
const APPLY_LIMIT: Duration = Duration::from_secs(900);

/// Longest any single step (a plan, a build, an apply, a teardown) may take before the
/// benchmark gives up; leaving the sandbox's PID 1 takes every process and namespace with it.
const STEP_TIMEOUT: Duration = Duration::from_secs(960);

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The endpoint pods (all on node2).
const ENDPOINTS: [&str; 3] = ["web-1", "web-2", "web-3"];

/// One Service count, run in every selected mode.
struct Size {
    services: usize,
    rounds: usize,
    /// Flows per kind and round.
    flows: usize,
}

fn main() {
    let Some((sandbox, args)) = support::bench_start("services") else {
        return;
    };
    let (filters, rounds_override) = (args.filters, args.reps);
    // Without `--bench` (`cargo test --benches`, `--all-targets`): one small round per mode,
    // still checked.
    let benching = args.benching;
    let sizes: Vec<Size> = if benching {
        vec![
            Size {
                services: 1000,
                rounds: 5,
                flows: 20,
            },
            Size {
                services: 10000,
                rounds: 1,
                flows: 20,
            },
        ]
    } else {
        vec![Size {
            services: 20,
            rounds: 1,
            flows: 3,
        }]
    };
    // Every word given must name the scenario's Service count or mode: `-- 1000`, `-- nftables`.
    let selected = |services: usize, mode: ProxyMode| {
        filters
            .iter()
            .all(|f| *f == services.to_string() || f == mode.name())
    };
    let modes: Vec<ProxyMode> = ProxyMode::ALL
        .into_iter()
        .filter(|&mode| {
            let (program, args): (&str, &[&str]) = match mode {
                ProxyMode::Iptables => ("iptables-restore", &["--version"]),
                ProxyMode::Nftables => ("nft", &["--version"]),
            };
            let runs = Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !runs {
                println!("services benchmark: {mode} mode skipped: cannot run `{program}`");
            }
            runs
        })
        .collect();

    start_watchdog("services", STEP_TIMEOUT);
    println!("# podpath Service proxy benchmark\n");
    if benching {
        println!("- command: `cargo bench -p podpath --bench services`");
    } else {
        println!("- command: `cargo test -p podpath --bench services` (smoke run: 20 Services)");
    }
    println!("- sandbox: {:?}", sandbox.mode);
    println!("- nproc: {}", nproc());
    println!("- kernel: {}", command_line("uname", &["-r"]));
    println!(
        "- iptables: {}",
        command_line("iptables-restore", &["--version"])
    );
    println!("- nft: {}", command_line("nft", &["--version"]));
    println!("- load average before the run: {}", load_average());
    println!(
        "- case: 2 nodes (VXLAN), client pod on node1, 3 endpoint pods on node2, \
         N ClusterIP Services port 80 -> 8080 selecting all three; node1's rules applied"
    );
    println!();

    let mut bench = Bench::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut sizes_done: Vec<SizeFacts> = Vec::new();
    let mut failed = false;
    for size in &sizes {
        let modes: Vec<ProxyMode> = modes
            .iter()
            .copied()
            .filter(|&m| selected(size.services, m))
            .collect();
        if modes.is_empty() {
            continue;
        }
        let size = Size {
            rounds: rounds_override.unwrap_or(size.rounds),
            ..*size
        };
        reset_peak_rss();
        arm_watchdog();
        eprintln!("{} Services: planning", size.services);
        let yaml = case_yaml(size.services);
        if let Some(dir) = std::env::var_os("PODPATH_BENCH_DUMPS") {
            let file = Path::new(&dir).join(format!("services-{}.yaml", size.services));
            if let Err(e) = fs::create_dir_all(&dir).and_then(|()| fs::write(&file, &yaml)) {
                eprintln!("writing {}: {e}", file.display());
            }
        }
        let started = Instant::now();
        let plan = match plan::load_str(Path::new("bench-services.yaml"), &yaml) {
            Ok(plan) => plan,
            Err(e) => {
                eprintln!(
                    "{} Services: the generated case is invalid: {e}",
                    size.services
                );
                failed = true;
                continue;
            }
        };
        let planning = started.elapsed();
        for &mode in &modes {
            let name = scenario_name(size.services, mode);
            match bench.run(&size, &plan, mode) {
                Ok(row) => rows.push(row),
                Err(e) => {
                    eprintln!("{name}: {e}");
                    failed = true;
                }
            }
        }
        sizes_done.push(SizeFacts {
            services: size.services,
            yaml_bytes: yaml.len(),
            planning,
            peak_rss_kib: peak_rss_kib(),
        });
    }

    print_tables(&rows, &sizes_done);
    if failed {
        std::process::exit(1);
    }
}

fn scenario_name(services: usize, mode: ProxyMode) -> String {
    format!("{services} Services, {mode}")
}

/// The case: see the module documentation.
fn case_yaml(services: usize) -> String {
    let mut y = String::new();
    y.push_str("name: services benchmark\n");
    y.push_str("nodes: [node1, node2]\n");
    y.push_str("pods:\n");
    y.push_str("  - { name: client, node: node1 }\n");
    for pod in ENDPOINTS {
        let _ = writeln!(
            y,
            "  - {{ name: {pod}, node: node2, labels: {{ app: web }}, listen: [8080/tcp] }}"
        );
    }
    y.push_str("services:\n");
    for i in 1..=services {
        let _ = writeln!(
            y,
            "  - {{ name: {}, selector: {{ app: web }}, ports: [{{ port: 80, targetPort: 8080 }}] }}",
            service_name(i)
        );
    }
    y.push_str("flows:\n");
    for pod in ENDPOINTS {
        let _ = writeln!(
            y,
            "  - {{ name: direct-{pod}, from: client, to: '{pod}:8080', expect: {{ reach: {pod}, seenSource: client }} }}"
        );
    }
    let reach = ENDPOINTS.join(", ");
    for (flow, i) in [("first", 1), ("last", services)] {
        let _ = writeln!(
            y,
            "  - {{ name: {flow}, from: client, to: 'svc/{}:80', expect: {{ reach: [{reach}], seenSource: client }} }}",
            service_name(i)
        );
    }
    y
}

fn service_name(i: usize) -> String {
    format!("svc-{i:05}")
}

/// Facts of one Service count, whatever the mode.
struct SizeFacts {
    services: usize,
    yaml_bytes: usize,
    planning: Duration,
    peak_rss_kib: Option<u64>,
}

/// The medians of one Service count in one mode.
struct Row {
    services: usize,
    mode: ProxyMode,
    rounds: usize,
    lines: usize,
    bytes: usize,
    render: Duration,
    apply: Duration,
    direct_before: Duration,
    direct_after: Duration,
    first_flow: Duration,
    to_first: Duration,
    to_last: Duration,
    teardown: Duration,
}

/// The samples of one Service count in one mode.
#[derive(Default)]
struct Samples {
    render: Vec<Duration>,
    apply: Vec<Duration>,
    direct_before: Vec<Duration>,
    direct_after: Vec<Duration>,
    first_flow: Vec<Duration>,
    to_first: Vec<Duration>,
    to_last: Vec<Duration>,
    teardown: Vec<Duration>,
}

struct Bench {
    /// A netlink socket in the sandbox's own namespace (the main thread never changes
    /// namespace), where the canaries of [`Bench::settle`] live.
    home: Netlink,
}

impl Bench {
    fn new() -> Bench {
        Bench {
            home: Netlink::open().expect("netlink socket in the sandbox"),
        }
    }

    fn run(&mut self, size: &Size, plan: &Plan, mode: ProxyMode) -> Result<Row, String> {
        let name = scenario_name(size.services, mode);
        let flow = |flow: &str| -> Result<&FlowPlan, String> {
            plan.flows
                .iter()
                .find(|f| f.name == flow)
                .ok_or_else(|| format!("the case has no flow {flow}"))
        };
        let direct: Vec<&FlowPlan> = ENDPOINTS
            .iter()
            .map(|pod| flow(&format!("direct-{pod}")))
            .collect::<Result<_, _>>()?;
        let (first, last) = (flow("first")?, flow("last")?);
        let table: &ServiceTable = plan
            .proxy
            .iter()
            .find(|t| t.node_name == "node1")
            .ok_or("the plan has no ServiceTable for node1")?;
        let render = |t: &ServiceTable| match mode {
            ProxyMode::Iptables => iptables::render(t),
            ProxyMode::Nftables => nftables::render(t),
        };

        let mut s = Samples::default();
        eprintln!("{name}: rendering");
        arm_watchdog();
        let text = render(table);
        let (lines, bytes) = (text.lines().count(), text.len());
        if let Some(dir) = std::env::var_os("PODPATH_BENCH_DUMPS") {
            let file = Path::new(&dir).join(format!("services-{}-{mode}.txt", size.services));
            fs::create_dir_all(&dir)
                .and_then(|()| fs::write(&file, &text))
                .map_err(|e| format!("writing {}: {e}", file.display()))?;
        }
        drop(text);
        for _ in 0..size.rounds.max(5) {
            let started = Instant::now();
            let text = render(table);
            s.render.push(started.elapsed());
            drop(std::hint::black_box(text));
        }

        let proxy = BenchProxy(mode);
        for round in 1..=size.rounds {
            eprintln!("{name}: round {round} of {}", size.rounds);
            arm_watchdog();
            let cluster = Cluster::build(&plan.topology).map_err(|e| format!("build: {e}"))?;
            // Direct flows before any rule: they also resolve every neighbour on the path, so
            // the first flow through a Service below finds them resolved.
            for i in 0..size.flows.max(ENDPOINTS.len()) {
                s.direct_before
                    .push(probe(&cluster, plan, direct[i % direct.len()])?);
            }
            arm_watchdog();
            let started = Instant::now();
            cluster
                .apply_proxy(&proxy, std::slice::from_ref(table))
                .map_err(|e| format!("apply: {e}"))?;
            s.apply.push(started.elapsed());
            eprintln!("{name}: applied node1's rules in {}", ms(started.elapsed()));
            arm_watchdog();
            s.first_flow.push(probe(&cluster, plan, last)?);
            eprintln!(
                "{name}: first flow in {}",
                ms(*s.first_flow.last().unwrap())
            );
            for i in 0..size.flows {
                s.to_first.push(probe(&cluster, plan, first)?);
                s.to_last.push(probe(&cluster, plan, last)?);
                s.direct_after
                    .push(probe(&cluster, plan, direct[i % direct.len()])?);
            }
            arm_watchdog();
            let started = Instant::now();
            cluster.teardown().map_err(|errors| {
                let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                format!("teardown: {}", errors.join("; "))
            })?;
            eprintln!("{name}: teardown returned after {}", ms(started.elapsed()));
            support::settle(&mut self.home)?;
            s.teardown.push(started.elapsed());
            eprintln!(
                "{name}: kernel cleanup done after {}",
                ms(started.elapsed())
            );
        }

        Ok(Row {
            services: size.services,
            mode,
            rounds: size.rounds,
            lines,
            bytes,
            render: median(&s.render),
            apply: median(&s.apply),
            direct_before: median(&s.direct_before),
            direct_after: median(&s.direct_after),
            first_flow: median(&s.first_flow),
            to_first: median(&s.to_first),
            to_last: median(&s.to_last),
            teardown: median(&s.teardown),
        })
    }
}

/// The builtin proxy of `mode` with a longer limit: the same rendering, the same program and
/// arguments (`IptablesProxy` and `NftablesProxy` in `netns_runtime::proxy::driver`), but
/// [`APPLY_LIMIT`] instead of 30 s.
struct BenchProxy(ProxyMode);

impl ServiceProxy for BenchProxy {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn apply(&self, node: &Netns, table: &ServiceTable) -> Result<(), ProxyError> {
        let (rules, program, args): (String, &str, &[&str]) = match self.0 {
            ProxyMode::Iptables => (
                iptables::render(table),
                "iptables-restore",
                &["-w", "5", "--noflush"],
            ),
            ProxyMode::Nftables => (nftables::render(table), "nft", &["-f", "-"]),
        };
        tool::run(node, program, args, Some(rules.as_bytes()), APPLY_LIMIT)
            .map(drop)
            .map_err(|source| ProxyError::Tool {
                node: table.node_name.clone(),
                proxy: self.name().to_string(),
                source,
            })
    }

    fn rule_tables(&self) -> Vec<netns_runtime::stack::RuleTable> {
        self.0.builtin().rule_tables()
    }
}

/// Sends `flow` once; the time the probe took when it was answered as the flow expects.
fn probe(cluster: &Cluster, plan: &Plan, flow: &FlowPlan) -> Result<Duration, String> {
    let outcome = cluster.probe(&flow.from, probe_target(flow), PROBE_TIMEOUT);
    let verdict = judge(flow, &plan.topology, std::slice::from_ref(&outcome));
    match outcome {
        Outcome::Answered { elapsed, .. } if verdict.passed => Ok(elapsed),
        _ => Err(format!("flow {}:\n{}", flow.name, verdict.render(flow))),
    }
}

fn print_tables(rows: &[Row], sizes: &[SizeFacts]) {
    println!(
        "| Services | mode | rounds | rendered (node1) | render | apply (node1) | teardown + kernel cleanup |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} lines, {} | {} | {} | {} |",
            thousands(r.services),
            r.mode,
            r.rounds,
            thousands(r.lines),
            mib(r.bytes),
            ms(r.render),
            ms(r.apply),
            ms(r.teardown),
        );
    }
    println!();
    println!(
        "| Services | mode | direct, no rules | direct, with rules | first flow after apply (last Service) | to the first Service | to the last Service |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            thousands(r.services),
            r.mode,
            ms(r.direct_before),
            ms(r.direct_after),
            ms(r.first_flow),
            ms(r.to_first),
            ms(r.to_last),
        );
    }
    println!();
    println!("| Services | case YAML | planning (`load_str`) | peak RSS of podpath |");
    println!("| ---: | ---: | ---: | ---: |");
    for f in sizes {
        println!(
            "| {} | {} | {} | {} |",
            thousands(f.services),
            mib(f.yaml_bytes),
            ms(f.planning),
            f.peak_rss_kib
                .map(|k| format!("{:.0} MiB", k as f64 / 1024.0))
                .unwrap_or_else(|| "?".into()),
        );
    }
}

/// Resets `VmHWM` to the current RSS (`clear_refs` value 5, Linux 4.0 and later).
fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_kib() -> Option<u64> {
    fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
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

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 10_000.0 {
        format!("{:.0} s", d.as_secs_f64())
    } else if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn mib(bytes: usize) -> String {
    if bytes < 1 << 20 {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
