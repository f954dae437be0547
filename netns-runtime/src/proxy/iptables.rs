//! kube-proxy iptables mode: `ServiceTable` -> `iptables-restore` input.
