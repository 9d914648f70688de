//! A VRF: its slaves' routes come from its table, and what an application in it sends passes
//! through the VRF device, where a tap copies it.

use std::time::Duration;

use super::{blockers, live, summary};
use crate::common::path::{every_send_copied, no_send_copied};
use crate::common::{Netns, TmpFiles, codes, finding, pids, python, tmp_path};
use crate::harness::{Kernel, Outcome, Scenario, prove};

/// `vrf0` (table 10) with the dummy `d0` (198.18.0.1/24) enslaved: 198.18.0.0/24 is routed in
/// table 10 only, so a lookup that ignores the VRF finds no route.
fn in_a_vrf() -> Netns {
    let ns = Netns::new("gvrf");
    ns.ip("link add vrf0 type vrf table 10");
    ns.ip("link set vrf0 up");
    ns.ip("link add d0 type dummy");
    ns.ip("link set d0 master vrf0");
    ns.ip("addr add 198.18.0.1/24 dev d0");
    ns.ip("link set d0 up");
    ns.ip("neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev d0 nud permanent");
    ns
}

fn vrf_tap_on_the_vrf_device(_: &Kernel) -> Outcome {
    let ns = in_a_vrf();
    let (_, doc) = live(&ns, "vrf0", "198.18.0.2");
    no_send_copied(&doc);
    assert!(blockers(&doc).is_empty(), "{:?}", codes(&doc));
    let mut line = format!("clean: {}", summary(&doc));
    let dump = ns.tcpdump(&["-i", "vrf0"]);
    for iface in ["vrf0", "d0"] {
        let (_, doc) = live(&ns, iface, "198.18.0.2");
        every_send_copied(&doc);
        let tap = finding(&doc, "tap-forces-copy")
            .unwrap_or_else(|| panic!("check {iface}: {:?}", codes(&doc)));
        assert_eq!(tap["severity"], "blocker", "{tap:#}");
        assert_eq!(pids(tap), [u64::from(dump.pid())], "{tap:#}");
        line += &format!("; tap on vrf0, check {iface}: {}", summary(&doc));
        prove("tap-forces-copy");
    }
    // An application bound to the VRF, diagnosed by pid: its socket's route is the VRF's.
    let status = tmp_path("status");
    let _files = TmpFiles(vec![status.clone()]);
    let mut sender = ns.spawn(&[
        python(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/zc_sender.py"),
        "--target",
        "198.18.0.2",
        "--connect",
        "--bind-device",
        "vrf0",
        "--status",
        &status,
    ]);
    sender.wait_until("the sender has sent", Duration::from_secs(20), || {
        std::fs::read_to_string(&status).is_ok_and(|t| t.contains("READY"))
    });
    let pid = sender.pid().to_string();
    let (_, doc) = ns.check_json(&["--pid", &pid]);
    let tap = finding(&doc, "tap-forces-copy")
        .unwrap_or_else(|| panic!("--pid: {:?} {:#}", codes(&doc), doc["stack"]));
    assert_eq!(pids(tap), [u64::from(dump.pid())], "{tap:#}");
    line += &format!(
        "; --pid of a sender bound to vrf0: findings {:?}",
        codes(&doc)
    );
    Outcome::Ran(line)
}

pub const TAP_ON_THE_VRF_DEVICE: Scenario = Scenario {
    name: "vrf_tap_on_the_vrf_device",
    run: vrf_tap_on_the_vrf_device,
};
