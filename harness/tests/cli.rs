//! The `podpath` binary from the outside: located errors, `plan` without privileges, the JUnit
//! report of `run`, and a sandbox that leaves nothing behind when podpath is killed.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    let junit = reports.join("junit.xml");
    let said = format!("podpath: JUnit report in {}", junit.display());
    assert!(stderr.contains(&said), "expected {said:?} in: {stderr}");
    let text = std::fs::read_to_string(&junit).unwrap();
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

/// Processes whose environment carries `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(env) = std::fs::read(entry.path().join("environ"))
            && env
                .split(|b| *b == 0)
                .any(|kv| kv == format!("PODPATH_TEST_MARKER={marker}").as_bytes())
        {
            found.push(name);
        }
    }
    found
}

#[test]
fn shell_killed_with_sigkill_leaves_the_host_as_it_was() {
    let before = host_state();
    let marker = format!("sigkill-{}", std::process::id());
    let mut child = podpath()
        .arg("shell")
        .arg(case("three-nodes.yaml"))
        .args(["--", "sh", "-c", "ip netns list | wc -l; exec sleep 60"])
        .env("PODPATH_TEST_MARKER", &marker)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.trim().is_empty() {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(2), "podpath shell failed: {err}");
        return; // No sandbox possible here.
    }
    // underlay + 3 nodes + 3 pods are up inside the sandbox.
    assert_eq!(line.trim(), "7", "namespaces inside the sandbox");
    assert!(!processes_with(&marker).is_empty());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_with(&marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        processes_with(&marker),
        Vec::<String>::new(),
        "every process of the sandbox dies with podpath"
    );
    assert_eq!(host_state(), before);
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
    let flow = reports.join("flows/no-route__no-route");
    assert!(flow.join("capture.pcapng").exists(), "{stdout}");
    let _ = std::fs::remove_dir_all(&reports);
}
