//! The path beyond the diagnosed device: veths into other namespaces, forwarding, macvlans,
//! vxlan underlays, bridges (`veth-path`, `path-incomplete`, `local-delivery`,
//! `lower-device-elsewhere`, `tunnel-mtu-fragments`).
//! - `cli`: `zcdoctor check IFACE --target ADDR` along shapes built in namespaces.
//! - `pid`: `zcdoctor check --pid` along each way a process's zerocopy sockets send.
//! - `tc`: tc filters on the path (`tc-mirred-copies`, `tc-bpf-program`).
//! - `nfqueue`: netfilter queue rules with a real reader (`nfqueue-on-path`).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod nfqueue;
mod pid;
mod tc;

harness_modules!(cli, nfqueue, pid, tc);
