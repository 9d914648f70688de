//! Privileged end-to-end tests of `zcdoctor check IFACE --target ADDR`: the live probe proves
//! the verdict on an ifb black hole, proves the failure with each culprit present and names it.
//! Traffic goes only to 198.18.0.0/15 addresses inside namespaces these tests create.

use crate::common;

use std::time::Duration;

use common::path::{copied_and_completions, every_send_copied, no_send_copied};
use common::{Netns, codes, finding, pids};
use serde_json::Value;

const SHORT: &str = "200ms";

fn live_check(ns: &Netns, extra: &[&str]) -> Value {
    let mut args = vec!["ifbz", "--target", "198.18.0.2", "--duration", SHORT];
    args.extend_from_slice(extra);
    ns.check_json(&args).1
}

fn clean_ifb_is_proven_live() {
    let ns = Netns::new("lclean");
    ns.ifb("ifbz", "198.18.0.1/24");
    let doc = live_check(&ns, &[]);
    assert_eq!(doc["verdict"]["basis"], "live", "{doc:#}");
    assert_eq!(doc["verdict"]["zerocopy"], "yes", "{:?}", codes(&doc));
    let (copied, completions) = copied_and_completions(&doc);
    assert_eq!(copied, 0);
    assert!(completions > 0);
    let live = &doc["live_probe"];
    assert_eq!(live["protocol"], "udp");
    assert_eq!(live["target"], "198.18.0.2:9");
    let patterns: Vec<&str> = live["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["pattern"].as_str())
        .collect();
    assert!(
        patterns.contains(&"datagram") && patterns.contains(&"gso"),
        "{patterns:?}"
    );
    for r in live["runs"].as_array().unwrap() {
        assert!(r["copy_phase"]["bytes"].as_u64().unwrap() > 0);
        assert!(r["zerocopy_phase"]["bytes"].as_u64().unwrap() > 0);
    }
    assert!(finding(&doc, "live-copied").is_none());
}

fn tcpdump_is_proven_and_named() {
    let ns = Netns::new("ltd");
    ns.ifb("ifbz", "198.18.0.1/24");
    let tcpdump = ns.tcpdump(&["-i", "ifbz", "udp", "port", "67"]);
    let pid = tcpdump.pid();
    let doc = live_check(&ns, &[]);
    assert_eq!(doc["verdict"]["zerocopy"], "no");
    assert_eq!(doc["verdict"]["basis"], "live");
    let (copied, completions) = copied_and_completions(&doc);
    assert!(
        completions > 0 && copied == completions,
        "{copied} of {completions}"
    );
    let live = finding(&doc, "live-copied").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(live["evidence"]["explained_by"][0], "tap-forces-copy");
    let tap = finding(&doc, "tap-forces-copy").expect("the culprit is named");
    assert_eq!(pids(tap), [u64::from(pid)]);
    assert!(finding(&doc, "copies-unexplained").is_none());
}

fn offloads_off_are_proven() {
    for (feature, code) in [("sg", "no-scatter-gather"), ("tx", "no-tx-checksum")] {
        let ns = Netns::new("loff");
        ns.ifb("ifbz", "198.18.0.1/24");
        ns.ethtool_k("ifbz", feature, "off");
        let doc = live_check(&ns, &[]);
        let (copied, completions) = copied_and_completions(&doc);
        assert!(
            completions > 0 && copied == completions,
            "{feature} off: {copied} of {completions}"
        );
        let live = finding(&doc, "live-copied").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
        let explained: Vec<&str> = live["evidence"]["explained_by"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(explained.contains(&code), "{feature} off: {explained:?}");
    }
}

fn oversize_datagrams_are_copied_without_gso() {
    let ns = Netns::new("lover");
    ns.ifb("ifbz", "198.18.0.1/24");
    let doc = live_check(&ns, &["--oversize"]);
    let f = finding(&doc, "udp-fragmentation").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert!(f["evidence"]["copied"].as_u64().unwrap() > 0);
    // The application-shaped runs stay clean: the verdict is still yes.
    assert_eq!(doc["verdict"]["zerocopy"], "yes", "{:?}", codes(&doc));
}

fn own_address_is_local_delivery_and_nothing_is_sent() {
    let ns = Netns::new("llocal");
    ns.ifb("ifbz", "198.18.0.1/24");
    let (_, doc) = ns.check_json(&["ifbz", "--target", "198.18.0.1", "--duration", SHORT]);
    let f = finding(&doc, "local-delivery").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(
        doc["live_probe"]["not_run"],
        "198.18.0.1 is an address of this host (route type local)"
    );
    assert_eq!(
        doc["live_probe"]["not_run_cause"],
        serde_json::json!({"kind": "local-route"})
    );
    assert!(doc["live_probe"]["runs"].as_array().unwrap().is_empty());
    assert_eq!(doc["verdict"]["zerocopy"], "no");
}

fn tiny_optmem_gives_enobufs_with_the_limit_named() {
    let ns = Netns::new("lopt");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.exec_ok(&["sysctl", "-q", "-w", "net.core.optmem_max=1000"]);
    let doc = live_check(&ns, &[]);
    let f = finding(&doc, "zerocopy-enobufs").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert!(f["evidence"]["enobufs"].as_u64().unwrap() > 0);
    assert_eq!(f["evidence"]["limit"], "net.core.optmem_max");
    assert_eq!(f["evidence"]["optmem_max"], 1000);
    assert!(finding(&doc, "optmem-low").is_some());
    assert_eq!(doc["verdict"]["zerocopy"], "no");
}

fn tcp_to_a_sink_behind_veth_is_local_delivery_in_the_peer() {
    let a = Netns::new("lta");
    let b = Netns::new("ltb");
    a.ip(&format!(
        "link add va type veth peer name vb netns {}",
        b.name
    ));
    a.ip("addr add 198.18.1.1/24 dev va");
    b.ip("addr add 198.18.1.2/24 dev vb");
    a.ip("link set va up");
    b.ip("link set vb up");
    let mut sink = b.spawn(&[
        common::ZCDOCTOR,
        "sink",
        "--listen",
        "198.18.1.2:5201",
        "--duration",
        "20s",
    ]);
    sink.wait_until("the sink listens", Duration::from_secs(10), || {
        let out = b.exec(&["ss", "-Htln", "sport", "= :5201"]);
        !out.stdout.is_empty()
    });
    let (_, doc) = a.check_json(&[
        "va",
        "--target",
        "198.18.1.2:5201",
        "--protocol",
        "tcp",
        "--duration",
        SHORT,
    ]);
    assert_eq!(doc["live_probe"]["protocol"], "tcp");
    let (copied, completions) = copied_and_completions(&doc);
    assert!(completions > 0, "{doc:#}");
    // Delivered to a socket in B: the kernel copies every zerocopy send.
    assert_eq!(copied, completions);
    let live = finding(&doc, "live-copied").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(live["evidence"]["explained_by"][0], "veth-path");
    assert!(finding(&doc, "copies-unexplained").is_none());
}

fn malformed_target_is_exit_2() {
    let ns = Netns::new("lbad");
    ns.ifb("ifbz", "198.18.0.1/24");
    for bad in ["198.18.0.300", "not-an-address", "gateway:x"] {
        let out = ns.zcdoctor(&["check", "ifbz", "--target", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(bad) && !err.contains("panicked"), "{err}");
    }
    // --target gateway with no default route: a clear error, exit 2, nothing sent.
    let out = ns.zcdoctor(&["check", "ifbz", "--target", "gateway"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no default gateway"));
}

/// `--timestamping`: transmit timestamps without OPT_TSONLY on the probe's own sockets copy
/// every send (the kernel's COPIED count), while the same probe without it copies none; the
/// copies are explained by the probe's own `tx-timestamp-copies` (info), not left unexplained.
fn timestamping_copies_every_send() {
    let ns = Netns::new("tslive");
    ns.ifb("ifbz", "198.18.0.1/24");
    let plain = live_check(&ns, &[]);
    let (p_copied, p_completions) = no_send_copied(&plain);
    assert!(finding(&plain, "tx-timestamp-copies").is_none());
    let doc = live_check(&ns, &["--timestamping"]);
    let (copied, completions) = every_send_copied(&doc);
    assert_eq!(doc["verdict"]["zerocopy"], "no", "{:?}", codes(&doc));
    assert_eq!(doc["live_probe"]["timestamping"], 0x192);
    let stamps: u64 = doc["live_probe"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["timestamps"].as_u64())
        .sum();
    assert!(stamps > 0, "no timestamp read back");
    let f = finding(&doc, "tx-timestamp-copies").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "info");
    assert_eq!(f["evidence"]["live_probe"], true);
    let live = finding(&doc, "live-copied").expect("live-copied");
    assert_eq!(live["evidence"]["explained_by"][0], "tx-timestamp-copies");
    assert!(
        finding(&doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(&doc)
    );
    println!(
        "--timestamping: {copied} of {completions} copied ({stamps} timestamps read); without: {p_copied} of {p_completions}"
    );
}

crate::cases!(
    privileged: [
        clean_ifb_is_proven_live,
        timestamping_copies_every_send,
        tcpdump_is_proven_and_named needs ["tcpdump"],
        offloads_off_are_proven needs ["ethtool"],
        oversize_datagrams_are_copied_without_gso,
        own_address_is_local_delivery_and_nothing_is_sent,
        tiny_optmem_gives_enobufs_with_the_limit_named,
        tcp_to_a_sink_behind_veth_is_local_delivery_in_the_peer,
        malformed_target_is_exit_2,
    ]
);
