//! The verdict: does zerocopy work on this path. Proven by the live probe when it ran,
//! otherwise predicted from the findings; never "yes" when part of the path went unread.

use serde_json::Value;

use super::live::Totals;
use crate::evidence::Evidence;
use crate::report::{Basis, Finding, Severity, Verdict, Zerocopy};

pub fn verdict(ev: &Evidence, findings: &[Finding]) -> Verdict {
    let blocker = findings.iter().find(|f| f.severity == Severity::Blocker);
    if let Some(live) = ev.live.as_ref().filter(|l| l.not_run.is_none()) {
        let Totals {
            copied,
            completions,
            enobufs,
            ..
        } = Totals::of(live);
        let (zerocopy, summary) = if copied > 0 {
            (
                Zerocopy::No,
                format!(
                    "zerocopy sends are copied: {copied} of {completions} completions carried COPIED"
                ),
            )
        } else if enobufs > 0 {
            (
                Zerocopy::No,
                format!("{enobufs} zerocopy sends failed with ENOBUFS ({completions} completed)"),
            )
        } else if completions > 0 {
            (
                Zerocopy::Yes,
                format!(
                    "zerocopy works: {completions} completions to {}, none copied",
                    live.target
                ),
            )
        } else {
            (
                Zerocopy::Unknown,
                "the live probe received no completions".to_string(),
            )
        };
        return Verdict {
            zerocopy,
            basis: Basis::Live,
            summary,
        };
    }
    let uncertain = findings.iter().any(|f| f.code.leaves_path_uncertain());
    let (zerocopy, summary) = match (blocker, uncertain) {
        (Some(_), _) => {
            let mut causes: Vec<String> = Vec::new();
            for f in findings.iter().filter(|f| f.severity == Severity::Blocker) {
                let label = match f.evidence.get("device").and_then(Value::as_str) {
                    Some(d) => format!("{} on {d}", f.code),
                    None => f.code.to_string(),
                };
                if !causes.contains(&label) {
                    causes.push(label);
                }
            }
            (
                Zerocopy::No,
                format!(
                    "MSG_ZEROCOPY sends through {} will be copied or fail: {}",
                    ev.interface,
                    causes.join(", ")
                ),
            )
        }
        (None, true) => (
            Zerocopy::Unknown,
            format!(
                "no cause of copies found on {}, but part of the path could not be inspected",
                ev.interface
            ),
        ),
        (None, false) => (
            Zerocopy::Yes,
            format!(
                "nothing on {}'s path forces a copy; prove it with --target ADDR",
                ev.interface
            ),
        ),
    };
    Verdict {
        zerocopy,
        basis: Basis::Predicted,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::fixture;
    use crate::check::{Code, Findings};

    #[test]
    fn unread_parts_make_an_unknown_not_a_yes() {
        let ev = fixture("clean-nic");
        let mut out = Findings::new();
        out.raise(
            Code::TapsNotChecked,
            "s".into(),
            serde_json::json!({}),
            vec![],
        );
        assert_eq!(verdict(&ev, &out.findings).zerocopy, Zerocopy::Unknown);
        assert_eq!(verdict(&ev, &[]).zerocopy, Zerocopy::Yes);
    }

    #[test]
    fn live_result_wins_over_prediction() {
        let ev = fixture("live-tap-copied");
        let v = verdict(&ev, &[]);
        assert_eq!((v.zerocopy, v.basis), (Zerocopy::No, Basis::Live));
        assert!(v.summary.contains("carried COPIED"), "{}", v.summary);
    }
}
