//! Cluster DNS: the records CoreDNS's `kubernetes` plugin serves, and a server for them.
//!
//! - [`records`] is pure: the Kubernetes objects the DNS server watches ([`ClusterDns`]) become a
//!   [`RecordTable`] whose [`RecordTable::lookup`] answers a question exactly as CoreDNS with
//!   kubeadm's Corefile would (rcode, answers, SOA on negative answers, additional records).
//! - [`wire`] is pure too: one DNS message in, one out (header checks, EDNS, truncation), on top
//!   of `hickory-proto`'s wire format.
//! - [`server`] serves a [`records::RecordTable`] on UDP and TCP sockets the caller created inside
//!   a namespace, and lets the table be swapped while it runs.
//!
//! How faithful this is to CoreDNS, and where it differs, is in `docs/dns.md`.

pub mod records;
pub mod server;
pub mod wire;
pub mod zonefile;

pub use records::{
    Answer, ClusterDns, Endpoint, Pod, Port, RData, Rcode, Record, RecordTable, RecordType, Service,
};
pub use server::{DnsServer, SharedTable};
pub use wire::Transport;
