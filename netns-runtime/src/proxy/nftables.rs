//! kube-proxy nftables mode: `ServiceTable` -> `nft -f` input (table ip kube-proxy).
