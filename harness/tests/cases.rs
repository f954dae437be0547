//! The conformance suite as tests. Every flow of every case under `cases/` is one trial named
//! `<case>::<flow>`, or `<case>::<mode>::<flow>` for a case that runs a service proxy (once per
//! proxy mode), where `<case>` is the case file's path below `cases/` without extension.
//!
//! Every node of every run also gets a snapshot trial (`<case>[::<mode>]::snapshot::<node>`)
//! comparing its normalised rule tables, routes, neighbours and FDB entries with
//! `cases/snapshots/<case>[__<mode>]__<node>.snap`. With `CI=true` nothing is written and a
//! difference fails with a diff; locally `cargo insta review` accepts changes.
//!
//! `PODPATH_CASES` points the suite at another directory (or file) of cases.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use podpath::suite::{self, CaseRun};

fn main() {
    // First, before any thread exists: move into the private sandbox.
    let sandbox = netns_runtime::sandbox::enter();
    let args = Arguments::from_args();
    let root = std::env::var_os("PODPATH_CASES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cases"));
    let cases = match suite::load(std::slice::from_ref(&root)) {
        Ok(cases) => cases,
        Err(e) => {
            eprintln!("podpath: reading {}: {e}", root.display());
            std::process::exit(2);
        }
    };
    let snapshot_dir = if root.is_dir() {
        root.join("snapshots")
    } else {
        root.parent().unwrap_or(Path::new(".")).join("snapshots")
    };
    let unavailable = sandbox.err().map(|e| e.to_string());
    if let Some(reason) = &unavailable {
        eprintln!("podpath: every trial is ignored: {reason}");
    }

    let mut trials = Vec::new();
    for case in cases {
        let plan = match case.plan {
            Ok(plan) => plan,
            Err(e) => {
                // An invalid case is a failing trial that says where and why; nothing is built.
                let message = e.to_string();
                trials.push(Trial::test(case.id, move || Err(Failed::from(message))));
                continue;
            }
        };
        for kind in suite::runs_of(&case.id, &plan) {
            let flows: Vec<String> = plan.flows.iter().map(|f| kind.flow_name(f)).collect();
            let nodes: Vec<String> = plan.topology.nodes.iter().map(|n| n.name.clone()).collect();
            let snapshots: Vec<String> = nodes
                .iter()
                .map(|n| format!("{}::snapshot::{n}", kind.name))
                .collect();
            if let Some(reason) = &unavailable {
                for name in flows.into_iter().chain(snapshots) {
                    let reason = reason.clone();
                    trials.push(
                        Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
                            .with_ignored_flag(true),
                    );
                }
                continue;
            }
            // Count the trials that will really run, so the cluster goes down after the last.
            let runs = |name: &String| {
                let probe = Trial::test(name.clone(), || Ok(()));
                !args.list && !args.is_filtered_out(&probe) && !args.is_ignored(&probe)
            };
            let pending = flows.iter().chain(&snapshots).filter(|n| runs(n)).count();
            let run = Arc::new(CaseRun::new(
                plan.clone(),
                kind.proxy,
                pending,
                kind.netns_prefix.clone(),
            ));
            for (index, name) in flows.into_iter().enumerate() {
                let run = run.clone();
                trials.push(Trial::test(name, move || {
                    let verdict = run
                        .run_flow(index, suite::observe_from_env())
                        .map_err(Failed::from)?
                        .verdict;
                    if verdict.passed {
                        Ok(())
                    } else {
                        Err(verdict.render(&run.plan.flows[index]).into())
                    }
                }));
            }
            for (node, name) in nodes.into_iter().zip(snapshots) {
                let run = run.clone();
                let dir = snapshot_dir.clone();
                let snap = format!("{}__{node}", kind.snapshot_base);
                let file = case.path.clone();
                trials.push(Trial::test(name, move || {
                    let text = run.node_snapshot(&node).map_err(Failed::from)?;
                    let missing = netns_runtime::proxy::normalise::missing_jump_targets(&text);
                    if !missing.is_empty() {
                        return Err(format!(
                            "the ruleset of {node} jumps to chains that do not exist: {}",
                            missing.join(", ")
                        )
                        .into());
                    }
                    let mut settings = insta::Settings::clone_current();
                    settings.set_snapshot_path(dir);
                    settings.set_prepend_module_to_snapshot(false);
                    settings.set_omit_expression(true);
                    settings.set_input_file(file);
                    settings.bind(|| insta::assert_snapshot!(snap, text));
                    Ok(())
                }));
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
