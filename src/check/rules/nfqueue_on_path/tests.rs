use crate::check::findings::Code;
use crate::check::testing::{evidence_with_kernel, run};
use crate::evidence::{BoundQueue, NfQueueScan, Protocol, QueueRule};
use crate::vocab::Severity;

fn rule(hook: &str, matches: &[&str], bypass: bool) -> QueueRule {
    QueueRule {
        family: "inet".into(),
        table: "zc".into(),
        chain: "out".into(),
        hook: Some(hook.into()),
        priority: Some(0),
        reached_from: Vec::new(),
        handle: 4,
        queue: 3,
        queues: 1,
        bypass,
        fanout: false,
        from_register: false,
        expression: "queue".into(),
        matches: matches.iter().map(|m| m.to_string()).collect(),
        comment: Some("ids".into()),
    }
}

fn reader(copy_mode: u8) -> BoundQueue {
    BoundQueue {
        queue: 3,
        portid: 812,
        copy_mode,
        copy_range: 65531,
        waiting: 0,
        dropped: 0,
        user_dropped: 0,
    }
}

fn with(rules: Vec<QueueRule>, bound: Option<Vec<BoundQueue>>) -> crate::evidence::Evidence {
    let mut ev = evidence_with_kernel("6.12.0");
    ev.nfqueue = Some(NfQueueScan {
        rules,
        bound,
        ..NfQueueScan::default()
    });
    ev
}

#[test]
fn a_queue_of_every_output_packet_to_a_packet_reader_is_a_blocker() {
    let ev = with(vec![rule("output", &[], false)], Some(vec![reader(2)]));
    let out = run(&ev, Protocol::Udp);
    let f = out
        .findings
        .iter()
        .find(|f| f.code == Code::NfqueueOnPath)
        .expect("raised");
    assert_eq!(f.severity, Severity::Blocker);
    assert!(
        f.summary.starts_with("nft rule inet table zc chain out (hook output) handle 4 \"ids\" (queue 3) in the sender's namespace queues every packet of hook output to userspace, queue 3 read by netlink port 812 (copy mode packet, range 65531)"),
        "{}",
        f.summary
    );
    assert_eq!(f.evidence["rule"]["handle"], 4);
    assert!(f.remediation[0].contains("nft -a list chain inet zc out"));
    assert!(f.remediation[2].contains("nft delete rule inet zc out handle 4"));
}

#[test]
fn matches_or_a_metadata_reader_make_it_a_warning() {
    let ev = with(vec![rule("postrouting", &["payload", "cmp"], false)], None);
    let f = &crate::check::testing::raised(&ev, Code::NfqueueOnPath)[0];
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("its readers could not be read"), "{}", f.summary);
    let ev = with(vec![rule("output", &[], false)], Some(vec![reader(1)]));
    let f = &crate::check::testing::raised(&ev, Code::NfqueueOnPath)[0];
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.summary.contains("in metadata mode"), "{}", f.summary);
}

#[test]
fn an_unread_queue_or_another_hook_is_harmless() {
    let ev = with(
        vec![rule("output", &[], true), rule("input", &[], false)],
        Some(vec![BoundQueue { queue: 9, ..reader(2) }]),
    );
    let out = run(&ev, Protocol::Udp);
    assert!(out.findings.iter().all(|f| f.code != Code::NfqueueOnPath));
    let lines: Vec<&str> = out
        .passed
        .iter()
        .filter(|p| p.check == "nfqueue")
        .map(|p| p.detail.as_str())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].ends_with("no program reads its queue; bypass accepts its packets unqueued, untouched"), "{}", lines[0]);
}
