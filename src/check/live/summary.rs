//! What the live probe's runs add up to ([`LiveSummary`] of the report): totals over the
//! primary runs, rates and gains, derived when the report is made.

use super::{Totals, primary_runs};
use crate::evidence::{LiveProbe, LiveRun, Phase};
use crate::report::{LiveSummary, PhaseSummary, RunSummary};

/// A finite number, or `None` (serde would write NaN and infinities as `null` anyway).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn phase_summary(p: &Phase) -> PhaseSummary {
    {
        PhaseSummary {
            bytes_per_sec: finite(p.bytes_per_second()).unwrap_or(0.0),
            cpu_seconds: finite(p.cpu_system_seconds + p.cpu_user_seconds).unwrap_or(0.0),
            bytes_per_cpu_second: finite(p.bytes_per_cpu_second()).unwrap_or(0.0),
        }
    }
}

fn run_summary(r: &LiveRun) -> RunSummary {
    {
        RunSummary {
            pattern: r.pattern,
            send_size: r.send_size,
            copied_ratio: ratio(r.copied, r.completions),
            gain: r.gain().and_then(finite),
            cpu_gain: r.cpu_gain().and_then(finite),
            copy_phase: r.copy_phase.as_ref().map(phase_summary),
            zerocopy_phase: r.zerocopy_phase.as_ref().map(phase_summary),
        }
    }
}

/// The summary of `live`'s runs.
pub fn summary(live: &LiveProbe) -> LiveSummary {
    {
        let t = Totals::of(live);
        let sends = primary_runs(live).fold(0u64, |a, r| a.saturating_add(r.sends));
        // Phase totals over the timed primary runs: (bytes, seconds, cpu seconds).
        let mut copy = (0f64, 0f64, 0f64);
        let mut zc = (0f64, 0f64, 0f64);
        for r in primary_runs(live).filter(|r| r.timed_enough()) {
            for (acc, phase) in [(&mut copy, &r.copy_phase), (&mut zc, &r.zerocopy_phase)] {
                if let Some(p) = phase {
                    acc.0 += p.bytes as f64;
                    acc.1 += p.seconds;
                    acc.2 += p.cpu_system_seconds + p.cpu_user_seconds;
                }
            }
        }
        let per = |bytes: f64, by: f64| (by > 0.0).then(|| bytes / by);
        let gain_of = |zc: Option<f64>, copy: Option<f64>| match (zc, copy) {
            (Some(z), Some(c)) if c > 0.0 => finite(z / c),
            _ => None,
        };
        LiveSummary {
            sends,
            completions: t.completions,
            copied: t.copied,
            missing: t.missing,
            enobufs: t.enobufs,
            copied_ratio: ratio(t.copied, t.completions),
            gain: gain_of(per(zc.0, zc.1), per(copy.0, copy.1)),
            cpu_gain: gain_of(per(zc.0, zc.2), per(copy.0, copy.2)),
            runs: live.runs.iter().map(run_summary).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{Protocol, RunPattern};

    fn phase(bytes: u64, sends: u64, seconds: f64, cpu: f64) -> Phase {
        Phase {
            bytes,
            sends,
            seconds,
            cpu_system_seconds: cpu,
            cpu_user_seconds: 0.0,
            errors: Default::default(),
            ended_by: None,
        }
    }

    fn run(pattern: RunPattern, copy: Phase, zc: Phase, copied: u64) -> LiveRun {
        LiveRun {
            pattern,
            send_size: 1000,
            gso_size: None,
            sends: zc.sends,
            completions: zc.sends,
            copied,
            missing: 1,
            enobufs: 2,
            notifications: 0,
            errors: Default::default(),
            copy_phase: Some(copy),
            zerocopy_phase: Some(zc),
            device_counters: None,
            api: Default::default(),
            fixed_buffers: false,
            timestamps: None,
        }
    }

    fn live(runs: Vec<LiveRun>) -> LiveProbe {
        LiveProbe {
            runs,
            ..LiveProbe::new(
                Protocol::Udp,
                ([198, 18, 0, 2], 9).into(),
                Default::default(),
            )
        }
    }

    #[test]
    fn summary_totals_rates_and_gains() {
        let l = live(vec![
            run(
                RunPattern::Datagram,
                phase(1000, 1000, 1.0, 1.0),
                phase(2000, 1000, 1.0, 0.5),
                250,
            ),
            run(
                RunPattern::Gso,
                phase(3000, 1000, 1.0, 1.0),
                phase(2000, 1000, 1.0, 1.0),
                0,
            ),
            // Oversize: an experiment, outside the totals of sends, completions, copied and gain.
            run(
                RunPattern::Oversize,
                phase(9000, 1000, 1.0, 1.0),
                phase(1, 1000, 1.0, 1.0),
                1000,
            ),
        ]);
        let s = summary(&l);
        assert_eq!((s.sends, s.completions, s.copied), (2000, 2000, 250));
        assert_eq!((s.missing, s.enobufs), (3, 6));
        assert_eq!(s.copied_ratio, Some(0.125));
        // (2000+2000)/2 s over (1000+3000)/2 s.
        assert_eq!(s.gain, Some(1.0));
        // 4000 B / 1.5 s of CPU over 4000 B / 2 s.
        assert!((s.cpu_gain.unwrap_or_default() - 4.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.runs.len(), 3);
        assert_eq!(s.runs[0].gain, Some(2.0));
        assert_eq!(s.runs[0].copied_ratio, Some(0.25));
        let zc = s.runs[0]
            .zerocopy_phase
            .as_ref()
            .map(|p| (p.bytes_per_sec, p.cpu_seconds));
        assert_eq!(zc, Some((2000.0, 0.5)));
    }

    #[test]
    fn untimed_runs_give_no_gain() {
        let l = live(vec![run(
            RunPattern::Datagram,
            phase(1000, 10, 0.01, 0.01),
            phase(2000, 10, 0.01, 0.01),
            0,
        )]);
        let s = summary(&l);
        assert_eq!((s.gain, s.cpu_gain, s.runs[0].gain), (None, None, None));
        let empty = summary(&live(vec![]));
        assert_eq!((empty.copied_ratio, empty.gain), (None, None));
    }
}
