//! The live probe's measurements as the rules read them: the primary runs, their totals
//! ([`Totals`]), what keeps them from proving a "yes" ([`Shortfall`]), and why a probe did not
//! send ([`NotSent`]); [`summary`] derives the report's live summary. The live rules
//! (`udp_fragmentation`, `live_copied`, `live_sample_too_small`, …) raise what these say.

mod proof;
pub mod summary;

pub use proof::{
    MIN_PROOF_COMPLETIONS, MIN_PROOF_SECONDS, MIN_TRANSMITTED_SHARE, Shortfall, shortfall,
    untransmitted,
};

use crate::evidence::{LiveProbe, LiveRun, NotRun, RouteType, RunPattern, SendApi};

/// Runs that represent the application's traffic (an `oversize` run is a deliberate experiment).
pub fn primary_runs(live: &LiveProbe) -> impl Iterator<Item = &LiveRun> {
    live.runs
        .iter()
        .filter(|r| r.pattern != RunPattern::Oversize)
}

/// Counts over a live probe's runs; saturating, so a hostile recording cannot wrap them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Completions of the primary runs (oversize excluded).
    pub completions: u64,
    /// Of those, copied.
    pub copied: u64,
    /// ENOBUFS over every run.
    pub enobufs: u64,
    /// Sends without a completion over every run.
    pub missing: u64,
    /// io_uring zerocopy sends that failed with ENOMEM, over every run.
    pub enomem: u64,
}

impl Totals {
    pub fn of(live: &LiveProbe) -> Totals {
        let sum = |it: &mut dyn Iterator<Item = u64>| it.fold(0u64, u64::saturating_add);
        Totals {
            completions: sum(&mut primary_runs(live).map(|r| r.completions)),
            copied: sum(&mut primary_runs(live).map(|r| r.copied)),
            enobufs: sum(&mut live.runs.iter().map(|r| r.enobufs)),
            missing: sum(&mut live.runs.iter().map(|r| r.missing)),
            enomem: sum(&mut live
                .runs
                .iter()
                .filter(|r| r.api == SendApi::IoUring)
                .map(|r| r.errors.get("ENOMEM").copied().unwrap_or(0))),
        }
    }
}

/// A live probe with what the rules read of it, computed once.
pub struct Measured<'a> {
    pub live: &'a LiveProbe,
    pub totals: Totals,
    /// What keeps it from proving a "yes" (empty when it proves).
    pub gaps: Shortfall,
    /// io_uring set-ups (a ring, a buffer registration) that failed with ENOMEM.
    pub ring_enomem: u64,
}

impl<'a> Measured<'a> {
    pub fn of(live: &'a LiveProbe) -> Measured<'a> {
        let ring_enomem = live.io_uring.as_ref().map_or(0, |s| {
            s.ring_errors
                .iter()
                .chain(&s.setup_error)
                .chain(&s.register_buffers_error)
                .filter(|e| e.errno() == nix::errno::Errno::ENOMEM)
                .count() as u64
        });
        Measured {
            live,
            totals: Totals::of(live),
            gaps: shortfall(live),
            ring_enomem,
        }
    }
}

/// Why a live probe did not send, as far as the rules tell causes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSent {
    /// io_uring was asked for and could not run (`io-uring-unavailable` says why).
    IoUring,
    /// The target is an address of this host (`local-delivery`).
    LocalTarget,
    /// Anything else (`live-probe-not-run`).
    Other,
}

pub fn not_sent(live: &LiveProbe) -> NotSent {
    let local = match &live.not_run_cause {
        Some(cause) => *cause == NotRun::LocalRoute,
        // Recordings made before the cause was recorded.
        None => live
            .route
            .as_ref()
            .is_some_and(|r| r.route_type == RouteType::Local),
    };
    if live.not_run_cause == Some(NotRun::IoUringUnavailable) {
        NotSent::IoUring
    } else if local {
        NotSent::LocalTarget
    } else {
        NotSent::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::fixture;

    /// Two runs of 2^63 completions each: the total saturates, it does not wrap to "none".
    #[test]
    fn huge_counts_saturate() {
        let mut ev = fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        let mut run = live.runs[0].clone();
        run.sends = 1 << 63;
        run.completions = 1 << 63;
        run.copied = 0;
        live.runs = vec![run.clone(), run];
        let totals = Totals::of(live);
        assert_eq!(totals.completions, u64::MAX);
        let report = crate::check::diagnose(
            &ev,
            crate::evidence::Protocol::Udp,
            crate::knowledge::Knowledge::builtin(),
        );
        assert_eq!(report.verdict.zerocopy, crate::report::Zerocopy::Yes);
        assert!(!report.verdict.summary.contains("no completions"));
    }

    #[test]
    fn totals_saturate() {
        let mut ev = fixture("live-tap-copied");
        let live = ev.live.as_mut().expect("live");
        for r in &mut live.runs {
            r.copied = 1 << 63;
            r.completions = 1 << 63;
        }
        let t = Totals::of(live);
        assert_eq!(t.copied, u64::MAX);
    }
}
