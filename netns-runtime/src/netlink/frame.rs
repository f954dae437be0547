//! Netlink framing, shared by every netlink family podpath speaks (rtnetlink in
//! [`crate::netlink`], ctnetlink in [`crate::trace::conntrack`], the nf_tables trace in
//! [`crate::trace::nftrace`]): message headers, splitting a datagram into messages, attribute
//! runs, and following a request's reply (its sequence number, multipart messages,
//! `NLMSG_DONE`, `NLMSG_ERROR` with its errno and extended ack). Each family only encodes and
//! decodes its own payloads.
//!
//! Pure and total: any byte string splits into messages, into an error, or into nothing, never
//! a panic. Headers are in host byte order.

/// `struct nlmsghdr`.
pub const NLMSG_HDR_LEN: usize = 16;
/// `struct nlattr`.
pub const NLA_HDR_LEN: usize = 4;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;
/// On an `NLMSG_ERROR`: only the request's header is quoted.
pub const NLM_F_CAPPED: u16 = 0x100;
/// On an `NLMSG_ERROR` or `NLMSG_DONE`: extended-ack attributes follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;

/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`, flags carried in an attribute's type.
pub const NLA_TYPE_FLAGS: u16 = 0x8000 | 0x4000;
/// `NLMSGERR_ATTR_MSG`: the extended-ack error string.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// One netlink message of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// What follows the header, up to the message's length.
    pub payload: &'a [u8],
}

/// A message header whose length does not fit the datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("netlink message of {len} bytes at offset {at} overruns the {total}-byte datagram")]
pub struct FrameError {
    pub at: usize,
    pub len: usize,
    pub total: usize,
}

/// The messages of one datagram, in order. A header that overruns the datagram is an error and
/// ends it; trailing bytes too short for a header are padding.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages {
        buf: datagram,
        at: 0,
    }
}

pub struct Messages<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (buf, at) = (self.buf, self.at);
        let rest = buf.len().checked_sub(at)?;
        if rest < NLMSG_HDR_LEN {
            return None;
        }
        let h = &buf[at..at + NLMSG_HDR_LEN];
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < NLMSG_HDR_LEN || len > rest {
            self.at = buf.len();
            return Some(Err(FrameError {
                at,
                len,
                total: buf.len(),
            }));
        }
        // Messages are aligned to 4 bytes.
        self.at = at + len.next_multiple_of(4).min(rest);
        Some(Ok(Message {
            ty: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            payload: &buf[at + NLMSG_HDR_LEN..at + len],
        }))
    }
}

/// Appends one message to `out`: the header, then `payload_len` bytes `fill` writes (the port
/// id is 0: the kernel fills in the socket's).
pub fn encode(
    out: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) {
    let start = out.len();
    let len = NLMSG_HDR_LEN + payload_len;
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.resize(start + len, 0);
    fill(&mut out[start + NLMSG_HDR_LEN..]);
    out.resize(start + len.next_multiple_of(4), 0);
}

/// An attribute header whose length does not fit its run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute {kind} of {len} bytes at offset {at} overruns its message")]
pub struct AttrError {
    pub at: usize,
    pub kind: u16,
    pub len: usize,
}

/// The `(type, value)` pairs of a run of attributes, the flags masked off the type. An
/// attribute that overruns the run is an error and ends it; trailing bytes too short for a
/// header are padding.
pub fn attrs(run: &[u8]) -> Attrs<'_> {
    Attrs { buf: run, at: 0 }
}

pub struct Attrs<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), AttrError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (buf, at) = (self.buf, self.at);
        let rest = buf.len().checked_sub(at)?;
        if rest < NLA_HDR_LEN {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[at], buf[at + 1]]));
        let kind = u16::from_ne_bytes([buf[at + 2], buf[at + 3]]) & !NLA_TYPE_FLAGS;
        if len < NLA_HDR_LEN || len > rest {
            self.at = buf.len();
            return Some(Err(AttrError { at, kind, len }));
        }
        self.at = at + len.next_multiple_of(4).min(rest);
        Some(Ok((kind, &buf[at + NLA_HDR_LEN..at + len])))
    }
}

/// Why a request's reply ended without success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The kernel refused the request with `errno` (positive); `extack` is its extended-ack
    /// message, if any.
    #[error("{}", kernel_text(*.errno, .extack.as_deref()))]
    Kernel { errno: i32, extack: Option<String> },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("short NLMSG_ERROR")]
    ShortError,
    #[error("netlink overrun")]
    Overrun,
    /// The first data message the family's decoder refused, with its reason.
    #[error("{0}")]
    Refused(String),
    /// A dump was interrupted by a concurrent change (`NLM_F_DUMP_INTR`): it must be restarted.
    #[error("dump interrupted by a concurrent change")]
    Interrupted,
}

/// An errno as the OS says it, with the kernel's extended-ack message after it.
pub fn kernel_text(errno: i32, extack: Option<&str>) -> String {
    let err = std::io::Error::from_raw_os_error(errno);
    match extack {
        Some(msg) => format!("{err}: {msg}"),
        None => err.to_string(),
    }
}

/// What a family does with each data message of a reply: `(type, payload)`, or why it cannot.
pub type OnMessage<'a> = &'a mut dyn FnMut(u16, &[u8]) -> Result<(), String>;

/// Progress of one request's reply across datagrams.
#[derive(Debug, Default)]
pub struct Reply {
    /// The first data message the decoder refused; reported once the reply is complete, so
    /// that the rest of it is read off the socket.
    failed: Option<String>,
    /// The kernel flagged a dump message `NLM_F_DUMP_INTR`.
    interrupted: bool,
}

impl Reply {
    /// Walks one datagram of the reply to the request `seq`, handing its data messages to
    /// `on_msg`. Returns `Some` once the reply is complete (an ack, an error or `NLMSG_DONE`),
    /// `None` when more datagrams are needed. Messages with other sequence numbers (stale
    /// replies, notifications) are skipped.
    pub fn feed(
        &mut self,
        datagram: &[u8],
        seq: u32,
        on_msg: OnMessage<'_>,
    ) -> Option<Result<(), ReplyError>> {
        for m in messages(datagram) {
            let m = match m {
                Ok(m) => m,
                Err(e) => return Some(Err(e.into())),
            };
            if m.seq != seq {
                continue;
            }
            match m.ty {
                NLMSG_NOOP => {}
                NLMSG_OVERRUN => return Some(Err(ReplyError::Overrun)),
                NLMSG_ERROR | NLMSG_DONE => {
                    let code = match m.payload.get(..4) {
                        Some(c) => i32::from_ne_bytes([c[0], c[1], c[2], c[3]]),
                        // An old kernel's NLMSG_DONE may come without its code.
                        None if m.ty == NLMSG_DONE => 0,
                        None => return Some(Err(ReplyError::ShortError)),
                    };
                    if code < 0 {
                        let extack = (m.flags & NLM_F_ACK_TLVS != 0)
                            .then(|| extack(m.ty, m.flags, m.payload))
                            .flatten();
                        return Some(Err(ReplyError::Kernel {
                            errno: code.saturating_neg(),
                            extack,
                        }));
                    }
                    return Some(self.finish());
                }
                ty => {
                    if m.flags & NLM_F_DUMP_INTR != 0 {
                        self.interrupted = true;
                    }
                    if self.failed.is_none()
                        && let Err(e) = on_msg(ty, m.payload)
                    {
                        self.failed = Some(e);
                    }
                }
            }
        }
        None
    }

    fn finish(&mut self) -> Result<(), ReplyError> {
        if let Some(e) = self.failed.take() {
            Err(ReplyError::Refused(e))
        } else if self.interrupted {
            Err(ReplyError::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// The extended-ack message of an `NLMSG_ERROR` payload (error code, the request's header, or
/// the whole request unless `NLM_F_CAPPED`, then attributes) or of an `NLMSG_DONE` one (error
/// code, then attributes).
fn extack(ty: u16, flags: u16, payload: &[u8]) -> Option<String> {
    let tlvs = if ty == NLMSG_ERROR {
        let req = payload.get(4..4 + NLMSG_HDR_LEN)?;
        let req_len = if flags & NLM_F_CAPPED != 0 {
            NLMSG_HDR_LEN
        } else {
            (u32::from_ne_bytes([req[0], req[1], req[2], req[3]]) as usize).next_multiple_of(4)
        };
        payload.get(4usize.saturating_add(req_len)..)?
    } else {
        payload.get(4..)?
    };
    attrs(tlvs)
        .map_while(Result::ok)
        .find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG)
        .map(|(_, v)| {
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end]).into_owned()
        })
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: u16 = 16;

    /// Appends one netlink message to `buf`.
    fn push(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, payload: &[u8]) {
        encode(buf, ty, flags, seq, payload.len(), |b| {
            b.copy_from_slice(payload)
        });
    }

    pub(crate) fn error_payload(code: i32, extack: Option<&str>) -> Vec<u8> {
        let mut p = code.to_ne_bytes().to_vec();
        // Capped copy of the request header.
        p.extend_from_slice(&[0u8; NLMSG_HDR_LEN]);
        if let Some(msg) = extack {
            let value_len = msg.len() + 1;
            p.extend_from_slice(&((4 + value_len) as u16).to_ne_bytes());
            p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            p.extend_from_slice(msg.as_bytes());
            p.push(0);
            p.resize(p.len().next_multiple_of(4), 0);
        }
        p
    }

    #[test]
    fn skips_other_sequences_and_collects_multipart() {
        let mut seen = Vec::new();
        let mut on = |ty: u16, p: &[u8]| {
            seen.push((ty, p.to_vec()));
            Ok(())
        };
        let mut state = Reply::default();
        let mut d1 = Vec::new();
        push(&mut d1, DATA, 2, 6, b"stale"); // previous request
        push(&mut d1, DATA, 2, 7, b"one");
        push(&mut d1, DATA, 0, 0, b"notification");
        assert!(state.feed(&d1, 7, &mut on).is_none());
        let mut d2 = Vec::new();
        push(&mut d2, DATA, 2, 7, b"two");
        push(&mut d2, NLMSG_DONE, 2, 7, &0i32.to_ne_bytes());
        push(&mut d2, DATA, 2, 7, b"after done");
        let r = state.feed(&d2, 7, &mut on);
        assert_eq!(r, Some(Ok(())));
        assert_eq!(seen, vec![(DATA, b"one".to_vec()), (DATA, b"two".to_vec())]);
    }

    #[test]
    fn error_with_extack() {
        let mut d = Vec::new();
        push(&mut d, NLMSG_ERROR, 0, 3, &error_payload(-22, None));
        push(
            &mut d,
            NLMSG_ERROR,
            NLM_F_CAPPED | NLM_F_ACK_TLVS,
            4,
            &error_payload(-17, Some("Route exists")),
        );
        let r = Reply::default().feed(&d, 4, &mut |_, _| Ok(()));
        assert_eq!(
            r,
            Some(Err(ReplyError::Kernel {
                errno: 17,
                extack: Some("Route exists".into())
            }))
        );
        let r = Reply::default().feed(&d, 3, &mut |_, _| Ok(()));
        assert_eq!(
            r,
            Some(Err(ReplyError::Kernel {
                errno: 22,
                extack: None
            }))
        );
    }

    #[test]
    fn ack_ends_request_and_decode_failures_surface_after_done() {
        let mut d = Vec::new();
        push(&mut d, NLMSG_ERROR, 0, 9, &error_payload(0, None));
        let r = Reply::default().feed(&d, 9, &mut |_, _| Ok(()));
        assert_eq!(r, Some(Ok(())));

        let mut d = Vec::new();
        push(&mut d, DATA, NLM_F_DUMP_INTR, 9, b"x");
        push(&mut d, DATA, 2, 9, b"y");
        push(&mut d, NLMSG_DONE, 2, 9, &0i32.to_ne_bytes());
        let mut calls = 0;
        let r = Reply::default().feed(&d, 9, &mut |_, _| {
            calls += 1;
            Err("bad".into())
        });
        assert_eq!(r, Some(Err(ReplyError::Refused("bad".into()))));
        assert_eq!(
            calls, 1,
            "stops decoding after the first failure but drains"
        );

        let r = Reply::default().feed(&d, 9, &mut |_, _| Ok(()));
        assert_eq!(r, Some(Err(ReplyError::Interrupted)));
    }

    #[test]
    fn malformed_length_is_an_error() {
        let mut d = Vec::new();
        push(&mut d, DATA, 0, 1, b"abcd");
        d[0..4].copy_from_slice(&200u32.to_ne_bytes());
        let r = Reply::default().feed(&d, 1, &mut |_, _| Ok(()));
        assert_eq!(
            r,
            Some(Err(ReplyError::Frame(FrameError {
                at: 0,
                len: 200,
                total: 20
            })))
        );
    }

    /// Every prefix and every single-byte corruption of a reply, and random byte strings:
    /// messages, attributes, errors or nothing, never a panic.
    #[test]
    fn malformed_input_never_panics() {
        let mut good = Vec::new();
        push(&mut good, DATA, 2, 1, &[8, 0, 1, 0, 1, 2, 3, 4]);
        push(
            &mut good,
            NLMSG_ERROR,
            NLM_F_ACK_TLVS,
            1,
            &error_payload(-1, Some("no")),
        );
        let walk = |b: &[u8]| {
            let _ = Reply::default().feed(b, 1, &mut |_, p| {
                attrs(p).for_each(drop);
                Ok(())
            });
            for m in messages(b).flatten() {
                attrs(m.payload).for_each(drop);
            }
        };
        for n in 0..good.len() {
            walk(&good[..n]);
        }
        for i in 0..good.len() {
            for b in [0u8, 1, 3, 4, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                walk(&bad);
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 128) as usize;
            let buf: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            walk(&buf);
        }
    }
}
