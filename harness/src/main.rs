//! The `podpath` command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use netns_runtime::Cluster;
use netns_runtime::proxy::driver::ProxyMode;
use podpath::builtin_suite;
use podpath::journey_render;
use podpath::plan::Plan;
use podpath::report::{ArtifactPolicy, ReportSink, TrialOutcome, TrialRecord};
use podpath::run_output::{Format, RunOutput};
use podpath::snapshot::{self, Snapshots};
use podpath::stack::Stack;
use podpath::suite::{self, CaseRun};

#[derive(Parser)]
#[command(
    name = "podpath",
    version,
    about = "Kubernetes pod-network conformance on real network namespaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build each case's cluster, run its flows and judge them.
    Run {
        /// Case files or directories of cases [default: cases/]
        paths: Vec<PathBuf>,
        /// Only run flows whose `<case>::<flow>` name contains this
        #[arg(long)]
        filter: Option<String>,
        /// Where the JUnit report (junit.xml) and the flows' artifact directories go
        #[arg(long, value_name = "DIR", default_value = "reports")]
        reports: PathBuf,
        /// Which flows get an artifact directory: failing, all or none
        #[arg(long, value_name = "WHICH", default_value = "failing")]
        artifacts: ArtifactPolicy,
        /// The implementation under test: a stack file (docs/implementations.md) [default:
        /// $PODPATH_STACK, or the builtin stack]
        #[arg(long, value_name = "FILE")]
        stack: Option<PathBuf>,
        /// Accept the snapshots this run takes: write every missing or different
        /// `snapshots/*.snap` of the suite (never with CI set)
        #[arg(long)]
        update_snapshots: bool,
        /// Fail, rather than ignore, what cannot run for lack of privileges [default:
        /// $PODPATH_STRICT]. `podpath run` stops with exit 2 when it cannot make its sandbox,
        /// so this changes nothing today; trials the stack cannot answer for stay ignored.
        #[arg(long)]
        strict: bool,
        /// What standard output carries: lines for people (human), or one JSON object per
        /// trial as it ends, then a summary (json)
        #[arg(long, value_name = "FORMAT", default_value = "human")]
        format: Format,
    },
    /// The standard suite built into podpath (what `run` runs where there is no `cases/`).
    Suite {
        #[command(subcommand)]
        command: SuiteCommand,
    },
    /// Print a case's resolved plan (every address, route, neighbour and FDB entry) without
    /// building anything. Needs no privileges.
    Plan {
        /// The case file
        case: PathBuf,
        /// The implementation under test: what the plan leaves to it is said [default:
        /// $PODPATH_STACK, or the builtin stack]
        #[arg(long, value_name = "FILE")]
        stack: Option<PathBuf>,
        /// human, or json: the plan as one JSON object
        #[arg(long, value_name = "FORMAT", default_value = "human")]
        format: Format,
    },
    /// Run a case's flows under observation and print each one's journey: every interface it
    /// crossed, the rules it hit, the DNAT, SNAT and encapsulation, and the way back.
    Trace {
        /// The case file
        case: PathBuf,
        /// Only this flow (by name) [default: every flow of the case]
        #[arg(long)]
        flow: Option<String>,
        /// The service proxy mode (iptables, nftables or none) [default: the case's first mode]
        #[arg(long)]
        proxy: Option<String>,
        /// The implementation under test: a stack file (docs/implementations.md) [default:
        /// $PODPATH_STACK, or the builtin stack]
        #[arg(long, value_name = "FILE")]
        stack: Option<PathBuf>,
    },
    /// Compare a stack with the builtin one, case by case: each node's rule tables where its
    /// service proxy is not builtin, the cluster DNS's answers where its DNS is not. Exits 1
    /// when a difference is not one the docs explain.
    Compare {
        /// Case files or directories [default: cases/]
        paths: Vec<PathBuf>,
        /// The stack to compare with the builtin one (docs/implementations.md)
        #[arg(long, value_name = "FILE")]
        stack: PathBuf,
    },
    /// Build a case's cluster and open a shell inside the sandbox, where `ip netns exec node1 ...`
    /// works. Everything disappears when the shell exits.
    Shell {
        /// The case file
        case: PathBuf,
        /// The service proxy mode to program (iptables, nftables or none) [default: the case's
        /// first mode]
        #[arg(long)]
        proxy: Option<String>,
        /// The implementation under test: a stack file (docs/implementations.md) [default:
        /// $PODPATH_STACK, or the builtin stack]
        #[arg(long, value_name = "FILE")]
        stack: Option<PathBuf>,
        /// Run this command instead of an interactive shell
        #[arg(last = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SuiteCommand {
    /// List the builtin suite's cases: name, flows, service proxy modes.
    List,
    /// Write the builtin suite (cases and snapshots) into DIR, to run or extend there.
    Export {
        /// The directory to write (made if missing; no file in it is overwritten)
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    // Like any Unix filter: `podpath plan case.yaml | head` ends quietly when the pipe closes.
    // SAFETY: restoring the default disposition installs no handler code.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let cli = Cli::parse();
    match cli.command {
        Command::Plan {
            case,
            stack,
            format,
        } => match load_stack(stack.as_deref()) {
            Ok(stack) => plan(case, &stack, format),
            Err(code) => code,
        },
        Command::Suite { command } => suite_command(command),
        Command::Compare { paths, stack } => {
            let stack = match load_stack(Some(&stack)) {
                Ok(stack) => stack,
                Err(code) => return code,
            };
            let paths = if paths.is_empty() {
                vec![PathBuf::from("cases")]
            } else {
                paths
            };
            let cases = match suite::load_on(&paths, &stack) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("podpath: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(code) = enter_sandbox() {
                return code;
            }
            interrupt_with(|sig| eprintln!("podpath compare interrupted by {sig}"));
            eprintln!("podpath: comparing the builtin stack with {stack}");
            let (compared, skipped) = podpath::compare::compare(&cases, &stack);
            print!("{}", podpath::compare::render(&stack, &compared, &skipped));
            if podpath::compare::undocumented(&compared) > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Command::Run {
            paths,
            filter,
            reports,
            artifacts,
            stack,
            update_snapshots,
            strict,
            format,
        } => {
            let _strict = strict || podpath::strict::from_env();
            let stack = match load_stack(stack.as_deref()) {
                Ok(stack) => stack,
                Err(code) => return code,
            };
            // Paths the user gives are the host's: the cases are read and the reports
            // directory opened before the sandbox covers /run and /etc with its own.
            let builtin = paths.is_empty() && !Path::new("cases").is_dir();
            let paths = if builtin {
                vec![PathBuf::from(builtin_suite::ROOT)]
            } else if paths.is_empty() {
                vec![PathBuf::from("cases")]
            } else {
                paths
            };
            let cases = if builtin {
                eprintln!(
                    "podpath: no cases/ here: running the builtin suite \
                     (`podpath suite export DIR` writes it out)"
                );
                builtin_suite::load()
            } else {
                match suite::load_on(&paths, &stack) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("podpath: {e}");
                        return ExitCode::from(2);
                    }
                }
            };
            let snapshots = match open_snapshots(&cases, update_snapshots) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let sink = ReportSink::open(&reports, artifacts).unwrap_or_else(|e| {
                eprintln!(
                    "podpath: warning: reports directory {}: {e}",
                    reports.display()
                );
                ReportSink::new(reports.clone(), artifacts)
            });
            if let Err(code) = enter_sandbox() {
                return code;
            }
            if let Err(e) = sink.begin() {
                eprintln!("podpath: warning: no report in {}: {e}", reports.display());
            }
            let sink = Arc::new(sink);
            let on_signal = sink.clone();
            interrupt_with(move |sig| on_signal.interrupted("podpath", sig.as_str()));
            eprintln!("podpath: {stack}");
            let code = run(&paths, cases, filter, &sink, &stack, &snapshots, format);
            // The report is a by-product: failing to write it is said, but the exit code
            // stays the run's.
            match sink.finish(&format!("podpath on stack {}", stack.name)) {
                Ok(path) => eprintln!("podpath: JUnit report in {}", path.display()),
                Err(e) => eprintln!(
                    "podpath: warning: no JUnit report in {}: {e}",
                    sink.dir().display()
                ),
            }
            code
        }
        Command::Trace {
            case,
            flow,
            proxy,
            stack,
        } => {
            let (stack, loaded) = match load_case_and_stack(&case, proxy.as_deref(), stack) {
                Ok(both) => both,
                Err(code) => return code,
            };
            let what = format!("podpath trace {}", case.display());
            interrupt_with(move |sig| eprintln!("podpath: {what} interrupted by {sig}"));
            trace(case, loaded, flow, stack)
        }
        Command::Shell {
            case,
            proxy,
            stack,
            command,
        } => {
            let (stack, loaded) = match load_case_and_stack(&case, proxy.as_deref(), stack) {
                Ok(both) => both,
                Err(code) => return code,
            };
            let what = format!("podpath shell {}", case.display());
            interrupt_with(move |sig| {
                eprintln!("podpath: {what} interrupted by {sig}; taking its cluster down")
            });
            shell(case, loaded, command, &stack)
        }
    }
}

/// The stack of a run: `--stack FILE`, else `$PODPATH_STACK`, else the builtin stack. Read
/// before the sandbox is entered, so the path means the host's file.
fn load_stack(file: Option<&Path>) -> Result<Arc<Stack>, ExitCode> {
    let loaded = match file {
        Some(file) => Stack::load(file),
        None => Stack::from_env(),
    };
    loaded.map(Arc::new).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

/// A case's plan and the proxy mode `--proxy` picks for it.
type LoadedCase = (Plan, Option<ProxyMode>);

/// For `trace` and `shell`: the stack, the case and its proxy mode, read before the sandbox's
/// private /run and /etc hide the host's, then the sandbox entered.
fn load_case_and_stack(
    case: &Path,
    proxy: Option<&str>,
    stack: Option<PathBuf>,
) -> Result<(Arc<Stack>, LoadedCase), ExitCode> {
    let stack = load_stack(stack.as_deref())?;
    let loaded = load_with_mode(case, proxy)?;
    enter_sandbox()?;
    Ok((stack, loaded))
}

fn enter_sandbox() -> Result<(), ExitCode> {
    netns_runtime::sandbox::enter().map(drop).map_err(|e| {
        eprintln!("podpath: {e}");
        ExitCode::from(2)
    })
}

/// On SIGINT, SIGTERM, SIGHUP or SIGQUIT: `then`, and exit 128 + the signal's number, which
/// takes the sandbox and everything in it down (`netns_runtime::sandbox::on_interrupt`).
fn interrupt_with(then: impl FnOnce(nix::sys::signal::Signal) + Send + 'static) {
    if let Err(e) = netns_runtime::sandbox::on_interrupt(then) {
        eprintln!("podpath: warning: signals will stop podpath without a word: {e}");
    }
}

fn suite_command(command: SuiteCommand) -> ExitCode {
    match command {
        SuiteCommand::List => {
            for case in builtin_suite::load() {
                match &case.plan {
                    Ok(plan) => {
                        let modes: Vec<&str> = plan.proxy_modes.iter().map(|m| m.name()).collect();
                        let modes = if modes.is_empty() {
                            String::new()
                        } else {
                            format!(", service proxy: {}", modes.join(", "))
                        };
                        println!(
                            "{:<36} {} flow{}{modes}  {}",
                            case.id,
                            plan.flows.len(),
                            if plan.flows.len() == 1 { "" } else { "s" },
                            plan.name
                        );
                    }
                    Err(e) => println!("{:<36} invalid: {e}", case.id),
                }
            }
            ExitCode::SUCCESS
        }
        SuiteCommand::Export { dir } => match builtin_suite::export(&dir) {
            Ok(n) => {
                eprintln!(
                    "podpath: wrote the builtin suite ({n} files) to {}; run it with `podpath run {}`",
                    dir.display(),
                    dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("podpath: suite export: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn plan(case: PathBuf, stack: &Stack, format: Format) -> ExitCode {
    match podpath::plan::load_for(&case, stack.datapath()) {
        Ok(plan) => {
            match format {
                Format::Human => {
                    if !stack.is_builtin() {
                        println!("{stack}\n");
                    }
                    print!("{plan}");
                    // What the stack's Calico drivers will make, when it has them.
                    if stack.is_calico() {
                        print!("{}", podpath::stack::show::layout(stack, &plan));
                    }
                    for note in stack.plan_notes() {
                        println!("{note}");
                    }
                }
                Format::Json => println!("{}", podpath::plan_json::plan_json(&plan)),
            }
            podpath::plan_warnings::eprint(&plan);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The snapshots of every suite the cases belong to, opened before the sandbox is entered;
/// `None` for a suite without a `snapshots/` directory (it takes none, unless
/// `--update-snapshots` makes them).
fn open_snapshots(
    cases: &[suite::LoadedCase],
    accept: bool,
) -> Result<BTreeMap<PathBuf, Option<Snapshots>>, ExitCode> {
    let update = snapshot::Update::from_env(accept).map_err(|e| {
        eprintln!("podpath: {e}");
        ExitCode::from(2)
    })?;
    if accept && snapshot::is_ci() {
        eprintln!("podpath: CI is set: --update-snapshots writes nothing, snapshots are checked");
    }
    let mut all = BTreeMap::new();
    for case in cases {
        all.entry(case.root.clone()).or_insert_with(|| {
            let dir = case.root.join("snapshots");
            if builtin_suite::is_builtin(&case.root) {
                Some(Snapshots::builtin())
            } else if dir.is_dir() || (accept && update == snapshot::Update::Always) {
                Some(Snapshots::open(&dir, update))
            } else {
                None
            }
        });
    }
    Ok(all)
}

fn run(
    paths: &[PathBuf],
    cases: Vec<suite::LoadedCase>,
    filter: Option<String>,
    sink: &ReportSink,
    stack: &Arc<Stack>,
    snapshots: &BTreeMap<PathBuf, Option<Snapshots>>,
    format: Format,
) -> ExitCode {
    let (case_count, mut flow_count) = (cases.len(), 0usize);
    let mut total = 0usize;
    // Every trial this run means to run, so that an interrupted run's report lists them.
    for case in &cases {
        if let Ok(plan) = &case.plan {
            for kind in suite::runs_of(&case.id, plan, stack) {
                let store = snapshots.get(&case.root).and_then(Option::as_ref);
                for name in plan.flows.iter().map(|f| kind.flow_name(f)).chain(
                    snapshot_trials(&kind, plan, store)
                        .into_iter()
                        .map(|(_, name)| name),
                ) {
                    if filter.as_ref().is_none_or(|f| name.contains(f.as_str())) {
                        sink.expect(&name, &case.path.display().to_string());
                        total += 1;
                    }
                }
            }
        } else {
            total += 1;
        }
    }
    let mut out = RunOutput::new(format, total);
    for case in cases {
        let plan = match case.plan {
            Ok(p) => p,
            Err(e) => {
                let file = case.path.display().to_string();
                out.invalid(&case.id, &file, &e.to_string());
                sink.record(TrialRecord {
                    name: case.id,
                    file: case.path.display().to_string(),
                    duration: Default::default(),
                    outcome: TrialOutcome::Failed(e.to_string()),
                });
                continue;
            }
        };
        podpath::plan_warnings::eprint(&plan);
        for kind in suite::runs_of(&case.id, &plan, stack) {
            flow_count += plan.flows.len();
            let selected: Vec<usize> = (0..plan.flows.len())
                .filter(|&i| {
                    let name = kind.flow_name(&plan.flows[i]);
                    filter.as_ref().is_none_or(|f| name.contains(f.as_str()))
                })
                .collect();
            let store = snapshots.get(&case.root).and_then(Option::as_ref);
            let selected_snapshots: Vec<(String, String)> = snapshot_trials(&kind, &plan, store)
                .into_iter()
                .filter(|(_, name)| filter.as_ref().is_none_or(|f| name.contains(f.as_str())))
                .collect();
            if selected.is_empty() && selected_snapshots.is_empty() {
                continue;
            }
            // One run at a time: namespaces keep their plain names (node1, pod-a).
            let run = CaseRun::on_stack(plan.clone(), kind.proxy, 0, String::new(), stack.clone())
                .for_case(&case.id);
            // What the stack cannot answer for is reported ignored, with the reason.
            let (selected, skipped): (Vec<usize>, Vec<usize>) = selected
                .into_iter()
                .partition(|&i| kind.ignored.is_none() && run.flow_ignored(i).is_none());
            for i in skipped {
                let name = kind.flow_name(&plan.flows[i]);
                let reason = kind
                    .ignored
                    .clone()
                    .or_else(|| run.flow_ignored(i))
                    .unwrap_or_default();
                out.ignored(&name, &case.path.display().to_string(), &reason);
                sink.record(TrialRecord {
                    name,
                    file: case.path.display().to_string(),
                    duration: Default::default(),
                    outcome: TrialOutcome::Ignored(reason),
                });
            }
            let selected_snapshots = if let Some(reason) = &kind.ignored {
                for (_, name) in selected_snapshots {
                    out.ignored(&name, &case.path.display().to_string(), reason);
                    sink.record(TrialRecord {
                        name,
                        file: case.path.display().to_string(),
                        duration: Default::default(),
                        outcome: TrialOutcome::Ignored(reason.clone()),
                    });
                }
                Vec::new()
            } else {
                selected_snapshots
            };
            if selected.is_empty() && selected_snapshots.is_empty() {
                continue;
            }
            let run = run.with_pending(selected.len() + selected_snapshots.len());
            for i in selected {
                let name = kind.flow_name(&run.plan().flows[i]);
                sink.start(&name);
                out.start(&name);
                let start = Instant::now();
                let options = suite::RunOptions {
                    observe: suite::observe_from_env(),
                    artifacts: sink.artifacts(),
                    rule_texts: false,
                };
                let (failure, observed, change) = match run.run_flow(i, &options) {
                    Ok(r) => (
                        suite::flow_failure(&r, &run.plan().flows[i], &name, sink),
                        Some(r.verdict.observed.to_string()),
                        r.change,
                    ),
                    Err(e) => (Some(e.to_string()), None, None),
                };
                let duration = start.elapsed();
                let file = case.path.display().to_string();
                let outcome = match failure {
                    None => {
                        out.passed_after(
                            &name,
                            &file,
                            observed.as_deref(),
                            duration,
                            change.as_ref(),
                        );
                        TrialOutcome::Passed
                    }
                    Some(text) => {
                        out.failed_after(&name, &file, &text, duration, change.as_ref());
                        TrialOutcome::Failed(text)
                    }
                };
                sink.record(TrialRecord {
                    name,
                    file: case.path.display().to_string(),
                    duration,
                    outcome,
                });
            }
            let input_file = podpath::suite_root::input_file(&case.root, &case.path);
            for ((node, name), store) in selected_snapshots
                .into_iter()
                .zip(store.into_iter().cycle())
            {
                sink.start(&name);
                out.start(&name);
                let start = Instant::now();
                let checked =
                    snapshot::check_node(&run, store, &kind.snapshot_base, &node, &input_file);
                let duration = start.elapsed();
                let file = case.path.display().to_string();
                let outcome = match checked {
                    Ok(checked) => {
                        let detail = match checked {
                            snapshot::Checked::Matched => None,
                            snapshot::Checked::Written(path) => {
                                Some(format!("wrote {}", path.display()))
                            }
                            snapshot::Checked::Pending(message) => Some(message),
                        };
                        out.passed(&name, &file, detail.as_deref(), duration);
                        TrialOutcome::Passed
                    }
                    Err(text) => {
                        out.failed(&name, &file, &text, duration);
                        TrialOutcome::Failed(text)
                    }
                };
                sink.record(TrialRecord {
                    name,
                    file: case.path.display().to_string(),
                    duration,
                    outcome,
                });
            }
        }
    }
    out.finish();
    let (passed, failed, _) = out.counts();
    if passed + failed == 0 {
        // Nothing ran: that is not a suite that passed.
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let why = match (case_count, flow_count, &filter) {
            (0, _, _) => format!("no case in {}", shown.join(", ")),
            (_, 0, _) => format!("no case in {} has a flow", shown.join(", ")),
            (_, _, Some(f)) => format!("no flow matches --filter {f:?}"),
            _ => "no flow was selected".to_string(),
        };
        eprintln!("podpath: nothing ran: {why}");
        return ExitCode::FAILURE;
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The snapshot trials of a run of `plan`: (node, trial name), none when the stack is not
/// the builtin one (snapshots record the builtin stack's tables) or the suite keeps none.
fn snapshot_trials(
    kind: &suite::RunKind,
    plan: &Plan,
    store: Option<&Snapshots>,
) -> Vec<(String, String)> {
    if kind.snapshots_ignored.is_some() || store.is_none() {
        return Vec::new();
    }
    plan.topology
        .nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                format!("{}::snapshot::{}", kind.name, n.name),
            )
        })
        .collect()
}

fn shell(
    case: PathBuf,
    (plan, mode): (Plan, Option<ProxyMode>),
    command: Vec<String>,
    stack: &Stack,
) -> ExitCode {
    let mut cluster = match Cluster::build_with(&plan.topology, "", &stack.drivers()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("podpath: building {}: {e}", case.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(api) = &plan.api
        && let Err(e) = cluster.serve_api(
            api.address,
            api.cluster_ip,
            podpath::api_objects::objects(&plan),
        )
    {
        eprintln!("podpath: serving the API of {}: {e}", case.display());
        return ExitCode::FAILURE;
    }
    // kubectl reaches the API from a node (the sandbox's own namespace is not on the underlay).
    let kubeconfig = topo_first_node(&cluster).and_then(|n| cluster.kubeconfig(&n));
    if let Err(e) = cluster.start_dns() {
        eprintln!("podpath: building {}: {e}", case.display());
        return ExitCode::FAILURE;
    }
    let stem = case
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(mode) = mode
        && let Some(proxy) = stack.proxy_driver(mode, &stem, "", cluster.kubeconfigs())
        && let Err(e) = cluster.run_proxy(proxy, &plan.proxy)
    {
        eprintln!("podpath: programming Services of {}: {e}", case.display());
        return ExitCode::FAILURE;
    }
    let topo = cluster.topology();
    let interactive = command.is_empty();
    if interactive {
        eprintln!(
            "podpath: cluster '{}' is up inside the sandbox (service proxy: {}).",
            plan.name,
            mode.map_or("none", ProxyMode::name)
        );
        eprintln!("  {stack}");
        let names: Vec<&str> = std::iter::once(topo.underlay.netns.as_str())
            .chain(topo.nodes.iter().map(|n| n.name.as_str()))
            .chain(topo.pods.iter().map(|p| p.name.as_str()))
            .collect();
        eprintln!("  namespaces: {}", names.join(" "));
        if let (Some(a), Some(b)) = (topo.pods.first(), topo.pods.last()) {
            eprintln!(
                "  try: ip netns exec {} ping -c1 {}",
                a.name,
                b.eth0.addr.addr()
            );
        }
        if let (Some(api), Some(node)) = (cluster.api(), topo_first_node(&cluster)) {
            eprintln!(
                "  API: {} (KUBECONFIG is set); try: ip netns exec {node} kubectl get nodes,pods,svc,endpointslices -A",
                api.url()
            );
        }
        eprintln!("  exit the shell to take everything down.");
    }
    let (program, args) = if interactive {
        (
            std::env::var("SHELL").unwrap_or_else(|_| "/bin/bash".into()),
            Vec::new(),
        )
    } else {
        (command[0].clone(), command[1..].to_vec())
    };
    // The main thread never left the sandbox's own namespace: the shell starts there.
    let mut child = std::process::Command::new(&program);
    if let Some(path) = &kubeconfig {
        child.env("KUBECONFIG", path);
    }
    let status = child
        .args(&args)
        .env("PODPATH_CLUSTER", &plan.name)
        .env("PS1", format!("[podpath {}] \\w # ", plan.name))
        .status();
    let code = match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            if !interactive {
                eprintln!(
                    "podpath: {program}: {}",
                    netns_runtime::sandbox::describe_status(s)
                );
            }
            ExitCode::from(s.code().unwrap_or(1).clamp(1, 255) as u8)
        }
        Err(e) => {
            eprintln!("podpath: {program}: {e}");
            ExitCode::FAILURE
        }
    };
    if let Err(errors) = cluster.teardown() {
        for e in errors {
            eprintln!("podpath: teardown: {e}");
        }
    }
    code
}

fn topo_first_node(cluster: &Cluster) -> Option<String> {
    cluster.topology().nodes.first().map(|n| n.name.clone())
}

/// The plan of `case` and the mode `--proxy` picks for it ([`proxy_mode`]); on an error,
/// said on standard error, the code to exit with.
fn load_with_mode(case: &Path, proxy: Option<&str>) -> Result<(Plan, Option<ProxyMode>), ExitCode> {
    let plan = podpath::plan::load(case).map_err(|e| {
        eprintln!("{e}");
        ExitCode::FAILURE
    })?;
    let mode = proxy_mode(&plan, proxy)?;
    Ok((plan, mode))
}

/// `--proxy`: a mode by name, `none`, or by default the case's first mode.
fn proxy_mode(plan: &Plan, proxy: Option<&str>) -> Result<Option<ProxyMode>, ExitCode> {
    match proxy {
        None => Ok(plan.proxy_modes.first().copied()),
        Some("none") => Ok(None),
        Some(name) => ProxyMode::parse(name).map(Some).ok_or_else(|| {
            eprintln!("podpath: unknown proxy mode {name:?}: expected iptables, nftables or none");
            ExitCode::from(2)
        }),
    }
}

fn trace(
    case: PathBuf,
    (plan, mode): (Plan, Option<ProxyMode>),
    flow: Option<String>,
    stack: Arc<Stack>,
) -> ExitCode {
    let selected: Vec<usize> = (0..plan.flows.len())
        .filter(|&i| flow.as_ref().is_none_or(|f| plan.flows[i].name == *f))
        .collect();
    if selected.is_empty() {
        let known: Vec<&str> = plan.flows.iter().map(|f| f.name.as_str()).collect();
        eprintln!(
            "podpath: {} has no flow {:?} (flows: {})",
            case.display(),
            flow.unwrap_or_default(),
            known.join(", ")
        );
        return ExitCode::from(2);
    }
    let run = CaseRun::on_stack(
        plan.clone(),
        mode,
        selected.len(),
        String::new(),
        stack.clone(),
    );
    let mode_name = mode.map(ProxyMode::name);
    let mut code = ExitCode::SUCCESS;
    println!("{stack}\n");
    for (n, i) in selected.into_iter().enumerate() {
        let flow = &run.plan().flows[i];
        if n > 0 {
            println!();
        }
        let options = suite::RunOptions {
            observe: true,
            artifacts: ArtifactPolicy::None,
            rule_texts: true,
        };
        match run.run_flow(i, &options) {
            Ok(r) => {
                match (&r.journey, &r.observation) {
                    (Some(j), Some(obs)) => {
                        print!(
                            "{}",
                            journey_render::text(run.plan(), flow, mode_name, j, obs)
                        )
                    }
                    _ => println!("{}: not observed", flow.name),
                }
                println!();
                if let Some(change) = &r.change {
                    println!("cluster:  {}", change.summary());
                }
                print!("{}", r.verdict.render(flow));
                if r.verdict.passed {
                    println!("verdict:  pass");
                } else {
                    println!("verdict:  FAIL");
                    code = ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("podpath: {}: {e}", flow.name);
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}
