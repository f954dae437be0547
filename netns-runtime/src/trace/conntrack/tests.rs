use super::*;

// Hand-built ctnetlink messages, laid out as the kernel's ctnetlink_fill_info writes them.

fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
    let len = (NLA_HDR_LEN + payload.len()) as u16;
    let mut a = Vec::new();
    a.extend_from_slice(&len.to_ne_bytes());
    a.extend_from_slice(&ty.to_ne_bytes());
    a.extend_from_slice(payload);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

fn nest(ty: u16, children: &[Vec<u8>]) -> Vec<u8> {
    attr(ty | NLA_F_NESTED, &children.concat())
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// A tuple nest `ty`: the addresses, then `proto` (the attributes of CTA_TUPLE_PROTO).
fn tuple_nest(ty: u16, src: &str, dst: &str, proto: &[Vec<u8>]) -> Vec<u8> {
    nest(
        ty,
        &[
            nest(
                CTA_TUPLE_IP,
                &[
                    attr(CTA_IP_V4_SRC, &ip(src).octets()),
                    attr(CTA_IP_V4_DST, &ip(dst).octets()),
                ],
            ),
            nest(CTA_TUPLE_PROTO, proto),
        ],
    )
}

fn tuple_attr(ty: u16, proto: u8, src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    tuple_nest(
        ty,
        src,
        dst,
        &[
            attr(CTA_PROTO_NUM, &[proto]),
            attr(CTA_PROTO_SRC_PORT, &sport.to_be_bytes()),
            attr(CTA_PROTO_DST_PORT, &dport.to_be_bytes()),
        ],
    )
}

fn icmp_tuple_attr(ty: u16, src: &str, dst: &str, kind: u8, id: u16) -> Vec<u8> {
    tuple_nest(
        ty,
        src,
        dst,
        &[
            attr(CTA_PROTO_NUM, &[1]),
            attr(CTA_PROTO_ICMP_ID, &id.to_be_bytes()),
            attr(CTA_PROTO_ICMP_TYPE, &[kind]),
            attr(CTA_PROTO_ICMP_CODE, &[0]),
        ],
    )
}

fn u32_attr(ty: u16, v: u32) -> Vec<u8> {
    attr(ty, &v.to_be_bytes())
}

fn tcp_state_attr(state: u8) -> Vec<u8> {
    nest(
        CTA_PROTOINFO,
        &[nest(
            CTA_PROTOINFO_TCP,
            &[
                attr(CTA_PROTOINFO_TCP_STATE, &[state]),
                attr(2, &[7]), // CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, ignored
            ],
        )],
    )
}

fn entry_msg(family: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![family, NFNETLINK_V0, 0, 0];
    m.extend(attrs.concat());
    m
}

/// A TIME_WAIT TCP connection 10.244.1.2:40000 > 10.96.0.20:80, DNAT to 10.244.2.3:8080.
fn tcp_dnat_msg() -> Vec<u8> {
    entry_msg(
        AF_INET,
        &[
            tuple_attr(CTA_TUPLE_ORIG, 6, "10.244.1.2", "10.96.0.20", 40000, 80),
            tuple_attr(CTA_TUPLE_REPLY, 6, "10.244.2.3", "10.244.1.2", 8080, 40000),
            u32_attr(
                CTA_STATUS,
                IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED | IPS_DST_NAT | IPS_DST_NAT_DONE,
            ),
            u32_attr(CTA_TIMEOUT, 117),
            u32_attr(CTA_MARK, 0),
            tcp_state_attr(7),
            u32_attr(CTA_USE, 1),
            u32_attr(CTA_ID, 0xdead_beef),
        ],
    )
}

fn icmp_msg() -> Vec<u8> {
    entry_msg(
        AF_INET,
        &[
            icmp_tuple_attr(CTA_TUPLE_ORIG, "10.0.1.2", "10.0.2.2", 8, 4242),
            icmp_tuple_attr(CTA_TUPLE_REPLY, "10.0.2.2", "10.0.1.2", 0, 4242),
            u32_attr(CTA_STATUS, IPS_SEEN_REPLY | IPS_CONFIRMED),
            u32_attr(CTA_TIMEOUT, 29),
            u32_attr(CTA_MARK, 0),
            u32_attr(CTA_USE, 1),
        ],
    )
}

fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((NLMSG_HDR_LEN + payload.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&4321u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m.resize(m.len().next_multiple_of(4), 0);
    m
}

fn done(seq: u32) -> Vec<u8> {
    nlmsg(NLMSG_DONE, 2, seq, &0i32.to_ne_bytes())
}

fn t(proto: u8, src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
    Tuple {
        proto,
        src: ip(src),
        dst: ip(dst),
        sport,
        dport,
    }
}

fn parsed(msg: &[u8]) -> Entry {
    parse_entry(msg).unwrap().unwrap()
}

#[test]
fn parses_a_tcp_dnat_entry() {
    let e = parsed(&tcp_dnat_msg());
    assert_eq!(e.orig, t(6, "10.244.1.2", 40000, "10.96.0.20", 80));
    assert_eq!(e.reply, t(6, "10.244.2.3", 8080, "10.244.1.2", 40000));
    assert!(e.has_status(IPS_DST_NAT | IPS_ASSURED | IPS_SEEN_REPLY));
    assert!(!e.has_status(IPS_SRC_NAT));
    assert_eq!(e.tcp_state.as_deref(), Some("TIME_WAIT"));
    assert_eq!(e.timeout, Some(117));
    assert_eq!(e.mark, Some(0));
    assert_eq!(e.use_count, Some(1));
    assert_eq!(e.id, Some(0xdead_beef));
    assert_eq!(e.zone, None);
    assert_eq!((e.orig_icmp, e.reply_icmp), (None, None));
}

#[test]
fn masks_nested_and_byteorder_flags() {
    let ports = |ty: u16, sport: u16, dport: u16| {
        nest(
            ty,
            &[
                nest(
                    CTA_TUPLE_IP,
                    &[
                        attr(CTA_IP_V4_SRC, &[10, 0, 0, 1]),
                        attr(CTA_IP_V4_DST, &[10, 0, 0, 2]),
                    ],
                ),
                nest(
                    CTA_TUPLE_PROTO,
                    &[
                        attr(CTA_PROTO_NUM, &[17]),
                        attr(
                            CTA_PROTO_SRC_PORT | NLA_F_NET_BYTEORDER,
                            &sport.to_be_bytes(),
                        ),
                        attr(
                            CTA_PROTO_DST_PORT | NLA_F_NET_BYTEORDER,
                            &dport.to_be_bytes(),
                        ),
                    ],
                ),
            ],
        )
    };
    let msg = entry_msg(
        AF_INET,
        &[
            ports(CTA_TUPLE_ORIG, 1000, 53),
            ports(CTA_TUPLE_REPLY, 53, 1000),
            attr(
                CTA_STATUS | NLA_F_NET_BYTEORDER,
                &IPS_CONFIRMED.to_be_bytes(),
            ),
            attr(CTA_ZONE | NLA_F_NET_BYTEORDER, &7u16.to_be_bytes()),
        ],
    );
    let e = parsed(&msg);
    assert_eq!(e.orig, t(17, "10.0.0.1", 1000, "10.0.0.2", 53));
    assert_eq!(e.status, IPS_CONFIRMED);
    assert_eq!(e.zone, Some(7));
    assert_eq!(e.tcp_state, None);
}

#[test]
fn icmp_ports_hold_the_echo_id() {
    let e = parsed(&icmp_msg());
    assert_eq!(e.orig, t(1, "10.0.1.2", 4242, "10.0.2.2", 4242));
    assert_eq!(e.reply, t(1, "10.0.2.2", 4242, "10.0.1.2", 4242));
    assert_eq!(e.orig_icmp, Some(IcmpKind { kind: 8, code: 0 }));
    assert_eq!(e.reply_icmp, Some(IcmpKind { kind: 0, code: 0 }));
}

#[test]
fn non_ipv4_entries_are_skipped() {
    let mut v6 = tcp_dnat_msg();
    v6[0] = 10; // AF_INET6
    assert_eq!(parse_entry(&v6), Ok(None));
    // An AF_INET header with IPv6 tuples (never sent, still not IPv4).
    let v6_tuple = |ty| {
        nest(
            ty,
            &[
                nest(
                    CTA_TUPLE_IP,
                    &[attr(CTA_IP_V6_SRC, &[0; 16]), attr(CTA_IP_V6_DST, &[0; 16])],
                ),
                nest(CTA_TUPLE_PROTO, &[attr(CTA_PROTO_NUM, &[6])]),
            ],
        )
    };
    let msg = entry_msg(
        AF_INET,
        &[
            v6_tuple(CTA_TUPLE_ORIG),
            v6_tuple(CTA_TUPLE_REPLY),
            u32_attr(CTA_STATUS, 0),
        ],
    );
    assert_eq!(parse_entry(&msg), Ok(None));
}

#[test]
fn unknown_attributes_are_ignored_and_unknown_tcp_states_kept_as_numbers() {
    let mut msg = tcp_dnat_msg();
    msg.extend(attr(99, b"future"));
    msg.extend(nest(CTA_PROTOINFO, &[nest(3, &[attr(1, &[4])])])); // SCTP, ignored
    msg.extend(tcp_state_attr(12));
    let e = parsed(&msg);
    assert_eq!(e.tcp_state.as_deref(), Some("12"));
    assert_eq!(e.timeout, Some(117));
}

#[test]
fn tcp_state_names_are_conntracks() {
    let names: Vec<_> = (0..=10).map(tcp_state_name).collect();
    assert_eq!(
        names,
        [
            Some("NONE"),
            Some("SYN_SENT"),
            Some("SYN_RECV"),
            Some("ESTABLISHED"),
            Some("FIN_WAIT"),
            Some("CLOSE_WAIT"),
            Some("LAST_ACK"),
            Some("TIME_WAIT"),
            Some("CLOSE"),
            Some("SYN_SENT2"),
            None
        ]
    );
}

#[test]
fn missing_or_misshapen_attributes_are_errors() {
    let orig = tuple_attr(CTA_TUPLE_ORIG, 6, "10.0.0.1", "10.0.0.2", 1, 2);
    let reply = tuple_attr(CTA_TUPLE_REPLY, 6, "10.0.0.2", "10.0.0.1", 2, 1);
    let status = u32_attr(CTA_STATUS, 0);
    for (attrs, why) in [
        (vec![reply.clone(), status.clone()], "CTA_TUPLE_ORIG"),
        (vec![orig.clone(), status.clone()], "CTA_TUPLE_REPLY"),
        (vec![orig.clone(), reply.clone()], "CTA_STATUS"),
        (
            vec![orig.clone(), reply.clone(), attr(CTA_STATUS, &[0, 0, 1])],
            // netlink-packet-netfilter's words, named by podpath when they do not say where.
            "invalid CTA_STATUS value: Invalid number. Expected 4 bytes, received 3 bytes",
        ),
        (
            vec![
                // The source address one byte short.
                nest(
                    CTA_TUPLE_ORIG,
                    &[nest(CTA_TUPLE_IP, &[attr(CTA_IP_V4_SRC, &[1, 2, 3])])],
                ),
                reply.clone(),
                status.clone(),
            ],
            "original tuple: invalid SourceAddress value: Invalid IP address. \
             Expected 4 or 16 bytes, received 3 bytes",
        ),
        // What the crate leaves undecoded is checked by podpath.
        (
            vec![
                orig.clone(),
                reply.clone(),
                status.clone(),
                attr(CTA_ZONE, &[0, 0, 7]),
            ],
            "CTA_ZONE: 3 bytes, expected 2",
        ),
        (
            vec![
                tuple_nest(
                    CTA_TUPLE_ORIG,
                    "10.0.0.1",
                    "10.0.0.2",
                    &[
                        attr(CTA_PROTO_NUM, &[1]),
                        attr(CTA_PROTO_ICMP_TYPE, &[8, 0]),
                    ],
                ),
                reply.clone(),
                status.clone(),
            ],
            "CTA_PROTO_ICMP_TYPE: 2 bytes, expected 1",
        ),
        (
            vec![
                nest(CTA_TUPLE_ORIG, &[nest(CTA_TUPLE_PROTO, &[attr(1, &[6])])]),
                reply.clone(),
                status.clone(),
            ],
            "original tuple without addresses",
        ),
        (
            vec![
                nest(
                    CTA_TUPLE_ORIG,
                    &[nest(
                        CTA_TUPLE_IP,
                        &[
                            attr(CTA_IP_V4_SRC, &[1, 2, 3, 4]),
                            attr(CTA_IP_V4_DST, &[1, 2, 3, 4]),
                        ],
                    )],
                ),
                reply.clone(),
                status.clone(),
            ],
            "without CTA_PROTO_NUM",
        ),
    ] {
        let err = parse_entry(&entry_msg(AF_INET, &attrs)).unwrap_err();
        assert!(err.0.contains(why), "{err} does not say {why}");
    }
    assert!(parse_entry(&[2, 0]).is_err());
}

#[test]
fn truncated_messages_never_panic_and_cut_attributes_are_errors() {
    for msg in [tcp_dnat_msg(), icmp_msg()] {
        // The first attribute (the original tuple) ends here.
        let first = usize::from(u16::from_ne_bytes([msg[4], msg[5]])) + NFGENMSG_LEN;
        for cut in 0..msg.len() {
            let r = parse_entry(&msg[..cut]);
            if cut < first {
                assert!(r.is_err(), "a cut at {cut} parsed: {r:?}");
            }
        }
        let datagram = [nlmsg(CT_NEW, 2, 1, &msg), done(1)].concat();
        for cut in 0..datagram.len() {
            let _ = read_datagram(&datagram[..cut], 1, &mut DumpState::default());
        }
    }
}

/// A small deterministic generator (xorshift64), enough to shake the decoders.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.below(300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = parse_entry(&bytes);
        let _ = read_datagram(&bytes, 1, &mut DumpState::default());
    }
    // Valid messages with a few bytes changed reach deeper into the decoder.
    let valid = [tcp_dnat_msg(), icmp_msg()];
    let mut decoded = 0;
    for round in 0..20_000 {
        let mut msg = valid[round % 2].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(msg.len());
            msg[at] = rng.next() as u8;
        }
        if rng.below(4) == 0 {
            msg.truncate(rng.below(msg.len()));
        }
        if let Ok(Some(e)) = parse_entry(&msg) {
            decoded += 1;
            let _ = (e.to_string(), e.dnat(), e.snat(), e.matches(&e.orig));
        }
        let datagram = [nlmsg(CT_NEW, 2, 1, &msg), done(1)].concat();
        let _ = read_datagram(&datagram, 1, &mut DumpState::default());
    }
    // Most single-byte changes land in values, which still decode.
    assert!(decoded > 1000, "only {decoded} mutated messages decoded");
}

#[test]
fn the_dump_request_asks_for_every_ipv4_entry() {
    let req = dump_request(7);
    let mut want = Vec::new();
    want.extend_from_slice(&20u32.to_ne_bytes());
    want.extend_from_slice(&0x0101u16.to_ne_bytes());
    want.extend_from_slice(&0x0301u16.to_ne_bytes()); // NLM_F_REQUEST | NLM_F_DUMP
    want.extend_from_slice(&7u32.to_ne_bytes());
    want.extend_from_slice(&0u32.to_ne_bytes());
    want.extend_from_slice(&[2, 0, 0, 0]); // AF_INET, NFNETLINK_V0, res_id 0
    assert_eq!(req.to_vec(), want);
}

#[test]
fn a_multipart_dump_is_read_to_done() {
    let mut v6 = tcp_dnat_msg();
    v6[0] = 10;
    let mut state = DumpState::default();
    let first = [
        nlmsg(CT_NEW, 2, 5, &tcp_dnat_msg()),
        nlmsg(CT_NEW, 2, 4, &icmp_msg()), // an earlier dump's: skipped
        nlmsg(CT_NEW, 2, 5, &v6),
        nlmsg(NLMSG_NOOP, 0, 5, &[]),
    ]
    .concat();
    assert_eq!(read_datagram(&first, 5, &mut state), None);
    let second = [nlmsg(CT_NEW, 2, 5, &icmp_msg()), done(5)].concat();
    assert_eq!(read_datagram(&second, 5, &mut state), Some(Ok(())));
    let protos: Vec<u8> = state.entries.iter().map(|e| e.orig.proto).collect();
    assert_eq!(protos, [6, 1]);
    assert!(!state.interrupted);
}

#[test]
fn kernel_errors_interruptions_and_garbage_stop_the_dump() {
    let mut state = DumpState::default();
    let mut err = (-nix::libc::EPERM).to_ne_bytes().to_vec();
    err.extend(&dump_request(3)[..NLMSG_HDR_LEN]);
    let refused = nlmsg(NLMSG_ERROR, 0, 3, &err);
    assert_eq!(
        read_datagram(&refused, 3, &mut state),
        Some(Err(Stop::Kernel(nix::libc::EPERM)))
    );
    let io = Stop::Kernel(nix::libc::EPERM).into_io();
    assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
    assert!(io.to_string().starts_with("ctnetlink dump: "), "{io}");

    let failed_done = nlmsg(NLMSG_DONE, 2, 3, &(-nix::libc::EINTR).to_ne_bytes());
    assert_eq!(
        read_datagram(&failed_done, 3, &mut state),
        Some(Err(Stop::Kernel(nix::libc::EINTR)))
    );

    let mut state = DumpState::default();
    let intr = [nlmsg(CT_NEW, 2 | NLM_F_DUMP_INTR, 3, &icmp_msg()), done(3)].concat();
    assert_eq!(read_datagram(&intr, 3, &mut state), Some(Ok(())));
    assert!(state.interrupted);

    let mut bad_len = done(3);
    bad_len[0..4].copy_from_slice(&1000u32.to_ne_bytes());
    assert!(matches!(
        read_datagram(&bad_len, 3, &mut DumpState::default()),
        Some(Err(Stop::Malformed(_)))
    ));
    let mut broken = tcp_dnat_msg();
    broken.truncate(30);
    let datagram = [nlmsg(CT_NEW, 2, 3, &broken), done(3)].concat();
    assert!(matches!(
        read_datagram(&datagram, 3, &mut DumpState::default()),
        Some(Err(Stop::Malformed(_)))
    ));
}

fn entry(orig: Tuple, reply: Tuple, status: u32) -> Entry {
    Entry {
        orig,
        reply,
        status,
        tcp_state: None,
        timeout: None,
        mark: None,
        zone: None,
        id: None,
        orig_icmp: None,
        reply_icmp: None,
        use_count: None,
    }
}

#[test]
fn display_is_conntrack_list_format() {
    assert_eq!(
        parsed(&tcp_dnat_msg()).to_string(),
        "tcp      6 117 TIME_WAIT src=10.244.1.2 dst=10.96.0.20 sport=40000 dport=80 \
         src=10.244.2.3 dst=10.244.1.2 sport=8080 dport=40000 [ASSURED] mark=0 use=1"
    );
    assert_eq!(
        parsed(&icmp_msg()).to_string(),
        "icmp     1 29 src=10.0.1.2 dst=10.0.2.2 type=8 code=0 id=4242 \
         src=10.0.2.2 dst=10.0.1.2 type=0 code=0 id=4242 mark=0 use=1"
    );
    let mut udp = entry(
        t(17, "10.0.1.2", 5000, "10.96.0.1", 53),
        t(17, "10.0.2.2", 5353, "10.0.2.1", 5000),
        IPS_CONFIRMED | IPS_SRC_NAT | IPS_DST_NAT,
    );
    udp.timeout = Some(30);
    udp.mark = Some(3);
    udp.zone = Some(2);
    assert_eq!(
        udp.to_string(),
        "udp      17 30 src=10.0.1.2 dst=10.96.0.1 sport=5000 dport=53 [UNREPLIED] \
         src=10.0.2.2 dst=10.0.2.1 sport=5353 dport=5000 mark=3 zone=2"
    );
    let gre = entry(
        t(47, "10.0.0.1", 0, "10.0.0.2", 0),
        t(47, "10.0.0.2", 0, "10.0.0.1", 0),
        IPS_SEEN_REPLY | IPS_ASSURED | IPS_OFFLOAD,
    );
    assert_eq!(
        gre.to_string(),
        "gre      47 src=10.0.0.1 dst=10.0.0.2 src=10.0.0.2 dst=10.0.0.1 [ASSURED] [OFFLOAD]"
    );
}

#[test]
fn render_sorts_by_tuple() {
    let a = parsed(&tcp_dnat_msg());
    let b = parsed(&icmp_msg());
    let mut c = a.clone();
    c.orig.sport = 39999;
    let text = render(&[a.clone(), c.clone(), b.clone()]);
    assert_eq!(text, format!("{b}\n{c}\n{a}\n"));
    assert_eq!(text, render(&[b, a, c]));
    assert_eq!(render(&[]), "");
}

/// 10.244.1.2:40000 asked for 10.96.0.20:80, DNAT to 10.244.2.3:8080, masqueraded as
/// 10.244.1.1:61000.
fn dnat_and_snat() -> Entry {
    entry(
        t(6, "10.244.1.2", 40000, "10.96.0.20", 80),
        t(6, "10.244.2.3", 8080, "10.244.1.1", 61000),
        IPS_SEEN_REPLY | IPS_SRC_NAT | IPS_DST_NAT,
    )
}

#[test]
fn dnat_and_snat_say_what_was_rewritten() {
    let both = dnat_and_snat();
    assert_eq!(
        both.dnat(),
        Some(((ip("10.96.0.20"), 80), (ip("10.244.2.3"), 8080)))
    );
    assert_eq!(
        both.snat(),
        Some(((ip("10.244.1.2"), 40000), (ip("10.244.1.1"), 61000)))
    );
    let dnat_only = parsed(&tcp_dnat_msg());
    assert_eq!(
        dnat_only.dnat(),
        Some(((ip("10.96.0.20"), 80), (ip("10.244.2.3"), 8080)))
    );
    assert_eq!(dnat_only.snat(), None);
    // Only the port rewritten is a rewrite too.
    let port_only = entry(
        t(6, "10.0.0.1", 1000, "10.0.0.2", 80),
        t(6, "10.0.0.2", 8080, "10.0.0.1", 1000),
        IPS_SEEN_REPLY,
    );
    assert_eq!(
        port_only.dnat(),
        Some(((ip("10.0.0.2"), 80), (ip("10.0.0.2"), 8080)))
    );
    let plain = parsed(&icmp_msg());
    assert_eq!((plain.dnat(), plain.snat()), (None, None));
    // A masqueraded ping whose echo id was remapped: that is SNAT, not DNAT.
    let masq_ping = entry(
        t(1, "10.0.1.2", 7, "10.0.2.2", 7),
        t(1, "10.0.2.2", 9, "10.0.2.1", 9),
        IPS_SEEN_REPLY | IPS_SRC_NAT,
    );
    assert_eq!(masq_ping.dnat(), None);
    assert_eq!(
        masq_ping.snat(),
        Some(((ip("10.0.1.2"), 7), (ip("10.0.2.1"), 9)))
    );
}

#[test]
fn matches_every_form_of_a_natted_connection() {
    use Direction::{Original, Reply};
    let e = dnat_and_snat();
    let client = ("10.244.1.2", 40000);
    let service = ("10.96.0.20", 80);
    let backend = ("10.244.2.3", 8080);
    let masq = ("10.244.1.1", 61000);
    let pkt = |from: (&str, u16), to: (&str, u16)| t(6, from.0, from.1, to.0, to.1);
    for (p, want, what) in [
        (
            pkt(client, service),
            Some(Original),
            "as the client sent it",
        ),
        (
            pkt(client, backend),
            Some(Original),
            "after DNAT, before SNAT",
        ),
        (pkt(masq, backend), Some(Original), "as the backend gets it"),
        (pkt(backend, masq), Some(Reply), "as the backend sent it"),
        (
            pkt(backend, client),
            Some(Reply),
            "after un-SNAT, before un-DNAT",
        ),
        (pkt(service, client), Some(Reply), "as the client gets it"),
        (pkt(masq, service), None, "never on the wire"),
        (pkt(client, ("10.96.0.20", 81)), None, "another port"),
        (pkt(("10.244.1.3", 40000), service), None, "another client"),
        (t(17, client.0, client.1, service.0, service.1), None, "UDP"),
    ] {
        assert_eq!(e.matches(&p), want, "{p}: {what}");
    }
    let plain = parsed(&icmp_msg());
    assert_eq!(
        plain.matches(&t(1, "10.0.1.2", 4242, "10.0.2.2", 4242)),
        Some(Original)
    );
    assert_eq!(
        plain.matches(&t(1, "10.0.2.2", 4242, "10.0.1.2", 4242)),
        Some(Reply)
    );
    assert_eq!(plain.matches(&t(1, "10.0.1.2", 1, "10.0.2.2", 1)), None);
}

/// Three entry messages exactly as a kernel (6.x) dumped them from a scratch namespace: a ping
/// on lo, an unanswered UDP datagram, and a TCP connection to 10.96.0.1:80 DNATed to
/// 127.0.0.1:8080 (its CTA_PROTOINFO_TCP carries window scales and flags too); beside each, the
/// line `conntrack -L` printed for it at the same moment.
const KERNEL_DUMP: [(&str, &str); 3] = [
    (
        "020000003c00018014000180080001007f000001080002007f00000124000280050001000100000006000400\
         73240000050005000800000005000600000000003c00028014000180080001007f000001080002007f000001\
         240002800500010001000000060004007324000005000500000000000500060000000000080003000000018a\
         080008000000000008000c00890d2ac308000b0000000001080007000000001d",
        "icmp     1 29 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=29476 \
         src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=29476 mark=0 use=1",
    ),
    (
        "020000003400018014000180080001007f000001080002007f0000011c000280050001001100000006000200\
         ea9300000600030014e900003400028014000180080001007f000001080002007f0000011c00028005000100\
         110000000600020014e9000006000300ea9300000800030000000188080008000000000008000c0031d5cdf4\
         08000b0000000001080007000000001d",
        "udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=60051 dport=5353 [UNREPLIED] \
         src=127.0.0.1 dst=127.0.0.1 sport=5353 dport=60051 mark=0 use=1",
    ),
    (
        "020000003400018014000180080001000a600001080002000a6000011c000280050001000600000006000200\
         965e000006000300005000003400028014000180080001007f000001080002000a6000011c00028005000100\
         06000000060002001f90000006000300965e000008000300000001ae080008000000000008000c00cac68b86\
         08000b00000000010800070000000077300004802c0001800500010007000000050002000a00000005000300\
         0a00000006000400270000000600050023000000",
        "tcp      6 119 TIME_WAIT src=10.96.0.1 dst=10.96.0.1 sport=38494 dport=80 \
         src=127.0.0.1 dst=10.96.0.1 sport=8080 dport=38494 [ASSURED] mark=0 use=1",
    ),
];

#[test]
fn a_real_kernel_dump_decodes_to_what_conntrack_lists() {
    for (hex, line) in KERNEL_DUMP {
        let msg = data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap();
        let e = parsed(&msg);
        assert_eq!(e.to_string(), line);
        assert!(e.id.is_some());
        // Through the framing too, as one datagram of a dump.
        let datagram = [nlmsg(CT_NEW, 2, 9, &msg), done(9)].concat();
        let mut state = DumpState::default();
        assert_eq!(read_datagram(&datagram, 9, &mut state), Some(Ok(())));
        assert_eq!(state.entries, [e]);
    }
}
