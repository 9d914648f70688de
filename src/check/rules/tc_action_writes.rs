//! `tc-action-writes`: a tc `pedit` or `csum` action on the path writes into the packets it
//! matches. Header rewrites copy nothing (`skb_orphan_frags` leaves MSG_ZEROCOPY pages alone,
//! measured on 5.10, 6.1 and 6.12 even after a mirror's clone); a payload rewrite can pull all
//! the paged data into the header and complete the send as COPIED. The keys are not read, so
//! it is an info that names the action and leaves the count to the live probe.
//!
//! Reads each hop's tc filters and their actions (`tc`).
//! Explanation and fix text: checks/findings/tc-action-writes.toml

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::tc::{OnPath, on_path};
use crate::evidence::TcAction;

/// Actions that write into the packet's data, and the kernel call that makes it writable.
const WRITERS: [(&str, &str); 2] = [
    ("pedit", "skb_ensure_writable"),
    ("csum", "skb_try_make_writable"),
];

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if !matches!(at, Step::Path) {
        return;
    }
    for f in on_path(&cx.hops) {
        for action in &f.filter.actions {
            if let Some((_, call)) = WRITERS.iter().find(|(k, _)| *k == action.kind) {
                raise(cx, &f, action, call, out);
            }
        }
    }
}

fn raise(cx: &Context, f: &OnPath, action: &TcAction, call: &str, out: &mut Findings) {
    let summary = format!(
        "{} runs {}, which writes into each packet it matches through {call}(): header rewrites leave MSG_ZEROCOPY pages alone (skb_orphan_frags does not copy them, even on a clone), a rewrite of payload bytes pulls them into the header and copies the send when it pulls all of its paged data",
        f.name(),
        OnPath::action_name(action)
    );
    out.raise(
        Code::TcActionWrites,
        summary,
        f.evidence(Some(action)),
        vec![
            format!(
                "If it rewrites payload bytes, prove it with the kernel's count: zcdoctor check {} --target ADDR (or zcdoctor watch {} on the real traffic).",
                cx.ev.interface, cx.ev.interface
            ),
            format!(
                "If the {} action is not needed: {} (it removes every filter of that preference; see them with {}).",
                action.kind,
                f.delete(),
                f.show()
            ),
        ],
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{evidence_with_kernel, raised};
    use crate::evidence::{TcAction, TcFilter, TcFilters, TcHook};

    fn filter(kinds: &[&str]) -> TcFilter {
        TcFilter {
            hook: TcHook::Egress,
            kind: "matchall".into(),
            pref: 1,
            protocol: 0x0800,
            handle: 1,
            chain: None,
            bpf: None,
            actions: kinds
                .iter()
                .zip(1..)
                .map(|(k, order)| TcAction {
                    order,
                    kind: k.to_string(),
                    index: Some(3),
                    mirred: None,
                    bpf: None,
                })
                .collect(),
        }
    }

    #[test]
    fn pedit_and_csum_are_named_skbedit_and_gact_are_not() {
        let mut ev = evidence_with_kernel("6.18.0");
        ev.stack[0].tc = Some(TcFilters {
            filters: vec![filter(&["skbedit", "gact"])],
            ..TcFilters::default()
        });
        assert!(raised(&ev, Code::TcActionWrites).is_empty());
        ev.stack[0].tc = Some(TcFilters {
            filters: vec![filter(&["pedit", "csum"])],
            ..TcFilters::default()
        });
        let found = raised(&ev, Code::TcActionWrites);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].severity, crate::vocab::Severity::Info);
        assert!(
            found[0].summary.contains("runs action 1 pedit (index 3), which writes into each packet it matches through skb_ensure_writable()"),
            "{}",
            found[0].summary
        );
        assert!(found[1].summary.contains("skb_try_make_writable()"));
        assert_eq!(found[1].evidence["action"]["kind"], "csum");
        // ARP filters never see the traffic.
        let mut arp = filter(&["pedit"]);
        arp.protocol = 0x0806;
        ev.stack[0].tc = Some(TcFilters {
            filters: vec![arp],
            ..TcFilters::default()
        });
        assert!(raised(&ev, Code::TcActionWrites).is_empty());
    }
}
