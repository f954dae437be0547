//! The served Kubernetes API against a real client: kubectl (`PODPATH_KUBECTL`, the pinned
//! one, or the machine's) lists what the plan says, watches see changes made through
//! `ApiServer::apply`, watch-list, bookmarks and 410 behave as client-go expects, and a pod
//! reaches the API through the `default/kubernetes` ClusterIP. Root (or a user namespace),
//! inside the sandbox: `cargo test -p podpath --test api`.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netns_runtime::Cluster;
use netns_runtime::apiserver::{Change, Object, Resource};
use podpath::plan::{self, Plan, ProxyMode};
use podpath::suite::CaseRun;

mod run_support;

type Outcome = Result<Completion, Failed>;

fn case(name: &str) -> Plan {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cases")
        .join(name);
    plan::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// `PODPATH_KUBECTL`, else the pinned kubectl (`scripts/build-implementations kubectl`) when
/// built, else the machine's.
fn kubectl_program() -> String {
    if let Ok(k) = std::env::var("PODPATH_KUBECTL") {
        return k;
    }
    podpath::implementations::get("kubectl")
        .map(|i| i.binary("kubectl"))
        .filter(|p| p.exists())
        .map_or_else(|| "kubectl".into(), |p| p.display().to_string())
}

/// Runs `f` on the case's cluster (iptables mode), its namespaces prefixed with `prefix`.
fn on_cluster(
    name: &str,
    prefix: &str,
    f: impl FnOnce(&Cluster, &Plan) -> Result<(), Failed>,
) -> Outcome {
    if Command::new(kubectl_program())
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        return Ok(Completion::ignored_with("no kubectl (set PODPATH_KUBECTL)"));
    }
    let run = CaseRun::new(case(name), Some(ProxyMode::Iptables), 1, prefix.to_string());
    let files = run
        .with_cluster(|c| {
            let files = c.kubeconfig("node1");
            f(c, run.plan()).map(|()| files)
        })
        .map_err(|e| Failed::from(e.to_string()))??;
    // The last trial took the cluster down: the server's files are gone with it.
    if let Some(path) = files.filter(|p| p.exists()) {
        return Err(format!("{} is left after teardown", path.display()).into());
    }
    Ok(Completion::Completed)
}

/// kubectl in `node`'s namespace with its kubeconfig.
fn kubectl(cluster: &Cluster, node: &str, args: &[&str]) -> Result<(bool, String, String), Failed> {
    let config = cluster.kubeconfig(node).ok_or("no kubeconfig")?;
    let netns = format!("{}{node}", cluster.netns_prefix());
    let program = kubectl_program();
    let config = config.display().to_string();
    let mut argv = vec!["netns", "exec", &netns, &program, "--kubeconfig", &config];
    argv.extend(args);
    let done = netns_runtime::tool::run_here("ip", &argv, Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    Ok((done.code == Some(0), done.stdout, done.stderr))
}

fn get(cluster: &Cluster, args: &[&str]) -> Result<String, Failed> {
    let (ok, out, err) = kubectl(cluster, "node1", args)?;
    if !ok {
        return Err(format!("kubectl {args:?}: {err}").into());
    }
    Ok(out)
}

fn same_lines(what: &str, got: &str, mut want: Vec<String>) -> Result<(), Failed> {
    let mut got: Vec<String> = got.lines().map(str::to_string).collect();
    got.sort();
    want.sort();
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: kubectl says\n{}\nthe plan says\n{}",
            got.join("\n"),
            want.join("\n")
        )
        .into())
    }
}

fn lists_the_plan(cluster: &Cluster, plan: &Plan) -> Result<(), Failed> {
    let topo = &plan.topology;
    let nodes = get(
        cluster,
        &[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address} {.status.conditions[0].type}={.status.conditions[0].status}{"\n"}{end}"#,
        ],
    )?;
    same_lines(
        "nodes",
        &nodes,
        topo.nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {} {} Ready=True",
                    n.name,
                    n.pod_cidr,
                    n.eth0.addr.addr()
                )
            })
            .collect(),
    )?;
    let pods = get(
        cluster,
        &[
            "get",
            "pods",
            "-A",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.podIP} {.spec.nodeName} {.status.phase}{"\n"}{end}"#,
        ],
    )?;
    same_lines(
        "pods",
        &pods,
        topo.pods
            .iter()
            .map(|p| {
                format!(
                    "{}/{} {} {} Running",
                    p.namespace,
                    p.name,
                    p.eth0.addr.addr(),
                    topo.node_of(p).name
                )
            })
            .collect(),
    )?;
    let services = get(
        cluster,
        &[
            "get",
            "services",
            "-A",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.spec.clusterIP}{"\n"}{end}"#,
        ],
    )?;
    same_lines(
        "services",
        &services,
        plan.services
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    s.id(),
                    s.cluster_ip.map_or("None".into(), |i| i.to_string())
                )
            })
            .collect(),
    )?;
    let slices = get(
        cluster,
        &[
            "get",
            "endpointslices",
            "-A",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.labels.kubernetes\.io/service-name} {.endpoints[*].addresses[0]}{"\n"}{end}"#,
        ],
    )?;
    same_lines(
        "endpointslices",
        &slices,
        plan.services
            .iter()
            .map(|s| {
                let ips: Vec<String> = s.endpoints.iter().map(|e| e.ip.to_string()).collect();
                format!("{} {}", s.id(), ips.join(" "))
            })
            .collect(),
    )?;
    let cidrs = get(
        cluster,
        &[
            "get",
            "servicecidrs",
            "-o",
            "jsonpath={.items[*].spec.cidrs[0]}",
        ],
    )?;
    same_lines("servicecidrs", &cidrs, vec![plan.service_cidr.to_string()])?;
    let namespaces = get(cluster, &["get", "namespaces", "-o", "name"])?;
    for ns in ["namespace/default", "namespace/kube-system"] {
        if !namespaces.lines().any(|l| l == ns) {
            return Err(format!("no {ns} in {namespaces}").into());
        }
    }
    // Discovery as kubectl reads it: short names and the groups.
    get(cluster, &["get", "svc,ep,no", "-A", "-o", "name"])
        .or_else(|_| get(cluster, &["get", "svc,no", "-A", "-o", "name"]))?;
    let resources = get(cluster, &["api-resources", "-o", "name"])?;
    for r in [
        "endpointslices.discovery.k8s.io",
        "servicecidrs.networking.k8s.io",
        "nodes",
    ] {
        if !resources.lines().any(|l| l == r) {
            return Err(format!("api-resources lacks {r}: {resources}").into());
        }
    }
    Ok(())
}

fn watch_sees_a_change(cluster: &Cluster, plan: &Plan) -> Result<(), Failed> {
    let config = cluster.kubeconfig("node1").ok_or("no kubeconfig")?;
    let netns = format!("{}node1", cluster.netns_prefix());
    let mut child = Command::new("ip")
        .args(["netns", "exec", &netns, &kubectl_program(), "--kubeconfig"])
        .arg(&config)
        .args(["get", "endpointslices", "-w", "--output-watch-events", "-o"])
        .arg("jsonpath={.type} {.object.metadata.name}{\"\\n\"}")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str| -> Result<String, Failed> {
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains(what) => return Ok(line),
                Ok(_) => continue,
                Err(_) => return Err(format!("kubectl -w never printed {what}").into()),
            }
        }
    };
    let result = (|| {
        wait_for("ADDED kubernetes")?;
        let api = cluster.api().ok_or("no API")?;
        let far = plan
            .services
            .iter()
            .find(|s| s.name == "far")
            .ok_or("no Service far")?;
        let mut slice = podpath::api_objects::endpoint_slices(far).remove(0);
        slice.metadata.name = Some("far-churn".into());
        api.apply(Change::Apply(Object::EndpointSlice(slice)))
            .map_err(|e| e.to_string())?;
        let added = wait_for("far-churn")?;
        if !added.starts_with("ADDED") {
            return Err(format!("the new slice came as {added:?}").into());
        }
        api.apply(Change::Delete {
            resource: Resource::EndpointSlices,
            namespace: "default".into(),
            name: "far-churn".into(),
        })
        .map_err(|e| e.to_string())?;
        let deleted = wait_for("far-churn")?;
        if !deleted.starts_with("DELETED") {
            return Err(format!("the deletion came as {deleted:?}").into());
        }
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn watch_semantics(cluster: &Cluster, _: &Plan) -> Result<(), Failed> {
    // Watch-list (client-go's default): every object ADDED, then the initial-events-end bookmark.
    let out = get(
        cluster,
        &[
            "get",
            "--raw",
            "/api/v1/nodes?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
        ],
    )?;
    let events: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    if types != ["ADDED", "ADDED", "BOOKMARK"] {
        return Err(format!("watch-list gave {types:?}: {out}").into());
    }
    let end = &events[2]["object"]["metadata"];
    if end["annotations"]["k8s.io/initial-events-end"] != "true"
        || end["resourceVersion"].as_str().is_none()
    {
        return Err(format!("the last event is not the initial-events-end bookmark: {out}").into());
    }
    // A version from before the log: an ERROR event with a 410 Status, so the client relists.
    let out = get(
        cluster,
        &[
            "get",
            "--raw",
            "/api/v1/nodes?watch=1&resourceVersion=1&timeoutSeconds=1",
        ],
    )?;
    let event: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or(""))
        .map_err(|e| format!("{e}: {out}"))?;
    if event["type"] != "ERROR" || event["object"]["code"] != 410 {
        return Err(format!("an old version gave {out}").into());
    }
    let (ok, _, err) = kubectl(
        cluster,
        "node1",
        &[
            "get",
            "--raw",
            "/api/v1/nodes?resourceVersion=1&resourceVersionMatch=Exact",
        ],
    )?;
    if ok || !err.contains("Expired") {
        return Err(format!("an exact old list: {err}").into());
    }
    // A wrong token, a write, an unknown path.
    let (ok, _, err) = kubectl(cluster, "node1", &["--token", "wrong", "get", "nodes"])?;
    if ok || !err.contains("Unauthorized") {
        return Err(format!("a wrong token: {err}").into());
    }
    let (ok, _, err) = kubectl(cluster, "node1", &["delete", "service", "far"])?;
    if ok || !err.contains("MethodNotAllowed") && !err.contains("not allowed") {
        return Err(format!("a delete: {err}").into());
    }
    let (ok, _, err) = kubectl(
        cluster,
        "node1",
        &["get", "--raw", "/apis/apps/v1/deployments"],
    )?;
    if ok || !err.contains("NotFound") {
        return Err(format!("an unknown path: {err}").into());
    }
    // kube-proxy's own Node, by field selector.
    let out = get(
        cluster,
        &[
            "get",
            "nodes",
            "--field-selector",
            "metadata.name=node2",
            "-o",
            "name",
        ],
    )?;
    if out.trim() != "node/node2" {
        return Err(format!("field selector: {out}").into());
    }
    Ok(())
}

fn pod_reaches_the_api_by_cluster_ip(cluster: &Cluster, _: &Plan) -> Result<(), Failed> {
    // In-cluster configuration: KUBERNETES_SERVICE_HOST (10.96.0.1) and the service account
    // files; the connection goes through the proxy's DNAT to the API's address.
    let argv: Vec<String> = [
        "env",
        "HOME=/nonexistent",
        &kubectl_program(),
        "get",
        "nodes",
        "-o",
        "name",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let done = cluster
        .exec("client", &argv, Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    if done.code != Some(0) || !done.stdout.contains("node/node1") {
        return Err(format!("kubectl in pod client: {} {}", done.stdout, done.stderr).into());
    }
    let argv: Vec<String> = [
        "cat",
        "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let done = cluster
        .exec("client", &argv, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    if done.stdout != "default" {
        return Err(format!("the pod's namespace file says {:?}", done.stdout).into());
    }
    Ok(())
}

fn dns_serves_kubernetes(cluster: &Cluster, _: &Plan) -> Result<(), Failed> {
    let argv: Vec<String> = ["getent", "hosts", "kubernetes.default"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let done = cluster
        .exec("client", &argv, Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    if !done.stdout.starts_with("10.96.0.1 ") {
        return Err(format!(
            "kubernetes.default resolved to {:?} {}",
            done.stdout, done.stderr
        )
        .into());
    }
    Ok(())
}

fn follows_the_steps(cluster: &Cluster, plan: &Plan) -> Result<(), Failed> {
    let api = cluster.api().ok_or("no API")?;
    let web_ready = || {
        get(
            cluster,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
                "-o",
                r#"jsonpath={range .items[*].endpoints[*]}{.targetRef.name}={.conditions.ready}{" "}{end}"#,
            ],
        )
    };
    let services = || get(cluster, &["get", "services", "-o", "name"]);
    let pods = || get(cluster, &["get", "pods", "-o", "name"]);
    let sync = |to: usize| {
        podpath::api_objects::sync(api, plan, to).map_err(|e| Failed::from(e.to_string()))
    };
    let expect = |what: &str, got: String, want: &str| -> Result<(), Failed> {
        if got.contains(want) {
            Ok(())
        } else {
            Err(format!("{what}: {got:?} lacks {want:?}").into())
        }
    };
    expect("revision 0", web_ready()?, "web-2=true")?;
    if services()?.contains("service/late") {
        return Err("the initially absent Service late is served".into());
    }
    sync(1)?;
    expect("revision 1", web_ready()?, "web-2=false")?;
    expect(
        "revision 1 pod",
        get(
            cluster,
            &[
                "get",
                "pod",
                "web-2",
                "-o",
                r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
            ],
        )?,
        "False",
    )?;
    let last = plan.revisions.len() - 1;
    sync(last)?;
    let (svcs, pods) = (services()?, pods()?);
    if svcs.contains("service/old") || !svcs.contains("service/late") || pods.contains("pod/web-2")
    {
        return Err(format!("the last revision serves {svcs} {pods}").into());
    }
    // And back: a relisting client sees the declared cluster again.
    sync(0)?;
    expect("back at 0", web_ready()?, "web-2=true")?;
    if sync(0)? != 0 {
        return Err("a sync to the revision served changed something".into());
    }
    Ok(())
}

/// Threads of this process named like the API server's (`podpath-api`, `podpath-api-conn`).
fn api_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim().starts_with("podpath-api"))
        })
        .count()
}

fn main() {
    let sandbox = netns_runtime::sandbox::enter();
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::ignorable_test("kubectl-lists-the-plan", || {
            on_cluster("services/clusterip.yaml", "api-list.", lists_the_plan)
        }),
        Trial::ignorable_test("kubectl-watch-sees-a-change", || {
            on_cluster("services/clusterip.yaml", "api-watch.", watch_sees_a_change)
        }),
        Trial::ignorable_test("watch-list-bookmarks-and-410", || {
            on_cluster("services/clusterip.yaml", "api-sem.", watch_semantics)
        }),
        Trial::ignorable_test("pod-reaches-the-api-by-cluster-ip", || {
            on_cluster(
                "services/clusterip.yaml",
                "api-pod.",
                pod_reaches_the_api_by_cluster_ip,
            )
        }),
        Trial::ignorable_test("the-api-follows-a-case-s-steps", || {
            on_cluster(
                "services/endpoint-churn.yaml",
                "api-steps.",
                follows_the_steps,
            )
        }),
        Trial::ignorable_test("dns-serves-kubernetes-default", || {
            on_cluster("dns/names.yaml", "api-dns.", dns_serves_kubernetes)
        }),
    ];
    if let Err(e) = sandbox {
        trials = run_support::all_ignored(trials, &e.to_string());
    }
    let conclusion = libtest_mimic::run(&args, trials);
    // Every cluster is down: no server thread may be left (the trials run in this process).
    let left = api_threads();
    if left > 0 && !conclusion.has_failed() {
        eprintln!("{left} API server threads are left after every cluster was taken down");
        std::process::exit(101);
    }
    conclusion.exit();
}
