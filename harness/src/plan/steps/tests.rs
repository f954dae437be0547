//! Planning steps and revisions: pure, no cluster.

use netns_runtime::change::ClusterChange;

use crate::plan::Expect;
use crate::plan::testing::{assert_edits_stay_located, assert_one_error, diagnostics, plan};

const FILE: &str = "cases/steps.yaml";

const CASE: &str = "\
dns: { node: n1 }
nodes: [n1, n2]
pods:
  - { name: c, node: n1 }
  - { name: a, node: n1, labels: { app: w }, listen: [8080] }
  - { name: b, node: n2, labels: { app: w }, listen: [8080, 53/udp] }
services:
  - { name: w, selector: { app: w }, ports: [{ port: 80, targetPort: 8080 }] }
  - { name: late, initially: absent, selector: { app: w }, ports: [{ port: 81, targetPort: 8080 }] }
  - { name: u, selector: { app: w }, ports: [{ port: 53, protocol: UDP }] }
flows:
  - { name: f0, from: c, to: svc/w:80, attempts: 4, expect: { reach: [a, b] } }
  - step: { pod: b, ready: false }
  - { name: f1, from: c, to: svc/w:80, expect: { reach: a } }
  - step: { delete: svc/w }
  - { name: f2, from: c, to: svc/w:80, expect: { fail: timeout } }
  - { name: f3, from: c, to: w.default.svc.cluster.local:80, expect: { dns: { rcode: NXDOMAIN } } }
  - step: { create: svc/late }
  - { name: f4, from: c, to: late:81, expect: { reach: a, dns: svc/late } }
  - step: { delete: pod/a }
  - { name: f5, from: c, to: svc/late:81, expect: { fail: refused } }
";

fn ready_endpoints(plan: &crate::plan::Plan, revision: usize, service: &str) -> Vec<String> {
    let r = &plan.revisions[revision];
    let s = r
        .services
        .iter()
        .find(|s| s.name == service)
        .unwrap_or_else(|| panic!("no {service} in revision {revision}"));
    s.endpoints
        .iter()
        .filter(|e| e.ready)
        .filter_map(|e| e.pod.clone())
        .collect()
}

#[test]
fn each_step_makes_a_revision_and_each_flow_runs_against_the_one_before_it() {
    let p = plan(FILE, CASE);
    assert_eq!(p.revisions.len(), 5);
    assert_eq!(p.steps.len(), 4);
    let revisions: Vec<(String, usize)> = p
        .flows
        .iter()
        .map(|f| (f.name.clone(), f.revision))
        .collect();
    let want = [
        ("f0", 0),
        ("f1", 1),
        ("f2", 2),
        ("f3", 2),
        ("f4", 3),
        ("f5", 4),
    ];
    assert_eq!(
        revisions,
        want.map(|(n, r)| (n.to_owned(), r)).to_vec(),
        "flow revisions"
    );
    assert_eq!(
        p.steps[0].change,
        ClusterChange::PodReady {
            namespace: "default".into(),
            name: "b".into(),
            ready: false
        }
    );
    assert_eq!(p.steps[0].location.line, 13);
    assert_eq!(
        p.steps.iter().map(|s| s.revision).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(ready_endpoints(&p, 0, "w"), ["a", "b"]);
    assert_eq!(ready_endpoints(&p, 1, "w"), ["a"]);
    // A deleted pod is no endpoint at all; one that is not ready still is, not ready.
    assert_eq!(p.revisions[1].services[0].endpoints.len(), 2);
    assert_eq!(ready_endpoints(&p, 4, "late"), ["b"; 0]);
    assert_eq!(p.revisions[4].services[1].endpoints.len(), 1);
}

#[test]
fn an_absent_service_is_allocated_from_the_start_and_only_programmed_once_created() {
    let p = plan(FILE, CASE);
    // Declared order allocation: w .2, late .3, u .4, whatever is absent.
    let ips: Vec<String> = p
        .services
        .iter()
        .map(|s| s.cluster_ip.map(|a| a.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(&ips[..3], ["10.96.0.2", "10.96.0.3", "10.96.0.4"]);
    let names = |r: usize| -> Vec<String> {
        p.revisions[r].proxy[0]
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect()
    };
    // The API's default/kubernetes last, in every revision.
    assert_eq!(names(0), ["w", "u", "kube-dns", "kube-dns", "kubernetes"]);
    assert_eq!(names(2), ["u", "kube-dns", "kube-dns", "kubernetes"]);
    assert_eq!(
        names(3),
        ["late", "u", "kube-dns", "kube-dns", "kubernetes"]
    );
    // Revision 0 is the plan's own proxy tables and DNS records.
    assert_eq!(p.revisions[0].proxy, p.proxy);
    assert_eq!(
        p.revisions[0].dns.as_ref(),
        p.topology.dns.as_ref().map(|d| &d.records)
    );
    let dns_names = |r: usize| -> Vec<String> {
        p.revisions[r]
            .dns
            .as_ref()
            .unwrap()
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect()
    };
    assert_eq!(dns_names(0), ["w", "u", "kube-dns", "kubernetes"]);
    assert_eq!(dns_names(3), ["late", "u", "kube-dns", "kubernetes"]);
    let pods = |r: usize| p.revisions[r].dns.as_ref().unwrap().pods.len();
    assert_eq!(pods(4), pods(3) - 1, "a deleted pod has no DNS record");
}

#[test]
fn flows_are_judged_against_their_revision() {
    let p = plan(FILE, CASE);
    let f2 = &p.flows[2];
    // A deleted Service's ClusterIP is only an address.
    assert!(f2.service.is_none());
    assert_eq!(f2.target.to_string(), "tcp 10.96.0.2:80");
    assert!(matches!(f2.expect, Expect::Fail(_)));
    assert!(p.flows[4].service.is_some());
    // Errors against the revision: b is not ready in f1's, w is gone in f2's.
    let found = diagnostics(
        FILE,
        &CASE.replace(
            "expect: { reach: a } }",
            "attempts: 2, expect: { reach: [a, b] } }",
        ),
    );
    assert!(
        found[0].message.contains("not ready: it gets no traffic"),
        "{found:?}"
    );
    assert_one_error(
        FILE,
        &CASE.replace(
            "name: f2, from: c, to: svc/w:80, expect: { fail: timeout }",
            "name: f2, from: c, to: svc/w:80, expect: { reach: a }",
        ),
        16,
        57,
        "does not exist at this point of the flows (deleted by the step at 15:11)",
    );
    assert_one_error(
        FILE,
        &CASE.replace("dns: { rcode: NXDOMAIN }", "dns: svc/w"),
        17,
        77,
        "NXDOMAIN",
    );
}

#[test]
fn bad_steps_are_refused_where_they_are() {
    let with = |step: &str| CASE.replace("  - step: { pod: b, ready: false }", step);
    for (step, column, message) in [
        ("  - step: { pod: x, ready: false }", 18, "unknown pod `x`"),
        (
            "  - step: { pod: b, ready: true }",
            28,
            "already ready at this point",
        ),
        (
            "  - step: { pod: b }",
            18,
            "needs `ready: true` or `ready: false`",
        ),
        ("  - step: { ready: false }", 11, "exactly one of"),
        (
            "  - step: { pod: b, ready: false, delete: pod/b }",
            11,
            "exactly one of",
        ),
        (
            "  - step: { delete: svc/nope }",
            21,
            "unknown Service `default/nope`",
        ),
        (
            "  - step: { delete: svc/late }",
            21,
            "does not exist at this point",
        ),
        ("  - step: { create: svc/w }", 21, "exists at this point"),
        (
            "  - step: { delete: node/n1 }",
            21,
            "write pod/NAME, svc/NAME",
        ),
        (
            "  - step: { create: pod/b }",
            21,
            "pod b exists at this point",
        ),
        (
            "  - { name: s, step: { delete: pod/b } }",
            13,
            "`name` beside `step`",
        ),
    ] {
        assert_one_error(FILE, &with(step), 13, column, message);
    }
    // Unknown keys in a step are structural errors, located.
    let found = diagnostics(FILE, &with("  - step: { pod: b, redy: false }"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].location.map(|l| l.line), Some(13));
    // A step on a pod an earlier step deleted.
    assert_one_error(
        FILE,
        &format!("{CASE}  - step: {{ pod: a, ready: true }}\n"),
        22,
        18,
        "pod a does not exist at this point: deleted by the step at 20:11",
    );
    assert_one_error(
        FILE,
        &CASE.replace("initially: absent", "initially: gone"),
        9,
        30,
        "unknown `initially` `gone`",
    );
}

#[test]
fn edited_steps_never_panic_and_stay_located() {
    assert_edits_stay_located(
        CASE,
        &[
            "step: ",
            "{ pod: b, ready: true }",
            "delete: svc/w",
            "create: ",
            "\n  - ",
        ],
        0x5eed_57e9,
        300,
    );
}

#[test]
fn podpath_plan_shows_the_steps_and_each_flows_revision() {
    let p = plan(FILE, CASE);
    let text = p.to_string();
    for want in [
        "flows at revision 0:\nflow f0 (line 12)",
        "step (line 13): pod/default/b ready=false -> revision 1\n  service    default/w ready endpoints: a\n",
        "flows at revision 1:\nflow f1 (line 14)",
        "step (line 15): delete svc/default/w -> revision 2",
        "step (line 20): delete pod/default/a -> revision 4",
        "  initially  absent until a step creates it",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    let json = crate::plan_json::plan_json(&p);
    assert_eq!(json["steps"][1]["change"], "delete svc/default/w");
    assert_eq!(json["steps"][1]["line"], 15);
    assert_eq!(json["steps"][1]["revision"], 2);
    assert_eq!(json["flows"][5]["revision"], 4);
}
