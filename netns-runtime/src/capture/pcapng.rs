//! Captures as pcapng, for Wireshark and tshark.
//!
//! One Section Header Block; one Interface Description Block per capture point, named
//! `netns/iface`, link type Ethernet, nanosecond timestamps (`if_tsresol` 9); one Enhanced
//! Packet Block per frame with its kernel timestamp and its direction (`epb_flags` inbound or
//! outbound). Little-endian, as written on this machine's architecture family.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{self, Write};

use super::{CapturePoint, Captured};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;

const OPT_END: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;

/// `epb_flags` direction bits.
pub const EPB_INBOUND: u32 = 1;
pub const EPB_OUTBOUND: u32 = 2;

/// Writes `packets` as a pcapng section.
///
/// Interfaces are `points` in order (so a capture point that saw nothing still appears), then
/// any other `netns/iface` of `packets` in order of first appearance.
pub fn write<W: Write>(
    mut out: W,
    points: &[CapturePoint],
    packets: &[Captured],
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(
        256 + points.len() * 64 + packets.iter().map(|p| p.frame.len() + 48).sum::<usize>(),
    );
    block(&mut buf, SHB, |b| {
        put_u32(b, BYTE_ORDER_MAGIC);
        put_u16(b, 1); // major
        put_u16(b, 0); // minor
        b.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not given
        option(b, SHB_USERAPPL, b"podpath");
        option(b, OPT_END, b"");
    });
    let mut ids: HashMap<(&str, &str), u32> = HashMap::new();
    let all_points = points
        .iter()
        .map(|p| (p.netns.as_str(), p.iface.as_str()))
        .chain(packets.iter().map(|p| (p.netns.as_str(), p.iface.as_str())));
    for (netns, iface) in all_points {
        let next = ids.len() as u32;
        if let Entry::Vacant(e) = ids.entry((netns, iface)) {
            e.insert(next);
            block(&mut buf, IDB, |b| {
                put_u16(b, LINKTYPE_ETHERNET);
                put_u16(b, 0); // reserved
                put_u32(b, 0); // snaplen: unlimited
                option(b, IF_NAME, format!("{netns}/{iface}").as_bytes());
                option(
                    b,
                    IF_DESCRIPTION,
                    format!("interface {iface} of network namespace {netns}").as_bytes(),
                );
                option(b, IF_TSRESOL, &[9]);
                option(b, OPT_END, b"");
            });
        }
    }
    for p in packets {
        let id = ids[&(p.netns.as_str(), p.iface.as_str())];
        let ts = u64::try_from(p.ts.as_nanos()).unwrap_or(u64::MAX);
        let caplen = u32::try_from(p.frame.len()).unwrap_or(u32::MAX);
        let data = &p.frame[..caplen as usize];
        block(&mut buf, EPB, |b| {
            put_u32(b, id);
            put_u32(b, (ts >> 32) as u32);
            put_u32(b, ts as u32);
            put_u32(b, caplen);
            put_u32(
                b,
                u32::try_from(p.orig_len.max(data.len())).unwrap_or(u32::MAX),
            );
            b.extend_from_slice(data);
            pad4(b);
            let dir = if p.outgoing {
                EPB_OUTBOUND
            } else {
                EPB_INBOUND
            };
            option(b, EPB_FLAGS, &dir.to_le_bytes());
            option(b, OPT_END, b"");
        });
    }
    out.write_all(&buf)?;
    out.flush()
}

/// Writes `packets` to the file `path`.
pub fn write_file(
    path: impl AsRef<std::path::Path>,
    points: &[CapturePoint],
    packets: &[Captured],
) -> io::Result<()> {
    let file = std::fs::File::create(path)?;
    write(io::BufWriter::new(file), points, packets)
}

fn block(buf: &mut Vec<u8>, ty: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    put_u32(buf, ty);
    put_u32(buf, 0); // total length, patched below
    body(buf);
    pad4(buf);
    let total = (buf.len() - start + 4) as u32;
    buf[start + 4..start + 8].copy_from_slice(&total.to_le_bytes());
    put_u32(buf, total);
}

fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    put_u16(buf, code);
    put_u16(buf, value.len() as u16);
    buf.extend_from_slice(value);
    pad4(buf);
}

fn pad4(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// A block read back: its type and body (between the length fields).
#[derive(Debug)]
pub struct RawBlock<'a> {
    pub ty: u32,
    pub body: &'a [u8],
}

/// Splits a little-endian pcapng byte string into blocks, checking both length fields of each.
/// For tests and tools; `None` on anything malformed.
pub fn blocks(mut data: &[u8]) -> Option<Vec<RawBlock<'_>>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let ty = u32::from_le_bytes(data.get(..4)?.try_into().ok()?);
        let len = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?) as usize;
        if len < 12 || len % 4 != 0 {
            return None;
        }
        let trailer = u32::from_le_bytes(data.get(len - 4..len)?.try_into().ok()?) as usize;
        if trailer != len {
            return None;
        }
        out.push(RawBlock {
            ty,
            body: &data[8..len - 4],
        });
        data = &data[len..];
    }
    Some(out)
}

/// The options of a block body starting at `at`: `(code, value)`, up to `opt_endofopt`.
pub fn options(body: &[u8], mut at: usize) -> Option<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    loop {
        let code = u16::from_le_bytes(body.get(at..at + 2)?.try_into().ok()?);
        let len = usize::from(u16::from_le_bytes(
            body.get(at + 2..at + 4)?.try_into().ok()?,
        ));
        if code == OPT_END {
            return Some(out);
        }
        out.push((code, body.get(at + 4..at + 4 + len)?));
        at += 4 + len.div_ceil(4) * 4;
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::process::Command;

    use super::*;
    use crate::capture::decode::build::{self, captured};
    use crate::capture::decode::{ETHERTYPE_IPV4, IPPROTO_TCP, IPPROTO_UDP, TcpFlags};
    use crate::topology::Mac;

    fn frame(src: [u8; 4], dst: [u8; 4], tcp: bool) -> Vec<u8> {
        let l4 = if tcp {
            build::tcp(40000, 8080, 1, 0, TcpFlags::SYN, b"")
        } else {
            build::udp(40001, 5353, b"hello")
        };
        let proto = if tcp { IPPROTO_TCP } else { IPPROTO_UDP };
        build::ethernet(
            Mac([2, 0, 0, 0, 0, 2]),
            Mac([2, 0, 0, 0, 0, 1]),
            ETHERTYPE_IPV4,
            &build::ipv4(Ipv4Addr::from(src), Ipv4Addr::from(dst), proto, 64, &l4),
        )
    }

    fn sample() -> (Vec<CapturePoint>, Vec<Captured>) {
        let points = vec![
            CapturePoint {
                netns: "pod-a".into(),
                iface: "eth0".into(),
            },
            CapturePoint {
                netns: "node1".into(),
                iface: "cni0".into(),
            },
            CapturePoint {
                netns: "node1".into(),
                iface: "quiet0".into(),
            },
        ];
        let t = 1_718_000_000_123_456_789;
        let packets = vec![
            captured(
                "pod-a",
                "eth0",
                t,
                true,
                frame([10, 244, 1, 2], [10, 244, 2, 2], true),
            ),
            captured(
                "node1",
                "cni0",
                t + 1_000,
                false,
                frame([10, 244, 1, 2], [10, 244, 2, 2], true),
            ),
            // A point not listed: added after the listed ones.
            captured(
                "node2",
                "eth0",
                t + 2_001,
                false,
                frame([10, 244, 1, 2], [10, 244, 2, 3], false),
            ),
        ];
        (points, packets)
    }

    #[test]
    fn blocks_interfaces_and_packets() {
        let (points, packets) = sample();
        let mut out = Vec::new();
        write(&mut out, &points, &packets).unwrap();
        let blocks = blocks(&out).unwrap();
        let types: Vec<u32> = blocks.iter().map(|b| b.ty).collect();
        assert_eq!(types, [SHB, IDB, IDB, IDB, IDB, EPB, EPB, EPB]);
        let names: Vec<String> = blocks[1..5]
            .iter()
            .map(|b| {
                let opts = options(b.body, 8).unwrap();
                assert!(opts.contains(&(IF_TSRESOL, &[9u8][..])));
                let name = opts.iter().find(|(c, _)| *c == IF_NAME).unwrap().1;
                String::from_utf8(name.to_vec()).unwrap()
            })
            .collect();
        assert_eq!(
            names,
            ["pod-a/eth0", "node1/cni0", "node1/quiet0", "node2/eth0"]
        );
        let epb = &blocks[7].body;
        let u = |at: usize| u32::from_le_bytes(epb[at..at + 4].try_into().unwrap());
        assert_eq!(u(0), 3, "interface id of node2/eth0");
        let ts = (u64::from(u(4)) << 32) | u64::from(u(8));
        assert_eq!(ts, 1_718_000_000_123_458_790);
        let caplen = u(12) as usize;
        assert_eq!((caplen, u(16) as usize), (47, 47));
        assert_eq!(&epb[20..20 + caplen], &packets[2].frame[..]);
        let opts = options(epb, 20 + caplen.div_ceil(4) * 4).unwrap();
        assert_eq!(opts, [(EPB_FLAGS, &EPB_INBOUND.to_le_bytes()[..])]);
        let first = &blocks[5].body;
        let caplen = u32::from_le_bytes(first[12..16].try_into().unwrap()) as usize;
        let opts = options(first, 20 + caplen.div_ceil(4) * 4).unwrap();
        assert_eq!(opts, [(EPB_FLAGS, &EPB_OUTBOUND.to_le_bytes()[..])]);
    }

    #[test]
    fn empty_capture_is_a_valid_section() {
        let mut out = Vec::new();
        write(&mut out, &[], &[]).unwrap();
        let blocks = blocks(&out).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].ty, SHB);
    }

    /// tshark reads the file back: interface names, addresses, directions, timestamps.
    #[test]
    fn tshark_reads_it() {
        let (points, packets) = sample();
        let path =
            std::env::temp_dir().join(format!("podpath-pcapng-unit-{}.pcapng", std::process::id()));
        write_file(&path, &points, &packets).unwrap();
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&path)
            .args(["-T", "fields", "-e", "frame.interface_name", "-e", "ip.src"])
            .args(["-e", "ip.dst", "-e", "frame.packet_flags_direction"])
            .args(["-e", "frame.time_epoch", "-e", "tcp.flags.syn"])
            .output();
        let _ = std::fs::remove_file(&path);
        let out = match out {
            Ok(out) => out,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                eprintln!("SKIPPED: tshark is not installed, the pcapng file was not read back");
                return;
            }
            Err(e) => panic!("tshark: {e}"),
        };
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        // The direction field prints as `0x00000002` (or `2`, depending on the version).
        let dir = |f: &str| match f.strip_prefix("0x") {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => f.parse().ok(),
        };
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        let rows: Vec<(&str, &str, &str, Option<u32>)> = lines
            .iter()
            .map(|l| (l[0], l[1], l[2], dir(l[3])))
            .collect();
        assert_eq!(
            rows,
            [
                ("pod-a/eth0", "10.244.1.2", "10.244.2.2", Some(EPB_OUTBOUND)),
                ("node1/cni0", "10.244.1.2", "10.244.2.2", Some(EPB_INBOUND)),
                ("node2/eth0", "10.244.1.2", "10.244.2.3", Some(EPB_INBOUND)),
            ],
            "{text}"
        );
        assert_eq!(lines[0][4], "1718000000.123456789", "{text}");
        assert_eq!(lines[0][5], "1", "{text}");
    }
}
