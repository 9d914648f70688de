//! Netfilter queueing on the path (issue #18 item 5), on real kernels: an nftables `queue`
//! rule on the sender's `output` hook with a program reading the queue in copy-packet mode
//! (tests/senders/nfq_reader.py) copies every datagram (skb_checksum_help before queueing:
//! COPIED) and segments GSO sends in software (copied, reported as zerocopy); the same rule
//! matching another port, and the same rule with a reader that set `NFQA_CFG_F_GSO`, copy
//! nothing.

use serde_json::Value;

use super::watch::{Watch, line, matches_sender, send};
use super::{blockers, explains, live, static_neighbour};
use crate::common::path::{nfq_reader, phase};
use crate::common::{Netns, exists, finding};
use crate::harness::{Kernel, Outcome, Scenario};

/// `nft` in `ns`; panics on failure.
fn nft(ns: &Netns, rule: &str) {
    let mut cmd = vec!["nft"];
    cmd.extend(rule.split_whitespace());
    ns.exec_ok(&cmd);
}

/// A namespace with the dummy NIC `dmz` (198.18.0.1/24) and table `inet zcdq` with an output
/// chain holding `rule`.
fn queued(rule: &str) -> Netns {
    let _ = std::process::Command::new("modprobe")
        .args(["-a", "nfnetlink_queue", "nft_queue"])
        .output();
    let ns = Netns::new("gnq");
    ns.dummy("dmz", Some("198.18.0.1/24"));
    static_neighbour(&ns, "dmz");
    nft(&ns, "add table inet zcdq");
    nft(
        &ns,
        "add chain inet zcdq out { type filter hook output priority 0 ; }",
    );
    nft(&ns, &format!("add rule inet zcdq out {rule}"));
    ns
}

fn nfqueue_copies(k: &Kernel) -> Outcome {
    if !exists("/usr/sbin/nft") {
        return Outcome::Cannot("no /usr/sbin/nft (Debian package nftables)".into());
    }
    let untouched = leaves_nf_tables_unloaded();
    // Every packet of the hook to queue 3, read in copy-packet mode.
    let ns = queued("queue num 3");
    let reader = nfq_reader(&ns, 3, &[]);
    let (_, doc) = live(&ns, "dmz", "198.18.0.2");
    let (dg_copied, dg) = phase(&doc, "datagram");
    let (gso_copied, gso) = phase(&doc, "gso");
    assert!(
        dg > 0 && dg_copied * 1000 >= dg * 999,
        "datagrams: {dg_copied} of {dg} copied"
    );
    assert_eq!(gso_copied, 0, "GSO sends are segmented silently");
    let f = explains(&doc, "nfqueue-on-path");
    assert_eq!(f["severity"], "blocker", "{f:#}");
    assert_rule_named(&f);
    drop(reader);
    // The same reader with NFQA_CFG_F_GSO: no checksum, no segmentation, pages shared.
    let reader = nfq_reader(&ns, 3, &["--gso"]);
    let (_, gso_doc) = live(&ns, "dmz", "198.18.0.2");
    drop(reader);
    let (gso_reader_copied, gso_reader) = phase(&gso_doc, "datagram");
    // Harmless twin: the same rule for another port.
    let other = queued("udp dport 7 queue num 3");
    let _reader = nfq_reader(&other, 3, &[]);
    let (_, twin) = live(&other, "dmz", "198.18.0.2");
    let (twin_copied, twin_all) = crate::common::path::copied_and_completions(&twin);
    assert_eq!(twin_copied, 0, "the rule for port 7 copied {twin_copied}");
    assert!(
        !blockers(&twin).iter().any(|c| c == "nfqueue-on-path"),
        "{:?}",
        blockers(&twin)
    );
    Outcome::Ran(format!(
        "{}: {untouched}; queue of every output packet to a copy-packet reader: datagrams {dg_copied} of {dg} copied, GSO {gso_copied} of {gso} reported (segmented silently), blocker; reader with NFQA_CFG_F_GSO: datagrams {gso_reader_copied} of {gso_reader} copied; rule for udp dport 7: {twin_copied} of {twin_all} copied, {}",
        k.release,
        match finding(&twin, "nfqueue-on-path") {
            Some(f) => format!("nfqueue-on-path {}", f["severity"]),
            None => "no finding".to_string(),
        }
    ))
}

/// Before any rule exists (nf_tables a module not yet loaded), a diagnosis leaves it unloaded
/// and says so.
fn leaves_nf_tables_unloaded() -> String {
    let loaded = || exists("/sys/module/nf_tables");
    if loaded() {
        return "nf_tables already loaded".to_string();
    }
    let ns = Netns::new("gnqnone");
    ns.dummy("dmz", Some("198.18.0.1/24"));
    let (_, doc) = ns.check_json(&["dmz"]);
    assert!(!loaded(), "the nfqueue probe loaded nf_tables");
    assert_eq!(
        doc["nfqueue"]["nf_tables_absent"], true,
        "{:#}",
        doc["nfqueue"]
    );
    "nf_tables left unloaded by a diagnosis".to_string()
}

/// The finding names the table, chain, hook, handle and queue, and the nft commands.
fn assert_rule_named(f: &Value) {
    let summary = f["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with("nft rule inet table zcdq chain out (hook output) handle ")
            && summary.contains("(queue 3)")
            && summary.contains("copy mode packet"),
        "{summary}"
    );
    let fixes = f["remediation"].to_string();
    assert!(
        fixes.contains("nft -a list chain inet zcdq out")
            && fixes.contains("nft delete rule inet zcdq out handle"),
        "{fixes}"
    );
}

/// `zcdoctor watch` on a queued sender (tests/senders/zc_count.py, 5,000 UDP sends of 1,400
/// bytes) names the copy the finding says: the full pull of skb_checksum_help, before
/// queueing.
fn nfqueue_watch(_: &Kernel) -> Outcome {
    if !exists("/usr/sbin/nft") {
        return Outcome::Cannot("no /usr/sbin/nft (Debian package nftables)".into());
    }
    let ns = queued("queue num 3");
    let _reader = nfq_reader(&ns, 3, &[]);
    let w = Watch::start(&[]);
    let sender = send(&ns, &[]);
    let (_, doc) = w.stop();
    let copies = matches_sender(&doc, &sender.sent, "checksum");
    let callers: Vec<&str> = copies.iter().filter_map(|c| c["caller"].as_str()).collect();
    Outcome::Ran(format!(
        "{} (callers {callers:?})",
        line(&sender.sent, sender.sent.copied, "checksum")
    ))
}

pub const NFQUEUE_WATCH: Scenario = Scenario {
    name: "nfqueue_watch",
    run: nfqueue_watch,
};

pub const NFQUEUE_COPIES: Scenario = Scenario {
    name: "nfqueue_copies",
    run: nfqueue_copies,
};
