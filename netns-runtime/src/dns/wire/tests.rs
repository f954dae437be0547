//! Messages through [`respond`]: header, EDNS, rejections and truncation, decoded by hickory.

use std::net::Ipv4Addr;
use std::str::FromStr as _;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RecordType as WireType};

use super::*;
use crate::dns::records::{ClusterDns, Endpoint, Port, Service};
use crate::topology::Proto;

/// A cluster with a ClusterIP Service and a headless Service of `n` ready endpoints.
fn table(n: u8) -> RecordTable {
    let http = Port {
        name: "http".into(),
        protocol: Proto::Tcp,
        port: 8080,
    };
    let endpoints = (0..n)
        .map(|i| Endpoint {
            ip: Ipv4Addr::new(10, 244, 3, i),
            hostname: None,
            pod: None,
            ready: true,
            ports: vec![http.clone()],
        })
        .collect();
    RecordTable::new(&ClusterDns {
        services: vec![
            Service {
                namespace: "default".into(),
                name: "myapp".into(),
                cluster_ip: Some(Ipv4Addr::new(10, 96, 1, 20)),
                ports: vec![http.clone()],
                endpoints: vec![],
            },
            Service {
                namespace: "default".into(),
                name: "big".into(),
                cluster_ip: None,
                ports: vec![http],
                endpoints,
            },
        ],
        ..ClusterDns::default()
    })
}

fn query(name: &str, qtype: WireType, edns: Option<(u16, u8)>) -> Message {
    let mut m = Message::new();
    m.set_id(4242)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    if let Some((size, version)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size)
            .set_version(version)
            .set_dnssec_ok(true);
        m.set_edns(e);
    }
    m
}

fn ask(table: &RecordTable, q: &Message, transport: Transport) -> (usize, Message) {
    let bytes = respond(table, &q.to_vec().unwrap(), transport).expect("an answer");
    (bytes.len(), Message::from_vec(&bytes).unwrap())
}

#[test]
fn answer_header_mirrors_the_question() {
    let q = query("myapp.default.svc.cluster.local.", WireType::A, None);
    let (_, r) = ask(&table(0), &q, Transport::Udp);
    assert_eq!(r.id(), 4242);
    assert_eq!(r.message_type(), MessageType::Response);
    assert!(r.authoritative());
    assert!(r.recursion_desired());
    assert!(!r.recursion_available());
    assert!(!r.truncated());
    assert_eq!(r.response_code(), ResponseCode::NoError);
    assert_eq!(r.queries(), q.queries());
    assert_eq!(r.answers().len(), 1);
    assert_eq!(
        r.answers()[0].to_string(),
        "myapp.default.svc.cluster.local. 30 IN A 10.96.1.20"
    );
    assert!(r.extensions().is_none());
}

#[test]
fn nxdomain_has_the_soa_in_authority() {
    let q = query("nosuch.default.svc.cluster.local.", WireType::A, None);
    let (_, r) = ask(&table(0), &q, Transport::Udp);
    assert_eq!(r.response_code(), ResponseCode::NXDomain);
    assert!(r.answers().is_empty());
    assert_eq!(
        r.name_servers()[0].to_string(),
        "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30"
    );
}

#[test]
fn edns_is_echoed_with_the_client_s_size_and_do_bit() {
    let q = query(
        "myapp.default.svc.cluster.local.",
        WireType::A,
        Some((1232, 0)),
    );
    let (_, r) = ask(&table(0), &q, Transport::Udp);
    let edns = r.extensions().as_ref().expect("an OPT record");
    assert_eq!(edns.max_payload(), 1232);
    assert_eq!(edns.version(), 0);
    assert!(edns.flags().dnssec_ok);
}

#[test]
fn edns_version_1_is_badvers() {
    let q = query(
        "myapp.default.svc.cluster.local.",
        WireType::A,
        Some((1232, 1)),
    );
    let (_, r) = ask(&table(0), &q, Transport::Udp);
    // BADVERS and BADSIG share the number 16; hickory decodes it as the latter.
    assert_eq!(u16::from(r.response_code()), 16);
    assert!(r.answers().is_empty());
    assert_eq!(r.extensions().as_ref().map(|e| e.version()), Some(0));
}

#[test]
fn other_classes_are_refused() {
    let mut q = query("myapp.default.svc.cluster.local.", WireType::A, None);
    q.queries_mut()[0].set_query_class(DNSClass::CH);
    let (_, r) = ask(&table(0), &q, Transport::Udp);
    assert_eq!(r.response_code(), ResponseCode::Refused);
    assert!(!r.authoritative());
}

#[test]
fn names_outside_the_zones_are_refused() {
    let q = query("example.com.", WireType::A, None);
    let (_, r) = ask(&table(0), &q, Transport::Udp);
    assert_eq!(r.response_code(), ResponseCode::Refused);
    assert!(r.name_servers().is_empty());
}

#[test]
fn responses_and_runts_get_no_answer() {
    let mut q = query("myapp.default.svc.cluster.local.", WireType::A, None);
    q.set_message_type(MessageType::Response);
    assert_eq!(
        respond(&table(0), &q.to_vec().unwrap(), Transport::Udp),
        None
    );
    assert_eq!(respond(&table(0), &[0, 1, 2], Transport::Udp), None);
}

#[test]
fn rejections() {
    let t = table(0);
    let mut update = query("myapp.default.svc.cluster.local.", WireType::A, None);
    update.set_op_code(OpCode::Update);
    let (_, r) = ask(&t, &update, Transport::Udp);
    assert_eq!(r.response_code(), ResponseCode::NotImp);
    assert_eq!(r.op_code(), OpCode::Update);

    let mut two = query("myapp.default.svc.cluster.local.", WireType::A, None);
    two.add_query(Query::query(Name::from_str("a.b.").unwrap(), WireType::A));
    let (_, r) = ask(&t, &two, Transport::Udp);
    assert_eq!(r.response_code(), ResponseCode::FormErr);
    assert_eq!(r.id(), 4242);
    assert!(r.queries().is_empty());

    // A header promising a question that is not there.
    let mut bytes = query("x.", WireType::A, None).to_vec().unwrap();
    bytes.truncate(14);
    let r = Message::from_vec(&respond(&t, &bytes, Transport::Udp).unwrap()).unwrap();
    assert_eq!(r.response_code(), ResponseCode::FormErr);
}

#[test]
fn big_udp_answers_are_truncated_to_512_bytes_without_edns() {
    let t = table(100);
    let q = query("big.default.svc.cluster.local.", WireType::A, None);
    let (len, r) = ask(&t, &q, Transport::Udp);
    assert!(r.truncated());
    assert!(len <= 512, "{len} bytes");
    assert!(
        !r.answers().is_empty() && r.answers().len() < 100,
        "{}",
        r.answers().len()
    );
    // As many records as fit: one more would not.
    let per_record = 16;
    assert!(
        len + per_record > 512,
        "{len} bytes with {} records",
        r.answers().len()
    );

    let (len, r) = ask(&t, &q, Transport::Tcp);
    assert!(!r.truncated());
    assert_eq!(r.answers().len(), 100);
    assert!(len > 512);
}

#[rstest::rstest]
#[case::small_buffer(1232, true)]
#[case::below_512_counts_as_512(100, true)]
#[case::large_buffer(4096, false)]
fn udp_answers_fit_the_advertised_buffer(#[case] size: u16, #[case] truncated: bool) {
    let t = table(100);
    let q = query(
        "big.default.svc.cluster.local.",
        WireType::A,
        Some((size, 0)),
    );
    let (len, r) = ask(&t, &q, Transport::Udp);
    assert_eq!(r.truncated(), truncated);
    assert!(len <= usize::from(size).max(512), "{len} bytes");
    // The OPT record survives truncation.
    assert!(r.extensions().is_some());
}

#[test]
fn srv_additional_records_are_dropped_first() {
    // 30 SRV records and their 30 A records do not fit 512 bytes; the answer section is kept
    // in order and the cut falls where the budget runs out.
    let t = table(30);
    let q = query(
        "_http._tcp.big.default.svc.cluster.local.",
        WireType::SRV,
        None,
    );
    let (len, r) = ask(&t, &q, Transport::Udp);
    assert!(r.truncated());
    assert!(len <= 512);
    let (_, full) = ask(&t, &q, Transport::Tcp);
    assert_eq!(full.answers().len(), 30);
    assert_eq!(full.additionals().len(), 30);
    assert_eq!(r.answers(), &full.answers()[..r.answers().len()]);
}

#[test]
fn summaries_of_a_question_and_its_answer() {
    let t = table(0);
    let q = query("myapp.default.svc.cluster.local.", WireType::A, None);
    let q_bytes = q.to_vec().unwrap();
    assert_eq!(
        summary(&q_bytes).as_deref(),
        Some("query A myapp.default.svc.cluster.local.")
    );
    let a = respond(&t, &q_bytes, Transport::Udp).unwrap();
    assert_eq!(
        summary(&a).as_deref(),
        Some("answer NOERROR A myapp.default.svc.cluster.local. A 10.96.1.20")
    );
    let nx = query("nosuch.default.svc.cluster.local.", WireType::A, None);
    let a = respond(&t, &nx.to_vec().unwrap(), Transport::Udp).unwrap();
    assert!(
        summary(&a).is_some_and(|s| s.starts_with("answer NXDOMAIN A nosuch.")),
        "{:?}",
        summary(&a)
    );
    assert_eq!(summary(b"not dns"), None);
}
