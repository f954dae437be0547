//! The conformance suite as tests: every flow of every case under `cases/` is one trial named
//! `<case>::<flow>`, where `<case>` is the case file's path below `cases/` without extension.
//!
//! `PODPATH_CASES` points the suite at another directory (or file) of cases.

use std::path::PathBuf;
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
        let names: Vec<String> = plan
            .flows
            .iter()
            .map(|f| format!("{}::{}", case.id, f.name))
            .collect();
        if let Some(reason) = &unavailable {
            for name in names {
                let reason = reason.clone();
                trials.push(
                    Trial::ignorable_test(name, move || Ok(Completion::ignored_with(reason)))
                        .with_ignored_flag(true),
                );
            }
            continue;
        }
        // Count the flows that will really run, so the cluster goes down after the last one.
        let runs = |name: &String| {
            let probe = Trial::test(name.clone(), || Ok(()));
            !args.list && !args.is_filtered_out(&probe) && !args.is_ignored(&probe)
        };
        let pending = names.iter().filter(|n| runs(n)).count();
        let prefix = suite::netns_prefix(&case.id);
        let run = Arc::new(CaseRun::new(plan, pending, prefix));
        for (index, name) in names.into_iter().enumerate() {
            let run = run.clone();
            trials.push(Trial::test(name, move || {
                let verdict = run.run_flow(index).map_err(Failed::from)?;
                if verdict.passed {
                    Ok(())
                } else {
                    Err(verdict.render(&run.plan.flows[index]).into())
                }
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
