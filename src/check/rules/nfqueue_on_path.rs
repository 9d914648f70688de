//! `nfqueue-on-path`: an nftables rule (nft `queue`, iptables-nft `NFQUEUE`) in a chain whose
//! hook the traffic passes hands it to a userspace queue a program reads: in copy-packet mode
//! the kernel finishes the checksum in software first (`skb_checksum_help`, which linearizes a
//! zerocopy skb: a COPIED completion), and segments GSO sends in software
//! (`skb_gso_segment`, a copy the completion does not report), unless the reader set
//! `NFQA_CFG_F_GSO`, which cannot be read back. Blocker when the rule queues every packet of
//! its hook to a copy-packet reader; a warning when matches stand before it or the reader only
//! takes metadata. A rule nobody reads is named in the pass line.
//!
//! Reads each hop's queue rules and bound queues (`nfqueue`).
//! Explanation and fix text: checks/findings/nfqueue-on-path.toml

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::vocab::Severity;
use crate::check::nfqueue::{QueueOnPath, Reader, on_path};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if !matches!(at, Step::Path) {
        return;
    }
    let rules = on_path(cx.ev);
    let mut idle = Vec::new();
    for q in &rules {
        match &q.reader {
            Reader::Nobody => idle.push(q),
            Reader::Bound(b) if b.iter().all(|r| r.copy_mode != 2) => raise_meta(q, out),
            _ => raise(q, out),
        }
    }
    pass(&idle, out);
}

fn raise(q: &QueueOnPath, out: &mut Findings) {
    let (severity, scope) = if q.conditional {
        (
            Severity::Warning,
            format!(
                "queues the packets its matches ({}) select",
                q.rule.matches.join(", ")
            ),
        )
    } else {
        (
            Severity::Blocker,
            format!("queues every packet of hook {}", q.hook),
        )
    };
    let summary = format!(
        "{} {scope} to userspace, {}: before queueing a packet in copy-packet mode the kernel finishes its checksum in software (skb_checksum_help linearizes the zerocopy pages: COPIED) and cuts GSO sends into copied segments (skb_gso_segment, not reported), unless the reader set NFQA_CFG_F_GSO",
        q.name(),
        q.readers()
    );
    out.raise_as(
        Code::NfqueueOnPath,
        severity,
        summary,
        q.evidence(),
        fixes(q),
    );
}

fn raise_meta(q: &QueueOnPath, out: &mut Findings) {
    let summary = format!(
        "{} queues packets to userspace, {}: in metadata mode no payload is copied, but GSO sends are cut into copied segments first (skb_gso_segment, not reported) unless the reader set NFQA_CFG_F_GSO",
        q.name(),
        q.readers()
    );
    out.raise_as(
        Code::NfqueueOnPath,
        Severity::Warning,
        summary,
        q.evidence(),
        fixes(q),
    );
}

fn fixes(q: &QueueOnPath) -> Vec<String> {
    vec![
        format!(
            "Keep the zerocopy traffic out of the queue: add a match before `queue` that excludes it (its port, address or socket owner), or move it to a chain it does not pass; see the rule with {}.",
            q.show()
        ),
        "Where the queue must see it, have the reader set NFQA_CFG_F_GSO (libnetfilter_queue: nfq_set_queue_flags(qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO)): the kernel then neither checksums nor segments before queueing, and shares the pages with the reader instead of copying them.".to_string(),
        format!("If the rule is not needed: {}.", q.delete()),
    ]
}

/// Queue rules on the path that no program reads: what the kernel does with their packets.
fn pass(idle: &[&QueueOnPath], out: &mut Findings) {
    for q in idle {
        let fate = if q.rule.bypass {
            "bypass accepts its packets unqueued, untouched"
        } else {
            "the kernel drops the packets it matches (no bypass), without copying them"
        };
        out.pass(
            "nfqueue",
            format!("{}: no program reads its queue; {fate}", q.name()),
        );
    }
}

#[cfg(test)]
mod tests {
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

    /// A regular chain counts through the base chain that jumps to it: a conditional jump
    /// makes it a warning; a jump from a hook the traffic does not pass, nothing.
    #[test]
    fn a_regular_chain_is_judged_by_the_jumps_to_it() {
        use crate::evidence::JumpFrom;
        let mut sub = rule("output", &[], false);
        sub.hook = None;
        sub.reached_from = vec![JumpFrom {
            chain: "out".into(),
            hook: "output".into(),
            conditional: true,
        }];
        let ev = with(vec![sub.clone()], Some(vec![reader(2)]));
        let f = &crate::check::testing::raised(&ev, Code::NfqueueOnPath)[0];
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.summary.contains("(reached from hook output)"), "{}", f.summary);
        sub.reached_from[0].hook = "input".into();
        let ev = with(vec![sub], Some(vec![reader(2)]));
        assert!(crate::check::testing::raised(&ev, Code::NfqueueOnPath).is_empty());
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
}
