//! `taps-not-checked`: packet taps could not be checked, wholly (the tap probe did not run, was
//! skipped, or lacked privilege) or in part (namespaces whose packet tables could not be read);
//! a tap there may force copies unseen.
//!
//! Reads the tap probe's status and the scan's unreadable namespaces (`taps`).
//! Explanation and fix text: checks/findings/taps-not-checked.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::evidence::{ProbeName, ProbeState};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    match at {
        Step::TapsStart if cx.taps.is_none() => not_run(cx, out),
        Step::TapsEnd(taps) if taps.scan.namespaces_unreadable > 0 => {
            let scan = taps.scan;
            let n = scan.namespaces_unreadable;
            out.raise(
                Code::TapsNotChecked,
                format!(
                    "the packet tables of {n} namespace{} could not be read",
                    if n == 1 { "" } else { "s" }
                ),
                json!({"namespaces_unreadable": n, "problems": scan.problems}),
                vec!["Run zcdoctor as root so it can enter every network namespace.".to_string()],
            );
        }
        _ => {}
    }
}

/// The tap probe did not run: why, and how to let it.
fn not_run(cx: &Context, out: &mut Findings) {
    let tap_probe = cx.ev.probes.iter().find(|p| p.name == ProbeName::Taps);
    let why = tap_probe
        .map(|p| p.detail.clone())
        .unwrap_or_else(|| "the tap probe did not run".to_string());
    let by_request = tap_probe.is_some_and(|p| p.status == ProbeState::Skipped);
    out.raise(
        Code::TapsNotChecked,
        format!("packet taps were not checked: {why}"),
        json!({"reason": why}),
        vec![if by_request {
            "Run without --skip taps (or --no-taps) to check them.".to_string()
        } else {
            "Run zcdoctor as root (it reads every namespace's packet table and each owner's socket through pidfd_getfd).".to_string()
        }],
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};

    #[test]
    fn no_scan_is_said() {
        let mut ev = fixture("clean-nic");
        ev.taps = None;
        let f = &raised(&ev, Code::TapsNotChecked)[0];
        assert!(f.summary.starts_with("packet taps were not checked"));
    }
}
