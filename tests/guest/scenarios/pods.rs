//! Containers on ipvlan: the lower device stays in the host namespace, where a tap copies the
//! pod's traffic; two pods on one lower device reach each other without a wire.

use super::{blockers, live, summary};
use crate::common::path::every_send_copied;
use crate::common::{Netns, codes, finding, pids};
use crate::harness::{Kernel, Outcome, Scenario, prove};

/// A host with dummy `d0` (198.18.0.1/24, neighbour 198.18.0.2 static) and a pod with an
/// ipvlan `ipv0` over it in `mode`, at `addr`.
fn pod_on_ipvlan(host: &Netns, tag: &str, mode: &str, addr: &str) -> Netns {
    let pod = Netns::new(tag);
    host.ip(&format!(
        "link add ipv{tag} link d0 type ipvlan mode {mode}"
    ));
    host.ip(&format!("link set ipv{tag} netns {} name ipv0", pod.name));
    pod.ip(&format!("addr add {addr}/24 dev ipv0"));
    pod.ip("link set ipv0 up");
    if mode == "l2" {
        pod.ip("neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev ipv0 nud permanent");
    }
    pod
}

fn ipvlan_host() -> Netns {
    let host = Netns::new("gphost");
    host.dummy("d0", Some("198.18.0.1/24"));
    host.ip("neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev d0 nud permanent");
    host
}

fn ipvlan_tap_on_host_lower(_: &Kernel) -> Outcome {
    let host = ipvlan_host();
    let dump = host.tcpdump(&["-i", "d0"]);
    let mut line = Vec::new();
    for (i, mode) in ["l2", "l3", "l3s"].into_iter().enumerate() {
        let pod = pod_on_ipvlan(
            &host,
            &format!("gp{mode}"),
            mode,
            &format!("198.18.0.{}", 10 + i),
        );
        let (_, doc) = live(&pod, "ipv0", "198.18.0.2");
        every_send_copied(&doc);
        let tap =
            finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{mode}: {:?}", codes(&doc)));
        assert_eq!(tap["severity"], "blocker", "{mode}: {tap:#}");
        assert_eq!(pids(tap), [u64::from(dump.pid())], "{mode}: {tap:#}");
        assert!(
            finding(&doc, "copies-unexplained").is_none(),
            "{mode}: {:?}",
            codes(&doc)
        );
        prove("tap-forces-copy");
        line.push(format!("{mode}: {}", summary(&doc)));
    }
    Outcome::Ran(line.join("; "))
}

/// A macvlan (bridge mode) moved into a pod over the host's dummy NIC, tcpdump on the NIC.
fn macvlan_tap_on_host_lower(_: &Kernel) -> Outcome {
    let host = ipvlan_host();
    let dump = host.tcpdump(&["-i", "d0"]);
    let pod = Netns::new("gpmv");
    host.ip("link add mvgp link d0 type macvlan mode bridge");
    host.ip(&format!("link set mvgp netns {} name mv0", pod.name));
    pod.ip("addr add 198.18.0.20/24 dev mv0");
    pod.ip("link set mv0 up");
    pod.ip("neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev mv0 nud permanent");
    let (_, doc) = live(&pod, "mv0", "198.18.0.2");
    every_send_copied(&doc);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(tap["severity"], "blocker", "{tap:#}");
    assert_eq!(pids(tap), [u64::from(dump.pid())], "{tap:#}");
    prove("tap-forces-copy");
    Outcome::Ran(summary(&doc))
}

/// Pod to pod over one lower device: ipvlan hands the packet to the sibling (local delivery).
fn ipvlan_pod_to_pod(_: &Kernel) -> Outcome {
    let host = ipvlan_host();
    let a = pod_on_ipvlan(&host, "gppa", "l2", "198.18.0.5");
    let _b = pod_on_ipvlan(&host, "gppb", "l2", "198.18.0.6");
    let (_, doc) = live(&a, "ipv0", "198.18.0.6");
    every_send_copied(&doc);
    let f = finding(&doc, "local-delivery").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker", "{f:#}");
    assert!(blockers(&doc).contains(&"local-delivery".to_string()));
    prove("local-delivery");
    assert!(
        finding(&doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(&doc)
    );
    Outcome::Ran(summary(&doc))
}

pub const IPVLAN_TAP_ON_HOST_LOWER: Scenario = Scenario {
    name: "ipvlan_tap_on_host_lower",
    run: ipvlan_tap_on_host_lower,
};
pub const MACVLAN_TAP_ON_HOST_LOWER: Scenario = Scenario {
    name: "macvlan_tap_on_host_lower",
    run: macvlan_tap_on_host_lower,
};
pub const IPVLAN_POD_TO_POD: Scenario = Scenario {
    name: "ipvlan_pod_to_pod",
    run: ipvlan_pod_to_pod,
};
