//! The live probe's result: what the kernel said about real sends (copied, ENOBUFS, missing
//! completions), whether the static findings explain it, and why nothing was sent when the
//! probe could not run.

use serde_json::{Value, json};

mod not_run;
mod proof;
pub mod summary;
mod uring;

pub use proof::{
    MIN_PROOF_COMPLETIONS, MIN_PROOF_SECONDS, MIN_TRANSMITTED_SHARE, Shortfall, shortfall,
};
use proof::{nothing_transmitted, sample_too_small};
use uring::io_uring_unavailable;

use super::findings::{Code, Findings};
use super::{cost, memory};
use crate::evidence::{Evidence, LiveProbe, LiveRun, NotRun, RunPattern, SendApi};

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

pub fn check(ev: &Evidence, out: &mut Findings) {
    let Some(live) = &ev.live else {
        return;
    };
    io_uring_unavailable(ev, live, out);
    let ring_enomem = live.io_uring.as_ref().map_or(0, |s| {
        s.ring_errors
            .iter()
            .chain(&s.setup_error)
            .chain(&s.register_buffers_error)
            .filter(|e| e.errno() == nix::errno::Errno::ENOMEM)
            .count() as u64
    });
    if live.not_run_cause == Some(NotRun::IoUringUnavailable) && ring_enomem > 0 {
        memory::check_enomem(ev, 0, ring_enomem, out);
        memory::check_memlock(ev, 0, ring_enomem, out);
    }
    if let Some(fact) = &live.not_run {
        not_run::not_run(ev, live, fact, out);
        return;
    }
    for run in live
        .runs
        .iter()
        .filter(|r| r.pattern == RunPattern::Oversize)
    {
        if run.copied > 0 {
            out.raise(
                Code::UdpFragmentation,
                format!(
                    "{}-byte datagrams (over the path MTU, no UDP_SEGMENT): {} of {} completions copied",
                    run.send_size, run.copied, run.completions
                ),
                json!({"send_size": run.send_size, "copied": run.copied, "completions": run.completions, "mtu": live.route.as_ref().and_then(|r| r.mtu)}),
                vec!["Send large buffers with UDP_SEGMENT (setsockopt SOL_UDP 103 or a cmsg) instead of one datagram over the MTU.".to_string()],
            );
        }
    }
    let totals = Totals::of(live);
    let gaps = shortfall(live);
    nothing_transmitted(ev, live, out);
    sample_too_small(ev, live, &gaps, totals, out);
    copies(ev, live, totals, gaps.is_empty(), out);
    memory::check_enobufs(ev, totals.enobufs, out);
    memory::check_enomem(ev, totals.enomem, ring_enomem, out);
    memory::check_memlock(ev, totals.enobufs, totals.enomem + ring_enomem, out);
    if totals.missing > 0 {
        out.raise(
            Code::CompletionsMissing,
            format!(
                "{} zerocopy sends had no completion after the grace period",
                totals.missing
            ),
            json!({"missing": totals.missing}),
            vec![format!("tc -s qdisc show dev {}", ev.interface)],
        );
    }
    cost::check(live, out);
    if totals.copied == 0 && totals.completions > 0 && gaps.is_empty() {
        out.pass(
            "live",
            format!(
                "live probe: {} zerocopy completions to {}, none copied",
                totals.completions, live.target
            ),
        );
    }
}

/// Copies seen live, held against the static findings raised before.
fn copies(ev: &Evidence, live: &LiveProbe, totals: Totals, proven: bool, out: &mut Findings) {
    let Totals {
        completions,
        copied,
        ..
    } = totals;
    let explained_by = out.codes_where(|c| c.explains_copies() && c != Code::UdpFragmentation);
    if copied > 0 {
        let fraction = copied as f64 / completions.max(1) as f64;
        let runs: Vec<Value> = live
            .runs
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
            .collect();
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
            json!({"target": live.target, "copied": copied, "completions": completions, "copied_fraction": fraction, "explained_by": explained_by, "runs": runs}),
            vec![if names.is_empty() {
                "See copies-unexplained for how to find the copier.".to_string()
            } else {
                format!("Fix {} (above); then run this probe again.", names.join(", "))
            }],
        );
        if explained_by.is_empty() {
            out.raise(
                Code::CopiesUnexplained,
                format!("{copied} copied completions, but no tap, offload or local-delivery finding explains them"),
                json!({"copied": copied, "completions": completions}),
                vec![
                    format!("While `zcdoctor check {} --target {}` runs, capture who copies: bpftrace -e 'kprobe:skb_copy_ubufs {{ @[kstack] = count(); }}'", ev.interface, live.target),
                    "Look for TX timestamping without SOF_TIMESTAMPING_OPT_TSONLY, tc actions that clone (mirred), IPsec without offload.".to_string(),
                ],
            );
        }
        return;
    }
    let predicted_by =
        out.blocking_codes_where(|c| c.predicts_copies() && c != Code::UdpFragmentation);
    if proven && completions > 0 && !predicted_by.is_empty() {
        let names: Vec<&str> = predicted_by.iter().map(|c| c.as_str()).collect();
        out.raise(
            Code::LiveContradictsPrediction,
            format!(
                "the live probe completed {completions} sends without a copy, although {} predicted copies",
                names.join(", ")
            ),
            json!({"completions": completions, "predicted_by": predicted_by}),
            vec!["Compare the probe's protocol, size and route with the application's; attach `zcdoctor snapshot` output to a bug report if they match.".to_string()],
        );
    }
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
    use super::*;
    use crate::check::testing::fixture;
    use crate::evidence::OsError;
    use crate::evidence::UringUnavailable;

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

    fn not_run_finding(cause: Option<NotRun>) -> crate::vocab::Finding {
        let mut ev = fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        live.not_run = Some("fact".to_string());
        live.not_run_cause = cause;
        live.runs.clear();
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, &mut out);
        out.findings.pop().expect("a finding")
    }

    #[test]
    fn local_route_is_local_delivery() {
        let f = not_run_finding(Some(NotRun::LocalRoute));
        assert_eq!(f.code, Code::LocalDelivery);
        assert!(
            f.summary.contains("is an address of this host"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn each_cause_gets_its_own_fix() {
        let refused = not_run_finding(Some(NotRun::Connect {
            error: Some(OsError::new("connect", nix::errno::Errno::ECONNREFUSED)),
            timed_out: false,
            interrupted: false,
        }));
        assert_eq!(refused.code, Code::LiveProbeNotRun);
        assert!(refused.remediation[0].contains("zcdoctor sink --listen"));
        let timed_out = not_run_finding(Some(NotRun::Connect {
            error: None,
            timed_out: true,
            interrupted: false,
        }));
        assert!(timed_out.remediation[0].contains("in time"));
        let interrupted = not_run_finding(Some(NotRun::Connect {
            error: None,
            timed_out: false,
            interrupted: true,
        }));
        assert!(interrupted.remediation[0].contains("interrupted"));
        assert!(!interrupted.remediation[0].contains("sink"));
        let other = not_run_finding(Some(NotRun::OtherDevice {
            device: "eth9".into(),
        }));
        assert!(other.remediation[0].starts_with("Choose a --target"));
    }

    #[test]
    fn nothing_transmitted_names_the_neighbour() {
        let mut ev = fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        for r in &mut live.runs {
            r.device_counters = Some(crate::evidence::DeviceCounters {
                device: "eth0".into(),
                kind: Some("veth".into()),
                before: Default::default(),
                after: crate::evidence::LinkCounters {
                    tx_packets: 3,
                    ..Default::default()
                },
            });
        }
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, &mut out);
        let f = out
            .findings
            .iter()
            .find(|f| f.code == Code::LiveNothingTransmitted)
            .expect("live-nothing-transmitted");
        assert_eq!(f.remediation[0], "ip neigh show 198.18.0.2 dev eth0");
        assert!(!out.passed.iter().any(|p| p.check == "live"));
        // An ifb counts what it is given to transmit as received.
        let mut ev = fixture("live-clean");
        for r in &mut ev.live.as_mut().expect("live").runs {
            r.device_counters = Some(crate::evidence::DeviceCounters {
                device: "ifbz".into(),
                kind: Some("ifb".into()),
                before: Default::default(),
                after: crate::evidence::LinkCounters {
                    rx_packets: r.sends,
                    ..Default::default()
                },
            });
        }
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, &mut out);
        assert!(!out.has(Code::LiveNothingTransmitted));
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

    fn unavailable(why: UringUnavailable) -> crate::vocab::Finding {
        let mut ev = fixture("live-uring-disabled-sysctl");
        let live = ev.live.as_mut().expect("live");
        if let Some(s) = live.io_uring.as_mut() {
            s.unavailable = Some(why);
        }
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, &mut out);
        assert!(!out.has(Code::LiveProbeNotRun));
        out.findings
            .into_iter()
            .find(|f| f.code == Code::IoUringUnavailable)
            .expect("io-uring-unavailable")
    }

    #[test]
    fn each_io_uring_cause_is_said() {
        let f = unavailable(UringUnavailable::DisabledBySysctl { value: 2 });
        assert!(
            f.summary.contains("kernel.io_uring_disabled = 2"),
            "{}",
            f.summary
        );
        assert!(f.remediation[0].starts_with("sysctl -w kernel.io_uring_disabled=0"));
        let f = unavailable(UringUnavailable::DisabledBySysctl { value: 1 });
        assert!(f.summary.contains("kernel.io_uring_group"), "{}", f.summary);
        let f = unavailable(UringUnavailable::Blocked);
        assert!(f.summary.contains("seccomp"), "{}", f.summary);
        let f = unavailable(UringUnavailable::NoSendZc);
        assert!(
            f.summary.contains("Linux 6.18 has no IORING_OP_SEND_ZC"),
            "{}",
            f.summary
        );
        let f = unavailable(UringUnavailable::NoReportUsage);
        assert!(f.summary.contains("(added in Linux 6.2)"), "{}", f.summary);
        let f = unavailable(UringUnavailable::NoSyscall);
        assert!(f.summary.contains("no io_uring_setup"), "{}", f.summary);
    }

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
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, &mut out);
        let f = out
            .findings
            .iter()
            .find(|f| f.code == Code::LiveCopied)
            .expect("live-copied");
        assert!(f.summary.contains("(io_uring: "), "{}", f.summary);
        assert!(out.has(Code::ZerocopyEnomem));
    }
}
