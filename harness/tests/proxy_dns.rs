//! The service proxy drivers `restore` and `exec` and the cluster DNS driver `exec`, run
//! through the real `podpath` binary: a dump of the builtin proxy's rules restored as is passes
//! the case's Service flows, a broken one says where and what the loader said; the real CoreDNS
//! serving the zone file passes the DNS cases; proxy and DNS commands that fail to start, exit
//! early or never become ready fail in bounded time with their output, and leave nothing
//! behind. The real kube-proxy and CoreDNS stacks over the whole suite are in
//! `tests/real_stacks.rs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};

mod run_support;

use run_support::{Outcome, check, no_sandbox, podpath, run, summary, text, write};

fn scratch(name: &str) -> PathBuf {
    run_support::scratch("proxy-dns", name)
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test(
            "a_restored_dump_of_the_builtin_rules_passes_the_service_flows",
            restored_dump,
        ),
        Trial::test(
            "a_broken_dump_names_the_file_the_line_and_what_the_loader_said",
            broken_dump,
        ),
        Trial::test(
            "an_exec_proxy_that_does_not_start_says_so",
            exec_proxy_missing,
        ),
        Trial::test(
            "an_exec_proxy_that_exits_early_fails_with_its_output",
            exec_proxy_exits,
        ),
        Trial::test(
            "an_exec_proxy_never_ready_is_killed_after_its_timeout_and_leaves_nothing",
            exec_proxy_never_ready,
        ),
        Trial::test(
            "coredns_serving_the_zone_file_passes_the_dns_cases",
            coredns_zonefile,
        ),
        Trial::test(
            "an_exec_dns_that_exits_early_fails_with_its_output",
            exec_dns_exits,
        ),
        Trial::test(
            "an_exec_dns_that_never_answers_is_killed_after_its_timeout_and_leaves_nothing",
            exec_dns_silent,
        ),
        Trial::test(
            "compare_finds_a_restored_dump_identical_to_the_builtin",
            compare_restored,
        ),
        Trial::test(
            "compare_finds_only_documented_differences_with_coredns_zone_files",
            compare_coredns_zonefile,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = std::fs::remove_dir(run_support::scratch_root("proxy-dns"));
    conclusion.exit_code()
}

/// What podpath must never change: the host's namespaces and links.
fn host_state() -> String {
    run_support::host_state(&["ip netns list", "ip -o link show"])
}

const CLUSTERIP: &str = "cases/services/clusterip.yaml";

/// Dumps the builtin proxy's rules of `cases/services/clusterip.yaml` per node into `dir`:
/// `<node>.rules` (iptables-save) and `<node>.nft` (the kube-proxy nftables table), through
/// `podpath shell` as a user would.
fn dump_builtin(dir: &Path) -> Result<bool, String> {
    for (proxy, file, dump) in [
        ("iptables", "rules", "iptables-save"),
        ("nftables", "nft", "nft list table ip kube-proxy"),
    ] {
        let script = format!(
            "for n in node1 node2; do ip netns exec $n {dump} > {}/$n.{file} || exit 1; done",
            dir.display()
        );
        let out = podpath()
            .args([
                "shell", CLUSTERIP, "--proxy", proxy, "--", "sh", "-c", &script,
            ])
            .output()
            .unwrap();
        if no_sandbox(&out) {
            return Ok(false);
        }
        if !out.status.success() {
            let (o, e) = text(&out);
            return Err(format!("dumping with podpath shell failed:\n{o}{e}"));
        }
    }
    Ok(true)
}

fn restored_dump() -> Outcome {
    let dir = scratch("restored");
    if !dump_builtin(&dir)? {
        return Ok(());
    }
    for (mode, ext, other) in [
        ("iptables", "rules", "nftables"),
        ("nftables", "nft", "iptables"),
    ] {
        let stack = write(
            &dir,
            &format!("replay-{mode}.yaml"),
            &format!(
                "serviceProxy: {{ driver: restore, mode: {mode}, ruleset: '{{node}}.{ext}' }}\n"
            ),
            false,
        );
        let out = run(&stack, &[CLUSTERIP], &dir.join("reports"));
        let (stdout, stderr) = text(&out);
        check(out.status.success(), || format!("{stdout}{stderr}"))?;
        check(
            stderr.contains(&format!(
                "service proxy restore {}/{{node}}.{ext} ({mode} rules)",
                std::fs::canonicalize(&dir).unwrap().display()
            )),
            || format!("the stack is not described:\n{stderr}"),
        )?;
        for flow in ["same-node", "cross-node"] {
            check(
                stdout.contains(&format!("ok   services/clusterip::{mode}::{flow}: ")),
                || format!("{mode} {flow} did not pass:\n{stdout}"),
            )?;
            check(
                stdout.contains(&format!(
                    "ignored services/clusterip::{other}::{flow}: the case runs in proxy mode {other}, and stack replay-{mode}'s service proxy programs {mode} rules (serviceProxy mode: {mode})"
                )),
                || format!("{other} {flow} is not ignored with the reason:\n{stdout}"),
            )?;
        }
        check(summary(&stdout) == Some((2, 0, 2)), || stdout.clone())?;
    }
    // Without the rules the flows cannot pass: an empty ruleset restores nothing.
    write(&dir, "empty.rules", "", false);
    let stack = write(
        &dir,
        "empty.yaml",
        "serviceProxy: { driver: restore, mode: iptables, ruleset: empty.rules }\n",
        false,
    );
    let out = run(&stack, &[CLUSTERIP], &dir.join("reports"));
    let (stdout, _) = text(&out);
    check(summary(&stdout) == Some((0, 2, 2)), || {
        format!("with no rules the Service flows must fail:\n{stdout}")
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn broken_dump() -> Outcome {
    let dir = scratch("broken");
    if !dump_builtin(&dir)? {
        return Ok(());
    }
    let dir = std::fs::canonicalize(&dir).unwrap();
    // node1's dumps broken: a jump to a chain that does not exist; a syntax error at line 5.
    let rules = std::fs::read_to_string(dir.join("node1.rules")).unwrap();
    let rules = rules.replacen(
        "-A KUBE-SERVICES ",
        "-A KUBE-SERVICES -j NO-SUCH-CHAIN\n-A KUBE-SERVICES ",
        1,
    );
    std::fs::write(dir.join("node1.rules"), rules).unwrap();
    let nft = std::fs::read_to_string(dir.join("node1.nft")).unwrap();
    let mut lines: Vec<&str> = nft.lines().collect();
    lines.insert(4, "\tchain oops {{ nonsense }");
    std::fs::write(dir.join("node1.nft"), lines.join("\n")).unwrap();
    for (mode, ext, want) in [
        (
            "iptables",
            "rules",
            vec![
                format!(
                    "node node1: service proxy restore: ruleset {}/node1.rules: iptables-restore refused it (exit code 2):\n{}/node1.rules:",
                    dir.display(),
                    dir.display()
                ),
                "Chain 'NO-SUCH-CHAIN' does not exist".to_string(),
            ],
        ),
        (
            "nftables",
            "nft",
            vec![
                format!(
                    "node node1: service proxy restore: ruleset {}/node1.nft: nft refused it (exit code 1):\n{}/node1.nft:5:",
                    dir.display(),
                    dir.display()
                ),
                "Error: syntax error".to_string(),
            ],
        ),
        (
            "nftables",
            "missing",
            vec![format!(
                "ruleset {}/node1.missing: cannot read it: No such file or directory",
                dir.display()
            )],
        ),
    ] {
        let stack = write(
            &dir,
            "broken.yaml",
            &format!(
                "serviceProxy: {{ driver: restore, mode: {mode}, ruleset: '{{node}}.{ext}' }}\n"
            ),
            false,
        );
        let out = run(&stack, &[CLUSTERIP], &dir.join("reports"));
        let (stdout, stderr) = text(&out);
        check(out.status.code() == Some(1), || format!("{stdout}{stderr}"))?;
        for w in &want {
            check(stdout.contains(w.as_str()), || {
                format!("missing {w:?} in:\n{stdout}")
            })?;
        }
        check(summary(&stdout) == Some((0, 2, 2)), || stdout.clone())?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs `case` on `stack` (a stack file's text, in a scratch directory with `script` as
/// `proxy.sh`), and checks the run fails within `bound`, its first failure containing every
/// one of `want`, and that nothing it started is left.
fn exec_failure(
    name: &str,
    case: &str,
    stack: &str,
    script: &str,
    bound: Duration,
    want: &[&str],
) -> Outcome {
    let dir = scratch(name);
    write(&dir, "proxy.sh", script, true);
    let path = write(&dir, "stack.yaml", stack, false);
    let marker = format!("{name}-{}", std::process::id());
    let before = host_state();
    let start = Instant::now();
    let out = podpath()
        .arg("run")
        .arg("--stack")
        .arg(&path)
        .arg(case)
        .arg("--reports")
        .arg(dir.join("reports"))
        .env("PODPATH_TEST_MARKER", &marker)
        .output()
        .unwrap();
    let took = start.elapsed();
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    check(out.status.code() == Some(1), || format!("{stdout}{stderr}"))?;
    check(took < bound, || format!("took {took:?} (bound {bound:?})"))?;
    let failure = stdout.split("\nfailures:\n").nth(1).unwrap_or_default();
    run_support::failed_cleanly(failure, &stdout, want, &marker, &before, &host_state())?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn exec_proxy_missing() -> Outcome {
    exec_failure(
        "proxy-missing",
        CLUSTERIP,
        "name: nothing\nserviceProxy: { driver: exec, mode: iptables, command: [./no-such-proxy, '{node}'] }\n",
        "",
        Duration::from_secs(20),
        &[
            "programming Services of cases/services/clusterip.yaml failed: node node1: service proxy `./no-such-proxy`: could not start: No such file or directory",
        ],
    )
}

fn exec_proxy_exits() -> Outcome {
    exec_failure(
        "proxy-exits",
        CLUSTERIP,
        "name: early\nserviceProxy: { driver: exec, mode: nftables, command: [./proxy.sh, '{node}', '{clusterCIDR}', '{mode}'] }\n",
        "#!/bin/sh\necho \"proxy for $1 ($2, $3): cannot reach the API\" >&2\nexit 3\n",
        Duration::from_secs(20),
        &[
            // Whichever node's ended first.
            ": service proxy `./proxy.sh`: it ended (exit code 3) before its rules were programmed; its output:\nproxy for node",
            " (10.244.0.0/16, nftables): cannot reach the API",
        ],
    )
}

fn exec_proxy_never_ready() -> Outcome {
    // Ignores SIGTERM: it is killed after the grace period; its child (sleep) with it.
    exec_failure(
        "proxy-never-ready",
        CLUSTERIP,
        "name: stuck\nserviceProxy:\n  driver: exec\n  mode: iptables\n  command: [./proxy.sh, '{config}']\n  config: proxy.sh\n  timeout: 3s\n",
        "#!/bin/sh\ntrap '' TERM\necho \"waiting with config $1\"\nsleep 300\n",
        Duration::from_secs(30),
        &[
            "node node1: service proxy `./proxy.sh`: not ready after 3s: the node's iptables rules lack 10.96.0.2:80/tcp (default/near), 10.96.0.3:80/tcp (default/far), 10.96.0.1:443/tcp (default/kubernetes:https); its output:\nwaiting with config /run/podpath/proxy/",
        ],
    )
}

/// The pinned CoreDNS, or why its trial cannot run (a failure with `CI` set).
fn coredns() -> Result<Option<PathBuf>, String> {
    let imp = podpath::implementations::get("coredns").ok_or("no coredns pinned")?;
    let path = imp.binary("coredns");
    if path.exists() {
        return Ok(Some(path));
    }
    if std::env::var_os("CI").is_some() {
        return Err(format!(
            "{} missing: scripts/setup builds it",
            path.display()
        ));
    }
    eprintln!(
        "podpath: {} missing (scripts/setup builds it): not run",
        path.display()
    );
    Ok(None)
}

fn coredns_zonefile() -> Outcome {
    if coredns()?.is_none() {
        return Ok(());
    }
    let reports = scratch("coredns-zonefile");
    let out = run(
        Path::new("harness/stacks/coredns-zonefile.yaml"),
        &["cases/dns/"],
        &reports,
    );
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    check(out.status.success(), || format!("{stdout}{stderr}"))?;
    check(
        stderr.contains("cluster DNS exec ") && stderr.contains("/coredns -conf {corefile}"),
        || format!("the stack is not described:\n{stderr}"),
    )?;
    check(summary(&stdout) == Some((30, 0, 0)), || stdout.clone())?;
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}

fn exec_dns_exits() -> Outcome {
    exec_failure(
        "dns-exits",
        "cases/dns/names.yaml",
        "name: nodns\nclusterDns: { driver: exec, command: [./proxy.sh, '{zonefile}'] }\n",
        "#!/bin/sh\necho \"no server here; zone $1\" >&2\nexit 1\n",
        Duration::from_secs(20),
        &[
            "on stack nodns failed: cluster DNS `./proxy.sh` for pod coredns: it ended (exit code 1) before it answered; its output:\nno server here; zone /run/podpath/dns/coredns/cluster.zone",
        ],
    )
}

fn compare_restored() -> Outcome {
    let dir = scratch("compare-restored");
    if !dump_builtin(&dir)? {
        return Ok(());
    }
    let stack = write(
        &dir,
        "replay.yaml",
        "serviceProxy: { driver: restore, mode: iptables, ruleset: '{node}.rules' }\n",
        false,
    );
    let out = podpath()
        .arg("compare")
        .arg("--stack")
        .arg(&stack)
        .arg(CLUSTERIP)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    check(out.status.success(), || format!("{stdout}{stderr}"))?;
    check(
        stdout.contains("2 compared, 2 the same, 0 different (- builtin, + stack replay): 0 documented, 0 undocumented; 1 skipped"),
        || stdout.clone(),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn compare_coredns_zonefile() -> Outcome {
    if coredns()?.is_none() {
        return Ok(());
    }
    let out = podpath()
        .args([
            "compare",
            "--stack",
            "harness/stacks/coredns-zonefile.yaml",
            "cases/dns/",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    check(out.status.success(), || format!("{stdout}{stderr}"))?;
    check(
        stdout.contains(" documented, 0 undocumented; 0 skipped"),
        || stdout.clone(),
    )?;
    check(
        stdout.contains(" x the file plugin adds the zone's NS to positive answers (docs/dns.md)"),
        || stdout.clone(),
    )?;
    Ok(())
}

fn exec_dns_silent() -> Outcome {
    exec_failure(
        "dns-silent",
        "cases/dns/names.yaml",
        "name: silent\nclusterDns: { driver: exec, command: [./proxy.sh], timeout: 1s }\n",
        "#!/bin/sh\ntrap '' TERM\necho listening nowhere\nsleep 300\n",
        Duration::from_secs(30),
        &[
            "on stack silent failed: cluster DNS `./proxy.sh` for pod coredns: not ready after 1s: web.default.svc.cluster.local. A? asked of ",
            ":53 got TIMEOUT",
            "; its output:\nlistening nowhere",
        ],
    )
}
