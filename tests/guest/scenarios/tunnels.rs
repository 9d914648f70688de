//! Tunnels over a dummy underlay: the encapsulated packets leave by the underlay device, where
//! a tap copies them.

use super::{blockers, live, summary};
use crate::common::path::{every_send_copied, no_send_copied};
use crate::common::{Netns, codes, finding, pids};
use crate::harness::{Kernel, Outcome, Scenario};

/// A namespace with the underlay dummy `u0` (198.18.5.1/24, neighbour 198.18.5.2 static).
fn underlay(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.dummy("u0", Some("198.18.5.1/24"));
    ns.ip("neigh replace 198.18.5.2 lladdr 02:00:00:00:00:05 dev u0 nud permanent");
    ns
}

fn geneve_tap_on_underlay(_: &Kernel) -> Outcome {
    let ns = underlay("gtgen");
    ns.ip("link add gn0 type geneve id 5 remote 198.18.5.2");
    ns.ip("link set gn0 mtu 1400");
    ns.ip("addr add 198.18.6.1/24 dev gn0");
    ns.ip("link set gn0 up");
    ns.ip("neigh replace 198.18.6.2 lladdr 02:00:00:00:00:06 dev gn0 nud permanent");
    let (_, doc) = live(&ns, "gn0", "198.18.6.2");
    no_send_copied(&doc);
    assert!(blockers(&doc).is_empty(), "{:?}", codes(&doc));
    let clean = summary(&doc);
    let dump = ns.tcpdump(&["-i", "u0"]);
    let (_, doc) = live(&ns, "gn0", "198.18.6.2");
    every_send_copied(&doc);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(dump.pid())], "{tap:#}");
    Outcome::Ran(format!("clean: {clean}; tap on u0: {}", summary(&doc)))
}

/// `gre0` is the fallback device ip_gre creates in every namespace: the test's is gre1.
fn gre_clean(_: &Kernel) -> Outcome {
    let ns = underlay("gtgre");
    ns.ip("link add gre1 type gre local 198.18.5.1 remote 198.18.5.2");
    ns.ip("addr add 198.18.7.1/24 dev gre1");
    ns.ip("link set gre1 up");
    let (_, doc) = live(&ns, "gre1", "198.18.7.2");
    no_send_copied(&doc);
    assert!(blockers(&doc).is_empty(), "{:?}", codes(&doc));
    Outcome::Ran(summary(&doc))
}

pub const GENEVE_TAP_ON_UNDERLAY: Scenario = Scenario {
    name: "tunnel_geneve_tap_on_underlay",
    run: geneve_tap_on_underlay,
};
pub const GRE_CLEAN: Scenario = Scenario {
    name: "tunnel_gre_clean",
    run: gre_clean,
};
