//! When a live run proves something: minimum samples, and packets that actually left.

use serde_json::{Value, json};

use super::{Totals, primary_runs};
use crate::check::findings::{Code, Findings};
use crate::evidence::{Evidence, LiveProbe, LiveRun, MIN_TIMED_SECONDS, PhaseEnd, RunPattern};
use crate::vocab::Severity;

/// A live "yes" needs at least this many zerocopy completions in each primary run: with 100,
/// a path that copies 3% of its sends shows at least one COPIED completion with 95%
/// probability (1 - 0.97^100); with one completion it shows nothing.
pub const MIN_PROOF_COMPLETIONS: u64 = 100;
/// ... and a zerocopy phase at least this long (the timing minimum, [`MIN_TIMED_SECONDS`]):
/// a tap or a daemon that wakes now and then needs time to be met.
pub const MIN_PROOF_SECONDS: f64 = MIN_TIMED_SECONDS;
/// A zerocopy phase proves nothing unless the egress device transmitted at least this share
/// of its sends (one packet per send at least: a GSO send is one skb or more). An unresolved
/// neighbour transmits a few ARP requests for thousands of sends; a working path, all of them.
pub const MIN_TRANSMITTED_SHARE: f64 = 0.5;

/// Why a live probe that sent does not prove a "yes": the sample is too small, the run was
/// cut short, or the device did not transmit what was sent.
#[derive(Debug, Default, PartialEq)]
pub struct Shortfall {
    /// Sentences, one per reason, for the verdict and the finding.
    pub reasons: Vec<String>,
    /// Primary runs whose sends were not transmitted.
    pub untransmitted: Vec<RunPattern>,
}

impl Shortfall {
    pub fn is_empty(&self) -> bool {
        self.reasons.is_empty() && self.untransmitted.is_empty()
    }
}

/// What keeps a live probe that sent from proving that zerocopy works.
pub fn shortfall(live: &LiveProbe) -> Shortfall {
    let mut out = Shortfall::default();
    if live.interrupted {
        out.reasons
            .push("the probe was interrupted before it finished".to_string());
    }
    if live
        .runs
        .iter()
        .flat_map(|r| [&r.copy_phase, &r.zerocopy_phase])
        .flatten()
        .any(|p| p.ended_by == Some(PhaseEnd::MaxRunTime))
    {
        out.reasons
            .push("the probe reached --max-run-time before it finished".to_string());
    }
    let mut any = false;
    for r in primary_runs(live) {
        any = true;
        let seconds = r.zerocopy_phase.as_ref().map_or(0.0, |p| p.seconds);
        // A phase the byte cap ended sent all it was allowed to: its count is the sample, however
        // fast it went (64 KB GSO sends reach an 8 GiB cap in 80 ms through a black hole).
        let capped = r
            .zerocopy_phase
            .as_ref()
            .is_some_and(|p| p.ended_by == Some(PhaseEnd::ByteCap));
        if r.completions < MIN_PROOF_COMPLETIONS || (seconds < MIN_PROOF_SECONDS && !capped) {
            out.reasons.push(format!(
                "{} run: {} zerocopy completions in {:.3} s (a proof needs at least {} completions and {} s)",
                r.label(), r.completions, seconds, MIN_PROOF_COMPLETIONS, MIN_PROOF_SECONDS
            ));
        }
        if let Some(c) = &r.device_counters {
            if r.sends > 0
                && (c.transmitted_packets() as f64) < r.sends as f64 * MIN_TRANSMITTED_SHARE
            {
                out.untransmitted.push(r.pattern);
            }
        }
    }
    if !any {
        out.reasons.push("no traffic pattern ran".to_string());
    }
    out
}

/// Sends completed but the egress device transmitted far fewer packets: they were dropped
/// before it, most often while waiting for an unresolved neighbour.
pub(super) fn nothing_transmitted(ev: &Evidence, live: &LiveProbe, out: &mut Findings) {
    let runs: Vec<&LiveRun> = primary_runs(live)
        .filter(|r| {
            r.device_counters.as_ref().is_some_and(|c| {
                r.sends > 0
                    && (c.transmitted_packets() as f64) < r.sends as f64 * MIN_TRANSMITTED_SHARE
            })
        })
        .collect();
    let Some(first) = runs.first() else {
        return;
    };
    let device = first
        .device_counters
        .as_ref()
        .map_or(ev.interface.as_str(), |c| c.device.as_str());
    let route = live.route.as_ref();
    let hop = route
        .and_then(|r| r.gateway.clone())
        .unwrap_or_else(|| target_ip(&live.target));
    let parts: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{} run: {} sends, {} packets transmitted",
                r.label(),
                r.sends,
                r.device_counters
                    .as_ref()
                    .map_or(0, |c| c.transmitted_packets())
            )
        })
        .collect();
    let evidence: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({"pattern": r.pattern, "sends": r.sends, "completions": r.completions,
                   "transmitted_packets": r.device_counters.as_ref().map(|c| c.transmitted_packets()),
                   "counters": r.device_counters})
        })
        .collect();
    out.raise(
        Code::LiveNothingTransmitted,
        format!(
            "the zerocopy sends completed but {device} did not transmit them ({}); {hop} is probably not resolved on {device}, so nothing was tested",
            parts.join(", ")
        ),
        json!({"device": device, "next_hop": hop, "min_transmitted_share": MIN_TRANSMITTED_SHARE, "runs": evidence}),
        vec![
            format!("ip neigh show {hop} dev {device}"),
            format!(
                "Choose a --target that answers on {device}, or add a static neighbour: `ip neigh replace {hop} lladdr MAC dev {device}`; then probe again."
            ),
        ],
    );
}

/// The address part of `ADDR:PORT` or `[ADDR]:PORT`.
fn target_ip(target: &str) -> String {
    target
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| target.to_string())
}

/// The probe sent, but too little (or was cut short) to prove a "yes" or time the phases.
pub(super) fn sample_too_small(
    ev: &Evidence,
    live: &LiveProbe,
    gaps: &Shortfall,
    totals: Totals,
    out: &mut Findings,
) {
    let mut reasons = gaps.reasons.clone();
    // Runs whose proof is already short are named once; others may still be too short to time.
    for r in primary_runs(live).filter(|r| {
        !gaps
            .reasons
            .iter()
            .any(|g| g.starts_with(&format!("{} run:", r.label())))
    }) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Ended by the byte cap after 132,626 completions in 80 ms: proof enough.
    #[test]
    fn a_byte_capped_phase_with_many_completions_proves() {
        let mut ev = crate::check::testing::fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        for r in &mut live.runs {
            r.completions = r.sends.max(1000);
            if let Some(p) = r.zerocopy_phase.as_mut() {
                p.seconds = 0.08;
                p.ended_by = Some(PhaseEnd::ByteCap);
            }
        }
        assert!(
            shortfall(live).reasons.is_empty(),
            "{:?}",
            shortfall(live).reasons
        );
        for r in &mut live.runs {
            if let Some(p) = r.zerocopy_phase.as_mut() {
                p.ended_by = Some(PhaseEnd::Duration);
            }
        }
        assert!(!shortfall(live).reasons.is_empty());
    }
}
