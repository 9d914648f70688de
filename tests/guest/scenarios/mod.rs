//! The guest tier's scenarios, by family. Each builds its shape in namespaces it creates
//! (`zcdg…`), asks zcdoctor with a live probe, and judges both against the kernel's own answer:
//! the probe's completions flagged COPIED.

mod bond;
mod boundaries;
mod bridge;
mod causes;
mod nfqueue;
mod pods;
mod tc;
mod tunnels;
mod vrf;
mod vsock;
mod watch;

use serde_json::Value;

use crate::common::path::copied_and_completions;
use crate::common::{Netns, codes};
use crate::harness::Scenario;

pub const ALL: &[Scenario] = &[
    bond::ACTIVE_BACKUP_CLEAN,
    bond::ACTIVE_BACKUP_TAP_ON_ACTIVE_SLAVE,
    bond::ACTIVE_BACKUP_TAP_ON_BACKUP_SLAVE,
    bond::ACTIVE_BACKUP_TAP_ON_MASTER,
    bond::ACTIVE_BACKUP_DHCLIENT_ON_BOND,
    bond::ACTIVE_BACKUP_BACKUP_SLAVE_SG_OFF,
    bond::XOR_TAP_ON_EACH_SLAVE,
    bond::LACP_TAP_ON_EACH_SLAVE,
    bond::VLAN_OVER_BOND_TAP_ON_BOND,
    bridge::VLAN_FILTERING_TAP_OUTSIDE_THE_VLAN,
    pods::IPVLAN_TAP_ON_HOST_LOWER,
    pods::IPVLAN_POD_TO_POD,
    pods::MACVLAN_TAP_ON_HOST_LOWER,
    tunnels::GENEVE_TAP_ON_UNDERLAY,
    tunnels::GRE_CLEAN,
    tunnels::IP_TUNNELS_TAP_ON_UNDERLAY,
    tunnels::WIREGUARD_WITH_A_REAL_PEER,
    tunnels::MACSEC_WITHOUT_CHECKSUM_OFFLOAD,
    boundaries::UNBOUND_TAP_IN_ANOTHER_NAMESPACE,
    boundaries::FORWARDED_FROM_A_VETH,
    boundaries::IO_URING_SEND_ZC_WITH_A_TAP,
    boundaries::TCP_AND_UDP_TO_A_LOCAL_RECEIVER,
    vrf::TAP_ON_THE_VRF_DEVICE,
    watch::BTF_OFFSETS,
    watch::TAP,
    watch::CLEAN,
    watch::LOCAL_DELIVERY,
    watch::TIMESTAMPING,
    watch::SILENT_SEGMENTATION,
    watch::KILLED,
    watch::QEMU_CHANNELS,
    watch::TUN,
    causes::KTLS_REFUSES_ZEROCOPY,
    causes::TX_TIMESTAMP_COPIES,
    vsock::VSOCK_ZEROCOPY,
    nfqueue::NFQUEUE_COPIES,
    nfqueue::NFQUEUE_WATCH,
    tc::MIRROR_TO_A_TAPPED_DEVICE,
    tc::PEDIT_AFTER_A_MIRROR,
    tc::BPF_PROGRAM_PASSING,
];

/// How long each live phase runs: TCG is slow, but a phase needs 100 completions.
pub const PHASE: &str = "300ms";

/// `zcdoctor check IFACE --target TARGET` in `ns` with a short live probe: exit code, report.
pub fn live(ns: &Netns, iface: &str, target: &str) -> (i32, Value) {
    let (code, doc) = ns.check_json(&[iface, "--target", target, "--duration", PHASE]);
    // Into the guest's log (target/tmp/guest-LABEL/guest.log), for a failure's context.
    println!(
        "check {iface} --target {target}: exit {code}; {}",
        summary(&doc)
    );
    (code, doc)
}

/// The finding `code`, which must explain the copies the kernel reported (no
/// `copies-unexplained`); recorded as proven on this kernel.
pub fn explains(doc: &Value, code: &str) -> Value {
    let f = crate::common::finding(doc, code)
        .cloned()
        .unwrap_or_else(|| panic!("no {code}: {:?}", codes(doc)));
    assert!(
        crate::common::finding(doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(doc)
    );
    crate::harness::prove(code);
    f
}

/// The findings of `doc` with severity blocker.
pub fn blockers(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| f["severity"] == "blocker")
                .filter_map(|f| f["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One line for the tier's table: the kernel's count and zcdoctor's verdict.
pub fn summary(doc: &Value) -> String {
    let (copied, completions) = copied_and_completions(doc);
    format!(
        "kernel copied {copied} of {completions}; zcdoctor: zerocopy {} ({}), findings {:?}",
        doc["verdict"]["zerocopy"].as_str().unwrap_or("?"),
        doc["verdict"]["basis"].as_str().unwrap_or("?"),
        codes(doc)
    )
}

/// A host namespace with a permanent neighbour 198.18.0.2 on `dev`, so traffic leaves the
/// black-hole devices below without ARP.
pub fn static_neighbour(ns: &Netns, dev: &str) {
    ns.ip(&format!(
        "neigh replace 198.18.0.2 lladdr 02:00:00:00:00:02 dev {dev} nud permanent"
    ));
}
