//! flanneld's own netfilter rules (`--ip-masq`, iptables mode): masquerade pod traffic that
//! leaves the cluster network, and accept forwarding to and from it.
//!
//! Rendered as `iptables-restore --noflush` input, rule for rule as flanneld's traffic manager
//! writes them (pkg/trafficmngr/iptables: `masqRules`, `forwardRules`), with `--random-fully`
//! (the kernel supports it). Like kube-proxy's, these rules are loaded through iptables-nft, in
//! both proxy modes, as on a real node running flannel next to kube-proxy.

use ipnet::Ipv4Net;

/// kube-proxy's masquerade mark: flannel leaves marked packets to KUBE-POSTROUTING.
const KUBE_PROXY_MARK: &str = "0x4000/0x4000";

/// The rules flanneld programs on a node whose lease is `subnet` in the cluster network
/// `cluster`.
pub fn ip_masq_rules(cluster: Ipv4Net, subnet: Ipv4Net) -> String {
    let masq = r#"-m comment --comment "flanneld masq""#;
    let fwd = r#"-m comment --comment "flanneld forward""#;
    let mut out = String::new();
    out.push_str("*nat\n:FLANNEL-POSTRTG - [0:0]\n");
    for rule in [
        format!("-A POSTROUTING {masq} -j FLANNEL-POSTRTG"),
        format!("-A FLANNEL-POSTRTG -m mark --mark {KUBE_PROXY_MARK} {masq} -j RETURN"),
        format!("-A FLANNEL-POSTRTG -s {subnet} -d {cluster} {masq} -j RETURN"),
        format!("-A FLANNEL-POSTRTG -s {cluster} -d {subnet} {masq} -j RETURN"),
        format!("-A FLANNEL-POSTRTG ! -s {cluster} -d {subnet} {masq} -j RETURN"),
        format!(
            "-A FLANNEL-POSTRTG -s {cluster} ! -d 224.0.0.0/4 {masq} -j MASQUERADE --random-fully"
        ),
        format!(
            "-A FLANNEL-POSTRTG ! -s {cluster} -d {cluster} {masq} -j MASQUERADE --random-fully"
        ),
    ] {
        out.push_str(&rule);
        out.push('\n');
    }
    out.push_str("COMMIT\n*filter\n:FLANNEL-FWD - [0:0]\n");
    for rule in [
        format!("-A FORWARD {fwd} -j FLANNEL-FWD"),
        format!("-A FLANNEL-FWD -s {cluster} {fwd} -j ACCEPT"),
        format!("-A FLANNEL-FWD -d {cluster} {fwd} -j ACCEPT"),
    ] {
        out.push_str(&rule);
        out.push('\n');
    }
    out.push_str("COMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerades_what_leaves_the_cluster_and_nothing_inside_it() {
        let rules = ip_masq_rules(
            "10.244.0.0/16".parse().unwrap(),
            "10.244.1.0/24".parse().unwrap(),
        );
        let lines: Vec<&str> = rules.lines().collect();
        assert_eq!(lines[0], "*nat");
        assert!(lines.contains(
            &r#"-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN"#
        ));
        assert!(lines.contains(
            &r#"-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully"#
        ));
        // The kube-proxy mark RETURN comes before any MASQUERADE.
        let mark = lines
            .iter()
            .position(|l| l.contains("--mark 0x4000/0x4000"))
            .unwrap();
        let first_masq = lines.iter().position(|l| l.contains("MASQUERADE")).unwrap();
        assert!(mark < first_masq);
        assert_eq!(rules.matches("COMMIT").count(), 2);
    }
}
