//! The `cni` pod attach run through the real `podpath` binary: each real plugin stack of
//! `harness/stacks/cni-*.yaml` on a few cases, version negotiation, and small fake plugins of
//! our own that misbehave (crash, hang, print a non-result, return a CNI error, an address
//! outside the node's range, or nothing): each fails the run within a bounded time naming the
//! plugin, the command, the pod, the exit status and stderr; DEL is still attempted; nothing
//! is left on the host.
//!
//! A stack whose plugin directory is missing is reported ignored (the reason on stderr), and
//! with `CI=true` it fails instead.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Trial};

mod run_support;

use run_support::{Outcome, check, no_sandbox, run, summary, text, workspace, write};

fn scratch(name: &str) -> PathBuf {
    run_support::scratch("cni", name)
}

const DEBIAN: &str = "/usr/lib/cni";

fn impl_dir(name: &str) -> PathBuf {
    podpath::implementations::cache_dir().join(name)
}

/// A trial that needs plugin directories: ignored (with the reason on stderr) when one is
/// missing, failed then under `CI=true`.
fn needing(name: impl Into<String>, dirs: Vec<PathBuf>, f: fn() -> Outcome) -> Trial {
    let name = name.into();
    let missing: Vec<String> = dirs
        .iter()
        .filter(|d| !d.is_dir())
        .map(|d| d.display().to_string())
        .collect();
    if missing.is_empty() {
        return Trial::test(name, f);
    }
    let why = format!(
        "{name}: plugin directory {} missing (scripts/setup builds the upstream ones; Debian's come from golang-github-containernetworking-plugins)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Trial::test(name, move || Err(format!("CI=true: {why}").into()));
    }
    eprintln!("ignored {why}");
    Trial::test(name, f).with_ignored_flag(true)
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let debian = || vec![PathBuf::from(DEBIAN)];
    let trials = vec![
        needing(
            "debian_bridge_passes_pods_services_and_names",
            debian(),
            debian_bridge,
        ),
        needing(
            "debian_ptp_passes_and_ignores_hops_naming_cni0",
            debian(),
            debian_ptp,
        ),
        needing(
            "upstream_bridge_with_a_1_1_0_list_passes",
            vec![impl_dir("cni-plugins-v1.10.0")],
            upstream_bridge,
        ),
        needing(
            "flannel_delegating_to_bridge_passes_and_ignores_fixed_addresses",
            vec![impl_dir("flannel-cni-v0.9.1"), PathBuf::from(DEBIAN)],
            flannel,
        ),
        needing(
            "a_fixed_mac_is_passed_to_tuning_and_a_chain_without_it_is_refused",
            debian(),
            fixed_mac,
        ),
        needing(
            "a_list_version_a_plugin_lacks_is_a_clear_error",
            debian(),
            version_lacking,
        ),
        Trial::test("a_crashing_plugin_fails_the_run_saying_why", fake_crash),
        Trial::test("a_hanging_plugin_is_killed_after_its_timeout", fake_hang),
        Trial::test(
            "a_plugin_printing_a_non_result_fails_the_run",
            fake_non_result,
        ),
        Trial::test(
            "a_cni_error_is_shown_with_code_msg_and_details",
            fake_cni_error,
        ),
        Trial::test(
            "an_address_outside_the_nodes_range_fails_the_run",
            fake_outside_range,
        ),
        Trial::test(
            "a_plugin_exiting_0_without_a_result_fails_the_run",
            fake_no_result,
        ),
        Trial::test(
            "a_failing_del_is_reported_and_teardown_continues",
            fake_del_fails,
        ),
        Trial::test("a_failing_check_fails_the_build", fake_check_fails),
    ];
    let upstream = || vec![impl_dir("cni-plugins-v1.10.0")];
    let mut trials = trials;
    for (stack, case, _, _) in BROKEN {
        trials.push(needing(
            format!(
                "broken_{}_is_caught_by_{}",
                stack.replace('-', "_"),
                case.replace(['/', '-'], "_")
            ),
            upstream(),
            broken_by_name(stack),
        ));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = std::fs::remove_dir(
        std::env::temp_dir().join(format!("podpath-cni-{}", std::process::id())),
    );
    conclusion.exit_code()
}

/// What the CNI attach must never change: the host's namespaces, links and CNI directories.
fn host_state() -> String {
    run_support::host_state(&[
        "ip netns list",
        "ip -o link show | cut -d' ' -f2",
        "ls -laR /var/lib/cni /etc/cni 2>&1",
    ])
}

const CASES: [&str; 4] = [
    "cases/same-node.yaml",
    "cases/cross-node-vxlan.yaml",
    "cases/services/clusterip.yaml",
    "cases/dns/names.yaml",
];

/// Runs a shipped stack on [`CASES`]: it must succeed with the expected numbers, the named
/// flows passing, and the host untouched.
fn real_stack(
    stack: &str,
    cases: &[&str],
    want: (usize, usize, usize),
    passing: &[&str],
    ignored: &[&str],
) -> Outcome {
    let reports = scratch(&format!("{stack}-reports"));
    let before = host_state();
    let out = run(
        &Path::new("harness/stacks").join(format!("{stack}.yaml")),
        cases,
        &reports,
    );
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    check(out.status.success(), || format!("{stdout}{stderr}"))?;
    check(!stderr.contains("teardown"), || {
        format!("teardown (CNI DEL) reported a problem:\n{stderr}")
    })?;
    for flow in passing {
        check(stdout.contains(&format!("ok   {flow}: ")), || {
            format!("{flow} did not pass:\n{stdout}")
        })?;
    }
    for reason in ignored {
        check(stdout.contains(reason), || {
            format!("missing {reason:?}:\n{stdout}")
        })?;
    }
    check(summary(&stdout) == Some(want), || {
        format!("expected {want:?} (passed, failed, ignored):\n{stdout}")
    })?;
    let after = host_state();
    check(before == after, || {
        format!("the host changed:\nbefore:\n{before}\nafter:\n{after}")
    })?;
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}

fn debian_bridge() -> Outcome {
    let mut cases = CASES.to_vec();
    // web-2's address is fixed by the case: passed on as runtimeConfig.ips to host-local.
    cases.push("cases/three-nodes.yaml");
    real_stack(
        "cni-debian-bridge",
        &cases,
        (24, 0, 0),
        &[
            "same-node::tcp",
            "cross-node-vxlan::tcp",
            "services/clusterip::iptables::cross-node",
            "services/clusterip::nftables::cross-node",
            "dns/names::iptables::same-namespace-short-name",
            "three-nodes::by-address",
        ],
        &[],
    )
}

fn debian_ptp() -> Outcome {
    real_stack(
        "cni-debian-ptp",
        &CASES,
        (18, 0, 1),
        &[
            "same-node::tcp",
            "cross-node-vxlan::udp",
            "services/clusterip::iptables::cross-node",
        ],
        &[
            "ignored cross-node-vxlan::tcp: hop `node1/cni0 in` (cases/cross-node-vxlan.yaml:23:11) names node1/cni0, which stack cni-debian-ptp's drivers do not make on node1",
        ],
    )
}

fn upstream_bridge() -> Outcome {
    real_stack(
        "cni-upstream-bridge",
        &CASES,
        (19, 0, 0),
        &["same-node::tcp", "cross-node-vxlan::tcp"],
        &[],
    )
}

fn flannel() -> Outcome {
    let mut cases = CASES.to_vec();
    cases.push("cases/three-nodes.yaml");
    real_stack(
        "cni-flannel",
        &cases,
        (19, 0, 5),
        &["same-node::tcp", "cross-node-vxlan::tcp"],
        &[
            "ignored three-nodes::by-address: the case fixes pod web-2's address, and no plugin of stack cni-flannel's conflist",
        ],
    )
}

/// A stack file and conflist of the test's own in a scratch directory.
fn stack_with(name: &str, conflist: &str, extra: &str) -> PathBuf {
    let dir = scratch(name);
    write(&dir, "list.conflist", conflist, false);
    write(
        &dir,
        "stack.yaml",
        &format!(
            "name: {name}\npodAttach:\n  driver: cni\n  conflist: list.conflist\n  binDir: [plugins, {DEBIAN}]\n  interfaces: [cni0]\n{extra}"
        ),
        false,
    )
}

/// A case fixing a pod's MAC: on Debian's bridge chain with `tuning` declaring the `mac`
/// capability the pod gets it (podpath refuses a result with another MAC, so passing proves
/// it); on the chain without tuning, where no plugin takes `runtimeConfig.mac`, the build fails
/// saying which MAC was asked for and which was given.
fn fixed_mac() -> Outcome {
    const MAC: &str = "02:00:00:00:01:0a";
    let dir = scratch("fixed-mac");
    let case = std::fs::read_to_string(workspace().join("cases/same-node.yaml"))
        .unwrap()
        .replace(
            "  - { name: client, node: node1 }",
            &format!("  - {{ name: client, node: node1, mac: \"{MAC}\" }}"),
        );
    check(case.contains(MAC), || {
        "same-node.yaml changed its client line".into()
    })?;
    let case = write(&dir, "fixed-mac.yaml", &case, false);
    let case = case.to_str().unwrap();
    let bridge =
        std::fs::read_to_string(workspace().join("harness/stacks/cni-debian-bridge.conflist"))
            .unwrap();
    let tuning = bridge.replace(
        "    { \"type\": \"loopback\" }",
        "    { \"type\": \"tuning\", \"capabilities\": { \"mac\": true } },\n    { \"type\": \"loopback\" }",
    );
    check(tuning != bridge, || {
        "cni-debian-bridge.conflist changed its loopback line".into()
    })?;
    let before = host_state();

    let with = stack_with("mac-tuning", &tuning, "");
    let out = run(&with, &[case], &scratch("mac-tuning-reports"));
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    check(out.status.success(), || format!("{stdout}{stderr}"))?;

    let without = stack_with("mac-bridge", &bridge, "");
    let out = run(&without, &[case], &scratch("mac-bridge-reports"));
    let all = format!("{}{}", text(&out).0, text(&out).1);
    check(!out.status.success(), || {
        format!("it passed without tuning:\n{all}")
    })?;
    let want = format!("the case fixes the pod's MAC to {MAC} (runtimeConfig.mac), and it gave ");
    check(all.contains(&want), || format!("missing {want:?}:\n{all}"))?;
    check(before == host_state(), || "the host changed".into())?;
    for d in [
        dir,
        with.parent().unwrap().into(),
        without.parent().unwrap().into(),
    ] {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}

fn version_lacking() -> Outcome {
    let list =
        std::fs::read_to_string(workspace().join("harness/stacks/cni-debian-bridge.conflist"))
            .unwrap()
            .replace("\"1.0.0\"", "\"1.1.0\"");
    let stack = stack_with("version", &list, "");
    let before = host_state();
    let out = run(
        &stack,
        &["cases/same-node.yaml"],
        &scratch("version-reports"),
    );
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    let all = format!("{stdout}{stderr}");
    check(!out.status.success(), || format!("it passed:\n{all}"))?;
    let want =
        "plugin bridge supports 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0; the list says 1.1.0";
    check(all.contains(want), || format!("missing {want:?}:\n{all}"))?;
    check(before == host_state(), || "the host changed".into())?;
    let _ = std::fs::remove_dir_all(stack.parent().unwrap());
    Ok(())
}

/// A fake plugin `fake` that answers VERSION, logs every command to `calls.log` beside it,
/// succeeds at DEL, and does `add` at ADD; the run on same-node must fail within `limit`
/// saying every one of `want`, DEL must have been attempted, and the host be untouched.
fn fake(name: &str, add: &str, extra: &str, limit: Duration, want: &[&str]) -> Outcome {
    fake_with(name, add, "exit 0", extra, limit, want)
}

/// Like [`fake`], with `del` done at DEL.
fn fake_with(
    name: &str,
    add: &str,
    del: &str,
    extra: &str,
    limit: Duration,
    want: &[&str],
) -> Outcome {
    let list = r#"{"name":"fakenet","cniVersion":"1.0.0","plugins":[{"type":"fake"}]}"#;
    let stack = stack_with(name, list, extra);
    let dir = stack.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    let log = dir.join("calls.log");
    write(
        &dir.join("plugins"),
        "fake",
        &format!(
            "#!/bin/sh\necho \"$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME\" >> {log}\ncase \"$CNI_COMMAND\" in\n  VERSION) echo '{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}}'; exit 0 ;;\n  DEL) {del} ;;\nesac\n{add}\n",
            log = log.display()
        ),
        true,
    );
    let before = host_state();
    let start = Instant::now();
    let out = run(&stack, &["cases/same-node.yaml"], &dir.join("reports"));
    let took = start.elapsed();
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    let all = format!("{stdout}{stderr}");
    check(!out.status.success(), || format!("it passed:\n{all}"))?;
    check(took < limit, || {
        format!("it took {took:?}, more than {limit:?}:\n{all}")
    })?;
    for w in want {
        check(all.contains(w), || format!("missing {w:?}:\n{all}"))?;
    }
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    check(
        calls.contains("ADD podpath-") && calls.contains("DEL podpath-"),
        || format!("ADD then DEL were not both called:\n{calls}"),
    )?;
    let after = host_state();
    check(before == after, || {
        format!("the host changed:\nbefore:\n{before}\nafter:\n{after}")
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

const FAKE: &str = "pod attach `CNI plugin fake (";

fn fake_crash() -> Outcome {
    fake(
        "crash",
        "echo 'fake: segmentation fault in the datapath' >&2\nkill -SEGV $$",
        "",
        Duration::from_secs(20),
        &[
            FAKE,
            "for pod client, CNI_COMMAND=ADD: killed by signal 11; its stderr:\nfake: segmentation fault in the datapath",
        ],
    )
}

fn fake_hang() -> Outcome {
    fake(
        "hang",
        "echo 'fake: waiting for a lock' >&2\nsleep 60",
        "  timeout: 1s\n",
        Duration::from_secs(20),
        &[
            FAKE,
            "for pod client, CNI_COMMAND=ADD: killed after 1s without finishing",
        ],
    )
}

fn fake_non_result() -> Outcome {
    fake(
        "non-result",
        "echo 'all good, I think'\nexit 0",
        "",
        Duration::from_secs(20),
        &[
            FAKE,
            "for pod client, CNI_COMMAND=ADD: its output is not a JSON result",
            "all good, I think",
        ],
    )
}

fn fake_cni_error() -> Outcome {
    fake(
        "cni-error",
        "echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no more addresses\",\"details\":\"range 10.244.1.0/24 is full\"}'\necho 'fake: giving up' >&2\nexit 1",
        "",
        Duration::from_secs(20),
        &[
            FAKE,
            "for pod client, CNI_COMMAND=ADD: exit code 1; CNI error 11: no more addresses (range 10.244.1.0/24 is full); its stderr:\nfake: giving up",
        ],
    )
}

fn fake_outside_range() -> Outcome {
    fake(
        "outside",
        "echo '{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"'$CNI_NETNS'\"}],\"ips\":[{\"address\":\"192.168.77.5/24\",\"interface\":0}]}'",
        "",
        Duration::from_secs(20),
        &[
            FAKE,
            "for pod client, CNI_COMMAND=ADD (the list's final result): it gave address 192.168.77.5/24, outside node node1's pod range 10.244.1.0/24",
        ],
    )
}

fn fake_no_result() -> Outcome {
    fake(
        "no-result",
        "exit 0",
        "",
        Duration::from_secs(20),
        &[
            FAKE,
            "for pod client, CNI_COMMAND=ADD: it exited 0 but printed no result",
        ],
    )
}

fn fake_del_fails() -> Outcome {
    fake_with(
        "del-fails",
        "echo '{\"code\":7,\"msg\":\"invalid network config\"}'\nexit 1",
        "echo 'fake: cannot release 10.244.1.2' >&2; exit 1",
        "",
        Duration::from_secs(20),
        &[
            "for pod client, CNI_COMMAND=ADD: exit code 1; CNI error 7: invalid network config",
            "podpath: teardown: pod attach `CNI plugin fake (",
            "for pod client, CNI_COMMAND=DEL: exit code 1; its stderr:\nfake: cannot release 10.244.1.2",
        ],
    )
}

/// ADD attaches the pod for real (a veth with an address); CHECK then says it is broken.
fn fake_check_fails() -> Outcome {
    fake(
        "check-fails",
        r#"if [ "$CNI_COMMAND" = CHECK ]; then
  echo '{"code":100,"msg":"eth0 lost its address"}'; exit 1
fi
ns=$(basename "$CNI_NETNS")
ip link add "h$$" type veth peer name "$CNI_IFNAME" netns "$ns" >&2
ip -n "$ns" addr add 10.244.1.77/24 dev "$CNI_IFNAME" >&2
ip -n "$ns" link set "$CNI_IFNAME" up >&2
echo '{"cniVersion":"1.0.0","interfaces":[{"name":"'h$$'"},{"name":"'$CNI_IFNAME'","sandbox":"'$CNI_NETNS'"}],"ips":[{"address":"10.244.1.77/24","interface":1}]}'"#,
        "",
        Duration::from_secs(20),
        &[
            FAKE,
            "for pod client, CNI_COMMAND=CHECK: exit code 1; CNI error 100: eth0 lost its address",
        ],
    )
}

/// The misconfigurations of `harness/stacks/broken/` (docs/cni-misconfigurations.md): each
/// stack, the case that catches it, and what its run must say (a failing trial with its cause,
/// or, where the suite can only say so, the ignored trial with its reason).
const BROKEN: [(&str, &str, &str, &str); 6] = [
    (
        "hairpin-off",
        "services/hairpin",
        "FAIL services/hairpin::iptables::self-through-service: no answer came back",
        "",
    ),
    (
        "no-gateway",
        "cross-node-vxlan",
        "FAIL cross-node-vxlan::tcp: no answer came back",
        "",
    ),
    (
        "masquerade-pod-to-pod",
        "cross-node-vxlan",
        "FAIL cross-node-vxlan::tcp: ",
        "which saw source 10.244.1.0",
    ),
    (
        "mtu-too-large",
        "pod-mtu",
        "FAIL pod-mtu::iptables::largest-unfragmented-packet-crosses-the-overlay: expected exit code 0, the command ended with exit code 1",
        "Frag needed and DF set (mtu = 1450)",
    ),
    (
        "no-portmap",
        "host-port",
        "ignored host-port::from-outside: the flow goes to node1's hostPort 18080/tcp (pod web), which only a CNI chain with portmap publishes",
        "",
    ),
    (
        "cluster-wide-range",
        "same-node",
        "FAIL same-node::tcp: building the cluster of cases/same-node.yaml on stack broken-cluster-wide-range failed: ",
        "outside node node1's pod range 10.244.1.0/24",
    ),
];

fn broken_by_name(stack: &str) -> fn() -> Outcome {
    match stack {
        "hairpin-off" => || broken(0),
        "no-gateway" => || broken(1),
        "masquerade-pod-to-pod" => || broken(2),
        "mtu-too-large" => || broken(3),
        "no-portmap" => || broken(4),
        _ => || broken(5),
    }
}

/// Runs broken stack `BROKEN[i]` on its case: the run must say what the catalogue says.
fn broken(i: usize) -> Outcome {
    let (stack, case, want, also) = BROKEN[i];
    let reports = scratch(&format!("broken-{stack}-reports"));
    let before = host_state();
    let out = run(
        &Path::new("harness/stacks/broken").join(format!("{stack}.yaml")),
        &[&format!("cases/{case}.yaml")],
        &reports,
    );
    let (stdout, stderr) = text(&out);
    if no_sandbox(&out) {
        return Ok(());
    }
    let all = format!("{stdout}{stderr}");
    check(all.contains(want), || format!("missing {want:?}:\n{all}"))?;
    check(all.contains(also), || format!("missing {also:?}:\n{all}"))?;
    if want.starts_with("FAIL") {
        check(!out.status.success(), || format!("it passed:\n{all}"))?;
    }
    check(before == host_state(), || "the host changed".into())?;
    let _ = std::fs::remove_dir_all(&reports);
    Ok(())
}
