//! Checks: pure functions from Evidence to findings. No I/O here, ever: everything a check
//! needs is in the Evidence, so a recording diagnoses exactly like the live host.
//!
//! One file per finding code in [`rules`] (`rules/tap_forces_copy.rs` raises
//! `tap-forces-copy`), listed once in [`rules::RULES`] and asked at each [`Step`] of the walk
//! (host, each way, the path, devices, limits, taps, processes, the live probe) with a
//! [`Context`]; then [`verdict`]. The analyses several rules share are modules here: [`hops`]
//! (the ways and hops the traffic crosses), [`offloads`], [`taps`] and [`tap_fix`], [`memory`],
//! [`live`] and [`cost`], [`process`]. The knowledge base (`checks/findings/`) supplies titles
//! and usual severities.

pub mod context;
pub mod cost;
pub mod findings;
pub mod hops;
pub mod live;
pub mod memory;
pub mod nfqueue;
pub mod offloads;
pub mod process;
pub mod rules;
pub mod tap_fix;
pub mod taps;
pub mod tc;
#[cfg(test)]
pub(crate) mod testing;
pub mod verdict;
pub mod watch;

pub use crate::evidence::Protocol;
pub use context::{Context, Step};
pub use findings::{Code, Findings};

use crate::evidence::Evidence;
use crate::knowledge::Knowledge;
use crate::report::{Diagnosis, Report};

/// Diagnoses `ev` for `protocol` traffic with the knowledge base `kb`: findings ranked by
/// severity, passes, and the verdict.
pub fn diagnose(ev: &Evidence, protocol: Protocol, kb: &Knowledge) -> Report {
    let mut out = Findings::new(kb);
    rules::run(&Context::new(ev, protocol), &mut out);

    // Stable ranking: severity, then the order checks ran in (which follows the path).
    let Findings {
        mut findings,
        passed,
        notes,
        ..
    } = out;
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let verdict = verdict::verdict(ev, &findings);
    let diagnosis = Diagnosis {
        findings,
        passed,
        process_notes: notes,
        verdict,
        live_summary: ev.live.as_ref().map(live::summary::summary),
        watch: watch::summarise(ev),
    };
    Report::new(ev, protocol, diagnosis)
}
