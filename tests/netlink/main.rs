//! The netlink probes against the kernel's own tools, in network namespaces built per test:
//! `dump_links()` vs `ip -j -d link show`, `features()` vs `ethtool -k`, `route_get()` and
//! `route_lookup()` vs `ip -j route get`, `default_routes()` vs `ip -j route show default`;
//! addresses, neighbours, the bridge FDB, tunnels and namespace handles vs `ip` and `bridge`.
//!
//! The probes run in a thread of this process that entered the test namespace (`setns` is per
//! thread), as the CLI runs inside one. Addresses are in 198.18.0.0/15 and 2001:db8::/32.
//! - `links`: `dump_links()`; `features`: `features()`; `routes`: route lookups and defaults.
//! - `addresses`: addresses, neighbours, the bridge FDB; `tunnels`: tunnels and their underlay
//!   namespace; `namespaces`: nsids, named namespaces, a pid's namespace.

#[path = "../common/mod.rs"]
mod common;

mod addresses;
mod features;
mod links;
mod namespaces;
mod routes;
mod tunnels;

use std::net::IpAddr;

use common::Netns;
use serde_json::Value;
use zcdoctor::probe::netns;

fn json(out: std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Runs `f` in `ns` through the library's own `in_netns` (scoped thread, `setns`).
fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).expect("open netns file");
    netns::in_netns(&file, f).expect("setns")
}

fn ifindex_of(ns: &Netns, dev: &str) -> u32 {
    json(ns.ip(&format!("-j link show {dev}")))[0]["ifindex"]
        .as_u64()
        .unwrap_or_else(|| panic!("ifindex of {dev}")) as u32
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

harness_modules!(links, features, routes, addresses, tunnels, namespaces);
