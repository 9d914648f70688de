//! Privileged end-to-end tests of `zcdoctor check` on real devices in throwaway namespaces:
//! offloads toggled with ethtool, stacked devices, sysctls, errors and exit codes.

mod common;

use common::{Netns, codes, finding};
use serde_json::Value;

fn stack_names(doc: &Value) -> Vec<String> {
    doc["stack"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn clean_ifb_predicts_zerocopy() {
    let ns = Netns::new("clean");
    ns.ifb("ifbz", "198.18.0.1/24");
    let (code, doc) = ns.check_json(&["ifbz"]);
    assert_eq!(code, 0);
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["interface"], "ifbz");
    assert_eq!(doc["stack"][0]["kind"], "ifb");
    assert_eq!(doc["verdict"]["zerocopy"], "yes", "{doc:#}");
    assert_eq!(doc["verdict"]["basis"], "predicted");
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "blocker"),
        "{:?}",
        codes(&doc)
    );
    let sg = &doc["stack"][0]["features"]["tx-scatter-gather"];
    assert_eq!(sg["active"], true);
    // Default --fail-on blocker: a clean device exits 0 in human mode too.
    let out = ns.zcdoctor(&["check", "ifbz"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn scatter_gather_off_is_a_blocker() {
    let ns = Netns::new("sg");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ethtool_k("ifbz", "sg", "off");
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "no-scatter-gather").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(f["evidence"]["device"], "ifbz");
    assert_eq!(
        f["evidence"]["features"]["tx-scatter-gather"]["active"],
        false
    );
    assert!(
        f["remediation"][0]
            .as_str()
            .unwrap()
            .contains("ethtool -K ifbz sg on")
    );
    assert_eq!(doc["verdict"]["zerocopy"], "no");
    // Exit status follows --fail-on.
    assert_eq!(ns.zcdoctor(&["check", "ifbz"]).status.code(), Some(1));
    assert_eq!(
        ns.zcdoctor(&["check", "ifbz", "--fail-on", "never"])
            .status
            .code(),
        Some(0)
    );
}

fn tx_checksum_off_is_a_blocker() {
    let ns = Netns::new("csum");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ethtool_k("ifbz", "tx", "off");
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "no-tx-checksum").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(f["evidence"]["device"], "ifbz");
    // The kernel keeps SG on here: only the checksum finding may fire.
    assert!(
        finding(&doc, "no-scatter-gather").is_none(),
        "{:?}",
        codes(&doc)
    );
}

fn macvlan_names_the_lower_device_without_sg() {
    let ns = Netns::new("mv");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ethtool_k("ifbz", "sg", "off");
    ns.ip("link add mv0 link ifbz type macvlan mode bridge");
    ns.ip("addr add 198.18.2.1/24 dev mv0");
    ns.ip("link set mv0 up");
    let (_, doc) = ns.check_json(&["mv0"]);
    assert_eq!(stack_names(&doc), ["mv0", "ifbz"]);
    assert_eq!(doc["stack"][0]["kind"], "macvlan");
    assert_eq!(doc["stack"][1]["depth"], 1);
    let sg: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "no-scatter-gather")
        .collect();
    assert_eq!(sg.len(), 1, "one root cause, not one per level: {sg:#?}");
    assert_eq!(sg[0]["evidence"]["device"], "ifbz");
    assert_eq!(sg[0]["severity"], "blocker");
}

fn bridge_port_without_sg_is_found_below_the_bridge() {
    let ns = Netns::new("br");
    ns.ip("link add br0 type bridge");
    ns.ip("link add ifb2 type ifb");
    ns.ip("link add ifb3 type ifb");
    ns.ethtool_k("ifb2", "sg", "off");
    ns.ip("link set ifb2 master br0");
    ns.ip("link set ifb3 master br0");
    for d in ["ifb2", "ifb3", "br0"] {
        ns.ip(&format!("link set {d} up"));
    }
    let (_, doc) = ns.check_json(&["br0"]);
    assert_eq!(stack_names(&doc), ["br0", "ifb2", "ifb3"]);
    let f = finding(&doc, "no-scatter-gather").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "ifb2");
    // The bridge takes the intersection of its ports: it lacks SG because ifb2 does.
    // SG is "one for all" for a bridge: with ifb3 still able to gather, br0 keeps it.
    let br_sg = &doc["stack"][0]["features"]["tx-scatter-gather"];
    assert_eq!(br_sg["active"], true, "{br_sg}");
    assert_eq!(f["evidence"]["affects"], serde_json::json!([]), "{f:#}");

    // With ifb2 its only port, br0 reads off [requested on], and the one finding at ifb2
    // says br0 follows it.
    ns.ip("link set ifb3 nomaster");
    let (_, doc) = ns.check_json(&["br0"]);
    let br_sg = &doc["stack"][0]["features"]["tx-scatter-gather"];
    assert_eq!(
        (br_sg["active"].clone(), br_sg["wanted"].clone()),
        (false.into(), true.into()),
        "{br_sg}"
    );
    let sg: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "no-scatter-gather")
        .collect();
    assert_eq!(sg.len(), 1, "reported once, at the port: {sg:#?}");
    assert_eq!(sg[0]["evidence"]["device"], "ifb2");
    assert_eq!(sg[0]["evidence"]["affects"], serde_json::json!(["br0"]));
}

fn optmem_is_read_in_the_diagnosed_namespace() {
    let ns = Netns::new("opt");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.exec_ok(&["sysctl", "-q", "-w", "net.core.optmem_max=20480"]);
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "optmem-low").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["optmem_max"], 20480);
    assert_eq!(f["severity"], "warning");
}

fn loopback_is_local_delivery() {
    let ns = Netns::new("lo");
    let (_, doc) = ns.check_json(&["lo"]);
    let f = finding(&doc, "local-delivery").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(doc["verdict"]["zerocopy"], "no");
}

fn default_interface_is_the_default_route_device() {
    let ns = Netns::new("dflt");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("link add ifbq type ifb");
    ns.ip("link set ifbq up");
    ns.ip("route add default via 198.18.0.254 dev ifbz");
    let (_, doc) = ns.check_json(&[]);
    assert_eq!(doc["interface"], "ifbz");

    let empty = Netns::new("noroute");
    let out = empty.zcdoctor(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no default route") && err.contains("lo"),
        "{err}"
    );
}

fn unknown_interface_exits_2_listing_the_real_ones() {
    let ns = Netns::new("unk");
    ns.ifb("ifbz", "198.18.0.1/24");
    let out = ns.zcdoctor(&["check", "bond1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("bond1") && err.contains("ifbz") && err.contains("lo"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

fn snapshot_then_check_from_gives_the_same_diagnosis() {
    let ns = Netns::new("snap");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ethtool_k("ifbz", "sg", "off");
    let file = std::env::temp_dir().join(format!("zcd-snap-{}.json", std::process::id()));
    let path = file.to_str().unwrap();
    let out = ns.zcdoctor(&["snapshot", "ifbz", "-o", path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, live) = ns.check_json(&["ifbz"]);
    // --from needs no namespace: run it on the host side.
    let out = std::process::Command::new(common::ZCDOCTOR)
        .args(["check", "--from", path, "--json", "--fail-on", "never"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let recorded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(codes(&recorded), codes(&live));
    assert_eq!(recorded["verdict"], live["verdict"]);
    assert_eq!(recorded["stack"], live["stack"]);
}

fn human_output_fits_80_columns_without_color() {
    let ns = Netns::new("human");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ethtool_k("ifbz", "sg", "off");
    let out = ns.zcdoctor(&["check", "ifbz", "--color", "never"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "escape codes with --color never");
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "over 80 columns: {line:?}");
    }
    assert!(
        text.contains("no-scatter-gather") && text.contains("ethtool -K ifbz sg on"),
        "{text}"
    );
    let colored = ns.zcdoctor(&["check", "ifbz", "--color", "always"]);
    assert!(String::from_utf8_lossy(&colored.stdout).contains('\x1b'));
}

harness_main!(
    privileged: [
        clean_ifb_predicts_zerocopy,
        scatter_gather_off_is_a_blocker needs ["ethtool"],
        tx_checksum_off_is_a_blocker needs ["ethtool"],
        macvlan_names_the_lower_device_without_sg needs ["ethtool"],
        bridge_port_without_sg_is_found_below_the_bridge needs ["ethtool"],
        optmem_is_read_in_the_diagnosed_namespace,
        loopback_is_local_delivery,
        default_interface_is_the_default_route_device,
        unknown_interface_exits_2_listing_the_real_ones,
        snapshot_then_check_from_gives_the_same_diagnosis needs ["ethtool"],
        human_output_fits_80_columns_without_color needs ["ethtool"],
    ]
);
