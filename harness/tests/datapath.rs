//! The trials send real packets: breaking the datapath under a case makes its flows fail, and
//! mending it makes them pass again. Each trial builds a suite case for real, breaks one kernel
//! object the overlay needs (an FDB entry, a neighbour, a route), and judges the case's own flow.

use std::path::{Path, PathBuf};
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use netns_runtime::netlink::Netlink;
use netns_runtime::{Cluster, netns};
use podpath::plan::{self, Plan};
use podpath::suite::probe_target;
use podpath::verdict::judge;

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
    let f = &c.topology().node("node1").unwrap().fdb[0];
    (f.mac, f.dst)
}

/// node1's first route: the route to its peer's pod subnet (vxlan or host-gw).
fn delete_first_route_of_node1(c: &Cluster, nl: &mut Netlink) {
    let r = &c.topology().node("node1").unwrap().routes[0];
    let dev = nl.link_index(&r.dev).unwrap();
    nl.del_route(r.dst, r.via, dev).unwrap();
}

fn restore_first_route_of_node1(c: &Cluster, nl: &mut Netlink) {
    let r = &c.topology().node("node1").unwrap().routes[0];
    let dev = nl.link_index(&r.dev).unwrap();
    nl.add_route(r.dst, r.via, dev, r.onlink).unwrap();
}

fn main() {
    let sandbox = netns_runtime::sandbox::enter();
    let args = Arguments::from_args();
    let mut trials = vec![
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
                    let n = &c.topology().node("node1").unwrap().neighbours[0];
                    let dev = nl.link_index("flannel.1").unwrap();
                    nl.del_neighbour(dev, n.ip).unwrap();
                },
                |c, nl| {
                    let n = &c.topology().node("node1").unwrap().neighbours[0];
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
        let reason = e.to_string();
        trials = trials
            .into_iter()
            .map(|t| {
                let reason = reason.clone();
                Trial::ignorable_test(t.name().to_string(), move || {
                    Ok(Completion::ignored_with(reason))
                })
                .with_ignored_flag(true)
            })
            .collect();
    }
    libtest_mimic::run(&args, trials).exit();
}
