//! The verdict: does zerocopy work on this path. Proven by the live probe when it ran and its
//! sample is a proof; predicted from the findings when no probe was asked for; `unproven` (never
//! "yes") when a probe was asked for and proved nothing. Never "yes" when part of the path went
//! unread.

use serde_json::Value;

use super::live::{Totals, shortfall};

mod vsock;
use crate::evidence::{Evidence, LiveProbe, SocketRouting};
use crate::report::{Basis, Verdict, Zerocopy};
use crate::vocab::{Finding, Severity};

pub fn verdict(ev: &Evidence, findings: &[Finding]) -> Verdict {
    if let Some(v) = &ev.vsock {
        return vsock::verdict(v);
    }
    let blocker = findings.iter().any(|f| f.severity == Severity::Blocker);
    let Some(live) = ev.live.as_ref() else {
        let (zerocopy, summary) = predicted(ev, findings, None);
        return Verdict {
            zerocopy,
            basis: Basis::Predicted,
            summary,
        };
    };
    // A live probe was asked for: the verdict is proven by it, or says why it is not.
    let why = match &live.not_run {
        Some(fact) => format!("the live probe did not send ({fact})"),
        None => match proven(live) {
            Ok(verdict) => return verdict,
            Err(why) => why,
        },
    };
    let (predicted, summary) = predicted(ev, findings, Some(&why));
    Verdict {
        // Never "yes" without the proof that was asked for.
        zerocopy: if blocker || predicted == Zerocopy::No {
            Zerocopy::No
        } else {
            Zerocopy::Unknown
        },
        basis: Basis::Unproven,
        summary,
    }
}

/// What a live probe that sent proves: a verdict from the kernel's facts (copies, ENOBUFS,
/// ENOMEM, or enough completions none of which copied), or why it proves nothing.
fn proven(live: &LiveProbe) -> Result<Verdict, String> {
    let Totals {
        copied,
        completions,
        enobufs,
        enomem,
        ..
    } = Totals::of(live);
    // Copies and ENOBUFS are facts the kernel reported, whatever the sample size.
    if copied > 0 {
        return Ok(live_verdict(
            Zerocopy::No,
            format!(
                "zerocopy sends are copied: {copied} of {completions} completions carried COPIED"
            ),
        ));
    }
    if enobufs > 0 {
        return Ok(live_verdict(
            Zerocopy::No,
            format!("{enobufs} zerocopy sends failed with ENOBUFS ({completions} completed)"),
        ));
    }
    if enomem > 0 {
        return Ok(live_verdict(
            Zerocopy::No,
            format!(
                "{enomem} io_uring zerocopy sends failed with ENOMEM ({completions} completed)"
            ),
        ));
    }
    let gaps = shortfall(live);
    if completions > 0 && gaps.is_empty() {
        return Ok(live_verdict(
            Zerocopy::Yes,
            format!(
                "zerocopy works: {completions} completions to {}, none copied",
                live.target
            ),
        ));
    }
    let mut reasons = gaps.reasons;
    if !gaps.untransmitted.is_empty() {
        reasons.insert(
            0,
            "the device did not transmit the probe's sends (live-nothing-transmitted)".to_string(),
        );
    }
    if completions == 0 {
        reasons.insert(0, "the live probe received no completions".to_string());
    }
    Err(reasons.join("; "))
}

fn live_verdict(zerocopy: Zerocopy, summary: String) -> Verdict {
    Verdict {
        zerocopy,
        basis: Basis::Live,
        summary,
    }
}

/// What every blocker predicts: the summary naming each cause once (with the way it is on),
/// and, when all of them are on other ways, that the diagnosed way is clear.
fn blocked(ev: &Evidence, findings: &[Finding]) -> String {
    let mut causes: Vec<String> = Vec::new();
    for f in findings.iter().filter(|f| f.severity == Severity::Blocker) {
        let mut label = match f.evidence.get("device").and_then(Value::as_str) {
            Some(d) => format!("{} on {d}", f.code),
            None => f.code.to_string(),
        };
        if let Some(t) = f.evidence.get("toward").and_then(Value::as_str) {
            let routing = f
                .evidence
                .get("toward_routing")
                .and_then(|r| serde_json::from_value::<SocketRouting>(r.clone()).ok())
                .map(|r| r.label())
                .unwrap_or_default();
            label.push_str(&format!(" (to {t}{routing})"));
        }
        if !causes.contains(&label) {
            causes.push(label);
        }
    }
    let mut summary = format!(
        "MSG_ZEROCOPY sends {} will be copied or fail: {}",
        sends(ev),
        causes.join(", ")
    );
    // Every cause on another way: the diagnosed way is clear, and saying so tells the
    // operator which sockets keep their zerocopy.
    let all_elsewhere = findings
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .all(|f| f.evidence.get("toward").is_some());
    if let (Some(s), true) = (ev.serving.as_ref(), all_elsewhere && has_routes(ev)) {
        summary.push_str(&format!(
            "; nothing forces a copy on the way through {} to {}{}",
            ev.interface,
            s.peer,
            s.routing.as_ref().map(|r| r.label()).unwrap_or_default()
        ));
    }
    summary
}

/// The verdict the findings predict; `unproven` is why a requested live probe proved nothing
/// (then the summary says so instead of asking for a probe).
fn predicted(ev: &Evidence, findings: &[Finding], unproven: Option<&str>) -> (Zerocopy, String) {
    let blocker = findings.iter().any(|f| f.severity == Severity::Blocker);
    let uncertain = findings.iter().any(|f| f.code.leaves_path_uncertain());
    let (zerocopy, summary) = match (blocker, uncertain) {
        (true, _) => (Zerocopy::No, blocked(ev, findings)),
        (false, true) => (
            Zerocopy::Unknown,
            format!(
                "no cause of copies found on {}, but part of the path could not be inspected",
                if has_routes(ev) {
                    paths(ev)
                } else {
                    ev.interface.clone()
                }
            ),
        ),
        // A cause that may copy some of the traffic (a tap on one of a hashing bond's slaves,
        // a port of a bridge with no destination given, a tunnel MTU): not a "yes".
        (false, false) if !possible(findings).is_empty() => (
            Zerocopy::Unknown,
            format!(
                "nothing on {} is certain to force a copy, but {} may copy some sends; {}",
                paths(ev),
                possible(findings).join(", "),
                if unproven.is_some() {
                    "a live probe that proves something decides"
                } else {
                    "a live probe with --target ADDR decides"
                }
            ),
        ),
        (false, false) => match unproven {
            None => (
                Zerocopy::Yes,
                format!(
                    "nothing on {} forces a copy; prove it with --target ADDR",
                    paths(ev)
                ),
            ),
            Some(_) => (
                Zerocopy::Yes,
                format!("nothing on {} forces a copy", paths(ev)),
            ),
        },
    };
    match unproven {
        None => (zerocopy, summary),
        Some(why) => (zerocopy, format!("{why}; {summary}")),
    }
}

/// Warnings that predict copies for part of the traffic, as `code on DEVICE`.
fn possible(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Warning && f.code.predicts_copies())
        .filter(|f| !f.code.oversize_only())
        .map(|f| match f.evidence.get("device").and_then(Value::as_str) {
            Some(d) => format!("{} on {d}", f.code),
            None => f.code.to_string(),
        })
        .collect()
}

fn has_routes(ev: &Evidence) -> bool {
    ev.serving.as_ref().is_some_and(|s| !s.routes.is_empty())
}

/// Whose sends the verdict is about: `through IFACE`, or for a process diagnosed by pid whose
/// sockets go more than one way, the process's.
fn sends(ev: &Evidence) -> String {
    match ev.serving.as_ref().filter(|s| !s.routes.is_empty()) {
        Some(s) => format!("of {} ({} ways out)", s.whose(), s.routes.len() + 1),
        None => format!("through {}", ev.interface),
    }
}

/// The paths the verdict covers: `IFACE's path`, or every way out of a process diagnosed by pid.
fn paths(ev: &Evidence) -> String {
    match ev.serving.as_ref().filter(|s| !s.routes.is_empty()) {
        Some(s) => format!(
            "the {} paths of {}'s zerocopy sockets",
            s.routes.len() + 1,
            s.whose()
        ),
        None if ev.serving.is_none() && !ev.unpeered.is_empty() => format!(
            "{}'s path (the default route's: the diagnosed process's zerocopy sockets are not connected)",
            ev.interface
        ),
        None => format!("{}'s path", ev.interface),
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
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        out.raise(
            Code::TapsNotChecked,
            "s".into(),
            serde_json::json!({}),
            vec![],
        );
        assert_eq!(verdict(&ev, &out.findings).zerocopy, Zerocopy::Unknown);
        assert_eq!(verdict(&ev, &[]).zerocopy, Zerocopy::Yes);
    }

    /// A cause that may copy part of the traffic (a warning that predicts copies) is not a yes.
    #[test]
    fn a_possible_cause_makes_an_unknown_not_a_yes() {
        let ev = fixture("clean-nic");
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        out.raise_as(
            Code::TapForcesCopy,
            Severity::Warning,
            "s".into(),
            serde_json::json!({"device": "d1"}),
            vec![],
        );
        let v = verdict(&ev, &out.findings);
        assert_eq!(v.zerocopy, Zerocopy::Unknown);
        assert!(
            v.summary.contains("tap-forces-copy on d1 may copy"),
            "{}",
            v.summary
        );
    }

    #[test]
    fn a_requested_probe_that_proved_nothing_is_unproven_never_yes() {
        // Did not send.
        let mut ev = fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        live.not_run = Some("the route to 224.0.0.9 is of type multicast, not unicast".into());
        live.runs.clear();
        let v = verdict(&ev, &[]);
        assert_eq!((v.zerocopy, v.basis), (Zerocopy::Unknown, Basis::Unproven));
        assert!(
            !v.summary.contains("prove it with --target"),
            "{}",
            v.summary
        );
        assert!(v.summary.contains("multicast"), "{}", v.summary);
        // One completion.
        let mut ev = fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        live.runs.truncate(1);
        live.runs[0].sends = 1;
        live.runs[0].completions = 1;
        let v = verdict(&ev, &[]);
        assert_eq!((v.zerocopy, v.basis), (Zerocopy::Unknown, Basis::Unproven));
        // Interrupted.
        let mut ev = fixture("live-clean");
        ev.live.as_mut().expect("live").interrupted = true;
        let v = verdict(&ev, &[]);
        assert_eq!(v.basis, Basis::Unproven);
        assert!(v.summary.contains("interrupted"), "{}", v.summary);
        // Nothing transmitted.
        let mut ev = fixture("live-clean");
        for r in &mut ev.live.as_mut().expect("live").runs {
            r.device_counters = Some(crate::evidence::DeviceCounters {
                device: "eth0".into(),
                kind: None,
                before: Default::default(),
                after: crate::evidence::LinkCounters {
                    tx_packets: r.sends / 3,
                    ..Default::default()
                },
            });
        }
        let v = verdict(&ev, &[]);
        assert_eq!((v.zerocopy, v.basis), (Zerocopy::Unknown, Basis::Unproven));
        // No probe asked for: still a prediction that asks for one.
        let v = verdict(&fixture("clean-nic"), &[]);
        assert_eq!(v.basis, Basis::Predicted);
        assert!(v.summary.contains("prove it with --target"));
    }

    #[test]
    fn copies_are_proven_even_from_a_small_sample() {
        let mut ev = fixture("live-tap-copied");
        let live = ev.live.as_mut().expect("live");
        live.runs.truncate(1);
        live.runs[0].completions = 1;
        live.runs[0].copied = 1;
        live.interrupted = true;
        let v = verdict(&ev, &[]);
        assert_eq!((v.zerocopy, v.basis), (Zerocopy::No, Basis::Live));
    }

    #[test]
    fn live_result_wins_over_prediction() {
        let ev = fixture("live-tap-copied");
        let v = verdict(&ev, &[]);
        assert_eq!((v.zerocopy, v.basis), (Zerocopy::No, Basis::Live));
        assert!(v.summary.contains("carried COPIED"), "{}", v.summary);
    }

    /// A server with a connected zerocopy socket and a listener: the listener is listed, and the
    /// verdict does not claim that nothing is connected.
    #[test]
    fn a_listener_beside_connected_sockets_is_not_an_assumed_route() {
        let mut ev = fixture("process-pid-many-ways");
        ev.serving.as_mut().expect("serving").routes.clear();
        ev.unpeered = vec!["fd 9 (tcp 0.0.0.0:4444, listen)".to_string()];
        let v = verdict(&ev, &[]);
        assert_eq!(v.zerocopy, Zerocopy::Yes);
        assert!(!v.summary.contains("not connected"), "{}", v.summary);
        ev.serving = None;
        let v = verdict(&ev, &[]);
        assert!(v.summary.contains("not connected"), "{}", v.summary);
    }
}
