//! `live-copied`: the live probe's zerocopy completions carried the COPIED flag: the kernel
//! copied the sends. Names the static findings raised before that explain it; when the probe
//! copied nothing and proves, its pass line says so.
//!
//! Reads the live probe's runs (completions, copied, per send API) and the findings raised so
//! far (those that explain copies).
//! Explanation and fix text: checks/findings/live-copied.toml

use serde_json::{Value, json};

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::live::{Measured, primary_runs};
use crate::evidence::{LiveProbe, LiveRun, SendApi, TimestampingFlags};

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    match at {
        Step::Live(m) if m.totals.copied > 0 => copied(m, out),
        Step::LiveEnd(m) => {
            let t = m.totals;
            if t.copied == 0 && t.completions > 0 && m.gaps.is_empty() {
                out.pass(
                    "live",
                    format!(
                        "live probe: {} zerocopy completions to {}, none copied",
                        t.completions, m.live.target
                    ),
                );
            }
        }
        _ => {}
    }
}

/// The codes raised so far that explain copies seen live (the oversize run's own excepted),
/// and `tx-timestamp-copies` when the probe itself timestamped its sends (`--timestamping`).
pub fn explained_by(out: &Findings, live: &LiveProbe) -> Vec<Code> {
    let stamped = live
        .timestamping
        .is_some_and(TimestampingFlags::copies_zerocopy);
    out.codes_where(|c| {
        (c.explains_copies() && !c.oversize_only()) || (stamped && c == Code::TxTimestampCopies)
    })
}

fn copied(m: &Measured, out: &mut Findings) {
    let (live, copied, completions) = (m.live, m.totals.copied, m.totals.completions);
    let explained_by = explained_by(out, live);
    let fraction = copied as f64 / completions.max(1) as f64;
    let names: Vec<&str> = explained_by.iter().map(|c| c.as_str()).collect();
    out.raise(
        Code::LiveCopied,
        format!(
            "{copied} of {completions} zerocopy completions to {} were copied ({:.0}%){}{}",
            live.target,
            fraction * 100.0,
            per_api(live),
            if names.is_empty() {
                String::new()
            } else {
                format!("; explained by {}", names.join(", "))
            }
        ),
        json!({"target": live.target, "copied": copied, "completions": completions, "copied_fraction": fraction, "explained_by": explained_by, "runs": runs(live)}),
        vec![if names.is_empty() {
            "See copies-unexplained for how to find the copier.".to_string()
        } else {
            format!("Fix {} (above); then run this probe again.", names.join(", "))
        }],
    );
}

/// Every run's counts, for the evidence.
fn runs(live: &LiveProbe) -> Vec<Value> {
    live.runs
        .iter()
        .map(|r| {
            let mut v = json!({
                "pattern": r.pattern, "send_size": r.send_size, "sends": r.sends,
                "completions": r.completions, "copied": r.copied, "enobufs": r.enobufs,
                "missing": r.missing, "gain": r.gain(),
            });
            // Only io_uring runs name their api: sendmsg-only reports stay as they were.
            if !r.api.is_sendmsg() {
                v["api"] = json!(r.api);
            }
            v
        })
        .collect()
}

/// ` (sendmsg: C of N; io_uring: C of N)` when io_uring runs are among the primary runs; empty
/// otherwise, so reports of sendmsg-only probes read as before.
fn per_api(live: &LiveProbe) -> String {
    if !primary_runs(live).any(|r| r.api == SendApi::IoUring) {
        return String::new();
    }
    let parts: Vec<String> = [SendApi::Sendmsg, SendApi::IoUring]
        .into_iter()
        .filter_map(|api| {
            let runs: Vec<&LiveRun> = primary_runs(live).filter(|r| r.api == api).collect();
            if runs.is_empty() {
                return None;
            }
            let sum =
                |f: fn(&LiveRun) -> u64| runs.iter().map(|r| f(r)).fold(0u64, u64::saturating_add);
            Some(format!(
                "{api}: {} of {}",
                sum(|r| r.copied),
                sum(|r| r.completions)
            ))
        })
        .collect();
    format!(" ({})", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::live::Totals;
    use crate::check::testing::{fixture, raised};
    use crate::evidence::SendApi;

    #[test]
    fn io_uring_runs_count_like_sendmsg_runs() {
        let mut ev = fixture("live-tap-copied");
        let live = ev.live.as_mut().expect("live");
        let before = Totals::of(live);
        for r in &mut live.runs {
            r.api = SendApi::IoUring;
            r.errors.insert("ENOMEM".into(), 2);
        }
        let after = Totals::of(live);
        assert_eq!(
            (after.copied, after.completions),
            (before.copied, before.completions)
        );
        assert_eq!(after.enomem, 2 * live.runs.len() as u64);
        let f = &raised(&ev, Code::LiveCopied)[0];
        assert!(f.summary.contains("(io_uring: "), "{}", f.summary);
        assert!(!raised(&ev, Code::ZerocopyEnomem).is_empty());
    }
}
