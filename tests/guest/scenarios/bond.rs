//! Bonds over two dummy NICs: which slave really transmits decides whether a tap or a missing
//! offload on a slave copies.

use serde_json::Value;

use super::{blockers, explains, live, static_neighbour, summary};
use crate::common::path::{copied_and_completions, every_send_copied, no_send_copied};
use crate::common::{Netns, codes, finding, pids};
use crate::harness::{Kernel, Outcome, Scenario, prove};

/// A namespace with `bond0` (198.18.0.1/24, `mode`) over dummy slaves d0 (primary) and d1.
fn bonded(tag: &str, mode: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip(&format!("link add bond0 type bond mode {mode} miimon 100"));
    for d in ["d0", "d1"] {
        ns.ip(&format!("link add {d} type dummy"));
        ns.ip(&format!("link set {d} master bond0"));
    }
    if mode == "active-backup" {
        ns.ip("link set bond0 type bond primary d0");
    }
    ns.ip("addr add 198.18.0.1/24 dev bond0");
    ns.ip("link set bond0 up");
    static_neighbour(&ns, "bond0");
    ns
}

/// The report's blockers name `code` and nothing the kernel contradicts: every send copied.
fn copied_and_blocked(doc: &Value, code: &str) -> Value {
    every_send_copied(doc);
    assert!(
        blockers(doc).iter().any(|c| c == code),
        "expected a {code} blocker: {:?}",
        codes(doc)
    );
    assert!(
        finding(doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(doc)
    );
    assert!(finding(doc, "live-copied").is_some(), "{:?}", codes(doc));
    prove(code);
    prove("live-copied");
    finding(doc, code).cloned().unwrap_or_default()
}

/// No send copied, and zcdoctor predicts none (no blocker, no contradiction).
fn clean(doc: &Value) {
    no_send_copied(doc);
    assert!(blockers(doc).is_empty(), "false blockers: {:?}", codes(doc));
    assert!(
        finding(doc, "live-contradicts-prediction").is_none(),
        "{:?}",
        codes(doc)
    );
}

fn active_backup_clean(_: &Kernel) -> Outcome {
    let ns = bonded("gbabc", "active-backup");
    let (_, doc) = live(&ns, "bond0", "198.18.0.2");
    clean(&doc);
    assert_eq!(doc["verdict"]["zerocopy"], "yes", "{:#}", doc["verdict"]);
    // net.core.optmem_max is per namespace only since 6.8: before, it is read host-wide.
    let sysctls = doc["probes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "sysctls"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(sysctls["status"], "ok", "{sysctls:#}");
    // Judged either way: passed, or optmem-low (20480 before 6.8).
    let optmem = doc["passed"]
        .as_array()
        .into_iter()
        .chain(doc["findings"].as_array())
        .flatten()
        .filter_map(|p| p["detail"].as_str().or(p["summary"].as_str()))
        .find(|d| d.contains("optmem_max"))
        .unwrap_or_else(|| panic!("no optmem_max judgement: {:?}", codes(&doc)))
        .to_string();
    Outcome::Ran(format!("{}; {optmem}", summary(&doc)))
}

fn active_backup_tap_on_active_slave(_: &Kernel) -> Outcome {
    let ns = bonded("gbabta", "active-backup");
    let dump = ns.tcpdump(&["-i", "d0"]);
    let (_, doc) = live(&ns, "bond0", "198.18.0.2");
    let tap = copied_and_blocked(&doc, "tap-forces-copy");
    assert_eq!(pids(&tap), [u64::from(dump.pid())], "{tap:#}");
    Outcome::Ran(summary(&doc))
}

fn active_backup_tap_on_backup_slave(_: &Kernel) -> Outcome {
    let ns = bonded("gbabtb", "active-backup");
    let _dump = ns.tcpdump(&["-i", "d1"]);
    let (_, doc) = live(&ns, "bond0", "198.18.0.2");
    // d1 carries nothing while d0 is up: the kernel copies nothing, so no blocker.
    clean(&doc);
    Outcome::Ran(summary(&doc))
}

fn active_backup_tap_on_master(_: &Kernel) -> Outcome {
    let ns = bonded("gbabtm", "active-backup");
    let dump = ns.tcpdump(&["-i", "bond0"]);
    let (_, doc) = live(&ns, "bond0", "198.18.0.2");
    let tap = copied_and_blocked(&doc, "tap-forces-copy");
    assert_eq!(pids(&tap), [u64::from(dump.pid())], "{tap:#}");
    Outcome::Ran(summary(&doc))
}

fn active_backup_dhclient_on_bond(_: &Kernel) -> Outcome {
    let ns = bonded("gbabdh", "active-backup");
    let dh = ns.start_dhclient("bond0");
    let (_, doc) = live(&ns, "bond0", "198.18.0.2");
    let tap = copied_and_blocked(&doc, "tap-forces-copy");
    assert_eq!(pids(&tap), [u64::from(dh.culprit.pid())], "{tap:#}");
    Outcome::Ran(summary(&doc))
}

fn active_backup_backup_slave_sg_off(_: &Kernel) -> Outcome {
    let ns = bonded("gbabsg", "active-backup");
    ns.ethtool_k("d1", "sg", "off");
    let (_, doc) = live(&ns, "bond0", "198.18.0.2");
    // A bond keeps scatter-gather while one slave has it (NETIF_F_ONE_FOR_ALL), and the backup
    // slave transmits nothing: no copy, and no blocker.
    clean(&doc);
    let line = format!("SG off on the backup: {}", summary(&doc));
    ns.ethtool_k("d1", "sg", "on");
    ns.ethtool_k("d0", "sg", "off");
    let (_, doc) = live(&ns, "bond0", "198.18.0.2");
    // On the active slave it copies (the skb is linearised for d0), though bond0 keeps SG.
    let f = copied_and_blocked(&doc, "no-scatter-gather");
    assert_eq!(f["evidence"]["device"], "d0", "{f:#}");
    Outcome::Ran(format!("{line}; SG off on the active: {}", summary(&doc)))
}

/// balance-xor: the flow hash picks one slave. A tap on the other slave copies nothing; a tap
/// on the one that transmits copies every send, and zcdoctor explains it.
fn xor_tap_on_each_slave(_: &Kernel) -> Outcome {
    hashed_tap_on_each_slave("gbxor", "balance-xor")
}

/// 802.3ad without a partner: each slave is its own aggregator and one of them is active, so
/// one slave transmits; zcdoctor cannot tell which from the mode alone, as for balance-xor.
fn lacp_tap_on_each_slave(_: &Kernel) -> Outcome {
    hashed_tap_on_each_slave("gblacp", "802.3ad")
}

fn hashed_tap_on_each_slave(tag: &str, mode: &str) -> Outcome {
    let ns = bonded(tag, mode);
    let before = (ns.stat("d0", "tx_packets"), ns.stat("d1", "tx_packets"));
    let (_, doc) = live(&ns, "bond0", "198.18.0.2");
    clean(&doc);
    let sent = (
        ns.stat("d0", "tx_packets") - before.0,
        ns.stat("d1", "tx_packets") - before.1,
    );
    let (busy, idle) = if sent.0 > sent.1 {
        ("d0", "d1")
    } else {
        ("d1", "d0")
    };
    let mut line = format!("flow hashed to {busy} (tx {sent:?})");
    {
        let _dump = ns.tcpdump(&["-i", idle]);
        let (code, doc) = live(&ns, "bond0", "198.18.0.2");
        clean(&doc);
        line += &format!("; tap on {idle}: exit {code}, {}", summary(&doc));
    }
    let _dump = ns.tcpdump(&["-i", busy]);
    let (_, doc) = live(&ns, "bond0", "198.18.0.2");
    every_send_copied(&doc);
    explains(&doc, "tap-forces-copy");
    let (c, n) = copied_and_completions(&doc);
    line += &format!(
        "; tap on {busy}: copied {c} of {n}, findings {:?}",
        codes(&doc)
    );
    Outcome::Ran(line)
}

fn vlan_over_bond_tap_on_bond(_: &Kernel) -> Outcome {
    let ns = Netns::new("gbvlan");
    ns.ip("link add bond0 type bond mode active-backup miimon 100");
    ns.ip("link add d0 type dummy");
    ns.ip("link set d0 master bond0");
    ns.ip("link set bond0 up");
    ns.ip("link add link bond0 name bond0.100 type vlan id 100");
    ns.ip("addr add 198.18.0.1/24 dev bond0.100");
    ns.ip("link set bond0.100 up");
    static_neighbour(&ns, "bond0.100");
    // A vlan takes its offloads from the bond's vlan_features, which a bond computes from its
    // slaves': a dummy NIC has none, so the vlan has no SG and every send is copied.
    let (_, doc) = live(&ns, "bond0.100", "198.18.0.2");
    let f = copied_and_blocked(&doc, "no-scatter-gather");
    assert_eq!(f["evidence"]["device"], "bond0.100", "{f:#}");
    let line = format!("clean: {}", summary(&doc));
    let dump = ns.tcpdump(&["-i", "bond0"]);
    let (_, doc) = live(&ns, "bond0.100", "198.18.0.2");
    let tap = copied_and_blocked(&doc, "tap-forces-copy");
    assert_eq!(pids(&tap), [u64::from(dump.pid())], "{tap:#}");
    Outcome::Ran(format!("{line}; tap on bond0: {}", summary(&doc)))
}

pub const ACTIVE_BACKUP_CLEAN: Scenario = Scenario {
    name: "bond_active_backup_clean",
    run: active_backup_clean,
};
pub const ACTIVE_BACKUP_TAP_ON_ACTIVE_SLAVE: Scenario = Scenario {
    name: "bond_active_backup_tap_on_active_slave",
    run: active_backup_tap_on_active_slave,
};
pub const ACTIVE_BACKUP_TAP_ON_BACKUP_SLAVE: Scenario = Scenario {
    name: "bond_active_backup_tap_on_backup_slave",
    run: active_backup_tap_on_backup_slave,
};
pub const ACTIVE_BACKUP_TAP_ON_MASTER: Scenario = Scenario {
    name: "bond_active_backup_tap_on_master",
    run: active_backup_tap_on_master,
};
pub const ACTIVE_BACKUP_DHCLIENT_ON_BOND: Scenario = Scenario {
    name: "bond_active_backup_dhclient_on_bond",
    run: active_backup_dhclient_on_bond,
};
pub const ACTIVE_BACKUP_BACKUP_SLAVE_SG_OFF: Scenario = Scenario {
    name: "bond_active_backup_backup_slave_sg_off",
    run: active_backup_backup_slave_sg_off,
};
pub const XOR_TAP_ON_EACH_SLAVE: Scenario = Scenario {
    name: "bond_xor_tap_on_each_slave",
    run: xor_tap_on_each_slave,
};
pub const LACP_TAP_ON_EACH_SLAVE: Scenario = Scenario {
    name: "bond_802_3ad_tap_on_each_slave",
    run: lacp_tap_on_each_slave,
};
pub const VLAN_OVER_BOND_TAP_ON_BOND: Scenario = Scenario {
    name: "bond_vlan_over_bond_tap_on_bond",
    run: vlan_over_bond_tap_on_bond,
};
