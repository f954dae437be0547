//! Packet observers for hop tracing: what went over which interface of which namespace, when,
//! in which direction.
//!
//! - [`CaptureSet`] opens one `AF_PACKET` socket per capture point (an interface of a
//!   namespace), created inside that namespace, and collects every frame sent or received there
//!   with the kernel's timestamp, until stopped.
//! - [`decode()`] turns a frame into a [`Packet`]: Ethernet, ARP, IPv4, TCP, UDP, ICMP and VXLAN
//!   with the frame it carries; its `Display` is a one-line summary.
//! - [`pcapng::write`] saves captures for Wireshark: one interface per capture point, named
//!   `netns/iface`, with nanosecond timestamps and the direction of every packet.
//!
//! On a veth pair, a frame is seen leaving one end and entering the other; on a bridge port and
//! on the bridge itself; on the underlay device and on the VXLAN device that decapsulates it.
//! That repetition is the point: it is the packet's path.

pub mod decode;
pub mod pcapng;
mod socket;

use std::fmt;
use std::time::Duration;

pub use decode::{Packet, TooShort, decode};
pub use socket::{CaptureSet, PointStats, TimestampError, keep_timestamps_on};

/// Where a capture listens: one interface of one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapturePoint {
    pub netns: String,
    pub iface: String,
}

impl fmt::Display for CapturePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.netns, self.iface)
    }
}

/// One frame seen at a capture point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub netns: String,
    pub iface: String,
    /// The kernel's timestamp of the frame at this point (`CLOCK_REALTIME`, since the Unix
    /// epoch, nanosecond resolution).
    pub ts: Duration,
    /// Sent by this interface (`PACKET_OUTGOING`), rather than received.
    pub outgoing: bool,
    /// The frame's length in the kernel; `frame` is shorter only when it exceeded the capture
    /// buffer (a GSO packet above 64 KiB).
    pub orig_len: usize,
    pub frame: Vec<u8>,
}

impl Captured {
    pub fn decode(&self) -> Result<Packet, TooShort> {
        decode(&self.frame)
    }

    pub fn point(&self) -> CapturePoint {
        CapturePoint {
            netns: self.netns.clone(),
            iface: self.iface.clone(),
        }
    }

    pub fn direction(&self) -> &'static str {
        if self.outgoing { "out" } else { "in" }
    }
}

impl fmt::Display for Captured {
    /// `1718000000.123456789 pod-a/eth0 out 10.244.1.2:40000 > 10.96.0.20:80 tcp [S]`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09} {}/{} {:<3} ",
            self.ts.as_secs(),
            self.ts.subsec_nanos(),
            self.netns,
            self.iface,
            self.direction()
        )?;
        match self.decode() {
            Ok(p) => p.fmt(f),
            Err(e) => e.fmt(f),
        }
    }
}

/// Captured frames one per line, with times relative to the first:
/// `+0.000012345 node1/cni0 in  10.244.1.2:40000 > 10.96.0.20:80 tcp [S]`.
pub fn render(packets: &[Captured]) -> String {
    let Some(t0) = packets.iter().map(|c| c.ts).min() else {
        return String::new();
    };
    let width = packets
        .iter()
        .map(|c| c.netns.len() + c.iface.len() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for c in packets {
        let dt = c.ts.saturating_sub(t0);
        let point = format!("{}/{}", c.netns, c.iface);
        let what = match c.decode() {
            Ok(p) => p.to_string(),
            Err(e) => e.to_string(),
        };
        out += &format!(
            "+{}.{:09} {point:<width$} {:<3} {what}\n",
            dt.as_secs(),
            dt.subsec_nanos(),
            c.direction()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::decode::build::captured_udp;
    use super::*;

    #[test]
    fn one_line_per_frame() {
        let c = captured_udp("pod-a", "eth0", 1_718_000_000_000_000_005, true);
        assert_eq!(
            c.to_string(),
            "1718000000.000000005 pod-a/eth0 out 10.244.1.2:40001 > 10.244.2.2:5353 udp length 2"
        );
        assert_eq!(c.point().to_string(), "pod-a/eth0");
    }

    #[test]
    fn render_aligns_points_and_times_from_the_first() {
        let packets = [
            captured_udp("pod-a", "eth0", 1_000_000_000, true),
            captured_udp("node1", "cni0", 1_000_012_345, false),
        ];
        assert_eq!(
            render(&packets),
            "+0.000000000 pod-a/eth0 out 10.244.1.2:40001 > 10.244.2.2:5353 udp length 2\n\
             +0.000012345 node1/cni0 in  10.244.1.2:40001 > 10.244.2.2:5353 udp length 2\n"
        );
        assert_eq!(render(&[]), "");
    }
}
