//! Privileged tests of tc on the path, with real `tc` filters on an ifb's clsact egress hook in
//! namespaces these tests create (tags `tc…`: `zcdtc…`): a `mirred` mirror to a second ifb with
//! tcpdump on it or without scatter-gather, a redirect to a tun device a process reads, an
//! ingress redirect (copies only before 6.17), and a BPF classifier that passes everything
//! (harmless, but not judged statically). The live probe gives the kernel's answer (completions
//! flagged COPIED) next to the prediction. Traffic goes only to 198.18.0.2, inside these
//! namespaces.

use crate::common;

use std::time::Duration;

use common::path::{every_send_copied, no_send_copied};
use common::{Netns, codes, finding};
use serde_json::Value;

const SHORT: &str = "200ms";
const WAIT: Duration = Duration::from_secs(10);
const ARGS: [&str; 5] = ["ifbz", "--target", "198.18.0.2", "--duration", SHORT];

/// A namespace with the egress ifb `ifbz` (198.18.0.1/24) under a clsact qdisc.
fn egress_ifb(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.exec_ok(&["tc", "qdisc", "add", "dev", "ifbz", "clsact"]);
    ns
}

/// A filter on ifbz's egress hook that matches every packet (`u32 match u32 0 0`: matchall is
/// not built into this host's kernel) and runs `action`.
fn add_filter(ns: &Netns, action: &str) {
    let mut cmd = vec![
        "tc", "filter", "add", "dev", "ifbz", "egress", "protocol", "all", "pref", "10", "u32",
        "match", "u32", "0", "0", "action",
    ];
    cmd.extend(action.split_whitespace());
    ns.exec_ok(&cmd);
}

/// The device's filters as the report recorded them.
fn filters_of<'a>(doc: &'a Value, dev: &str) -> &'a Value {
    let stack = doc["stack"].as_array().expect("stack");
    let d = stack.iter().find(|d| d["name"] == dev).expect("device");
    &d["tc"]["filters"]
}

fn the_pass_line(doc: &Value) -> String {
    doc["passed"]
        .as_array()
        .and_then(|p| p.iter().find(|l| l["check"] == "tc"))
        .and_then(|l| l["detail"].as_str())
        .unwrap_or_else(|| panic!("no tc pass line: {:#}", doc["passed"]))
        .to_string()
}

fn a_mirror_to_a_tapped_device_copies_every_send() {
    let ns = egress_ifb("tcmir");
    ns.ip("link add ifbm type ifb");
    ns.ip("link set ifbm up");
    add_filter(&ns, "mirred egress mirror dev ifbm");
    // Clean target: the mirror copies nothing; the filter is named in the pass line.
    let (_, doc) = ns.check_json(&ARGS);
    let f = &filters_of(&doc, "ifbz")[0];
    assert_eq!(
        (f["hook"].as_str(), f["kind"].as_str()),
        (Some("egress"), Some("u32"))
    );
    assert_eq!(f["pref"], 10);
    let a = &f["actions"][0];
    assert_eq!(a["kind"], "mirred");
    assert_eq!(a["mirred"]["action"], "egress-mirror");
    assert_eq!(a["mirred"]["target"]["name"], "ifbm");
    let (copied, completions) = no_send_copied(&doc);
    println!("mirror to a clean ifb: {copied} of {completions} copied");
    assert!(
        finding(&doc, "tc-mirred-copies").is_none(),
        "{:?}",
        codes(&doc)
    );
    assert!(the_pass_line(&doc).contains("actions mirred"));

    // tcpdump on the mirror's target: every send copied, the mirror and the tap named.
    let dump = common::path::tcpdump(&ns, "ifbm");
    let (_, doc) = ns.check_json(&ARGS);
    let (copied, completions) = every_send_copied(&doc);
    println!("mirror to an ifb with tcpdump: {copied} of {completions} copied");
    let f = finding(&doc, "tc-mirred-copies").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    let summary = f["summary"].as_str().expect("summary");
    assert!(
        summary.starts_with(
            "tc egress filter u32 pref 10 handle 800::800 on ifbz runs action 1 mirred"
        ) && summary.contains("mirred egress mirror to ifbm")
            && summary.contains(&format!("tcpdump (pid {})", dump.pid())),
        "{summary}"
    );
    assert_eq!(f["evidence"]["taps"][0]["owners"][0]["pid"], dump.pid());
    assert!(
        f["remediation"][1]
            .as_str()
            .is_some_and(|r| r.contains("not needed: tc filter del dev ifbz egress pref 10 (")),
        "{f:#}"
    );
    let live = finding(&doc, "live-copied").expect("live-copied");
    assert!(
        live["evidence"]["explained_by"]
            .as_array()
            .is_some_and(|e| e.iter().any(|c| c == "tc-mirred-copies")),
        "{live:#}"
    );
    // The tap is not on the path itself: only the mirror leads to it.
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );
}

fn a_redirect_to_a_tun_reader_copies_every_send() {
    if !common::exists("/dev/net/tun") {
        panic!("/dev/net/tun is missing: no tun device can be made here");
    }
    let ns = egress_ifb("tctun");
    let reader = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/tun_reader.py");
    let mut tun = ns.spawn(&[common::python(), reader, "tunz"]);
    let name = ns.name.clone();
    tun.wait_until("the tun device exists", WAIT, move || {
        std::process::Command::new("ip")
            .args(["-n", &name, "link", "show", "tunz"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    ns.ip("link set tunz up");
    add_filter(&ns, "mirred egress redirect dev tunz");
    let (_, doc) = ns.check_json(&ARGS);
    let (copied, completions) = every_send_copied(&doc);
    println!("redirect to a tun reader: {copied} of {completions} copied");
    let f = finding(&doc, "tc-mirred-copies").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["mirred"]["target_kind"], "tun");
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.contains("mirred egress redirect to tunz: tunz is a tun/tap device")),
        "{f:#}"
    );
    // ifbz transmits none of it: the live probe's counter check names the redirect.
    let quiet = finding(&doc, "live-nothing-transmitted").expect("live-nothing-transmitted");
    assert!(
        quiet["summary"]
            .as_str()
            .is_some_and(|s| s.contains("redirects them to tunz")),
        "{quiet:#}"
    );
}

fn a_mirror_to_a_device_without_scatter_gather_copies_every_send() {
    let ns = egress_ifb("tcsg");
    ns.ip("link add ifbm type ifb");
    ns.ip("link set ifbm up");
    ns.ethtool_k("ifbm", "sg", "off");
    add_filter(&ns, "mirred egress mirror dev ifbm");
    let (_, doc) = ns.check_json(&ARGS);
    let (copied, completions) = every_send_copied(&doc);
    println!("mirror to an ifb without scatter-gather: {copied} of {completions} copied");
    let f = finding(&doc, "tc-mirred-copies").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.contains("ifbm transmits without scatter-gather")),
        "{f:#}"
    );
    assert_eq!(
        f["remediation"][0],
        "Turn scatter-gather on for the target: ethtool -K ifbm sg on, or mirror to a device that has it."
    );
    assert!(
        finding(&doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(&doc)
    );
}

/// An ingress redirect hands the packets to ifbm's receive path: before 6.17 that copies them
/// (a blocker), from 6.17 on it does not (no finding): the finding and the kernel agree.
fn an_ingress_redirect_copies_only_before_6_17() {
    let ns = egress_ifb("tcing");
    ns.ip("link add ifbm type ifb");
    ns.ip("link set ifbm up");
    add_filter(&ns, "mirred ingress redirect dev ifbm");
    let (_, doc) = ns.check_json(&ARGS);
    let f = finding(&doc, "tc-mirred-copies");
    let (copied, completions) = match f {
        Some(_) => every_send_copied(&doc),
        None => no_send_copied(&doc),
    };
    println!(
        "ingress redirect to an ifb on {}: {copied} of {completions} copied",
        doc["host"]["kernel"]
    );
}

/// A BPF classifier that passes everything and a u32 filter with no action: the program is
/// named and left to the kernel's count (no blocker), which shows no copy. (`skbedit`,
/// `pedit` and `csum` are not built into this host's kernel: their rules are unit-tested.)
fn a_passing_bpf_program_is_no_blocker() {
    let ns = egress_ifb("tcbpf");
    let object = common::tmp_path("tc_pass.o");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/tc_pass.ll");
    common::run(&["llc", "-march=bpf", "-filetype=obj", "-o", &object, source]);
    ns.exec_ok(&[
        "tc", "filter", "add", "dev", "ifbz", "egress", "pref", "5", "bpf", "da", "obj", &object,
        "sec", "tc",
    ]);
    ns.exec_ok(&[
        "tc", "filter", "add", "dev", "ifbz", "egress", "protocol", "ip", "pref", "6", "u32",
        "match", "u32", "0", "0", "classid", "1:1",
    ]);
    let (_, doc) = ns.check_json(&ARGS);
    let _ = std::fs::remove_file(&object);
    let filters = filters_of(&doc, "ifbz").as_array().expect("filters");
    assert_eq!(filters.len(), 2, "{filters:#?}");
    let program = &filters[0]["bpf"];
    assert!(
        program["id"].as_u64().is_some_and(|id| id > 0),
        "{program:#}"
    );
    assert_eq!(program["direct_action"], true);
    let file = object.rsplit('/').next().unwrap_or_default();
    assert_eq!(program["name"], format!("{file}:[tc]"));
    let (copied, completions) = no_send_copied(&doc);
    println!("a passing BPF classifier: {copied} of {completions} copied");
    let f = finding(&doc, "tc-bpf-program").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "warning");
    let tag = program["tag"].as_str().expect("tag");
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("tag {tag}"))),
        "{f:#}"
    );
    assert!(
        doc["findings"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["severity"] != "blocker")),
        "{:?}",
        codes(&doc)
    );
    assert!(
        doc["probes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "tc" && p["status"] == "ok"))
    );
}

crate::cases!(
    privileged: [
        a_mirror_to_a_tapped_device_copies_every_send needs ["tc", "tcpdump"],
        a_redirect_to_a_tun_reader_copies_every_send needs ["tc", "python3"],
        a_mirror_to_a_device_without_scatter_gather_copies_every_send needs ["tc", "ethtool"],
        an_ingress_redirect_copies_only_before_6_17 needs ["tc"],
        a_passing_bpf_program_is_no_blocker needs ["tc", "llc"],
    ]
);
