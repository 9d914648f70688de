//! Privileged tests of netfilter queueing on the path, with real queue rules on the `output`
//! hook of namespaces these tests create (tags `q…`: `zcdq…`) and a real queue reader
//! (tests/senders/nfq_reader.py). This host's kernel has no `nft_queue` expression, so the rules
//! are iptables-nft's `-j NFQUEUE` (an xt target in an nftables rule, which the probe reads
//! the same way); the guest tier runs nft's own `queue` (tests/guest/scenarios/nfqueue.rs).
//! The live probe gives the kernel's answer (completions flagged COPIED). Traffic goes only to
//! 198.18.0.2, inside these namespaces.

use crate::common;

use common::path::{copied_and_completions, nfq_reader, phase};
use common::{Netns, codes, finding};
use serde_json::Value;

const ARGS: [&str; 5] = ["ifbz", "--target", "198.18.0.2", "--duration", "200ms"];

/// A namespace with the ifb `ifbz` (198.18.0.1/24) and `iptables-nft -A OUTPUT RULE`.
fn queued(tag: &str, rule: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ifb("ifbz", "198.18.0.1/24");
    let mut cmd = vec!["iptables-nft", "-A", "OUTPUT"];
    cmd.extend(rule.split_whitespace());
    ns.exec_ok(&cmd);
    ns
}

fn blockers(doc: &Value) -> Vec<&str> {
    doc["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| f["severity"] == "blocker")
                .filter_map(|f| f["code"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// Every output packet to a copy-packet reader: each datagram copied (COPIED), GSO sends
/// segmented without the flag; the rule named with its handle and queue, a blocker.
fn a_queue_of_every_packet_copies_every_datagram() {
    let ns = queued("qall", "-j NFQUEUE --queue-num 3");
    let _reader = nfq_reader(&ns, 3, &[]);
    let (_, doc) = ns.check_json(&ARGS);
    let (copied, datagrams) = phase(&doc, "datagram");
    let (gso_copied, gso) = phase(&doc, "gso");
    println!(
        "NFQUEUE on output, copy-packet reader: datagrams {copied} of {datagrams} copied; gso {gso_copied} of {gso} reported copied"
    );
    assert!(
        datagrams > 0 && copied * 1000 >= datagrams * 999,
        "{copied} of {datagrams}"
    );
    assert_eq!(gso_copied, 0, "GSO sends are segmented silently");
    let f = finding(&doc, "nfqueue-on-path").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    let summary = f["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with("nft rule ip table filter chain OUTPUT (hook output) handle ")
            && summary.contains("(queue 3) in the sender's namespace queues every packet")
            && summary.contains("copy mode packet"),
        "{summary}"
    );
    assert_eq!(f["evidence"]["rule"]["expression"], "xt NFQUEUE");
    let scan = &doc["nfqueue"];
    assert_eq!(scan["rules"][0]["queue"], 3, "{scan:#}");
    assert_eq!(scan["rules"][0]["hook"], "output", "{scan:#}");
    assert_eq!(scan["bound"][0]["copy_mode"], 2, "{scan:#}");
    let live = finding(&doc, "live-copied").expect("live-copied");
    assert!(
        live["evidence"]["explained_by"]
            .as_array()
            .is_some_and(|e| e.iter().any(|c| c == "nfqueue-on-path")),
        "{live:#}"
    );
}

/// The same reader with `NFQA_CFG_F_GSO`: no checksum, no segmentation before queueing, and
/// the payload's pages shared with the netlink message: nothing copied. The finding stays
/// (the flag cannot be read back), and the live probe contradicts it.
fn a_reader_with_f_gso_copies_nothing() {
    let ns = queued("qgso", "-j NFQUEUE --queue-num 4");
    let _reader = nfq_reader(&ns, 4, &["--gso"]);
    let (_, doc) = ns.check_json(&ARGS);
    let (copied, completions) = copied_and_completions(&doc);
    println!("NFQUEUE on output, reader with NFQA_CFG_F_GSO: {copied} of {completions} copied");
    assert!(completions > 0 && copied == 0, "{copied} of {completions}");
    assert!(
        finding(&doc, "live-contradicts-prediction").is_some(),
        "{:?}",
        codes(&doc)
    );
}

/// Harmless twins: the rule for another port (a warning at most, no copy, no blocker), and a
/// `bypass` rule whose queue nobody reads (a pass line, no copy).
fn a_rule_for_other_traffic_or_an_unread_bypass_queue_is_no_blocker() {
    let ns = queued("qport", "-p udp --dport 7 -j NFQUEUE --queue-num 5");
    let _reader = nfq_reader(&ns, 5, &[]);
    let (_, doc) = ns.check_json(&ARGS);
    let (copied, completions) = copied_and_completions(&doc);
    println!("NFQUEUE for udp port 7: {copied} of {completions} copied");
    assert!(completions > 0 && copied == 0, "{copied} of {completions}");
    assert!(blockers(&doc).is_empty(), "{:?}", codes(&doc));
    let f = finding(&doc, "nfqueue-on-path").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "warning");

    let ns = queued("qbyp", "-j NFQUEUE --queue-num 6 --queue-bypass");
    let (_, doc) = ns.check_json(&ARGS);
    let (copied, completions) = copied_and_completions(&doc);
    println!("NFQUEUE bypass, no reader: {copied} of {completions} copied");
    assert!(completions > 0 && copied == 0, "{copied} of {completions}");
    assert!(
        finding(&doc, "nfqueue-on-path").is_none(),
        "{:?}",
        codes(&doc)
    );
    let pass = doc["passed"]
        .as_array()
        .and_then(|p| p.iter().find(|l| l["check"] == "nfqueue"))
        .and_then(|l| l["detail"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        pass.ends_with("bypass accepts its packets unqueued, untouched"),
        "{pass}"
    );
}

/// A queue rule on the `forward` hook of the namespace that forwards the traffic (a veth from
/// the sender, out of an ifb), read by a copy-packet reader there: found in that hop's
/// namespace, named with the command that runs there, and every datagram copied.
fn a_queue_on_a_forwarding_hop_is_found_in_its_namespace() {
    let a = Netns::new("qfwa");
    let b = Netns::new("qfwb");
    a.veth_to(&b);
    b.ifb("ifbz", "198.18.2.1/24");
    b.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    a.ip("route add 198.18.2.0/24 via 198.18.1.2");
    b.exec_ok(&[
        "iptables-nft",
        "-A",
        "FORWARD",
        "-j",
        "NFQUEUE",
        "--queue-num",
        "3",
    ]);
    let _reader = nfq_reader(&b, 3, &[]);
    let (_, doc) = a.check_json(&["va", "--target", "198.18.2.2", "--duration", "200ms"]);
    let (copied, datagrams) = phase(&doc, "datagram");
    println!("NFQUEUE on a forwarding hop: datagrams {copied} of {datagrams} copied");
    assert!(
        datagrams > 0 && copied * 1000 >= datagrams * 999,
        "{copied} of {datagrams}"
    );
    let f = finding(&doc, "nfqueue-on-path").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(f["evidence"]["hook"], "forward");
    let summary = f["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with("nft rule ip table filter chain FORWARD (hook forward) handle ")
            && summary.contains(&format!("in namespace {} (", b.name)),
        "{summary}"
    );
    assert!(
        f["remediation"][0]
            .as_str()
            .is_some_and(|r| r.contains(&format!(
                "ip netns exec {} nft -a list chain ip filter FORWARD",
                b.name
            ))),
        "{f:#}"
    );
}

crate::cases!(
    privileged: [
        a_queue_of_every_packet_copies_every_datagram needs ["iptables-nft", "python3"],
        a_reader_with_f_gso_copies_nothing needs ["iptables-nft", "python3"],
        a_rule_for_other_traffic_or_an_unread_bypass_queue_is_no_blocker needs ["iptables-nft", "python3"],
        a_queue_on_a_forwarding_hop_is_found_in_its_namespace needs ["iptables-nft", "python3"],
    ]
);
