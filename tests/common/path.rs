//! Shared by the path tests: a forwarding pair of namespaces, tcpdump on a device, the roles of
//! a report's path segments, and the kernel's answer in a report (COPIED completions).

use serde_json::Value;

use super::{Culprit, Netns};

/// tcpdump on `dev` in `ns` (`-Q in`: it still copies), once it holds its socket.
pub fn tcpdump(ns: &Netns, dev: &str) -> Culprit {
    ns.tcpdump(&["-i", dev, "-Q", "in"])
}

/// The roles of the path's segments, in order.
pub fn roles(doc: &Value) -> Vec<String> {
    doc["path"]["segments"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|g| g["role"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A sender namespace `a` (va 198.18.1.1) with a veth to a forwarding namespace `b` (vb
/// 198.18.1.2), which routes 198.18.2.0/24 out of its ifb `ifbz` (198.18.2.1).
pub fn forwarding_pair() -> (Netns, Netns) {
    let a = Netns::new("pafwa");
    let b = Netns::new("pafwb");
    a.veth_to(&b);
    b.ifb("ifbz", "198.18.2.1/24");
    b.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    a.ip("route add 198.18.2.0/24 via 198.18.1.2");
    (a, b)
}

/// (copied, completions) over every run of the report's live probe.
pub fn copied_and_completions(doc: &Value) -> (u64, u64) {
    let runs = doc["live_probe"]["runs"].as_array().expect("runs");
    let sum = |k: &str| runs.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
    (sum("copied"), sum("completions"))
}

/// The kernel's answer: completions came back, and every one carried COPIED, but for at most
/// one in a thousand: a packet the kernel drops on the way (a full backlog under load, before
/// any copy) is freed with its pages untouched and completes as if sent zerocopy.
pub fn every_send_copied(doc: &Value) -> (u64, u64) {
    let (copied, completions) = copied_and_completions(doc);
    assert!(
        completions > 0 && copied * 1000 >= completions * 999,
        "{copied} of {completions} copied"
    );
    (copied, completions)
}

/// The kernel's answer: completions came back, and none carried COPIED.
pub fn no_send_copied(doc: &Value) -> (u64, u64) {
    let (copied, completions) = copied_and_completions(doc);
    assert!(
        completions > 0 && copied == 0,
        "{copied} of {completions} copied"
    );
    (copied, completions)
}

const NFQ_READER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/nfq_reader.py");

/// The NFQUEUE reader (tests/senders/nfq_reader.py) of queue `queue` in `ns`, with `extra`
/// options (`--gso`, `--meta`), once the kernel lists the queue as bound.
pub fn nfq_reader(ns: &Netns, queue: u16, extra: &[&str]) -> Culprit {
    let q = queue.to_string();
    let mut cmd = vec![super::python(), NFQ_READER, &q, "--seconds", "300"];
    cmd.extend(extra);
    let mut reader = ns.spawn(&cmd);
    reader.wait_until(
        "its queue is bound",
        std::time::Duration::from_secs(30),
        || {
            let out = ns.exec(&["cat", "/proc/net/netfilter/nfnetlink_queue"]);
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(q.as_str()))
        },
    );
    reader
}

/// (copied, completions) of the live probe's runs of `pattern` (`datagram`, `gso`).
pub fn phase(doc: &Value, pattern: &str) -> (u64, u64) {
    let runs = doc["live_probe"]["runs"].as_array().expect("runs");
    let of = runs.iter().filter(|r| r["pattern"] == pattern);
    let sum = |k: &str| of.clone().filter_map(|r| r[k].as_u64()).sum::<u64>();
    (sum("copied"), sum("completions"))
}
