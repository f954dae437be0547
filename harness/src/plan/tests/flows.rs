use super::*;

// --- flows ---------------------------------------------------------------------------

#[test]
fn flows_resolve_targets_and_expectations() {
    let plan = plan(
            FILE,
            "nodes: [node1, node2]
pods:
  - { name: a, node: node1 }
  - { name: b, node: node2, listen: [8080/tcp, 5353/udp, 9000] }
flows:
  - name: tcp
    from: a
    to: b:8080
    expect: { reach: b, seenSource: a }
  - { name: udp, from: a, to: b:5353, protocol: udp, timeout: 500ms, expect: { reach: [b], seenSource: node1 } }
  - { name: ping, from: a, to: b, expect: { reach: b } }
  - { name: closed, from: a, to: b:9999, expect: { fail: refused } }
  - { name: outside, from: a, to: 192.0.2.1:80, timeout: 1s, expect: { fail: timeout } }
  - { name: by-ip, from: a, to: 10.244.2.2:9000, expect: { reach: b, seenSource: 10.244.1.2 } }
  - { name: no-route, from: a, to: 10.244.9.9, protocol: icmp, expect: { fail: unreachable } }
",
        );
    let flows = &plan.flows;
    let reach_b = |seen: Option<(&str, &str)>| Expect::Reach {
        pods: vec!["b".into()],
        seen_source: seen.map(|(name, addr)| SeenSource {
            name: name.into(),
            addr: ip(addr),
        }),
    };
    assert_eq!(
        flows[0],
        FlowPlan {
            name: "tcp".into(),
            from: "a".into(),
            target: Target::Tcp("10.244.2.2:8080".parse().unwrap()),
            timeout: Duration::from_secs(2),
            expect: reach_b(Some(("a", "10.244.1.2"))),
            location: Location { line: 6, column: 5 },
            target_label: "b:8080".into(),
            service: None,
            attempts: 1,
            sticky: false,
            dns_name: None,
            resolution: None,
            expect_dns: None,
            exec: None,
            hops: Default::default(),
            revision: 0,
        }
    );
    assert_eq!(
        flows[1].target,
        Target::Udp("10.244.2.2:5353".parse().unwrap())
    );
    assert_eq!(flows[1].timeout, Duration::from_millis(500));
    assert_eq!(flows[1].expect, reach_b(Some(("node1", "172.18.0.2"))));
    assert_eq!(
        flows[1].location,
        Location {
            line: 10,
            column: 5
        }
    );
    assert_eq!(flows[2].target, Target::Icmp(ip("10.244.2.2")));
    assert_eq!(flows[2].expect, reach_b(None));
    assert_eq!(
        flows[3].target,
        Target::Tcp("10.244.2.2:9999".parse().unwrap())
    );
    assert_eq!(flows[3].expect, Expect::Fail(FailKind::Refused));
    assert_eq!(
        flows[4].target,
        Target::Tcp("192.0.2.1:80".parse().unwrap())
    );
    assert_eq!(flows[4].timeout, Duration::from_secs(1));
    assert_eq!(flows[4].expect, Expect::Fail(FailKind::Timeout));
    assert_eq!(
        flows[5].target,
        Target::Tcp("10.244.2.2:9000".parse().unwrap())
    );
    assert_eq!(flows[5].expect, reach_b(Some(("10.244.1.2", "10.244.1.2"))));
    assert_eq!(flows[6].target, Target::Icmp(ip("10.244.9.9")));
    assert_eq!(flows[6].expect, Expect::Fail(FailKind::Unreachable));
}

#[test]
fn an_address_target_may_expect_any_listening_pods() {
    // A Service-like address: the planner cannot know who answers, so any pods may be named.
    let plan = plan(
        FILE,
        "nodes: [node1]\n\
             pods: [{ name: a, node: node1, listen: [80] }, { name: b, node: node1, listen: [80] }]\n\
             flows: [{ name: f, from: a, to: 10.96.0.10:80, expect: { reach: [a, b] } }]\n",
    );
    assert_eq!(
        plan.flows[0].expect,
        Expect::Reach {
            pods: vec!["a".into(), "b".into()],
            seen_source: None
        }
    );
}

#[rstest]
#[case("500ms", Ok(Duration::from_millis(500)))]
#[case("2s", Ok(Duration::from_secs(2)))]
#[case("60s", Ok(Duration::from_secs(60)))]
#[case("60000ms", Ok(Duration::from_secs(60)))]
#[case("60001ms", Err("longer than the maximum"))]
#[case("0s", Err("more than zero"))]
#[case("s", Err("not a duration"))]
#[case("1.5s", Err("not a duration"))]
#[case("-1s", Err("not a duration"))]
#[case("2", Err("not a duration"))]
#[case("99999999999999999999999s", Err("longer than the maximum"))]
#[case("18446744073709551615s", Err("longer than the maximum"))]
fn timeouts(#[case] text: &str, #[case] expected: Result<Duration, &str>) {
    match (parse_timeout(text), expected) {
        (Ok(got), Ok(want)) => assert_eq!(got, want),
        (Err(got), Err(want)) => assert!(got.contains(want), "{got}"),
        (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
    }
}
