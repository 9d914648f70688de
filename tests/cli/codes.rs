//! Privileged end-to-end tests for the findings that need an unusual host state: a device that
//! is down, a lower device in another namespace, taps that were not checked or could not be
//! read (an unprivileged run), a live probe that could not send, and completions held back by a
//! queue. Each builds the state for real in namespaces it creates (tags `cd…`) and asserts on
//! what zcdoctor reports. Traffic goes only to 198.18.0.0/15 inside those namespaces.

use crate::common;

use common::{Netns, codes, finding};
use serde_json::Value;

fn administratively_down_device_is_named() {
    let ns = Netns::new("cddown");
    ns.ip("link add ifbz type ifb");
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "device-down").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "ifbz");
    assert_eq!(f["evidence"]["admin_up"], false);
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.contains("administratively down")),
        "{f:#}"
    );
    assert_eq!(f["remediation"][0], "ip link set ifbz up");

    ns.ip("link set ifbz up");
    let (_, doc) = ns.check_json(&["ifbz"]);
    assert!(finding(&doc, "device-down").is_none(), "{:?}", codes(&doc));
}

fn macvlan_moved_into_a_container_names_its_foreign_lower_device() {
    let host = Netns::new("cdhost");
    let pod = Netns::new("cdpod");
    host.ifb("ifbz", "198.18.0.1/24");
    host.ip("link add mv0 link ifbz type macvlan mode bridge");
    host.ip(&format!("link set mv0 netns {}", pod.name));
    pod.ip("addr add 198.18.0.5/24 dev mv0");
    pod.ip("link set mv0 up");
    let (_, doc) = pod.check_json(&["mv0"]);
    let f = finding(&doc, "lower-device-elsewhere").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "mv0");
    let host_ifindex: u64 = {
        let out = host.ip("-j link show ifbz");
        let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j");
        v[0]["ifindex"].as_u64().expect("ifindex")
    };
    assert_eq!(
        f["evidence"]["lower_ifindexes"],
        serde_json::json!([host_ifindex]),
        "the lower device is ifbz of the host namespace"
    );
}

fn skipped_taps_are_not_checked_and_the_verdict_is_unknown() {
    let ns = Netns::new("cdskip");
    ns.ifb("ifbz", "198.18.0.1/24");
    for flag in [&["--skip", "taps"][..], &["--no-taps"][..]] {
        let mut args = vec!["ifbz"];
        args.extend_from_slice(flag);
        let (_, doc) = ns.check_json(&args);
        let f = finding(&doc, "taps-not-checked").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
        assert_eq!(f["severity"], "warning");
        assert_eq!(doc["verdict"]["zerocopy"], "unknown", "{flag:?}");
        let probe = doc["probes"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "taps"))
            .expect("taps probe status");
        assert_eq!(probe["status"], "skipped");
        assert!(doc["taps"].is_null());
    }
}

fn unprivileged_run_reports_the_unreadable_tap() {
    let ns = Netns::new("cdnobody");
    ns.ifb("ifbz", "198.18.0.1/24");
    // Held by this test (root): user nobody can list the socket but not find its owner.
    let tap = ns.tap_socket(Some("ifbz"), false);
    let doc = ns.check_json_as_nobody(&["ifbz"]);
    let f = finding(&doc, "tap-unknown-setting").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "ifbz");
    assert_eq!(f["evidence"]["inodes"], serde_json::json!([tap.inode()]));
    assert_eq!(doc["verdict"]["zerocopy"], "unknown");
    assert!(finding(&doc, "tap-forces-copy").is_none());
    let probe = doc["probes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "taps"))
        .expect("taps probe status");
    assert_eq!(probe["status"], "error", "{probe:#}");
}

/// Unprivileged, with a tap it cannot read on the device: the copies the probe proves are
/// pinned on that tap first, not called unexplained.
fn unprivileged_live_copies_suspect_the_unreadable_tap() {
    let ns = Netns::new("cdnobodylive");
    ns.ifb("ifbz", "198.18.0.1/24");
    let _tap = ns.tap_socket(Some("ifbz"), false);
    let doc = ns.check_json_as_nobody(&["ifbz", "--target", "198.18.0.2", "--duration", "200ms"]);
    let live = finding(&doc, "live-copied").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(
        live["evidence"]["explained_by"][0], "tap-unknown-setting",
        "{live:#}"
    );
    assert!(
        finding(&doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(&doc)
    );
    let probe = doc["probes"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "taps"))
        .expect("taps probe status");
    assert!(
        probe["detail"].as_str().is_some_and(|d| d.len() < 600),
        "one short line: {probe:#}"
    );
}

fn tcp_probe_without_a_sink_says_to_start_one() {
    let a = Netns::new("cdtcpa");
    let b = Netns::new("cdtcpb");
    a.veth_to(&b);
    let (_, doc) = a.check_json(&[
        "va",
        "--target",
        "198.18.1.2:5201",
        "--protocol",
        "tcp",
        "--duration",
        "200ms",
    ]);
    let f = finding(&doc, "live-probe-not-run").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["cause"]["kind"], "connect", "{f:#}");
    assert_eq!(f["evidence"]["cause"]["error"]["errno"], libc::ECONNREFUSED);
    assert!(
        f["remediation"][0]
            .as_str()
            .is_some_and(|r| r.contains("zcdoctor sink --listen 198.18.1.2:5201")),
        "{f:#}"
    );
    assert!(
        doc["live_probe"]["runs"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

fn completions_held_by_a_queue_are_missing() {
    let ns = Netns::new("cdtbf");
    ns.ifb("ifbz", "198.18.0.1/24");
    // 8 kbit/s: after the first packet, everything waits in the queue for seconds, holding its
    // pages, so no completion can arrive within the probe's grace period.
    ns.exec_ok(&[
        "tc", "qdisc", "add", "dev", "ifbz", "root", "tbf", "rate", "8kbit", "burst", "1600",
        "limit", "3000000",
    ]);
    // Ten 1472-byte datagrams per phase (the byte cap), so the queue is never full.
    let (_, doc) = ns.check_json(&[
        "ifbz",
        "--target",
        "198.18.0.2",
        "--duration",
        "200ms",
        "--byte-cap",
        "14720",
    ]);
    let f = finding(&doc, "completions-missing").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    let missing = f["evidence"]["missing"].as_u64().expect("missing");
    let datagram = doc["live_probe"]["runs"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["pattern"] == "datagram"))
        .expect("datagram run");
    assert_eq!(datagram["sends"], 10, "{datagram:#}");
    assert!(missing >= 9, "{datagram:#}");
    assert_eq!(f["remediation"][0], "tc -s qdisc show dev ifbz");
}

crate::cases!(
    privileged: [
        administratively_down_device_is_named,
        macvlan_moved_into_a_container_names_its_foreign_lower_device,
        skipped_taps_are_not_checked_and_the_verdict_is_unknown,
        unprivileged_run_reports_the_unreadable_tap,
        unprivileged_live_copies_suspect_the_unreadable_tap,
        tcp_probe_without_a_sink_says_to_start_one,
        completions_held_by_a_queue_are_missing,
    ]
);
