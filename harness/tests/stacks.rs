//! The stack files shipped in `harness/stacks/`, and stack files that are wrong or whose
//! driver fails, run through the real `podpath` binary (and the `cases` test target): what
//! passes, what is ignored and why, what fails and how it says so, and that nothing is left on
//! the host.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};

mod run_support;

use run_support::{Outcome, check, no_sandbox, podpath, run, summary, text, workspace, write};

fn scratch(name: &str) -> PathBuf {
    run_support::scratch("stacks", name)
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("host_gw_exec_passes_cross_node_cases", host_gw_exec),
        Trial::test(
            "host_gw_exec_ignores_a_source_only_flannel_assigns",
            host_gw_exec_nodeport,
        ),
        Trial::test("no_network_fails_cross_node_flows_saying_why", no_network),
        Trial::test(
            "an_exec_attach_chooses_addresses_and_the_plan_learns_them",
            exec_attach,
        ),
        Trial::test(
            "a_stack_that_does_not_masquerade_ignores_flows_to_the_outside",
            no_masquerade,
        ),
        Trial::test(
            "an_unknown_key_is_located_and_nothing_is_built",
            unknown_key,
        ),
        Trial::test(
            "a_bad_driver_name_is_located_and_nothing_is_built",
            bad_driver,
        ),
        Trial::test(
            "cargo_test_on_a_stack_ignores_snapshots_with_the_reason",
            cargo_test_on_stack,
        ),
        Trial::test(
            "a_failing_exec_network_names_layer_program_node_status_and_stderr",
            exec_fails,
        ),
        Trial::test(
            "a_hanging_exec_network_is_killed_after_its_timeout",
            exec_hangs,
        ),
    ];
    let conclusion = libtest_mimic::run(&args, trials);
    // Each test removes its own scratch directory when it passes; what is left is a failure's.
    let _ = std::fs::remove_dir(
        std::env::temp_dir().join(format!("podpath-stacks-{}", std::process::id())),
    );
    conclusion.exit_code()
}

/// What podpath must never change: the host's namespaces and links.
fn host_state() -> String {
    run_support::host_state(&["ip netns list", "ip -o link show"])
}

const CROSS_NODE: [&str; 3] = [
    "cases/cross-node-vxlan.yaml",
    "cases/cross-node-host-gw.yaml",
    "cases/three-nodes.yaml",
];

fn host_gw_exec() -> Outcome {
    let reports = scratch("host-gw-reports");
    let mut cases = CROSS_NODE.to_vec();
    // The script masquerades as flanneld --ip-masq does: pods reach the outside as their node.
    cases.push("cases/services/pod-to-outside.yaml");
    let out = run(
        Path::new("harness/stacks/host-gw-exec.yaml"),
        &cases,
        &reports,
    );
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    check(out.status.success(), || format!("{stdout}{stderr}"))?;
    check(
        stderr.contains("stack host-gw-exec (harness/stacks/host-gw-exec.yaml): pod attach bridge (builtin); node network exec ./host-gw-exec.sh;"),
        || format!("the stack is not described on stderr:\n{stderr}"),
    )?;
    // The VXLAN case's tcp flow expects flannel.1 on the way: ignored, with the reason.
    let reason = "ignored cross-node-vxlan::tcp: hop `node1/flannel.1 out src=pod-a dst=pod-b:8080` (cases/cross-node-vxlan.yaml:24:11) names node1/flannel.1, which stack host-gw-exec's drivers do not make on node1 (they make: eth0, cni0, ";
    check(stdout.contains(reason), || {
        format!("missing {reason:?} in:\n{stdout}")
    })?;
    check(!stdout.contains("ok   cross-node-vxlan::tcp"), || {
        format!("a flow needing VXLAN passed:\n{stdout}")
    })?;
    for flow in [
        "cross-node-vxlan::udp",
        "cross-node-vxlan::icmp",
        "cross-node-host-gw::tcp",
        "cross-node-host-gw::udp",
        "three-nodes::node1-to-node2",
        "three-nodes::node2-to-node3",
        "three-nodes::node3-to-node1",
        "three-nodes::node1-to-node3-udp",
        "three-nodes::by-address",
        "services/pod-to-outside::tcp",
        "services/pod-to-outside::udp",
        "services/pod-to-outside::pod-to-pod-keeps-source",
        "services/pod-to-outside::no-route-to-the-pods",
    ] {
        check(stdout.contains(&format!("ok   {flow}: ")), || {
            format!("{flow} did not pass:\n{stdout}")
        })?;
    }
    check(
        stdout.contains("ok   services/pod-to-outside::tcp: answered by external")
            && stdout.contains("(node1)"),
        || format!("pod-to-outside is not masqueraded to node1:\n{stdout}"),
    )?;
    check(summary(&stdout) == Some((15, 0, 1)), || {
        format!("expected 15 passed, 0 failed, 1 ignored:\n{stdout}")
    })?;
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}

/// The exec attach gives pods addresses from the top of each node's subnet (.250 down), not
/// what podpath plans (.2 up): flows, Services, cluster DNS and hops by role follow what it
/// chose, and a case's fixed address is honoured.
fn exec_attach() -> Outcome {
    let reports = scratch("exec-attach-reports");
    let out = run(
        Path::new("harness/stacks/exec-attach.yaml"),
        &[
            "cases/same-node.yaml",
            "cases/three-nodes.yaml",
            "cases/services/clusterip.yaml",
            "cases/dns/names.yaml",
        ],
        &reports,
    );
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    check(out.status.success(), || format!("{stdout}{stderr}"))?;
    // The server saw the address the attach gave the client, not the planned 10.244.1.2.
    check(
        stdout.contains("ok   same-node::tcp: answered by server")
            && stdout.contains("which saw source 10.244.1.250:"),
        || format!("the client's learned address is not what the server saw:\n{stdout}"),
    )?;
    // web-2's address is fixed by the case (10.244.2.50): the attach was told and gave it.
    check(stdout.contains("ok   three-nodes::by-address: "), || {
        format!("the fixed address was not honoured:\n{stdout}")
    })?;
    // Services and names lead to the learned endpoints.
    for flow in [
        "clusterip::iptables::cross-node",
        "clusterip::nftables::cross-node",
        "names::iptables::same-namespace-short-name",
    ] {
        // Trial names may carry the case's directory (`services/clusterip::...`) or not.
        let ran = stdout.lines().any(|l| {
            (l.starts_with("ok   ") || l.starts_with("ignored "))
                && l.contains(&format!("{flow}: "))
        });
        check(ran, || {
            format!("{flow} neither passed nor was ignored:\n{stdout}")
        })?;
    }
    check(!stdout.contains("FAIL "), || {
        format!("a flow failed:\n{stdout}")
    })?;
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}

fn host_gw_exec_nodeport() -> Outcome {
    let reports = scratch("host-gw-nodeport-reports");
    let out = run(
        Path::new("harness/stacks/host-gw-exec.yaml"),
        &["cases/services/nodeport.yaml"],
        &reports,
    );
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    check(out.status.success(), || format!("{stdout}{stderr}"))?;
    // kube-proxy masquerades with the address of the device the packet leaves by: flannel.1's
    // 10.244.3.0 on the builtin stack, eth0's on a host-gw one.
    for mode in ["iptables", "nftables"] {
        let want = format!(
            "ignored services/nodeport::{mode}::via-a-node-without-endpoint: the flow expects source 10.244.3.0 (cases/services/nodeport.yaml:"
        );
        check(stdout.contains(&want), || {
            format!("missing {want:?} in:\n{stdout}")
        })?;
        check(
            stdout
                .contains("node3's flannel.1 address, which only the builtin node network assigns"),
            || stdout.clone(),
        )?;
    }
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}

fn no_masquerade() -> Outcome {
    let dir = scratch("no-masquerade");
    let script = workspace().join("harness/stacks/host-gw-exec.sh");
    let stack = format!(
        "name: host-gw-no-masq\nnodeNetwork:\n  driver: exec\n  command: [{}]\n  env: {{ HOST_GW_MASQUERADE: \"false\" }}\n  masquerade: false\n",
        script.display()
    );
    let path = write(&dir, "stack.yaml", &stack, false);
    let out = run(
        &path,
        &["cases/services/pod-to-outside.yaml"],
        &dir.join("reports"),
    );
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    check(out.status.success(), || format!("{stdout}{stderr}"))?;
    let why = "the flow leaves the cluster for the external host, which has no route to the pods and answers only a masqueraded flow, and stack host-gw-no-masq's node network does not masquerade (masquerade: false)";
    for flow in ["tcp", "udp", "ping", "closed-port"] {
        let want = format!("ignored services/pod-to-outside::{flow}: {why}");
        check(stdout.contains(&want), || {
            format!("missing {want:?} in:\n{stdout}")
        })?;
    }
    check(summary(&stdout) == Some((2, 0, 4)), || stdout.clone())?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn no_network() -> Outcome {
    let reports = scratch("no-network-reports");
    let out = run(
        Path::new("harness/stacks/no-network.yaml"),
        &CROSS_NODE,
        &reports,
    );
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    check(out.status.code() == Some(1), || format!("{stdout}{stderr}"))?;
    let failed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .collect();
    check(failed.len() == 9, || {
        format!("expected the 9 flows between nodes to fail:\n{stdout}")
    })?;
    check(!stdout.lines().any(|l| l.starts_with("ok ")), || {
        format!("a flow between nodes passed without a node network:\n{stdout}")
    })?;
    // Every failure says why.
    let why = "stack:         stack no-network has no node network (nodeNetwork: none): nothing connects the nodes' pod subnets";
    check(stdout.matches(why).count() == failed.len(), || {
        format!("not every failure says {why:?}:\n{stdout}")
    })?;
    check(
        stdout.contains(&format!("{why} (web-1 is on node1, web-2 on node2)")),
        || format!("the reason names the pods' nodes:\n{stdout}"),
    )?;
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}

/// Runs the whole suite on a stack file that is wrong: exit 2, the located error, and nothing
/// built (no sandbox entered, no trial, no namespace on the host).
fn rejected(name: &str, stack: &str, located: &str, message: &str) -> Outcome {
    let dir = scratch(name);
    let path = write(&dir, "bad.yaml", stack, false);
    let before = host_state();
    let start = Instant::now();
    let out = podpath()
        .arg("run")
        .arg("--stack")
        .arg(&path)
        .arg("cases/")
        .arg("--reports")
        .arg(dir.join("reports"))
        .output()
        .unwrap();
    let took = start.elapsed();
    let (stdout, stderr) = text(&out);
    check(out.status.code() == Some(2), || {
        format!("exit {:?}:\n{stdout}{stderr}", out.status)
    })?;
    let want = format!("{}:{located}: ", path.display());
    check(stderr.contains(&want), || {
        format!("expected {want:?} in: {stderr}")
    })?;
    check(stderr.contains(message), || {
        format!("expected {message:?} in: {stderr}")
    })?;
    check(stdout.is_empty(), || format!("a trial ran:\n{stdout}"))?;
    check(!stderr.contains("podpath: stack "), || {
        format!("the run started:\n{stderr}")
    })?;
    check(took < Duration::from_secs(2), || {
        format!("took {took:?}: something was built")
    })?;
    check(!dir.join("reports/junit.xml").exists(), || {
        "a report was written".into()
    })?;
    check(host_state() == before, || "the host changed".into())?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn unknown_key() -> Outcome {
    rejected(
        "unknown-key",
        "name: typo\nnodeNetwork:\n  driver: exec\n  command: [./host-gw-exec.sh]\n  timout: 5s\n",
        "5:3",
        "timout",
    )
}

fn bad_driver() -> Outcome {
    rejected(
        "bad-driver",
        "name: weave\npodAttach: weave\n",
        "2:12",
        "unknown podAttach driver `weave`: expected builtin, calico, exec, cni, none",
    )
}

/// `PODPATH_STACK=harness/stacks/host-gw-exec.yaml cargo test --test cases -- FILTER`, as a
/// user types it at the workspace root.
fn cargo_test_on_stack() -> Outcome {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let reports = scratch("cargo-test-reports");
    let out = Command::new(cargo)
        .current_dir(workspace())
        .args([
            "test",
            "-p",
            "podpath",
            "--test",
            "cases",
            "--",
            "cross-node-host-gw::",
        ])
        .env("PODPATH_STACK", "harness/stacks/host-gw-exec.yaml")
        .env("PODPATH_REPORTS", &reports)
        .env_remove("CI")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    check(out.status.success(), || format!("{stdout}{stderr}"))?;
    if stderr.contains("every trial is ignored") {
        return Ok(()); // No sandbox here.
    }
    check(
        stderr.contains("podpath: stack host-gw-exec (")
            && stderr.contains("/harness/stacks/host-gw-exec.yaml): "),
        || format!("the stack is not named:\n{stderr}"),
    )?;
    // libtest pads trial names: compare lines with their spaces squeezed.
    let lines: Vec<String> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for want in [
        "test cross-node-host-gw::tcp ... ok",
        "test cross-node-host-gw::udp ... ok",
        "test cross-node-host-gw::snapshot::node1 ... ignored",
        "test cross-node-host-gw::snapshot::node2 ... ignored",
    ] {
        check(lines.iter().any(|l| l == want), || {
            format!("missing {want:?} in:\n{stdout}")
        })?;
    }
    check(stdout.contains("2 passed; 0 failed; 2 ignored"), || {
        stdout.clone()
    })?;
    // The reason of each ignored trial is in the report.
    let junit = std::fs::read_to_string(reports.join("junit.xml")).map_err(|e| e.to_string())?;
    let doc = roxmltree::Document::parse(&junit).map_err(|e| e.to_string())?;
    let reason = "snapshots record the builtin stack's tables (and a builtin Calico stack's, for the Calico cases), and stack host-gw-exec is not the builtin one";
    for node in ["node1", "node2"] {
        let name = format!("snapshot::{node}");
        let skipped = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .find(|n| n.attribute("name").is_some_and(|a| a.ends_with(&name)))
            .and_then(|n| n.children().find(|c| c.has_tag_name("skipped")))
            .and_then(|s| s.attribute("message"));
        check(skipped == Some(reason), || {
            format!("{name}: skipped {skipped:?}, not {reason:?}:\n{junit}")
        })?;
    }
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}

/// Runs `cases/cross-node-host-gw.yaml` on an exec node network running `script`, and checks
/// the run fails within `bound`, each flow with a message containing every one of `want`, and
/// leaves nothing on the host.
fn exec_failure(name: &str, stack: &str, script: &str, bound: Duration, want: &[&str]) -> Outcome {
    let dir = scratch(name);
    write(&dir, "network.sh", script, true);
    let path = write(&dir, "stack.yaml", stack, false);
    let marker = format!("{name}-{}", std::process::id());
    let before = host_state();
    let start = Instant::now();
    let out = podpath()
        .arg("run")
        .arg("--stack")
        .arg(&path)
        .arg("cases/cross-node-host-gw.yaml")
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
    let failed = stdout
        .lines()
        .filter(|l| l.starts_with("FAIL cross-node-host-gw::"))
        .count();
    check(failed == 2, || format!("both flows fail:\n{stdout}"))?;
    let failure = stdout
        .split("\ncross-node-host-gw::tcp:\n")
        .nth(1)
        .unwrap_or_default();
    run_support::failed_cleanly(failure, &stdout, want, &marker, &before, &host_state())?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn exec_fails() -> Outcome {
    exec_failure(
        "exec-fails",
        "name: broken\nnodeNetwork: { driver: exec, command: [./network.sh, '{node}'] }\n",
        "#!/bin/sh\necho \"cannot program $1: no route to the moon\" >&2\nexit 1\n",
        Duration::from_secs(15),
        &[
            "building the cluster of cases/cross-node-host-gw.yaml on stack broken failed: ",
            "node network `./network.sh` for node node1: exit code 1; its stderr:\ncannot program node1: no route to the moon",
        ],
    )
}

fn exec_hangs() -> Outcome {
    exec_failure(
        "exec-hangs",
        "name: stuck\nnodeNetwork:\n  driver: exec\n  command: [./network.sh]\n  timeout: 1s\n",
        "#!/bin/sh\necho starting >&2\nsleep 30\n",
        Duration::from_secs(15),
        &[
            "building the cluster of cases/cross-node-host-gw.yaml on stack stuck failed: ",
            "node network `./network.sh` for node node1: killed after 1s without finishing",
        ],
    )
}
