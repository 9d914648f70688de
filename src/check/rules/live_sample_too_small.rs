//! `live-sample-too-small`: the live probe sent, but too little (or was cut short) to prove a
//! "yes" or to time its phases; a warning when nothing else decided the verdict, else info.
//!
//! Reads the live probe's runs and phases, and the shortfall of `check/live/proof.rs`.
//! Explanation and fix text: checks/findings/live-sample-too-small.toml

use serde_json::{Value, json};

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::live::{MIN_PROOF_COMPLETIONS, MIN_PROOF_SECONDS, Measured, primary_runs};
use crate::evidence::{Evidence, MIN_TIMED_SECONDS};
use crate::vocab::Severity;

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if let Step::Live(m) = at {
        sample_too_small(cx.ev, m, out);
    }
}

/// The probe sent, but too little (or was cut short) to prove a "yes" or time the phases.
fn sample_too_small(ev: &Evidence, m: &Measured, out: &mut Findings) {
    let (live, gaps, totals) = (m.live, &m.gaps, m.totals);
    let mut reasons = gaps.reasons.clone();
    // Runs whose proof is already short are named once; others may still be too short to time.
    for r in primary_runs(live).filter(|r| !gaps.short_runs.contains(&r.label())) {
        for (name, phase) in [("copy", &r.copy_phase), ("zerocopy", &r.zerocopy_phase)] {
            if let Some(p) = phase.as_ref().filter(|p| !p.timed_enough()) {
                reasons.push(format!(
                    "{} {name} phase: {} sends in {:.3} s, too little to time (timing needs at least {} sends and {} s)",
                    r.label(),
                    p.sends,
                    p.seconds,
                    crate::evidence::MIN_TIMED_SENDS,
                    MIN_TIMED_SECONDS
                ));
            }
        }
    }
    if reasons.is_empty() {
        return;
    }
    // Copies or ENOBUFS are facts whatever the sample: then only the timing is missing.
    let decided = totals.copied > 0 || totals.enobufs > 0 || totals.enomem > 0;
    let severity = if gaps.reasons.is_empty() || decided {
        Severity::Info
    } else {
        Severity::Warning
    };
    let runs: Vec<Value> = primary_runs(live)
        .map(|r| {
            json!({"pattern": r.pattern, "completions": r.completions,
                   "copy_sends": r.copy_phase.as_ref().map(|p| p.sends), "copy_seconds": r.copy_phase.as_ref().map(|p| p.seconds),
                   "zerocopy_sends": r.zerocopy_phase.as_ref().map(|p| p.sends), "zerocopy_seconds": r.zerocopy_phase.as_ref().map(|p| p.seconds),
                   "ended_by": r.zerocopy_phase.as_ref().or(r.copy_phase.as_ref()).and_then(|p| p.ended_by)})
        })
        .collect();
    out.raise_as(
        Code::LiveSampleTooSmall,
        severity,
        reasons.join("; "),
        json!({"interrupted": live.interrupted, "min_completions": MIN_PROOF_COMPLETIONS, "min_seconds": MIN_PROOF_SECONDS,
               "min_timed_sends": crate::evidence::MIN_TIMED_SENDS, "runs": runs}),
        vec![format!(
            "Run it to the end with at least the default duration and a byte cap of a few MB: `zcdoctor check {} --target {} --duration 1s`.",
            ev.interface, live.target
        )],
    );
}
