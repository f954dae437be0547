//! The real implementations as stacks over the whole suite, through the `podpath` binary, as
//! `docs/implementations.md` tabulates them: CoreDNS serving the zone files, kube-proxy in
//! iptables and nftables modes and CoreDNS's kubernetes plugin against the served API, and
//! kube-proxy's IPVS mode, ignored with what the kernel lacks. A run passes when nothing fails;
//! its figures are printed.
//!
//! A binary that is not built is reported ignored, with what builds it (a failure with `CI`
//! set).

use std::path::Path;
use std::process::ExitCode;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

mod run_support;

use run_support::{no_sandbox, run, summary, text};

/// Each stack and the pinned implementation it runs.
const STACKS: [(&str, &str); 5] = [
    ("coredns-zonefile", "coredns"),
    ("kube-proxy-iptables", "kube-proxy"),
    ("kube-proxy-nftables", "kube-proxy"),
    ("coredns", "coredns"),
    ("kube-proxy-ipvs", "kube-proxy"),
];

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let trials = STACKS
        .iter()
        .map(|&(stack, imp)| {
            Trial::ignorable_test(format!("{stack}_over_the_suite"), move || suite(stack, imp))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = std::fs::remove_dir_all(run_support::scratch_root("real-stacks"));
    conclusion.exit_code()
}

fn suite(stack: &str, imp: &str) -> Result<Completion, Failed> {
    let pinned = podpath::implementations::get(imp).ok_or("not pinned")?;
    let binary = pinned.binary(imp);
    if !binary.exists() {
        let reason = format!("{} missing: scripts/setup builds it", binary.display());
        if std::env::var_os("CI").is_some() {
            return Err(reason.into());
        }
        return Ok(Completion::ignored_with(reason));
    }
    let ipvs = stack.ends_with("ipvs");
    let reports = run_support::scratch("real-stacks", stack);
    let file = format!("harness/stacks/{stack}.yaml");
    let cases: &[&str] = if ipvs {
        &["cases/services/"]
    } else {
        &["cases/"]
    };
    let out = run(Path::new(&file), cases, &reports);
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(Completion::ignored_with("no sandbox can be made here"));
    }
    let Some((passed, failed, ignored)) = summary(&stdout) else {
        return Err(format!("no summary:\n{stdout}{stderr}").into());
    };
    eprintln!("{stack}: {passed} passed, {failed} failed, {ignored} ignored");
    if failed > 0 || !out.status.success() {
        return Err(format!("{stdout}{stderr}").into());
    }
    if ipvs {
        // Every trial of a case with Services ignored, each with the IPVS reason (the flows of
        // cases without Services, pod-to-outside, run as on any stack).
        let reason = "ignored services/";
        let want = "stack kube-proxy-ipvs's service proxy runs in IPVS mode, ";
        let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with(reason)).collect();
        if lines.len() != ignored || lines.iter().any(|l| !l.contains(want)) {
            return Err(
                format!("IPVS trials are not all ignored with the reason:\n{stdout}").into(),
            );
        }
    } else if passed == 0 {
        return Err(format!("nothing passed:\n{stdout}").into());
    }
    let _ = std::fs::remove_dir_all(&reports);
    Ok(Completion::Completed)
}
