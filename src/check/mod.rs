//! Checks: pure functions from Evidence to findings. No I/O here, ever: everything a check
//! needs is in the Evidence, so a recording diagnoses exactly like the live host.
//!
//! One module per area, run in the order traffic meets them: [`kernel`], [`path`] (local
//! delivery, veth, devices), [`offloads`], [`memory`] (optmem), [`taps`], [`live`] (with
//! [`cost`] and the ENOBUFS attribution of [`memory`]); then [`verdict`]. Each raises
//! [`Code`]s into [`Findings`]; the knowledge base (`checks/findings/`) supplies titles and
//! usual severities, [`tap_fix`] the owner-specific remediation of taps.

pub mod cost;
pub mod findings;
pub mod hops;
pub mod kernel;
pub mod live;
pub mod memory;
pub mod offloads;
pub mod path;
pub mod process;
pub mod tap_fix;
pub mod taps;
#[cfg(test)]
pub(crate) mod testing;
pub mod tunnel_mtu;
pub mod verdict;

pub use crate::evidence::Protocol;
pub use findings::{Code, Findings};

use crate::evidence::Evidence;
use crate::knowledge::Knowledge;
use crate::report::{Diagnosis, Report};

/// Diagnoses `ev` for `protocol` traffic with the knowledge base `kb`: findings ranked by
/// severity, passes, and the verdict.
pub fn diagnose(ev: &Evidence, protocol: Protocol, kb: &Knowledge) -> Report {
    let mut out = Findings::new(kb);
    kernel::check(ev, protocol, &mut out);
    path::check(ev, &mut out);
    tunnel_mtu::check(ev, &mut out);
    offloads::check(ev, protocol, &mut out);
    memory::check_optmem(ev, &mut out);
    taps::check(ev, &mut out);
    process::check(ev, &mut out);
    live::check(ev, &mut out);

    // Stable ranking: severity, then the order checks ran in (which follows the path).
    let Findings {
        mut findings,
        passed,
        ..
    } = out;
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let verdict = verdict::verdict(ev, &findings);
    let diagnosis = Diagnosis {
        findings,
        passed,
        verdict,
        live_summary: ev.live.as_ref().map(live::summary::summary),
    };
    Report::new(ev, protocol, diagnosis)
}
