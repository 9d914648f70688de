//! A VLAN-filtering bridge (this host's kernel cannot build one): the host's frames take the
//! bridge's own pvid, and only the ports that carry that VLAN are on the path.

use super::{blockers, live, summary};
use crate::common::path::{every_send_copied, no_send_copied};
use crate::common::{Netns, codes, finding, pids};
use crate::harness::{Kernel, Outcome, Scenario, prove};

fn vlan_filtering_bridge_tap_outside_the_vlan(_: &Kernel) -> Outcome {
    let ns = Netns::new("gbrvl");
    ns.ip("link add br0 type bridge vlan_filtering 1");
    for (port, vid) in [("d0", "10"), ("d1", "20")] {
        ns.ip(&format!("link add {port} type dummy"));
        ns.ip(&format!("link set {port} master br0"));
        ns.ip(&format!("link set {port} up"));
        ns.exec_ok(&["bridge", "vlan", "del", "dev", port, "vid", "1"]);
        ns.exec_ok(&[
            "bridge", "vlan", "add", "dev", port, "vid", vid, "pvid", "untagged",
        ]);
    }
    ns.exec_ok(&["bridge", "vlan", "del", "dev", "br0", "vid", "1", "self"]);
    ns.exec_ok(&[
        "bridge", "vlan", "add", "dev", "br0", "vid", "10", "pvid", "untagged", "self",
    ]);
    ns.ip("addr add 198.18.0.1/24 dev br0");
    ns.ip("link set br0 up");
    ns.ip("neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev br0 nud permanent");
    // No FDB entry: the bridge floods, but only to the ports of VLAN 10 (d0).
    let outside = ns.tcpdump(&["-i", "d1"]);
    let (code, doc) = live(&ns, "br0", "198.18.0.2");
    no_send_copied(&doc);
    assert!(blockers(&doc).is_empty(), "exit {code}: {:?}", codes(&doc));
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );
    let port = doc["stack"]
        .as_array()
        .and_then(|s| s.iter().find(|d| d["name"] == "d1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(port["vlans"]["vids"][0], 20, "{port:#}");
    let line = format!("tap on d1 (VLAN 20): {}", summary(&doc));
    drop(outside);
    let inside = ns.tcpdump(&["-i", "d0"]);
    let (_, doc) = live(&ns, "br0", "198.18.0.2");
    every_send_copied(&doc);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(inside.pid())], "{tap:#}");
    prove("tap-forces-copy");
    Outcome::Ran(format!("{line}; tap on d0 (VLAN 10): {}", summary(&doc)))
}

pub const VLAN_FILTERING_TAP_OUTSIDE_THE_VLAN: Scenario = Scenario {
    name: "bridge_vlan_filtering_tap_outside_the_vlan",
    run: vlan_filtering_bridge_tap_outside_the_vlan,
};
