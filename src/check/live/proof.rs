//! When a live run proves something: minimum samples, and packets that actually left.

use super::primary_runs;
use crate::evidence::{LiveProbe, LiveRun, MIN_TIMED_SECONDS, PhaseEnd, RunPattern};

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
    /// Primary runs (their labels) with too few completions or too short a zerocopy phase to
    /// prove anything: each is one of `reasons`.
    pub short_runs: Vec<String>,
}

impl Shortfall {
    pub fn is_empty(&self) -> bool {
        self.reasons.is_empty() && self.untransmitted.is_empty()
    }
}

/// Whether the egress device transmitted far fewer packets than the run sent (less than
/// [`MIN_TRANSMITTED_SHARE`]).
pub fn untransmitted(r: &LiveRun) -> bool {
    r.device_counters.as_ref().is_some_and(|c| {
        r.sends > 0 && (c.transmitted_packets() as f64) < r.sends as f64 * MIN_TRANSMITTED_SHARE
    })
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
            out.short_runs.push(r.label());
            out.reasons.push(format!(
                "{} run: {} zerocopy completions in {:.3} s (a proof needs at least {} completions and {} s)",
                r.label(), r.completions, seconds, MIN_PROOF_COMPLETIONS, MIN_PROOF_SECONDS
            ));
        }
        if untransmitted(r) {
            out.untransmitted.push(r.pattern);
        }
    }
    if !any {
        out.reasons.push("no traffic pattern ran".to_string());
    }
    out
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
