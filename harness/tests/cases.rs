//! The conformance suite as tests. Every flow of every case under `cases/` is one trial named
//! `<case>::<flow>`, or `<case>::<mode>::<flow>` for a case that runs a service proxy (once per
//! proxy mode), where `<case>` is the case file's path below its suite's root (the nearest
//! directory holding `snapshots/`, `podpath::suite_root`) without extension.
//!
//! Every node of every run also gets a snapshot trial (`<case>[::<mode>]::snapshot::<node>`)
//! comparing its normalised rule tables, routes, neighbours and FDB entries with
//! `cases/snapshots/<case>[__<mode>]__<node>.snap`. With `CI=true` nothing is written and a
//! difference fails with a diff; locally a missing or changed snapshot fails and leaves a
//! `.snap.new` beside it, which `cargo insta review` accepts (`podpath::snapshot`).
//!
//! `PODPATH_CASES` points the suite at another directory (or file) of cases; a relative path is
//! taken from where cargo was invoked (the shell's `PWD`, when inside the workspace), else from
//! the workspace root, as is `PODPATH_REPORTS`. With `PODPATH_STRICT=1` trials that cannot run
//! for lack of privileges fail instead of being ignored (those the stack cannot answer for stay
//! ignored).
//!
//! Every trial that runs, or is ignored, is recorded; when the run is over the JUnit report goes
//! to `$PODPATH_REPORTS/junit.xml` (default `reports/junit.xml` in the workspace), and
//! `PODPATH_ARTIFACTS` (`failing`, `all` or `none`) selects the flows that get an artifact
//! directory there (docs/reports.md). `--list` writes nothing. A report that cannot be written
//! is a warning: the exit code stays the suite's.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use podpath::report::{ArtifactPolicy, ReportSink, TrialOutcome, TrialRecord};
use podpath::suite::{self, CaseRun};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    // cargo runs this in `harness/`: a relative path is taken from where cargo was invoked
    // (`podpath::suite_root::resolve_invoked`).
    let pwd = std::env::var_os("PWD").map(PathBuf::from);
    let from_env = |var: &str| {
        std::env::var_os(var).map(|p| {
            podpath::suite_root::resolve_invoked(Path::new(&p), pwd.as_deref(), &workspace())
        })
    };
    let root = from_env("PODPATH_CASES")
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cases"));
    // The stack file too is read before the sandbox, so its path is the host's.
    // cargo runs this in harness/: a relative path is taken from the workspace root when it
    // is not found from here, so `PODPATH_STACK=harness/stacks/x.yaml cargo test` works there.
    let stack = stack_from_env();
    let stack = match stack {
        Ok(stack) => Arc::new(stack),
        Err(e) => {
            eprintln!("podpath: {}: {e}", podpath::stack::STACK_ENV);
            std::process::exit(2);
        }
    };
    // Strict (`PODPATH_STRICT=1`, CI): a trial that cannot run for lack of privileges fails.
    let strict = podpath::strict::from_env();
    let cases = match suite::load_on(std::slice::from_ref(&root), &stack) {
        Ok(cases) => cases,
        Err(e) => {
            eprintln!("podpath: reading {}: {e}", root.display());
            std::process::exit(2);
        }
    };
    let snapshot_dir = podpath::suite_root::of(&root).join("snapshots");
    // The snapshots are the host's too (under /run or /etc the sandbox has its own): opened
    // now and reached through the descriptor.
    let update = match podpath::snapshot::Update::from_env(false) {
        Ok(update) => update,
        Err(e) => {
            eprintln!("podpath: {e}");
            std::process::exit(2);
        }
    };
    let snapshot_store = Arc::new(podpath::snapshot::Snapshots::open(&snapshot_dir, update));
    let artifacts = match ArtifactPolicy::from_env() {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("podpath: {}: {e}", podpath::report::ARTIFACTS_ENV);
            std::process::exit(2);
        }
    };
    let reports = from_env("PODPATH_REPORTS").unwrap_or_else(|| workspace().join("reports"));
    // The cases are read and the reports directory opened before the sandbox covers /run and
    // /etc with its own: paths are the host's. `--list` writes nothing.
    let sink = if args.list {
        ReportSink::new(reports, artifacts)
    } else {
        ReportSink::open(&reports, artifacts).unwrap_or_else(|e| {
            eprintln!(
                "podpath: warning: reports directory {}: {e}",
                reports.display()
            );
            ReportSink::new(reports.clone(), artifacts)
        })
    };
    // Before any thread exists: move into the private sandbox.
    let sandbox = netns_runtime::sandbox::enter();
    let recorder = Recorder {
        args: &args,
        sink: Arc::new(sink),
    };
    if !args.list {
        eprintln!("podpath: {stack}");
        let sink = recorder.sink.clone();
        if let Err(e) = netns_runtime::sandbox::on_interrupt(move |sig| {
            sink.interrupted("podpath", sig.as_str())
        }) {
            eprintln!("podpath: warning: signals will stop the suite without a report: {e}");
        }
    }
    let unavailable = sandbox.err().map(|e| e.to_string());
    if let Some(reason) = &unavailable {
        if strict {
            eprintln!("podpath: every trial fails (PODPATH_STRICT): {reason}");
        } else {
            eprintln!("podpath: every trial is ignored: {reason}");
        }
    }

    let mut trials = Vec::new();
    let case_count = cases.len();
    // The suite's own trials: flows and invalid cases (snapshots only check what flows build).
    let mut suite_trials = 0usize;
    for case in cases {
        let plan = match case.plan {
            Ok(plan) => plan,
            Err(e) => {
                // An invalid case is a failing trial that says where and why; nothing is built.
                let message = e.to_string();
                suite_trials += 1;
                trials
                    .push(recorder.trial(case.id, &case.path, move || Err(Failed::from(message))));
                continue;
            }
        };
        podpath::plan_warnings::eprint(&plan);
        for kind in suite::runs_of(&case.id, &plan, &stack) {
            let flows: Vec<String> = plan.flows.iter().map(|f| kind.flow_name(f)).collect();
            suite_trials += flows.len();
            let nodes: Vec<String> = plan.topology.nodes.iter().map(|n| n.name.clone()).collect();
            let snapshots: Vec<String> = nodes
                .iter()
                .map(|n| format!("{}::snapshot::{n}", kind.name))
                .collect();
            if let Some(reason) = &unavailable
                && strict
            {
                // Privileges are missing, not something the stack cannot do: strict fails.
                for name in flows.into_iter().chain(snapshots) {
                    let message = format!(
                        "not run for lack of privileges, and PODPATH_STRICT is set: {reason}"
                    );
                    trials
                        .push(recorder.trial(name, &case.path, move || Err(Failed::from(message))));
                }
                continue;
            }
            if let Some(reason) = unavailable.as_ref().or(kind.ignored.as_ref()) {
                for name in flows.into_iter().chain(snapshots) {
                    trials.push(recorder.ignored(name, &case.path, reason));
                }
                continue;
            }
            let run = CaseRun::on_stack(
                plan.clone(),
                kind.proxy,
                0,
                kind.netns_prefix.clone(),
                stack.clone(),
            )
            .for_case(&case.id);
            // What the stack cannot answer for is reported ignored, with the reason.
            let flow_ignored: Vec<Option<String>> =
                (0..flows.len()).map(|i| run.flow_ignored(i)).collect();
            let (nodes, snapshots) = match &kind.snapshots_ignored {
                Some(reason) => {
                    for name in snapshots {
                        trials.push(recorder.ignored(name, &case.path, reason));
                    }
                    (Vec::new(), Vec::new())
                }
                None => (nodes, snapshots),
            };
            // Count the trials that will really run, so the cluster goes down after the last.
            let runs = |name: &String| {
                let probe = Trial::test(name.clone(), || Ok(()));
                !args.list && !args.is_filtered_out(&probe) && !args.is_ignored(&probe)
            };
            let pending = flows
                .iter()
                .zip(&flow_ignored)
                .filter(|(_, ignored)| ignored.is_none())
                .map(|(name, _)| name)
                .chain(&snapshots)
                .filter(|n| runs(n))
                .count();
            let run = Arc::new(run.with_pending(pending));
            for (index, (name, ignored)) in flows.into_iter().zip(flow_ignored).enumerate() {
                if let Some(reason) = ignored {
                    trials.push(recorder.ignored(name, &case.path, &reason));
                    continue;
                }
                let run = run.clone();
                let sink = recorder.sink.clone();
                let trial = name.clone();
                trials.push(recorder.trial(name, &case.path, move || {
                    let options = suite::RunOptions {
                        observe: suite::observe_from_env(),
                        artifacts: sink.artifacts(),
                        rule_texts: false,
                    };
                    let r = run.run_flow(index, &options).map_err(Failed::from)?;
                    match suite::flow_failure(&r, &run.plan().flows[index], &trial, &sink) {
                        None => Ok(()),
                        Some(text) => Err(text.into()),
                    }
                }));
            }
            for (node, name) in nodes.into_iter().zip(snapshots) {
                let run = run.clone();
                let store = snapshot_store.clone();
                let base = kind.snapshot_base.clone();
                let input_file = podpath::suite_root::input_file(&case.root, &case.path);
                trials.push(recorder.trial(name, &case.path, move || {
                    match podpath::snapshot::check_node(&run, &store, &base, &node, &input_file)? {
                        podpath::snapshot::Checked::Matched => {}
                        podpath::snapshot::Checked::Written(path) => {
                            eprintln!("podpath: wrote {}", path.display())
                        }
                        podpath::snapshot::Checked::Pending(message) => {
                            eprintln!("podpath: {message}")
                        }
                    }
                    Ok(())
                }));
            }
        }
    }
    if std::env::var_os("PODPATH_CASES").is_some() && suite_trials == 0 {
        // Pointed at a suite that has nothing to run: that is not a suite that passed.
        let what = if case_count == 0 {
            "no case"
        } else {
            "no flow"
        };
        eprintln!(
            "podpath: nothing to run: PODPATH_CASES={} has {what}",
            root.display()
        );
        return ExitCode::FAILURE;
    }
    // A filter that matches nothing here (`cargo test some_unit_test`) writes no report, as
    // `--list` does not; a run that will run something is the latest from now on.
    let reporting = !args.list && trials.iter().any(|t| !args.is_filtered_out(t));
    if reporting && let Err(e) = recorder.sink.begin() {
        eprintln!(
            "podpath: warning: no report in {}: {e}",
            recorder.sink.dir().display()
        );
    }
    let conclusion = libtest_mimic::run(&args, trials);
    let ran = conclusion.num_passed + conclusion.num_failed + conclusion.num_ignored;
    if !args.list && ran == 0 {
        // libtest's convention (`cargo test somefilter` across every test binary): a filter
        // that matches nothing here is exit 0, but said.
        eprintln!(
            "podpath: no trial of {} matches the filter: nothing ran",
            root.display()
        );
    }
    if reporting {
        match recorder
            .sink
            .finish(&format!("podpath on stack {}", stack.name))
        {
            Ok(path) => eprintln!("podpath: JUnit report in {}", path.display()),
            Err(e) => eprintln!(
                "podpath: warning: no JUnit report in {}: {e}",
                recorder.sink.dir().display()
            ),
        }
    }
    conclusion.exit_code()
}

/// The workspace root (`harness/..`).
fn workspace() -> PathBuf {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR"));
    harness.parent().unwrap_or(harness).to_path_buf()
}

/// Makes trials whose outcome and duration go into the run's report.
struct Recorder<'a> {
    args: &'a Arguments,
    sink: Arc<ReportSink>,
}

impl Recorder<'_> {
    /// A trial that records how it ended when it runs. A panic (a snapshot that differs) is
    /// recorded as the failure libtest-mimic would report.
    fn trial(
        &self,
        name: String,
        file: &Path,
        body: impl FnOnce() -> Result<(), Failed> + Send + 'static,
    ) -> Trial {
        let sink = self.sink.clone();
        let file = report_path(file);
        let record_name = name.clone();
        let probe = Trial::test(name.clone(), || Ok(()));
        if !self.args.list && !self.args.is_filtered_out(&probe) && !self.args.is_ignored(&probe) {
            self.sink.expect(&name, &file);
        }
        Trial::test(name, move || {
            sink.start(&record_name);
            let start = Instant::now();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
                .unwrap_or_else(|panic| Err(Failed::from(panic_message(panic.as_ref()))));
            let outcome = match &result {
                Ok(()) => TrialOutcome::Passed,
                Err(failed) => TrialOutcome::Failed(failed.message().unwrap_or_default().into()),
            };
            sink.record(TrialRecord {
                name: record_name,
                file,
                duration: start.elapsed(),
                outcome,
            });
            result
        })
    }

    /// A trial that is not run, for `reason`. libtest-mimic does not call an ignored trial
    /// unless asked to (`--ignored`, `--include-ignored`), so it is recorded here when it will
    /// not be called, and by itself when it is.
    fn ignored(&self, name: String, file: &Path, reason: &str) -> Trial {
        let sink = self.sink.clone();
        let record = TrialRecord {
            name: name.clone(),
            file: report_path(file),
            duration: Default::default(),
            outcome: TrialOutcome::Ignored(reason.to_string()),
        };
        let reason = reason.to_string();
        let trial = Trial::ignorable_test(name, {
            let record = record.clone();
            move || {
                sink.record(record);
                Ok(Completion::ignored_with(reason))
            }
        })
        .with_ignored_flag(true);
        if self.args.is_ignored(&trial) && !self.args.is_filtered_out(&trial) {
            self.sink.record(record);
        }
        trial
    }
}

/// A case file as the report names it: relative to the workspace when it is in it (as CI
/// systems link files), otherwise as given.
fn report_path(file: &Path) -> String {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    file.strip_prefix(&workspace)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// What libtest-mimic says of a panicking trial.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let payload = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied());
    match payload {
        Some(payload) => format!("test panicked: {payload}"),
        None => "test panicked".to_string(),
    }
}

/// The stack named by `PODPATH_STACK`, or the builtin one. cargo runs this target in the
/// package's directory (`harness/`), not where `cargo test` was typed, so a relative path
/// that is not found there is taken from the workspace root (`PODPATH_STACK=harness/stacks/...
/// cargo test` from the checkout).
fn stack_from_env() -> Result<podpath::stack::Stack, podpath::diag::CaseError> {
    match std::env::var_os(podpath::stack::STACK_ENV) {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            let path = if path.is_relative() && !path.exists() && workspace().join(&path).exists() {
                workspace().join(path)
            } else {
                path
            };
            podpath::stack::Stack::load(&path)
        }
        _ => Ok(podpath::stack::Stack::builtin()),
    }
}
