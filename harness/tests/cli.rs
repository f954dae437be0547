//! The `podpath` binary from the outside: located errors, `plan` without privileges, the JUnit
//! report of `run`, and a sandbox that leaves nothing behind when podpath is killed.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod run_support;

fn podpath() -> Command {
    Command::new(env!("CARGO_BIN_EXE_podpath"))
}

/// `podpath run CASE --reports REPORTS`, to its end.
fn run_reporting(case: &Path, reports: &Path) -> Output {
    podpath()
        .arg("run")
        .arg(case)
        .arg("--reports")
        .arg(reports)
        .output()
        .unwrap()
}

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cases")
        .join(name)
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn temp_case(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podpath-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

const BAD_NODE: &str = "\
nodes: [node1, node2]
pods:
  - { name: pod-a, node: node1 }
  - { name: pod-b, node: node9 }
";

#[test]
fn plan_reports_a_malformed_case_with_file_line_and_column() {
    let path = temp_case("bad-node.yaml", BAD_NODE);
    let out = podpath().arg("plan").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:4:26:", path.display());
    assert!(stderr.contains(&want), "expected {want} in: {stderr}");
    assert!(stderr.contains("node9"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing is planned for an invalid case"
    );
}

#[test]
fn plan_warns_of_a_hop_that_depends_on_the_endpoint_picked() {
    let path = temp_case(
        "either-endpoint.yaml",
        "\
nodes: [node1]
pods:
  - { name: client, node: node1 }
  - { name: api-1, node: node1, labels: { app: api }, listen: [8080/tcp] }
  - { name: api-2, node: node1, labels: { app: api }, listen: [8080/tcp] }
services: [{ name: api, selector: { app: api }, ports: [{ port: 80, targetPort: 8080 }] }]
flows:
  - name: either
    from: client
    to: svc/api:80
    expect: { reach: [api-1, api-2], hops: [{ node: node1, dnat: api-1:8080 }] }
",
    );
    let out = podpath().arg("plan").arg(&path).output().unwrap();
    assert!(out.status.success(), "a warning is no error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:11:45: warning: flow `either`: hop `node1 dnat api-1:8080` depends on the endpoint",
        path.display()
    );
    assert!(stderr.contains(&want), "expected {want} in: {stderr}");
    assert!(!out.stdout.is_empty(), "the plan is printed");
}

#[test]
fn run_fails_an_invalid_case_without_building_it() {
    let path = temp_case("bad-run.yaml", BAD_NODE);
    let reports = path.with_file_name("bad-run-reports");
    let out = run_reporting(&path, &reports);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(2) {
        // No sandbox here (neither root nor user namespaces): nothing to check.
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL bad-run (invalid case)"), "{stdout}");
    assert!(stdout.contains(":4:26:"), "{stdout}");
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
    // The invalid case is the report's one failing test, with the located error.
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    let _ = std::fs::remove_dir_all(&reports);
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), 1, "{junit}");
    let testcase = failures[0].parent().unwrap();
    assert_eq!(testcase.attribute("name"), Some("bad-run"), "{junit}");
    assert!(
        failures[0].attribute("message").unwrap().contains(":4:26:"),
        "{junit}"
    );
}

/// One flow that passes and one that cannot (the server does listen on 8080).
const REPORTED: &str = "\
nodes: [node1]
pods:
  - { name: client, node: node1 }
  - { name: server, node: node1, listen: [8080/tcp] }
flows:
  - name: tcp
    from: client
    to: server:8080
    expect: { reach: server, seenSource: client }
  - name: wrong-port
    from: client
    to: server:8080
    expect: { fail: refused }
";

#[test]
fn run_writes_a_junit_report_naming_every_flow() {
    let path = temp_case("reported.yaml", REPORTED);
    let reports = path.with_file_name("reported-reports");
    let _ = std::fs::remove_dir_all(&reports);
    let out = run_reporting(&path, &reports);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) {
        return; // No sandbox here: nothing ran, nothing to report.
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // The run's own report, in its own directory, which `latest` points at; `junit.xml` at the
    // top is a copy of the latest run's.
    let latest = std::fs::read_link(reports.join("latest")).unwrap();
    let junit = reports
        .canonicalize()
        .unwrap()
        .join(&latest)
        .join("junit.xml");
    let said = format!("podpath: JUnit report in {}", junit.display());
    assert!(stderr.contains(&said), "expected {said:?} in: {stderr}");
    let text = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(
        std::fs::read_to_string(reports.join("junit.xml")).unwrap(),
        text
    );
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("name"), Some("reported"), "{text}");
    assert_eq!(suite.attribute("tests"), Some("2"), "{text}");
    assert_eq!(suite.attribute("failures"), Some("1"), "{text}");
    let cases: Vec<(&str, Option<&str>)> = suite
        .children()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let failure = c.children().find(|n| n.has_tag_name("failure"));
            (
                c.attribute("name").unwrap(),
                failure.and_then(|f| f.attribute("message")),
            )
        })
        .collect();
    assert_eq!(cases.len(), 2, "{text}");
    assert_eq!(cases[0], ("tcp", None), "{text}");
    assert_eq!(cases[1].0, "wrong-port", "{text}");
    assert!(cases[1].1.is_some_and(|m| !m.is_empty()), "{text}");
    let _ = std::fs::remove_dir_all(&reports);
}

#[test]
fn plan_works_unprivileged() {
    use std::os::unix::fs::PermissionsExt as _;
    // The binary and the case are copied where an unprivileged user can read them, whatever
    // the permissions of the checkout's directories.
    let dir = std::env::temp_dir().join(format!("podpath-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("podpath");
    std::fs::copy(env!("CARGO_BIN_EXE_podpath"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("case.yaml");
    std::fs::copy(case("cross-node-vxlan.yaml"), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = if is_root() {
        // Drop to nobody for this one command.
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .arg("plan")
        .arg(&path)
        .current_dir(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "flannel.1  10.244.1.0/32",
        "route      10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink",
        "fdb        0e:2a:ac:12:00:03 dst 172.18.0.3 dev flannel.1",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// What the host's network looks like, as `ip` and the netfilter tools show it.
fn host_state() -> String {
    let mut state = String::new();
    for cmd in [
        "ip netns list",
        "ip -o link show",
        "ip -o addr show",
        "ip route show table all",
        "iptables-save 2>/dev/null | grep -v '^#'",
        "nft list ruleset 2>/dev/null",
    ] {
        let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
        state.push_str(&format!(
            "$ {cmd}\n{}",
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    state
}

#[test]
fn shell_killed_with_sigkill_leaves_the_host_as_it_was() {
    shell_killed_with_sigkill(None);
}

/// `PODPATH_SANDBOX` used to tell podpath it was already sandboxed, whatever its value: it
/// then built in the host's namespaces. The environment proves nothing now.
#[test]
fn podpath_sandbox_in_the_environment_does_not_skip_the_sandbox() {
    shell_killed_with_sigkill(Some(""));
    shell_killed_with_sigkill(Some("root"));
}

/// `podpath shell` of a three-node case, then SIGKILL: the host's network is as before while
/// the cluster is up and after, and no process of the sandbox survives.
fn shell_killed_with_sigkill(sandbox_env: Option<&str>) {
    let before = host_state();
    let marker = format!("sigkill-{}-{sandbox_env:?}", std::process::id());
    let mut cmd = podpath();
    cmd.arg("shell")
        .arg(case("three-nodes.yaml"))
        .args([
            "--",
            "sh",
            "-c",
            "ip netns list | wc -l; echo \"${PODPATH_SANDBOX-unset}\"; exec sleep 60",
        ])
        .env("PODPATH_TEST_MARKER", &marker)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(value) = sandbox_env {
        cmd.env("PODPATH_SANDBOX", value);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    if line.trim().is_empty() {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(2), "podpath shell failed: {err}");
        return; // No sandbox possible here.
    }
    // underlay + 3 nodes + 3 pods are up inside the sandbox.
    assert_eq!(line.trim(), "7", "namespaces inside the sandbox");
    let mut exported = String::new();
    stdout.read_line(&mut exported).unwrap();
    let want = sandbox_env.unwrap_or("unset");
    assert_eq!(
        exported.trim(),
        want,
        "the shell's PODPATH_SANDBOX is the caller's"
    );
    assert!(!run_support::processes_with(&marker).is_empty());
    assert_eq!(host_state(), before, "the cluster is not on the host");
    kill_and_check(child, &marker, &before);
}

/// SIGKILL to `child` (podpath): every process of its sandbox goes, and the host is `before`.
fn kill_and_check(mut child: std::process::Child, marker: &str, before: &str) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !run_support::processes_with(marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        run_support::processes_with(marker),
        Vec::<String>::new(),
        "every process of the sandbox dies with podpath"
    );
    assert_eq!(host_state(), before);
}

/// An `exec` flow that takes its time: while it runs, the cluster is up.
const SLOW: &str = "\
nodes: [node1]
pods:
  - { name: a, node: node1 }
flows:
  - { name: wait, from: a, exec: [sleep, '30'], timeout: 40s }
";

/// Waits until a process of `marker` runs `program` (at most 20 s).
fn wait_for_process(marker: &str, program: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let running = run_support::processes_with(marker).iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).next() == Some(program.as_bytes()))
        });
        if running {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn run_with_podpath_sandbox_set_still_builds_in_the_sandbox() {
    let path = temp_case("slow-sandboxed.yaml", SLOW);
    let reports = path.with_file_name("slow-sandboxed-reports");
    let before = host_state();
    let marker = format!("run-sandbox-{}", std::process::id());
    let mut child = podpath()
        .arg("run")
        .arg(&path)
        .arg("--reports")
        .arg(&reports)
        .env("PODPATH_SANDBOX", "")
        .env("PODPATH_TEST_MARKER", &marker)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if !wait_for_process(&marker, "sleep") {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "the flow never ran: {text}");
        return; // No sandbox here: nothing ran.
    }
    assert_eq!(host_state(), before, "the cluster is not on the host");
    kill_and_check(child, &marker, &before);
    let _ = std::fs::remove_dir_all(&reports);
}

#[test]
fn trace_walks_the_cross_node_service_there_and_back() {
    for mode in ["iptables", "nftables"] {
        let out = podpath()
            .arg("trace")
            .arg(case("services/clusterip.yaml"))
            .args(["--flow", "cross-node", "--proxy", mode])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(2) && std::env::var_os("CI").is_none() {
            return; // No sandbox here: nothing ran.
        }
        assert!(out.status.success(), "{stdout}{stderr}");
        // In order: the client's eth0, the DNAT on node1, the VXLAN encapsulation, the server's
        // eth0; then the way back, the un-DNAT, and the client's eth0 again.
        let steps = [
            "flow 10.244.1.2:",
            "client    eth0       out 10.244.1.2:",
            "node1     DNAT 10.96.0.3:80 (svc/far) -> 10.244.2.2:8080 (far)",
            "node1     flannel.1  out",
            "node1     eth0       out VXLAN vni 1 172.18.0.2:",
            "> 172.18.0.3:8472 carrying",
            "node2     eth0       in  VXLAN vni 1",
            "far       eth0       in  10.244.1.2:",
            "flow: back",
            "far       eth0       out 10.244.2.2:8080 (far) >",
            "node2     eth0       out VXLAN vni 1 172.18.0.3:",
            "node1     un-DNAT 10.244.2.2:8080 (far) -> 10.96.0.3:80 (svc/far)",
            "client    eth0       in  10.96.0.3:80 (svc/far) > 10.244.1.2:",
            "verdict:  pass",
        ];
        let mut at = 0;
        for step in steps {
            match stdout[at..].find(step) {
                Some(i) => at += i + step.len(),
                None => panic!("{mode}: {step:?} missing after byte {at} of:\n{stdout}"),
            }
        }
        let chain = if mode == "iptables" {
            "KUBE-SEP-"
        } else {
            "endpoint-"
        };
        assert!(
            stdout.contains(chain),
            "{mode}: no {chain} chain in:\n{stdout}"
        );
    }
}

const NO_ROUTE: &str = "\
nodes: [node1, node2]
cluster: { overlay: none }
pods:
  - { name: a, node: node1 }
  - { name: b, node: node2, listen: [8080/tcp] }
flows:
  - { name: no-route, from: a, to: 'b:8080', timeout: 300ms, expect: { reach: b } }
";

#[test]
fn a_flow_that_gets_nowhere_says_where_it_was_last_seen() {
    let path = temp_case("no-route.yaml", NO_ROUTE);
    let reports = path.with_file_name("no-route-reports");
    let out = podpath()
        .arg("run")
        .arg(&path)
        .arg("--reports")
        .arg(&reports)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(2) && std::env::var_os("CI").is_none() {
        return; // No sandbox here: nothing ran.
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // Without an overlay node1 has no route to node2's pods but its default one, towards a
    // gateway nobody answers ARP for: the SYN gets as far as node1's cni0.
    for want in [
        "cause:    no answer came back",
        "last seen:     node1/cni0 in  10.244.1.2:",
        "> 10.244.2.2:8080 tcp [S]",
        "artifacts: ",
    ] {
        assert!(stdout.contains(want), "{want:?} missing from:\n{stdout}");
    }
    let flow = reports.join("latest/flows/no-route__no-route");
    assert!(flow.join("capture.pcapng").exists(), "{stdout}");
    let _ = std::fs::remove_dir_all(&reports);
}

const NO_FLOWS: &str = "\
nodes: [node1]
pods:
  - { name: a, node: node1 }
";

/// `podpath run ARGS...` with its reports in a directory of its own.
fn run_args(args: &[&std::ffi::OsStr], reports: &Path) -> Output {
    podpath()
        .arg("run")
        .args(args)
        .arg("--reports")
        .arg(reports)
        .output()
        .unwrap()
}

#[test]
fn running_nothing_is_not_a_pass() {
    let empty = std::env::temp_dir().join(format!("podpath-cli-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let no_flows = temp_case("no-flows.yaml", NO_FLOWS);
    let reported = temp_case("nothing-reported.yaml", REPORTED);
    let reports = no_flows.with_file_name("nothing-reports");
    for (args, why) in [
        (vec![empty.as_os_str()], "no case in"),
        (vec![no_flows.as_os_str()], "has a flow"),
        (
            vec![
                reported.as_os_str(),
                "--filter".as_ref(),
                "matches-no-flow".as_ref(),
            ],
            "no flow matches --filter \"matches-no-flow\"",
        ),
    ] {
        let out = run_args(&args, &reports);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(2) && !is_root() {
            return; // No sandbox here.
        }
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("podpath: nothing ran: "),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains(why),
            "{args:?}: {why:?} missing from {stderr}"
        );
    }
    // A path that does not exist is a usage error, not a failing case.
    let out = run_args(&["/nonexistent/podpath".as_ref()], &reports);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/podpath: "), "{stderr}");
    let _ = std::fs::remove_dir_all(&empty);
    let _ = std::fs::remove_dir_all(&reports);
}

/// The `cases` test binary cargo built next to this one, if it did (`cargo test --test cli
/// --test cases`).
fn cases_binary() -> Option<PathBuf> {
    let deps = std::env::current_exe().ok()?.parent()?.to_path_buf();
    std::fs::read_dir(deps)
        .ok()?
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("cases-") && !name.contains('.')
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

#[test]
fn the_cases_target_fails_a_suite_with_nothing_to_run_but_not_a_filter() {
    let Some(bin) = cases_binary() else {
        eprintln!("no cases binary built: run with --test cases too");
        return;
    };
    let empty = std::env::temp_dir().join(format!("podpath-cases-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let no_flows = temp_case("cases-no-flows.yaml", NO_FLOWS);
    let reported = temp_case("cases-reported.yaml", REPORTED);
    let reports = no_flows.with_file_name("cases-nothing-reports");
    let cases = |suite: &Path, args: &[&str]| {
        Command::new(&bin)
            .args(args)
            .env("PODPATH_CASES", suite)
            .env("PODPATH_REPORTS", &reports)
            .output()
            .unwrap()
    };
    for suite in [&empty, &no_flows] {
        let out = cases(suite, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", suite.display());
        assert!(stderr.contains("nothing to run"), "{stderr}");
    }
    // A filter that matches nothing is libtest's exit 0 (`cargo test some_unit_test`), said.
    let out = cases(&reported, &["matches-no-trial"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("matches the filter: nothing ran"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&empty);
    let _ = std::fs::remove_dir_all(&reports);
}

/// A flow that passes, one that takes its time, one that never gets to run when the run is
/// stopped during the second.
const STOPPED: &str = "\
nodes: [node1]
pods:
  - { name: a, node: node1 }
  - { name: b, node: node1, listen: [8080/tcp] }
flows:
  - { name: first, from: a, to: 'b:8080', expect: { reach: b } }
  - { name: wait, from: a, exec: [sleep, '30'], timeout: 40s }
  - { name: never, from: a, to: 'b:8080', expect: { reach: b } }
";

/// Waits for `child` at most 10 s: its exit code and what it said on stderr.
fn wait_stopped(mut child: std::process::Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not stop within 10 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` to `child` once its `sleep` runs: the signal came in the middle of a trial.
/// `None` when the trial never started (no sandbox here).
fn signal_during_sleep(
    mut child: std::process::Child,
    marker: &str,
    sig: Signal,
) -> Option<std::process::Child> {
    if !wait_for_process(marker, "sleep") {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    Some(child)
}

use nix::sys::signal::Signal;

/// The report of a run stopped by `signal` during `<case>::wait`: it says so, `first` passed,
/// `wait` is an error, `never` did not run.
fn assert_interrupted_report(junit: &Path, case: &str, signal: &str) {
    let text = std::fs::read_to_string(junit).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let property = doc
        .descendants()
        .find(|n| n.has_tag_name("property") && n.attribute("name") == Some("interrupted"));
    assert_eq!(
        property.and_then(|p| p.attribute("value")),
        Some(signal),
        "{text}"
    );
    let outcome = |name: &str| {
        let tc = doc
            .descendants()
            .find(|n| {
                n.has_tag_name("testcase")
                    && n.attribute("classname") == Some(case)
                    && n.attribute("name") == Some(name)
            })
            .unwrap_or_else(|| panic!("no {case}::{name} in {text}"));
        tc.first_element_child()
            .map_or("passed".to_string(), |c| c.tag_name().name().to_string())
    };
    assert_eq!(outcome("first"), "passed", "{text}");
    assert_eq!(outcome("wait"), "error", "{text}");
    assert_eq!(outcome("never"), "skipped", "{text}");
    assert_ne!(doc.root_element().attribute("errors"), Some("0"), "{text}");
}

#[test]
fn run_stops_on_sigint_and_sigterm_and_says_what_it_interrupted() {
    let path = temp_case("stopped.yaml", STOPPED);
    for (sig, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let reports = path.with_file_name(format!("stopped-reports-{sig}"));
        let _ = std::fs::remove_dir_all(&reports);
        let before = host_state();
        let marker = format!("stopped-{}-{sig}", std::process::id());
        let child = podpath()
            .arg("run")
            .arg(&path)
            .arg("--reports")
            .arg(&reports)
            .env("PODPATH_TEST_MARKER", &marker)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let Some(child) = signal_during_sleep(child, &marker, sig) else {
            return; // No sandbox here.
        };
        let (status, stderr) = wait_stopped(child);
        assert_eq!(status, Some(code), "{sig}: {stderr}");
        let said = format!("podpath: interrupted by {sig} while running stopped::wait");
        assert!(stderr.contains(&said), "{said:?} missing from {stderr}");
        assert_eq!(
            run_support::processes_with(&marker),
            Vec::<String>::new(),
            "{sig}"
        );
        assert_eq!(host_state(), before);
        assert_interrupted_report(&reports.join("junit.xml"), "stopped", sig.as_str());
        let _ = std::fs::remove_dir_all(&reports);
    }
}

#[test]
fn shell_stops_on_sigterm_and_sigint() {
    for (sig, code) in [(Signal::SIGTERM, 143), (Signal::SIGINT, 130)] {
        let marker = format!("shell-stopped-{}-{sig}", std::process::id());
        let child = podpath()
            .arg("shell")
            .arg(case("three-nodes.yaml"))
            .args(["--", "sleep", "30"])
            .env("PODPATH_TEST_MARKER", &marker)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let Some(child) = signal_during_sleep(child, &marker, sig) else {
            return; // No sandbox here.
        };
        let (status, stderr) = wait_stopped(child);
        assert_eq!(status, Some(code), "{sig}: {stderr}");
        assert!(
            stderr.contains(&format!("interrupted by {sig}")),
            "{stderr}"
        );
        assert_eq!(
            run_support::processes_with(&marker),
            Vec::<String>::new(),
            "{sig}"
        );
    }
}

#[test]
fn the_cases_target_stops_on_sigint_with_an_interrupted_report() {
    let Some(bin) = cases_binary() else {
        eprintln!("no cases binary built: run with --test cases too");
        return;
    };
    let path = temp_case("cases-stopped/stopped.yaml", STOPPED);
    let reports = path.with_file_name("reports");
    let marker = format!("cases-stopped-{}", std::process::id());
    let child = Command::new(&bin)
        .args(["--test-threads", "1", "--skip", "snapshot"])
        .env("PODPATH_CASES", path.parent().unwrap())
        .env("PODPATH_REPORTS", &reports)
        .env("PODPATH_TEST_MARKER", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let Some(child) = signal_during_sleep(child, &marker, Signal::SIGINT) else {
        return; // No sandbox here.
    };
    let (status, stderr) = wait_stopped(child);
    assert_eq!(status, Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted by SIGINT while running stopped::wait"),
        "{stderr}"
    );
    assert_eq!(run_support::processes_with(&marker), Vec::<String>::new());
    assert_interrupted_report(&reports.join("junit.xml"), "stopped", "SIGINT");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// The path after `artifacts: ` in a run's output.
fn artifacts_path(stdout: &str) -> PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("artifacts: "))
        .unwrap_or_else(|| panic!("no artifacts in {stdout}"));
    PathBuf::from(line)
}

#[test]
fn two_runs_into_one_reports_directory_keep_each_others_output() {
    let failing = temp_case("two-runs/failing.yaml", REPORTED);
    let passing = temp_case("two-runs/passing.yaml", &REPORTED.replace(
        "  - name: wrong-port\n    from: client\n    to: server:8080\n    expect: { fail: refused }\n",
        "",
    ));
    let reports = failing.with_file_name("reports");
    let _ = std::fs::remove_dir_all(&reports);
    let first = run_reporting(&failing, &reports);
    if first.status.code() == Some(2) && !is_root() {
        return; // No sandbox here.
    }
    let first_out = String::from_utf8_lossy(&first.stdout);
    assert_eq!(first.status.code(), Some(1), "{first_out}");
    let flow = artifacts_path(&first_out);
    let first_junit = flow.parent().unwrap().parent().unwrap().join("junit.xml");
    let second = run_reporting(&passing, &reports);
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    // The first run's artifacts are where it said, and its report next to them.
    assert!(flow.join("capture.pcapng").is_file(), "{}", flow.display());
    let text = std::fs::read_to_string(&first_junit).unwrap();
    assert!(text.contains("failures=\"1\""), "{text}");
    // The top-level report is the latest run's: the second.
    let latest = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(
        latest.contains("tests=\"1\"") && latest.contains("failures=\"0\""),
        "{latest}"
    );
    assert_eq!(
        std::fs::read_to_string(reports.join("latest/junit.xml")).unwrap(),
        latest
    );
    let _ = std::fs::remove_dir_all(failing.parent().unwrap());
}

#[test]
fn a_killed_run_does_not_leave_an_earlier_green_report() {
    let passing = temp_case("killed-run/passing.yaml", &REPORTED.replace(
        "  - name: wrong-port\n    from: client\n    to: server:8080\n    expect: { fail: refused }\n",
        "",
    ));
    let slow = temp_case("killed-run/slow.yaml", STOPPED);
    let reports = passing.with_file_name("reports");
    let _ = std::fs::remove_dir_all(&reports);
    let green = run_reporting(&passing, &reports);
    if green.status.code() == Some(2) && !is_root() {
        return; // No sandbox here.
    }
    assert_eq!(green.status.code(), Some(0));
    let marker = format!("killed-run-{}", std::process::id());
    let child = podpath()
        .arg("run")
        .arg(&slow)
        .arg("--reports")
        .arg(&reports)
        .env("PODPATH_TEST_MARKER", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for_process(&marker, "sleep"));
    let before = host_state();
    kill_and_check(child, &marker, &before);
    // What the reports directory says now is that the last run did not finish.
    for junit in ["junit.xml", "latest/junit.xml"] {
        let text = std::fs::read_to_string(reports.join(junit)).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_ne!(doc.root_element().attribute("errors"), Some("0"), "{text}");
        assert!(text.contains("value=\"unfinished\""), "{junit}: {text}");
    }
    let _ = std::fs::remove_dir_all(passing.parent().unwrap());
}

#[test]
fn paths_under_run_are_the_hosts() {
    let dir = PathBuf::from(format!("/run/podpath-cli-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return; // /run is not ours to write.
    }
    let case = dir.join("in-run.yaml");
    std::fs::write(&case, REPORTED).unwrap();
    let reports = dir.join("reports");
    let out = run_reporting(&case, &reports);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && !is_root() {
        let _ = std::fs::remove_dir_all(&dir);
        return; // No sandbox here.
    }
    // The case was read (one flow passes, one fails), and what the run wrote is on the host.
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("ok   in-run::tcp"), "{stdout}");
    let said = stderr
        .lines()
        .find_map(|l| l.strip_prefix("podpath: JUnit report in "))
        .unwrap_or_else(|| panic!("no report in {stderr}"));
    assert!(
        said.starts_with(&format!("{}/runs/", reports.display())),
        "{said}"
    );
    assert!(Path::new(said).is_file(), "{said} is not on the host");
    assert!(reports.join("junit.xml").is_file());
    assert!(
        artifacts_path(&stdout).join("journey.md").is_file(),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_cases_target_reads_a_suite_under_run_with_its_snapshots() {
    let Some(bin) = cases_binary() else {
        eprintln!("no cases binary built: run with --test cases too");
        return;
    };
    let dir = PathBuf::from(format!("/run/podpath-cases-{}", std::process::id()));
    if std::fs::create_dir_all(dir.join("snapshots")).is_err() {
        return; // /run is not ours to write.
    }
    std::fs::copy(case("same-node.yaml"), dir.join("same-node.yaml")).unwrap();
    let snap = "snapshots/same-node__node1.snap";
    std::fs::copy(case(snap), dir.join(snap)).unwrap();
    let reports = dir.join("reports");
    let out = Command::new(&bin)
        .env("CI", "true")
        .env("PODPATH_CASES", &dir)
        .env("PODPATH_REPORTS", &reports)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let junit = std::fs::read_to_string(reports.join("junit.xml"));
    let _ = std::fs::remove_dir_all(&dir);
    if stderr.contains("every trial is ignored") {
        return; // No sandbox here.
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("same-node::snapshot::node1"), "{stdout}");
    assert!(stdout.contains("5 passed"), "{stdout}");
    let junit = junit.unwrap();
    assert!(
        junit.contains("tests=\"5\"") && junit.contains("failures=\"0\""),
        "{junit}"
    );
}

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("podpath-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_suites_snapshots_lie_in_a_package_where_cargo_insta_looks() {
    // cargo-insta looks for pending snapshots below the root of each package `cargo metadata`
    // lists (walk.rs in cargo-insta): `cases/snapshots/` must be below one.
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let snapshots = workspace_root().join("cases/snapshots");
    let roots: Vec<PathBuf> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            PathBuf::from(p["manifest_path"].as_str().unwrap())
                .parent()
                .unwrap()
                .to_path_buf()
        })
        .collect();
    assert!(
        roots.iter().any(|r| snapshots.starts_with(r)),
        "no package holds {}: {roots:?}",
        snapshots.display()
    );
    // With cargo-insta installed, it lists a pending snapshot of the suite.
    let probe = snapshots.join(format!(
        "zz-cli-probe-{}__node1.snap.new",
        std::process::id()
    ));
    if Command::new(env!("CARGO"))
        .args(["insta", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        std::fs::write(
            &probe,
            "---\nsource: podpath\ninput_file: cases/x.yaml\n---\nx\n",
        )
        .unwrap();
        let out = Command::new(env!("CARGO"))
            .args(["insta", "pending-snapshots", "--as-json"])
            .current_dir(workspace_root())
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&probe);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("zz-cli-probe"),
            "cargo insta pending-snapshots: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn run_checks_snapshots_and_update_snapshots_accepts_them() {
    if !is_root() {
        return;
    }
    let suite = temp_dir("snapshots");
    std::fs::create_dir_all(suite.join("snapshots")).unwrap();
    std::fs::create_dir_all(suite.join("pods")).unwrap();
    std::fs::copy(case("same-node.yaml"), suite.join("pods/same-node.yaml")).unwrap();
    let reports = suite.join("reports");
    let file = suite.join("pods/same-node.yaml");
    let snap = suite.join("snapshots/pods__same-node__node1.snap");
    let pending = suite.join("snapshots/pods__same-node__node1.snap.new");
    let run = |extra: &[&str], ci: bool| {
        let mut cmd = podpath();
        cmd.arg("run")
            .arg(&file)
            .arg("--reports")
            .arg(&reports)
            .args(extra);
        cmd.env_remove("INSTA_UPDATE")
            .env_remove("INSTA_FORCE_PASS");
        if ci {
            cmd.env("CI", "true");
        } else {
            cmd.env_remove("CI");
        }
        cmd.output().unwrap()
    };
    // No snapshot yet: said, with how to accept it; the run fails; a pending file is left.
    let out = run(&[], false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("pods/same-node::snapshot::node1"),
        "{stdout}"
    );
    assert!(stdout.contains("no snapshot "), "{stdout}");
    assert!(stdout.contains("--update-snapshots"), "{stdout}");
    assert!(!stdout.contains("panicked"), "{stdout}");
    assert!(pending.exists() && !snap.exists());
    // Accepted.
    let out = run(&["--update-snapshots"], false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(snap.exists() && !pending.exists());
    let accepted = std::fs::read_to_string(&snap).unwrap();
    assert!(accepted.contains("input_file: "), "{accepted}");
    // Matches now, also in CI.
    assert!(run(&[], true).status.success());
    // A difference in CI fails with the diff and writes nothing.
    std::fs::write(&snap, accepted.replace("cni0", "cni9")).unwrap();
    let out = run(&["--update-snapshots"], true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("differs"), "{stdout}");
    assert!(stdout.contains("+") && stdout.contains("cni0"), "{stdout}");
    assert!(!pending.exists());
    assert!(std::fs::read_to_string(&snap).unwrap().contains("cni9"));
}

#[test]
fn run_outside_the_repository_runs_the_builtin_suite() {
    let empty = temp_dir("anywhere");
    // Listing and exporting need no privileges.
    let out = podpath()
        .args(["suite", "list"])
        .current_dir(&empty)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        listed.lines().any(|l| l.starts_with("services/clusterip ")),
        "{listed}"
    );
    let exported = empty.join("my-suite");
    let out = podpath()
        .args(["suite", "export"])
        .arg(&exported)
        .current_dir(&empty)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(exported.join("icmp.yaml").is_file());
    assert!(exported.join("snapshots/icmp__node1.snap").is_file());
    assert!(
        !podpath()
            .args(["suite", "export"])
            .arg(&exported)
            .output()
            .unwrap()
            .status
            .success()
    );
    if !is_root() {
        return;
    }
    let out = podpath()
        .args(["run", "--filter", "icmp::"])
        .current_dir(&empty)
        .env_remove("CI")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("builtin suite"), "{stderr}");
    assert!(stdout.contains("ok   icmp::same-node"), "{stdout}");
    assert!(stdout.contains("ok   icmp::snapshot::node1"), "{stdout}");
    assert!(!stdout.contains("No such file"), "{stdout}");
    // The exported suite runs as itself, its snapshots included.
    let out = podpath()
        .arg("run")
        .arg(exported.join("icmp.yaml"))
        .current_dir(&empty)
        .env_remove("CI")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("ok   icmp::snapshot::node2"), "{stdout}");
}

/// The trial names of `podpath run PATH` (what `ok`/`FAIL`/`ignored` lines name).
fn trial_names(path: &Path, filter: &str) -> Vec<String> {
    let out = podpath()
        .arg("run")
        .arg(path)
        .args(["--filter", filter, "--reports"])
        .arg(temp_dir("names-reports"))
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let rest = l
                .strip_prefix("ok   ")
                .or_else(|| l.strip_prefix("FAIL "))?;
            Some(
                rest.split_whitespace()
                    .next()?
                    .trim_end_matches(':')
                    .to_string(),
            )
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_case_is_named_the_same_however_its_path_is_given() {
    if !is_root() {
        return;
    }
    let file = trial_names(&case("services/clusterip.yaml"), "iptables::same-node");
    let dir = trial_names(&case("services"), "clusterip::iptables::same-node");
    assert!(!file.is_empty());
    assert!(
        file.iter().all(|n| n.starts_with("services/clusterip::")),
        "{file:?}"
    );
    assert_eq!(file, dir);
}

/// The `cases` test binary run where it cannot make a sandbox: in a user namespace that may
/// not make another, with every capability dropped.
fn cases_without_privileges(bin: &Path, strict: bool, reports: &Path) -> Option<Output> {
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --inh-caps=-all \
         --bounding-set=-all {} icmp::same-node",
        bin.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "sh", "-c", &script])
        .env("PODPATH_REPORTS", reports)
        .env_remove("PODPATH_CASES");
    if strict {
        cmd.env("PODPATH_STRICT", "1");
    } else {
        cmd.env_remove("PODPATH_STRICT");
    }
    let out = cmd.output().ok()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    (stderr.contains("every trial")).then_some(out)
}

#[test]
fn strict_fails_trials_ignored_for_lack_of_privileges() {
    let Some(bin) = cases_binary() else {
        eprintln!("no cases binary built: run with --test cases too");
        return;
    };
    let reports = temp_dir("strict-reports");
    let Some(lenient) = cases_without_privileges(&bin, false, &reports) else {
        eprintln!("cannot take podpath's privileges away here: skipped");
        return;
    };
    let stdout = String::from_utf8_lossy(&lenient.stdout);
    assert!(lenient.status.success(), "{stdout}");
    assert!(stdout.contains("icmp::same-node ... ignored"), "{stdout}");
    let strict = cases_without_privileges(&bin, true, &reports).unwrap();
    let stdout = String::from_utf8_lossy(&strict.stdout);
    assert_eq!(strict.status.code(), Some(101), "{stdout}");
    assert!(stdout.contains("icmp::same-node ... FAILED"), "{stdout}");
    assert!(stdout.contains("lack of privileges"), "{stdout}");
}

#[test]
fn a_relative_podpath_cases_is_taken_from_where_cargo_was_invoked() {
    let Some(bin) = cases_binary() else {
        eprintln!("no cases binary built: run with --test cases too");
        return;
    };
    // As `PODPATH_CASES=my-cases/ cargo test --test cases` from the workspace root: the test
    // runs in harness/, with the shell's PWD.
    let ws = workspace_root();
    let suite = format!("target/podpath-cli-rel-{}/", std::process::id());
    std::fs::create_dir_all(ws.join(&suite)).unwrap();
    std::fs::write(ws.join(&suite).join("lonely.yaml"), NO_FLOWS).unwrap();
    let out = Command::new(&bin)
        .arg("--list")
        .current_dir(ws.join("harness"))
        .env("PWD", &ws)
        .env("PODPATH_CASES", &suite)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(ws.join(&suite));
    // It is found (a case without flows: nothing to run), not "No such file or directory".
    assert!(!stderr.contains("No such file"), "{stderr}");
    assert!(stderr.contains("has no flow"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["run", "--no-such-flag"][..],
        &["no-such-command"],
        &["plan"],
    ] {
        let out = podpath().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn run_output_ends_with_the_failures_causes_and_json_is_one_object_per_trial() {
    let path = temp_case("output-no-route.yaml", NO_ROUTE);
    let reports = path.with_file_name("output-reports");
    let out = podpath()
        .arg("run")
        .arg(&path)
        .arg("--reports")
        .arg(&reports)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    if out.status.code() == Some(2) && !is_root() {
        return; // No sandbox here: nothing ran.
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    // Not a terminal: no colour, and no progress line.
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\r'));
    // Each trial's time; the last line is the failure with its cause.
    assert!(
        stdout.lines().any(|l| l
            .starts_with("FAIL output-no-route::no-route: no answer came back")
            && l.ends_with(']')),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap();
    assert!(last.trim_start().starts_with("FAIL ["), "{stdout}");
    assert!(
        last.ends_with("output-no-route::no-route: no answer came back"),
        "{last}"
    );
    // The JUnit message is the cause line, not the `flow:` line.
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).unwrap();
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert_eq!(failure.attribute("message"), Some("no answer came back"));

    let out = podpath()
        .arg("run")
        .arg(&path)
        .args(["--format", "json", "--reports"])
        .arg(&reports)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let objects: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (summary, trials) = objects.split_last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["failed"], 1);
    assert!(
        trials
            .iter()
            .all(|t| t["type"] == "trial" && t["duration_ms"].is_number())
    );
    let failed = trials.iter().find(|t| t["outcome"] == "failed").unwrap();
    assert_eq!(failed["name"], "output-no-route::no-route");
    assert_eq!(failed["cause"], "no answer came back");
    let _ = std::fs::remove_dir_all(&reports);
}

#[test]
fn plan_as_json() {
    let out = podpath()
        .args(["plan", "--format", "json"])
        .arg(case("services/clusterip.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plan["proxyModes"],
        serde_json::json!(["iptables", "nftables"])
    );
    assert!(plan["flows"].as_array().unwrap().len() > 1);
    assert!(plan["services"][0]["clusterIP"].is_string());
}

/// `scripts/ci-action` (what action.yml runs) with the podpath built here.
fn ci_action(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(workspace_root().join("scripts/ci-action"))
        .args(args)
        .env("PODPATH_BIN", env!("CARGO_BIN_EXE_podpath"))
        .env_remove("PODPATH_STACK")
        .env_remove("PODPATH_CASES")
        .env_remove("PODPATH_SHARD")
        .current_dir(temp_dir("ci-action-cwd"))
        .output()
        .unwrap()
}

#[test]
fn the_actions_script_runs_one_case_strictly_on_the_builtin_stack() {
    // A shard that is not I/N is a usage error, before anything runs.
    let out = ci_action(&["--shard".as_ref(), "0/3".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
    if !is_root() {
        return;
    }
    let reports = temp_dir("ci-action-reports");
    let out = ci_action(&[
        "--cases".as_ref(),
        case("icmp.yaml").as_os_str(),
        "--reports".as_ref(),
        reports.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("run --strict"), "{stderr}");
    assert!(stdout.contains("ok   icmp::same-node"), "{stdout}");
    assert!(stdout.contains("ok   icmp::snapshot::node1"), "{stdout}");
    assert!(reports.join("junit.xml").is_file());
    // The sixth of 100 slices of the suite: its sixth case in sorted order (after the five
    // Calico cases), named as in the whole suite.
    let out = ci_action(&[
        "--cases".as_ref(),
        case("").as_os_str(),
        "--shard".as_ref(),
        "6/100".as_ref(),
        "--reports".as_ref(),
        reports.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("shard 6/100: 1 of "), "{stderr}");
    assert!(stdout.contains("ok   cross-node-host-gw::"), "{stdout}");
}

/// `podpath ARGS` on a terminal (util-linux `script` gives it one), with `env` added; what the
/// terminal showed. `None` where `script` is missing.
fn on_a_terminal(args: &str, env: &str) -> Option<String> {
    let podpath = env!("CARGO_BIN_EXE_podpath");
    let out = Command::new("script")
        .args(["-qec", &format!("env {env} {podpath} {args}"), "/dev/null"])
        .env_remove("NO_COLOR")
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn run_is_coloured_with_a_progress_line_on_a_terminal_unless_no_color() {
    if !is_root() {
        return;
    }
    let reports = temp_dir("tty-reports");
    let args = format!(
        "run {} --reports {}",
        case("icmp.yaml").display(),
        reports.display()
    );
    let Some(shown) = on_a_terminal(&args, "TERM=xterm") else {
        eprintln!("no `script` here: skipped");
        return;
    };
    assert!(
        shown.contains("\x1b[32mok\x1b[0m   icmp::same-node"),
        "{shown:?}"
    );
    assert!(shown.contains("[1/4] "), "progress line: {shown:?}");
    let plain = on_a_terminal(&args, "TERM=xterm NO_COLOR=1").unwrap();
    assert!(plain.contains("ok   icmp::same-node"), "{plain:?}");
    assert!(!plain.contains("\x1b[32m"), "{plain:?}");
}
