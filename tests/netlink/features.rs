//! `features()` against `ethtool -k`: every feature, the legacy names, bridges, a missing
//! device.

use std::collections::BTreeMap;

use crate::common::{Netns, in_netns};
use crate::links::link_zoo;
use zcdoctor::evidence::{FeatureState, Features};
use zcdoctor::probe::netlink;

/// `ethtool -k` names a few kernel features by their legacy names.
const LEGACY: [(&str, &str); 8] = [
    ("rx-checksumming", "rx-checksum"),
    ("generic-segmentation-offload", "tx-generic-segmentation"),
    ("generic-receive-offload", "rx-gro"),
    ("large-receive-offload", "rx-lro"),
    ("rx-vlan-offload", "rx-vlan-hw-parse"),
    ("tx-vlan-offload", "tx-vlan-hw-insert"),
    ("ntuple-filters", "rx-ntuple-filter"),
    ("receive-hashing", "rx-hashing"),
];

/// `ethtool -k` summary lines over several features, not features themselves.
const SUMMARIES: [&str; 4] = [
    "tx-checksumming",
    "scatter-gather",
    "tcp-segmentation-offload",
    "udp-fragmentation-offload",
];

/// One `ethtool -k` line: active, fixed, and `wanted` when ethtool shows it (it does not for
/// fixed features).
#[derive(Debug)]
struct EthtoolLine {
    active: bool,
    fixed: bool,
    wanted: Option<bool>,
}

fn ethtool_k(ns: &Netns, dev: &str) -> BTreeMap<String, EthtoolLine> {
    let out = ns.exec_ok(&["ethtool", "-k", dev]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut map = BTreeMap::new();
    for line in text.lines().skip(1) {
        let (name, rest) = line.trim().split_once(": ").expect("name: value");
        if SUMMARIES.contains(&name) {
            continue;
        }
        let name = LEGACY
            .iter()
            .find(|(legacy, _)| *legacy == name)
            .map_or(name, |(_, kernel)| kernel);
        let active = rest.starts_with("on");
        let fixed = rest.contains("[fixed]");
        let wanted = if rest.contains("[requested on]") {
            Some(true)
        } else if rest.contains("[requested off]") {
            Some(false)
        } else if fixed {
            None
        } else {
            Some(active)
        };
        map.insert(
            name.to_string(),
            EthtoolLine {
                active,
                fixed,
                wanted,
            },
        );
    }
    map
}

/// Every feature of `features()` equals its `ethtool -k` line, and ethtool shows no feature
/// that `features()` lacks.
fn assert_features_match(ns: &Netns, dev: &str) -> Features {
    let name = dev.to_string();
    let ours = in_netns(ns, move || netlink::features(&name)).expect("features");
    let theirs = ethtool_k(ns, dev);
    for (feature, line) in &theirs {
        let state = ours
            .get(feature)
            .unwrap_or_else(|| panic!("{dev}: ethtool shows {feature}, features() lacks it"));
        assert_eq!(state.active, line.active, "{dev} {feature} active");
        assert_eq!(state.fixed, line.fixed, "{dev} {feature} fixed");
        if let Some(wanted) = line.wanted {
            assert_eq!(state.wanted, wanted, "{dev} {feature} wanted");
        }
    }
    let unshown: Vec<&String> = ours.0.keys().filter(|k| !theirs.contains_key(*k)).collect();
    assert!(
        unshown.is_empty(),
        "{dev}: ethtool does not show {unshown:?}"
    );
    ours
}

fn features_match_ethtool_k() {
    let (ns, _other) = link_zoo();
    ns.ip("link add vc type veth peer name vd");
    for dev in ["lo", "ifbz", "mv0", "br0", "ifb2", "va", "vc", "mvx"] {
        assert_features_match(&ns, dev);
    }

    // After `ethtool -K ifbz sg off`.
    ns.ethtool_k("ifbz", "sg", "off");
    let f = assert_features_match(&ns, "ifbz");
    assert_eq!(
        f.get("tx-scatter-gather").copied(),
        Some(FeatureState {
            active: false,
            wanted: false,
            fixed: false
        })
    );
    assert_features_match(&ns, "mv0");
}

fn bridge_with_a_port_without_sg_reads_requested_on() {
    let ns = Netns::new("nlbr");
    ns.ip("link add br0 type bridge");
    ns.ip("link add ifb2 type ifb");
    ns.ethtool_k("ifb2", "sg", "off");
    ns.ip("link set ifb2 master br0");
    let line = String::from_utf8_lossy(&ns.exec_ok(&["ethtool", "-k", "br0"]).stdout)
        .lines()
        .find(|l| l.trim().starts_with("tx-scatter-gather:"))
        .map(|l| l.trim().to_string());
    assert_eq!(
        line.as_deref(),
        Some("tx-scatter-gather: off [requested on]")
    );
    let f = assert_features_match(&ns, "br0");
    assert_eq!(
        f.get("tx-scatter-gather").copied(),
        Some(FeatureState {
            active: false,
            wanted: true,
            fixed: false
        })
    );
}

fn missing_device_is_enodev_in_that_namespace() {
    let ns = Netns::new("nlnodev");
    let e = in_netns(&ns, || netlink::features("ifbz")).expect_err("no ifbz here");
    assert_eq!(e.errno(), Some(nix::errno::Errno::ENODEV));
    assert!(
        e.to_string()
            .contains("no device named \"ifbz\" in this network namespace"),
        "{e}"
    );
}

crate::cases!(
    privileged: [
        features_match_ethtool_k needs ["ethtool"],
        bridge_with_a_port_without_sg_reads_requested_on needs ["ethtool"],
        missing_device_is_enodev_in_that_namespace,
    ]
);
