//! The builtin cluster DNS server: a [`RecordTable`] served on UDP and TCP.
//!
//! Sockets are created (and bound) by the caller on a thread inside the DNS pod's network
//! namespace, as for the echo servers; the server's own runtime threads never change namespace.
//! The table is swapped whole ([`SharedTable::store`]) while the server runs: a question is
//! answered from one table, never from half of two.

use std::io;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use super::records::RecordTable;
use super::wire::{Transport, respond};

/// How long a TCP connection may stay silent before the server closes it.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// A record table the server reads and its owner replaces.
#[derive(Debug, Clone)]
pub struct SharedTable(Arc<RwLock<Arc<RecordTable>>>);

impl SharedTable {
    pub fn new(table: RecordTable) -> SharedTable {
        SharedTable(Arc::new(RwLock::new(Arc::new(table))))
    }

    /// The current table.
    pub fn load(&self) -> Arc<RecordTable> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the table; questions already being answered finish with the old one.
    pub fn store(&self, table: RecordTable) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }
}

/// DNS servers on one small runtime, all answering from one table. Dropping it closes every
/// socket.
pub struct DnsServer {
    runtime: Option<Runtime>,
    table: SharedTable,
}

impl DnsServer {
    /// A server with no sockets yet.
    pub fn new(table: SharedTable) -> io::Result<DnsServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("podpath-dns")
            .enable_io()
            .enable_time()
            .build()?;
        Ok(DnsServer {
            runtime: Some(runtime),
            table,
        })
    }

    /// Serves `table` on a UDP socket and a TCP listener (usually both on port 53).
    pub fn serve(
        table: SharedTable,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
    ) -> io::Result<DnsServer> {
        let server = DnsServer::new(table)?;
        server.serve_udp(udp)?;
        server.serve_tcp(tcp)?;
        Ok(server)
    }

    /// The table this server answers from; [`SharedTable::store`] on it swaps the records.
    pub fn table(&self) -> &SharedTable {
        &self.table
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    /// Answers every datagram on `socket`.
    pub fn serve_udp(&self, socket: std::net::UdpSocket) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        let _guard = self.runtime().enter();
        let socket = tokio::net::UdpSocket::from_std(socket)?;
        let table = self.table.clone();
        self.runtime().spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                if let Some(reply) = respond(&table.load(), &buf[..len], Transport::Udp) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        Ok(())
    }

    /// Answers every connection on `listener`: length-prefixed messages (RFC 1035 4.2.2), as
    /// many as the client sends, until it closes or stays idle for 10 s.
    pub fn serve_tcp(&self, listener: std::net::TcpListener) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let _guard = self.runtime().enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let table = self.table.clone();
        self.runtime().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let table = table.clone();
                tokio::spawn(async move {
                    let _ = serve_connection(stream, &table).await;
                });
            }
        });
        Ok(())
    }
}

async fn serve_connection(mut stream: TcpStream, table: &SharedTable) -> io::Result<()> {
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            // Closed by the client, or idle for too long.
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut request))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        let Some(reply) = respond(&table.load(), &request, Transport::Tcp) else {
            continue;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed).await?;
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
