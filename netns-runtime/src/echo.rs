//! The builtin echo servers pods run on their listeners.
//!
//! Every answer says who answered and which peer address the server saw, so a flow's outcome
//! proves which pod was reached and whether its source was rewritten on the way:
//! `podpath-echo <pod> <peer-ip>:<peer-port>\n`, once per TCP connection (then the server
//! closes) and once per UDP datagram.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;

use tokio::io::AsyncWriteExt as _;
use tokio::runtime::Runtime;

/// The first word of every echo answer.
pub const ECHO_MAGIC: &str = "podpath-echo";

/// Formats the answer a server gives to `peer`.
pub fn answer(pod: &str, peer: SocketAddr) -> String {
    format!("{ECHO_MAGIC} {pod} {peer}\n")
}

/// A parsed echo answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoAnswer {
    pub pod: String,
    pub peer: SocketAddrV4,
}

/// Parses an echo answer; `None` when the bytes are not one.
pub fn parse_answer(text: &str) -> Option<EchoAnswer> {
    let mut words = text.trim_end().split(' ');
    if words.next()? != ECHO_MAGIC {
        return None;
    }
    let pod = words.next()?.to_string();
    let peer = words.next()?.parse().ok()?;
    if words.next().is_some() {
        return None;
    }
    Some(EchoAnswer { pod, peer })
}

/// The echo servers of one cluster, on one small runtime. Dropping it closes every socket.
pub struct EchoServers {
    runtime: Option<Runtime>,
}

impl EchoServers {
    pub fn new() -> io::Result<EchoServers> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("podpath-echo")
            .enable_io()
            .build()?;
        Ok(EchoServers {
            runtime: Some(runtime),
        })
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    /// Serves a TCP listener created (and bound) inside the pod's namespace.
    pub fn serve_tcp(&self, pod: Arc<str>, listener: std::net::TcpListener) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let _guard = self.runtime().enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        self.runtime().spawn(async move {
            loop {
                let Ok((mut stream, peer)) = listener.accept().await else {
                    continue;
                };
                let pod = pod.clone();
                tokio::spawn(async move {
                    let _ = stream.write_all(answer(&pod, peer).as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(())
    }

    /// Serves a UDP socket created (and bound) inside the pod's namespace.
    pub fn serve_udp(&self, pod: Arc<str>, socket: std::net::UdpSocket) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        let _guard = self.runtime().enter();
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        self.runtime().spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((_, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let _ = socket.send_to(answer(&pod, peer).as_bytes(), peer).await;
            }
        });
        Ok(())
    }
}

impl Drop for EchoServers {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_round_trips() {
        let peer: SocketAddr = "10.244.1.2:40000".parse().unwrap();
        let text = answer("pod-b", peer);
        assert_eq!(text, "podpath-echo pod-b 10.244.1.2:40000\n");
        assert_eq!(
            parse_answer(&text),
            Some(EchoAnswer {
                pod: "pod-b".into(),
                peer: "10.244.1.2:40000".parse().unwrap()
            })
        );
    }

    #[test]
    fn foreign_bytes_are_not_answers() {
        assert_eq!(parse_answer("HTTP/1.1 200 OK"), None);
        assert_eq!(parse_answer("podpath-echo pod-b"), None);
        assert_eq!(parse_answer("podpath-echo pod-b 1.2.3.4:5 extra"), None);
    }
}
