//! The netlink socket every family shares: requests with sequence numbers and their replies
//! read to the end ([`NlSocket::request`]), and multicast groups read without waiting
//! ([`NlSocket::drain`]). What the messages mean is the family's business; how they are framed
//! is [`super::frame`]'s.
//!
//! A socket speaks to the kernel of the network namespace it was opened in, whatever thread
//! uses it later. Only the kernel's datagrams are read (port id 0).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{
    AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, getsockopt, setsockopt,
    socket, sockopt,
};

use super::frame::{self, OnMessage, Reply, ReplyError};

/// Large enough for the biggest datagram the kernel builds (dumps are at most 32 KiB), twice.
pub const RECV_BUF_LEN: usize = 64 * 1024;

// Socket options of SOL_NETLINK (linux/netlink.h).
/// Acks without a copy of the request.
pub const NETLINK_CAP_ACK: libc::c_int = 10;
/// Error strings from the kernel.
pub const NETLINK_EXT_ACK: libc::c_int = 11;
/// Strict header checking, so that dump filters apply.
pub const NETLINK_GET_STRICT_CHK: libc::c_int = 12;

/// A request whose reply did not come back as success.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Sending or receiving failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A datagram did not fit the receive buffer (grown for the next request).
    #[error("reply of {len} bytes truncated to {buf} bytes")]
    Truncated { len: usize, buf: usize },
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

/// What [`NlSocket::drain`] read.
#[derive(Debug)]
pub enum Datagram<'a> {
    Data(&'a [u8]),
    /// A datagram of this many bytes did not fit the buffer and is lost.
    Truncated(usize),
    /// The socket's receive buffer overflowed (`ENOBUFS`): datagrams were lost. The ones after
    /// are still there to read.
    Overrun,
}

/// A netlink socket of one protocol, bound to the namespace it was opened in.
#[derive(Debug)]
pub struct NlSocket {
    fd: OwnedFd,
    seq: u32,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
}

impl NlSocket {
    /// Opens and binds a socket of `protocol` in the calling thread's network namespace.
    pub fn open(protocol: SockProtocol) -> io::Result<NlSocket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            protocol,
        )
        .map_err(errno("socket(AF_NETLINK)"))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(errno("bind"))?;
        Ok(NlSocket {
            fd,
            seq: 0,
            send_buf: Vec::new(),
            recv_buf: Vec::new(),
        })
    }

    /// Sets a boolean `SOL_NETLINK` option ([`NETLINK_EXT_ACK`], ...).
    pub fn set_flag(&self, option: libc::c_int, on: bool) -> io::Result<()> {
        self.set_int(option, u32::from(on))
            .map_err(errno("setsockopt(SOL_NETLINK)"))
    }

    /// Joins multicast group `group`.
    pub fn join(&self, group: u32) -> io::Result<()> {
        self.set_int(libc::NETLINK_ADD_MEMBERSHIP, group)
            .map_err(errno("NETLINK_ADD_MEMBERSHIP"))
    }

    /// Leaves multicast group `group`: nothing more is queued, what was queued stays to read.
    pub fn leave(&self, group: u32) -> io::Result<()> {
        self.set_int(libc::NETLINK_DROP_MEMBERSHIP, group)
            .map_err(errno("NETLINK_DROP_MEMBERSHIP"))
    }

    /// Asks for a receive buffer of `bytes` (beyond `rmem_max` where privileges allow) and
    /// returns what the kernel granted (it doubles the ask for bookkeeping).
    pub fn set_rcvbuf(&self, bytes: usize) -> usize {
        if setsockopt(&self.fd, sockopt::RcvBufForce, &bytes).is_err() {
            let _ = setsockopt(&self.fd, sockopt::RcvBuf, &bytes);
        }
        getsockopt(&self.fd, sockopt::RcvBuf).unwrap_or(0)
    }

    fn set_int(&self, option: libc::c_int, value: u32) -> Result<(), Errno> {
        // SAFETY: the option value is a u32 alive for the call, and its size is passed.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_NETLINK,
                option,
                (&value as *const u32).cast(),
                std::mem::size_of::<u32>() as libc::socklen_t,
            )
        };
        Errno::result(r).map(drop)
    }

    /// Sends one request (`ty`, `flags`, a payload of `payload_len` bytes that `fill` writes)
    /// with the next sequence number, and reads its reply to the end: the ack, the error, or
    /// for a dump `NLMSG_DONE`, handing every data message of it to `on_msg`.
    pub fn request(
        &mut self,
        ty: u16,
        flags: u16,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
        on_msg: OnMessage<'_>,
    ) -> Result<(), RequestError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        self.send_buf.clear();
        frame::encode(&mut self.send_buf, ty, flags, seq, payload_len, fill);
        loop {
            // SAFETY: `send_buf` is valid for reads of its length.
            let r = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    self.send_buf.as_ptr().cast(),
                    self.send_buf.len(),
                    0,
                )
            };
            match Errno::result(r) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        if self.recv_buf.len() < RECV_BUF_LEN {
            self.recv_buf.resize(RECV_BUF_LEN, 0);
        }
        let mut reply = Reply::default();
        loop {
            let len = match recv_from_kernel(self.fd.as_fd(), &mut self.recv_buf, 0) {
                Ok(Some(len)) => len,
                Ok(None) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from(e).into()),
            };
            if len > self.recv_buf.len() {
                // The datagram is lost; grow for next time and report. Whatever of this reply
                // is still queued carries this sequence number and later requests skip it.
                let buf = self.recv_buf.len();
                self.recv_buf.resize(len.next_power_of_two(), 0);
                return Err(RequestError::Truncated { len, buf });
            }
            if let Some(result) = reply.feed(&self.recv_buf[..len], seq, on_msg) {
                return Ok(result?);
            }
        }
    }

    /// Reads every datagram queued, without waiting, into `buf`, handing each to `on`. Ends
    /// when nothing more is queued, or with the first error other than an overrun.
    pub fn drain(&self, buf: &mut [u8], mut on: impl FnMut(Datagram<'_>)) -> io::Result<()> {
        loop {
            match recv_from_kernel(self.fd.as_fd(), buf, libc::MSG_DONTWAIT) {
                Ok(Some(len)) if len > buf.len() => on(Datagram::Truncated(len)),
                Ok(Some(len)) => on(Datagram::Data(&buf[..len])),
                Ok(None) | Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::ENOBUFS) => on(Datagram::Overrun),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for NlSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One datagram's full length (more than `buf` holds when it was truncated), or `None` when it
/// came from another socket than the kernel's.
fn recv_from_kernel(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: libc::c_int,
) -> Result<Option<usize>, Errno> {
    // SAFETY: sockaddr_nl is plain old data; all-zeroes is a valid value.
    let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    let mut from_len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: `buf` and `from` are valid for writes of the lengths passed.
    let got = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags | libc::MSG_TRUNC,
            (&mut from as *mut libc::sockaddr_nl).cast(),
            &mut from_len,
        )
    };
    let len = Errno::result(got)? as usize;
    Ok((from.nl_pid == 0).then_some(len))
}

fn errno(op: &'static str) -> impl Fn(Errno) -> io::Error {
    move |e| io::Error::new(io::Error::from(e).kind(), format!("{op}: {e}"))
}
