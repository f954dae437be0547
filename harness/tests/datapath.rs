//! The trials send real packets: breaking the datapath under a case makes its flows fail, and
//! mending it makes them pass again. Each trial builds a suite case for real, breaks one kernel
//! object the overlay needs (an FDB entry, a neighbour, a route), and judges the case's own flow.
//!
//! The hop trials change one expected hop of a suite case (a wrong VNI, a wrong DNAT target, a
//! DNAT on the wrong node) and check that the flow then fails with the expected and observed
//! paths side by side, and that its failure leaves a pcapng that `tshark` reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netns_runtime::netlink::Netlink;
use netns_runtime::{Cluster, netns};
use podpath::plan::{self, Plan};
use podpath::suite::probe_target;
use podpath::verdict::judge;

mod run_support;

fn case(name: &str) -> Plan {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cases")
        .join(name);
    plan::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs flow `flow` of the cluster's case and says whether it passed, with the outcome.
fn flow_passes(cluster: &Cluster, plan: &Plan, flow: &str, timeout: Duration) -> (bool, String) {
    let f = plan
        .flows
        .iter()
        .find(|f| f.name == flow)
        .expect("flow exists");
    let outcome = cluster.probe(&f.from, probe_target(f), timeout);
    let v = judge(f, cluster.topology(), std::slice::from_ref(&outcome));
    (v.passed, v.observed)
}

/// Runs `f` with a netlink socket inside node `node` of `cluster`.
fn in_node<R: Send>(cluster: &Cluster, node: &str, f: impl FnOnce(&mut Netlink) -> R + Send) -> R {
    let ns = cluster.node_netns(node).expect("node exists");
    netns::run_in(std::os::fd::AsFd::as_fd(ns), || {
        let mut nl = Netlink::open().expect("netlink");
        f(&mut nl)
    })
    .expect("enter node")
}

fn check(cond: bool, what: String) -> Result<(), Failed> {
    if cond { Ok(()) } else { Err(what.into()) }
}

fn breaking(
    case_file: &'static str,
    flow: &'static str,
    prefix: &'static str,
    break_it: fn(&Cluster, &mut Netlink),
    mend_it: fn(&Cluster, &mut Netlink),
) -> Result<Completion, Failed> {
    let plan = case(case_file);
    let cluster = Cluster::build_prefixed(&plan.topology, prefix).map_err(|e| e.to_string())?;
    let short = Duration::from_millis(500);
    let (ok, seen) = flow_passes(&cluster, &plan, flow, short);
    check(
        ok,
        format!("intact datapath: {flow} should pass, observed {seen}"),
    )?;
    in_node(&cluster, "node1", |nl| break_it(&cluster, nl));
    let (ok, seen) = flow_passes(&cluster, &plan, flow, short);
    check(
        !ok,
        format!("broken datapath: {flow} should fail, observed {seen}"),
    )?;
    in_node(&cluster, "node1", |nl| mend_it(&cluster, nl));
    let (ok, seen) = flow_passes(&cluster, &plan, flow, short);
    check(
        ok,
        format!("mended datapath: {flow} should pass again, observed {seen}"),
    )?;
    cluster.teardown().map_err(|e| format!("{e:?}"))?;
    Ok(Completion::Completed)
}

fn fdb_of_node1(c: &Cluster) -> (netns_runtime::topology::Mac, std::net::Ipv4Addr) {
    let f = &c.topology().node("node1").unwrap().network.fdb[0];
    (f.mac, f.dst)
}

/// node1's first route: the route to its peer's pod subnet (vxlan or host-gw).
fn delete_first_route_of_node1(c: &Cluster, nl: &mut Netlink) {
    let r = &c.topology().node("node1").unwrap().network.routes[0];
    let dev = nl.link_index(&r.dev).unwrap();
    nl.del_route(r.dst, r.via, dev).unwrap();
}

fn restore_first_route_of_node1(c: &Cluster, nl: &mut Netlink) {
    let r = &c.topology().node("node1").unwrap().network.routes[0];
    let dev = nl.link_index(&r.dev).unwrap();
    nl.add_route(r.dst, r.via, dev, r.onlink).unwrap();
}

/// The cross-node Service case with `from` replaced by `to` in its text (once, where given).
fn clusterip_with(from: &str, to: &str) -> Result<Plan, Failed> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/services/clusterip.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    if !from.is_empty() && !text.contains(from) {
        return Err(format!("{} no longer holds {from:?}", path.display()).into());
    }
    plan::load_str(&path, &text.replacen(from, to, 1)).map_err(|e| e.to_string().into())
}

/// Runs the `cross-node` flow of `plan` in iptables mode, observed, with artifacts for failures
/// going to `reports`.
fn cross_node(
    plan: Plan,
    prefix: &str,
    reports: &Path,
) -> Result<(podpath::suite::FlowRun, Option<String>), Failed> {
    use podpath::report::{ArtifactPolicy, ReportSink};
    use podpath::suite::{CaseRun, RunOptions, flow_failure};
    let index = plan
        .flows
        .iter()
        .position(|f| f.name == "cross-node")
        .ok_or("no flow cross-node")?;
    let flow = plan.flows[index].clone();
    let run = CaseRun::new(plan, Some(plan::ProxyMode::Iptables), 1, prefix.into());
    let options = RunOptions {
        observe: true,
        artifacts: ArtifactPolicy::Failing,
        rule_texts: false,
    };
    let r = run.run_flow(index, &options)?;
    let sink = ReportSink::new(reports.to_path_buf(), ArtifactPolicy::Failing);
    let failure = flow_failure(&r, &flow, "hops::cross-node", &sink);
    Ok((r, failure))
}

fn one_wrong_hop(from: &str, to: &str, label: &str, prefix: &str) -> Result<Completion, Failed> {
    let reports = std::env::temp_dir().join(format!("podpath-dp-{prefix}{}", std::process::id()));
    let (run, failure) = cross_node(clusterip_with(from, to)?, prefix, &reports)?;
    let _ = std::fs::remove_dir_all(&reports);
    let failure = failure.ok_or_else(|| format!("with `{label}` the flow still passed"))?;
    check(
        run.verdict.observed.contains("answered by far"),
        format!("only the hop is wrong, the flow itself works: {failure}"),
    )?;
    for want in [
        "was not observed".to_string(),
        format!("✗ {label}"),
        "observed (forward)".to_string(),
        "| +0.0".to_string(),
        "last seen:".to_string(),
        "last rule hit:".to_string(),
    ] {
        check(
            failure.contains(&want),
            format!("{want:?} missing from:\n{failure}"),
        )?;
    }
    Ok(Completion::Completed)
}

/// `case` (under `cases/`) with `edit` applied to its text.
fn case_edited(
    case: &str,
    edit: impl FnOnce(&str) -> Result<String, Failed>,
) -> Result<Plan, Failed> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cases")
        .join(case);
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    plan::load_str(&path, &edit(&text)?).map_err(|e| e.to_string().into())
}

/// Runs `flows` of `plan` on one cluster, observed, in proxy mode `mode`: each run with its
/// failure as reported.
fn run_flows(
    plan: Plan,
    flows: &[&str],
    mode: Option<plan::ProxyMode>,
    prefix: &str,
) -> Result<Vec<(podpath::suite::FlowRun, Option<String>)>, Failed> {
    use podpath::report::{ArtifactPolicy, ReportSink};
    use podpath::suite::{CaseRun, RunOptions, flow_failure};
    let reports = std::env::temp_dir().join(format!("podpath-dp-{prefix}{}", std::process::id()));
    let indices = flows
        .iter()
        .map(|name| {
            plan.flows
                .iter()
                .position(|f| f.name == *name)
                .ok_or_else(|| format!("no flow {name}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let run = CaseRun::new(plan, mode, indices.len(), prefix.into());
    let options = RunOptions {
        observe: true,
        artifacts: ArtifactPolicy::Failing,
        rule_texts: false,
    };
    let sink = ReportSink::new(reports.clone(), ArtifactPolicy::Failing);
    let mut out = Vec::new();
    for index in indices {
        let r = run.run_flow(index, &options)?;
        let flow = &run.plan().flows[index];
        let failure = flow_failure(&r, flow, &format!("hops::{}", flow.name), &sink);
        out.push((r, failure));
    }
    let _ = std::fs::remove_dir_all(&reports);
    Ok(out)
}

/// The failure of a flow whose hops are out of order, though the flow works: the first hop
/// found out of order is `missing`, after `after` on the same packet, side by side.
fn out_of_order(
    run: &podpath::suite::FlowRun,
    failure: Option<String>,
    answered: &str,
    missing: &str,
    after: &str,
) -> Result<(), Failed> {
    let failure = failure.ok_or("hops out of order, yet the flow passed")?;
    check(
        run.verdict.observed.contains(answered),
        format!("only the order is wrong, the flow itself works: {failure}"),
    )?;
    for want in [
        format!("`{missing}`"),
        format!("was not observed after `{after}` on the same packet"),
        format!("✓ {after}"),
        format!("✗ {missing}"),
        "observed (forward), along one packet: packet 1 of ".to_string(),
        "| +0.0".to_string(),
        "last seen:".to_string(),
    ] {
        check(
            failure.contains(&want),
            format!("{want:?} missing from:\n{failure}"),
        )?;
    }
    Ok(())
}

/// Records the changes a run hands its change sink.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl netns_runtime::change::ChangeSink for Recorder {
    fn apply(&self, change: &netns_runtime::change::ClusterChange) {
        self.0.lock().unwrap().push(change.to_string());
    }
}

/// The proxy re-renders when a case's steps change the cluster, forward and back: flows of
/// `services/endpoint-churn.yaml` run out of order pass only if every node's rules follow the
/// flow's revision; the rules differ between revisions; back at revision 0 they are byte for
/// byte what the fresh cluster had (no stale chains, no doubled jumps); the change sink gets
/// every change, backward ones as inverses.
fn re_renders(mode: plan::ProxyMode, prefix: &str) -> Result<(), Failed> {
    use podpath::report::ArtifactPolicy;
    use podpath::suite::{CaseRun, RunOptions};
    let plan = case("services/endpoint-churn.yaml");
    let index = |name: &str| plan.flows.iter().position(|f| f.name == name).unwrap();
    let (none_ready, deleted, one_unready) = (
        index("none-ready"),
        index("deleted-endpoint"),
        index("one-unready"),
    );
    let recorder = std::sync::Arc::new(Recorder::default());
    let run = CaseRun::new(plan, Some(mode), 6, prefix.into()).with_change_sink(recorder.clone());
    let options = RunOptions {
        observe: false,
        artifacts: ArtifactPolicy::None,
        rule_texts: false,
    };
    let fresh = run.node_snapshot("node1")?;
    let mut moved = Vec::new();
    for index in [none_ready, deleted, one_unready] {
        let r = run.run_flow(index, &options)?;
        let flow = &run.plan().flows[index];
        check(
            r.verdict.passed,
            format!("{}: {}", flow.name, r.verdict.render(flow)),
        )?;
        let change = r.change.ok_or(format!("{} moved no revision", flow.name))?;
        moved.push((change.from, change.to));
        if index == none_ready {
            let tables = run.rule_tables();
            let rules = run.with_cluster(|c| c.node_rules(&tables, "node1"))??;
            check(
                rules != fresh,
                "node1's rules at revision 2 are those of revision 0".into(),
            )?;
        }
    }
    check(
        moved == [(0, 2), (2, 6), (6, 1)],
        format!("revisions moved: {moved:?}"),
    )?;
    let back = run.node_snapshot("node1")?;
    check(
        back == fresh,
        format!(
            "back at revision 0, node1 differs from the fresh cluster:\n{}",
            similar_diff(&fresh, &back)
        ),
    )?;
    let got = recorder.0.lock().unwrap().clone();
    // 0 -> 2 forward, 2 -> 6 forward, 6 -> 1 back (inverses, last first), 1 -> 0 back.
    let want = [
        "pod/default/web-2 ready=false",
        "pod/default/web-1 ready=false",
        "pod/default/web-2 ready=true",
        "delete svc/default/old",
        "create svc/default/late",
        "delete pod/default/web-2",
        "create pod/default/web-2",
        "delete svc/default/late",
        "create svc/default/old",
        "pod/default/web-2 ready=false",
        "pod/default/web-1 ready=true",
        "pod/default/web-2 ready=true",
    ];
    check(got == want, format!("changes: {got:#?}"))
}

fn similar_diff(a: &str, b: &str) -> String {
    a.lines()
        .zip(b.lines())
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("- {x}\n+ {y}"))
        .take(20)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `tshark -r file -d udp.port==8472,vxlan -T fields -e frame.interface_name -e vxlan.vni`,
/// or why it cannot run.
fn tshark_fields(file: &Path) -> Result<String, String> {
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(file)
        // flannel's port, not the IANA one Wireshark decodes as VXLAN by itself.
        .args(["-d", "udp.port==8472,vxlan"])
        .args([
            "-T",
            "fields",
            "-e",
            "frame.interface_name",
            "-e",
            "vxlan.vni",
        ])
        .output()
        .map_err(|e| format!("tshark: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark -r {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`breaking`], for a Calico case on a builtin Calico stack: the case's own flow (its
/// hops included) passes, fails once `break_it` has removed one object of node1's Calico
/// layout, and passes again once `mend_it` has put it back.
fn breaking_calico(
    stack_file: &'static str,
    case_file: &'static str,
    flow: &'static str,
    prefix: &'static str,
    break_it: fn(&netns_runtime::stack::calico::NodeLayout, &mut Netlink),
    mend_it: fn(&netns_runtime::stack::calico::NodeLayout, &mut Netlink),
) -> Result<Completion, Failed> {
    use netns_runtime::stack::calico;
    use podpath::report::ArtifactPolicy;
    use podpath::suite::{CaseRun, RunOptions};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stack = podpath::stack::Stack::load(&root.join("stacks").join(stack_file))
        .map_err(|e| e.to_string())?;
    let mode = stack.calico_mode();
    let plan = case(case_file);
    let index = plan
        .flows
        .iter()
        .position(|f| f.name == flow)
        .expect("flow exists");
    let run = CaseRun::on_stack(plan, None, 100, prefix.into(), std::sync::Arc::new(stack));
    let topology = run.planned.topology.clone();
    let ipam = calico::ipam(&topology, mode).map_err(|e| e.to_string())?;
    let layout = calico::node_layout(&topology, &ipam, mode, 0);
    let options = RunOptions {
        observe: false,
        artifacts: ArtifactPolicy::None,
        rule_texts: false,
    };
    let verdict = |what: &str| -> Result<(bool, String), Failed> {
        let r = run
            .run_flow(index, &options)
            .map_err(|e| format!("{what}: {e}"))?;
        Ok((r.verdict.passed, r.verdict.observed))
    };
    let on_node1 = |f: &(dyn Fn(&mut Netlink) + Sync)| {
        run.with_cluster(|c| in_node(c, "node1", |nl| f(nl)))
            .map_err(|e| Failed::from(e.to_string()))
    };
    let (ok, seen) = verdict("intact")?;
    check(
        ok,
        format!("intact datapath: {flow} should pass, observed {seen}"),
    )?;
    on_node1(&|nl| break_it(&layout, nl))?;
    let (ok, seen) = verdict("broken")?;
    check(
        !ok,
        format!("broken datapath: {flow} should fail, observed {seen}"),
    )?;
    on_node1(&|nl| mend_it(&layout, nl))?;
    let (ok, seen) = verdict("mended")?;
    check(
        ok,
        format!("mended datapath: {flow} should pass again, observed {seen}"),
    )?;
    Ok(Completion::Completed)
}

/// node1's route to node2's block, the one a Calico cross-node flow takes.
fn calico_route(
    l: &netns_runtime::stack::calico::NodeLayout,
) -> &netns_runtime::stack::calico::CalicoRoute {
    l.routes
        .iter()
        .find(|r| r.dev.is_some())
        .expect("a route to a remote block")
}

fn main() {
    let sandbox = netns_runtime::sandbox::enter();
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test("proxy-re-renders-on-steps-iptables", || {
            re_renders(plan::ProxyMode::Iptables, "dp-churn-ipt.")
        }),
        Trial::test("proxy-re-renders-on-steps-nftables", || {
            re_renders(plan::ProxyMode::Nftables, "dp-churn-nft.")
        }),
        Trial::ignorable_test("vxlan-fdb-entry-deleted", || {
            breaking(
                "cross-node-vxlan.yaml",
                "tcp",
                "dp-fdb.",
                |c, nl| {
                    let (mac, dst) = fdb_of_node1(c);
                    let dev = nl.link_index("flannel.1").unwrap();
                    nl.del_fdb(dev, mac, dst).unwrap();
                },
                |c, nl| {
                    let (mac, dst) = fdb_of_node1(c);
                    let dev = nl.link_index("flannel.1").unwrap();
                    nl.add_fdb(dev, mac, dst).unwrap();
                },
            )
        }),
        Trial::ignorable_test("vxlan-neighbour-deleted", || {
            breaking(
                "cross-node-vxlan.yaml",
                "udp",
                "dp-neigh.",
                |c, nl| {
                    let n = &c.topology().node("node1").unwrap().network.neighbours[0];
                    let dev = nl.link_index("flannel.1").unwrap();
                    nl.del_neighbour(dev, n.ip).unwrap();
                },
                |c, nl| {
                    let n = &c.topology().node("node1").unwrap().network.neighbours[0];
                    let dev = nl.link_index("flannel.1").unwrap();
                    nl.add_neighbour(dev, n.ip, n.mac).unwrap();
                },
            )
        }),
        Trial::ignorable_test("vxlan-route-deleted", || {
            breaking(
                "cross-node-vxlan.yaml",
                "tcp",
                "dp-route.",
                delete_first_route_of_node1,
                restore_first_route_of_node1,
            )
        }),
        Trial::ignorable_test("host-gw-route-deleted", || {
            breaking(
                "cross-node-host-gw.yaml",
                "tcp",
                "dp-hostgw.",
                delete_first_route_of_node1,
                restore_first_route_of_node1,
            )
        }),
        Trial::ignorable_test("calico-routed-route-deleted", || {
            breaking_calico(
                "calico-routed.yaml",
                "calico/routed.yaml",
                "tcp",
                "dp-cali-route.",
                |l, nl| {
                    let r = calico_route(l);
                    let dev = nl.link_index(r.dev.as_deref().unwrap()).unwrap();
                    nl.del_route(r.dst, r.via, dev).unwrap();
                },
                |l, nl| {
                    let r = calico_route(l);
                    let dev = nl.link_index(r.dev.as_deref().unwrap()).unwrap();
                    nl.add_route(r.dst, r.via, dev, r.onlink).unwrap();
                },
            )
        }),
        Trial::ignorable_test("calico-vxlan-fdb-entry-deleted", || {
            breaking_calico(
                "calico-vxlan.yaml",
                "calico/vxlan.yaml",
                "tcp",
                "dp-cali-fdb.",
                |l, nl| {
                    let (mac, dst) = l.fdb[0];
                    let dev = nl.link_index("vxlan.calico").unwrap();
                    nl.del_fdb(dev, mac, dst).unwrap();
                },
                |l, nl| {
                    let (mac, dst) = l.fdb[0];
                    let dev = nl.link_index("vxlan.calico").unwrap();
                    nl.add_fdb(dev, mac, dst).unwrap();
                },
            )
        }),
        Trial::ignorable_test("hops-as-written-pass", || {
            let reports = std::env::temp_dir().join(format!("podpath-dp-ok{}", std::process::id()));
            let (run, failure) = cross_node(clusterip_with("", "")?, "dp-hops-ok.", &reports)?;
            check(failure.is_none(), format!("{failure:?}"))?;
            check(run.journey.is_some(), "observed".into())?;
            check(
                !reports.exists(),
                "a passing flow leaves no artifacts".into(),
            )?;
            Ok(Completion::Completed)
        }),
        Trial::ignorable_test("hops-wrong-vni-fails-side-by-side", || {
            one_wrong_hop(
                "vxlan: { vni: 1, port: 8472, outer: node1 -> node2 }",
                "vxlan: { vni: 2, port: 8472, outer: node1 -> node2 }",
                "node1/eth0 vxlan vni=2 port=8472 outer=node1->node2",
                "dp-vni.",
            )
        }),
        Trial::ignorable_test("hops-wrong-dnat-target-fails-side-by-side", || {
            one_wrong_hop(
                "{ node: node1, dnat: far:8080 }",
                "{ node: node1, dnat: near:8080 }",
                "node1 dnat near:8080",
                "dp-dnat.",
            )
        }),
        Trial::ignorable_test("hops-dnat-on-the-wrong-node-fails-side-by-side", || {
            one_wrong_hop(
                "{ node: node1, dnat: far:8080 }",
                "{ node: node2, dnat: far:8080 }",
                "node2 dnat far:8080",
                "dp-node.",
            )
        }),
        Trial::ignorable_test("hops-out-of-order-tcp-fails-side-by-side", || {
            // The DNAT moved after the endpoint's eth0: the SYN is DNATed before it gets there,
            // and every later packet of the connection is DNATed after the SYN got there; the
            // hops must hold along one packet, so this fails.
            let plan = case_edited("services/clusterip.yaml", |text| {
                let dnat = "        - { node: node1, dnat: far:8080 }\n";
                let far = "        - { iface: far/eth0, dir: in, src: client, dst: far:8080 }\n";
                if !text.contains(dnat) || !text.contains(far) {
                    return Err("clusterip.yaml no longer holds the hops moved".into());
                }
                Ok(text
                    .replacen(dnat, "", 1)
                    .replacen(far, &format!("{far}{dnat}"), 1))
            })?;
            let mut runs = run_flows(
                plan,
                &["cross-node"],
                Some(plan::ProxyMode::Iptables),
                "dp-order-tcp.",
            )?;
            let (run, failure) = runs.remove(0);
            out_of_order(
                &run,
                failure,
                "answered by far",
                "node1 dnat far:8080",
                "far/eth0 in src=client dst=far:8080",
            )?;
            Ok(Completion::Completed)
        }),
        Trial::ignorable_test("hops-out-of-order-udp-fails-side-by-side", || {
            let plan = case_edited("cross-node-vxlan.yaml", |text| {
                let udp = "expect: { reach: pod-b, seenSource: pod-a }";
                if !text.contains(udp) {
                    return Err("cross-node-vxlan.yaml's udp flow changed".into());
                }
                let text = text.replacen(
                    udp,
                    "expect: { reach: pod-b, hops: [pod-a/eth0, pod-b/eth0, { iface: node1/eth0, vxlan: { vni: 1 } }] }",
                    1,
                );
                Ok(text
                    + "  - name: udp-in-order\n    from: pod-a\n    to: pod-b:5353\n    protocol: udp\n    \
                       expect: { reach: pod-b, hops: [pod-a/eth0, { iface: node1/eth0, vxlan: { vni: 1 } }, pod-b/eth0] }\n")
            })?;
            let mut runs = run_flows(plan, &["udp", "udp-in-order"], None, "dp-order-udp.")?;
            let (run, failure) = runs.remove(0);
            out_of_order(
                &run,
                failure,
                "answered by pod-b",
                "node1/eth0 vxlan vni=1",
                "pod-b/eth0",
            )?;
            let (_, failure) = runs.remove(0);
            check(failure.is_none(), format!("in order: {failure:?}"))?;
            Ok(Completion::Completed)
        }),
        Trial::ignorable_test("failing-flow-leaves-a-pcapng-tshark-reads", || {
            let reports =
                std::env::temp_dir().join(format!("podpath-dp-pcap{}", std::process::id()));
            let plan = clusterip_with("vxlan: { vni: 1,", "vxlan: { vni: 7,")?;
            let (_, failure) = cross_node(plan, "dp-pcap.", &reports)?;
            let failure = failure.ok_or("vni 7 should fail")?;
            let pcap = reports.join("flows/hops__cross-node/capture.pcapng");
            check(pcap.exists(), format!("no {}: {failure}", pcap.display()))?;
            let dir = pcap.parent().ok_or("no parent")?;
            for file in [
                "journey.md",
                "conntrack.txt",
                "rules/node1.txt",
                "rules/node2.txt",
            ] {
                check(
                    dir.join(file).exists(),
                    format!("no {file} in {}", dir.display()),
                )?;
            }
            let journey =
                std::fs::read_to_string(dir.join("journey.md")).map_err(|e| e.to_string())?;
            check(
                journey.contains("sequenceDiagram") && journey.contains("DNAT 10.96.0.3:80"),
                format!("journey.md lacks the diagram or the DNAT:\n{journey}"),
            )?;
            let fields = tshark_fields(&pcap);
            let _ = std::fs::remove_dir_all(&reports);
            let fields = match fields {
                Ok(f) => f,
                // Locally tshark may be missing; CI installs it, and there it must work.
                Err(e) if std::env::var_os("CI").is_none() => {
                    return Ok(Completion::ignored_with(format!(
                        "{e} (scripts/setup installs tshark)"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            for point in [
                "client/eth0",
                "node1/cni0",
                "node1/flannel.1",
                "node2/eth0",
                "far/eth0",
            ] {
                check(
                    fields.lines().any(|l| l.split('\t').next() == Some(point)),
                    format!("tshark saw nothing on {point}:\n{fields}"),
                )?;
            }
            check(
                fields.lines().any(|l| l == "node1/eth0\t1"),
                format!(
                    "tshark saw no VXLAN VNI 1 on node1/eth0:\n{}",
                    fields
                        .lines()
                        .filter(|l| l.starts_with("node1/eth0"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            )?;
            Ok(Completion::Completed)
        }),
        Trial::ignorable_test("tool-output-stdin-and-failure", || {
            let here = netns::current().map_err(|e| e.to_string())?;
            let t = Duration::from_secs(5);
            let out = netns_runtime::tool::run(&here, "cat", &[], Some(b"rules\n"), t)
                .map_err(|e| e.to_string())?;
            check(out == "rules\n", format!("cat echoed {out:?}"))?;
            let err =
                netns_runtime::tool::run(&here, "sh", &["-c", "echo bad >&2; exit 3"], None, t)
                    .expect_err("exit 3 is a failure")
                    .to_string();
            check(
                err.contains("exit code 3") && err.contains("bad"),
                format!("failure says code and stderr: {err}"),
            )?;
            Ok(Completion::Completed)
        }),
        Trial::ignorable_test("tool-timeout-kills", || {
            let here = netns::current().map_err(|e| e.to_string())?;
            let start = std::time::Instant::now();
            let err =
                netns_runtime::tool::run(&here, "sleep", &["10"], None, Duration::from_millis(200))
                    .expect_err("sleep outlives its timeout")
                    .to_string();
            check(err.contains("killed after"), err)?;
            check(
                start.elapsed() < Duration::from_secs(5),
                format!("took {:?}", start.elapsed()),
            )?;
            Ok(Completion::Completed)
        }),
    ];
    if let Err(e) = sandbox {
        trials = run_support::all_ignored(trials, &e.to_string());
    }
    libtest_mimic::run(&args, trials).exit();
}
