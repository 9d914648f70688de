//! The live probe's result: what the kernel said about real sends (copied, ENOBUFS, missing
//! completions), whether the static findings explain it, and why nothing was sent when the
//! probe could not run.

use serde_json::{Value, json};

use crate::report::Severity;

use super::findings::{Code, Findings};
use super::{cost, memory, path};
use crate::evidence::{
    Evidence, LiveProbe, LiveRun, MIN_TIMED_SECONDS, NotRun, PhaseEnd, RouteType, RunPattern,
    SendApi, UringUnavailable,
};

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
        if r.completions < MIN_PROOF_COMPLETIONS || seconds < MIN_PROOF_SECONDS {
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
        not_run(ev, live, fact, out);
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
    let predicted_by = out.codes_where(|c| c.predicts_copies() && c != Code::UdpFragmentation);
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

/// `--api io_uring` or `both` was asked for and io_uring cannot run or cannot report copies:
/// what is missing, from the probe's facts and the kernel version.
fn io_uring_unavailable(ev: &Evidence, live: &LiveProbe, out: &mut Findings) {
    let Some(s) = &live.io_uring else {
        return;
    };
    let Some(why) = &s.unavailable else {
        return;
    };
    let kernel = ev
        .kernel
        .version
        .map_or_else(|| "this kernel".to_string(), |v| format!("Linux {v}"));
    let err = |e: &Option<crate::evidence::OsError>| {
        e.as_ref().map_or(String::new(), |e| format!(" ({e})"))
    };
    let (summary, fix) = match why {
        UringUnavailable::DisabledBySysctl { value } => (
            format!(
                "io_uring is disabled by kernel.io_uring_disabled = {value}{}: {}",
                err(&s.setup_error),
                if *value >= 2 {
                    "no process may create a ring"
                } else {
                    "only members of kernel.io_uring_group and CAP_SYS_ADMIN may create a ring"
                }
            ),
            format!(
                "sysctl -w kernel.io_uring_disabled=0{}, if io_uring is wanted on this host; otherwise prove the path with `--api sendmsg`.",
                if *value == 1 {
                    " (or add the prober to the group in kernel.io_uring_group)"
                } else {
                    ""
                }
            ),
        ),
        UringUnavailable::Blocked => (
            format!(
                "io_uring_setup was refused{} although kernel.io_uring_disabled is {}: a seccomp filter (container runtimes block io_uring by default) or an LSM blocks it",
                err(&s.setup_error),
                s.disabled_sysctl.map_or("absent".to_string(), |v| v.to_string())
            ),
            "Run the probe outside the container, or with a seccomp profile that allows io_uring_setup, io_uring_enter and io_uring_register (e.g. `docker run --security-opt seccomp=PROFILE`).".to_string(),
        ),
        UringUnavailable::NoSyscall => (
            format!("{kernel} has no io_uring_setup{} (CONFIG_IO_URING off, or a filter answering ENOSYS)", err(&s.setup_error)),
            "Use a kernel built with CONFIG_IO_URING (6.2+ for copy reports); prove the path with `--api sendmsg` meanwhile.".to_string(),
        ),
        UringUnavailable::SetupFailed
            if s.setup_error.as_ref().map(|e| e.errno()) == Some(nix::errno::Errno::ENOMEM) =>
        {
            (
                format!(
                    "io_uring_setup failed{}: the ring's memory counts against RLIMIT_MEMLOCK of processes without CAP_IPC_LOCK",
                    err(&s.setup_error)
                ),
                "Raise the prober's locked-memory limit (`ulimit -l unlimited`) or run it with CAP_IPC_LOCK, then probe again.".to_string(),
            )
        }
        UringUnavailable::SetupFailed => (
            format!("io_uring_setup failed{}", err(&s.setup_error)),
            "Fix what the error names, then probe again.".to_string(),
        ),
        UringUnavailable::NoSendZc => (
            format!("{kernel} has no IORING_OP_SEND_ZC (added in Linux 6.0): io_uring applications cannot send zerocopy here"),
            "Run Linux 6.2 or newer for io_uring zerocopy with copy reports.".to_string(),
        ),
        UringUnavailable::NoReportUsage => (
            format!(
                "{kernel} has IORING_OP_SEND_ZC but refuses IORING_SEND_ZC_REPORT_USAGE{} (added in Linux 6.2): nobody can see whether io_uring zerocopy sends are copied",
                err(&s.report_usage_error)
            ),
            "Run Linux 6.2 or newer to see io_uring copies; the sendmsg probe (`--api sendmsg`) shows the same path's copies meanwhile.".to_string(),
        ),
    };
    out.raise(
        Code::IoUringUnavailable,
        summary,
        json!({"cause": why, "io_uring": s, "kernel": ev.kernel.version.map(|v| v.to_string()), "api": live.api}),
        vec![fix],
    );
}

/// Sends completed but the egress device transmitted far fewer packets: they were dropped
/// before it, most often while waiting for an unresolved neighbour.
fn nothing_transmitted(ev: &Evidence, live: &LiveProbe, out: &mut Findings) {
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
fn sample_too_small(
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

/// Nothing was sent: a local target is itself the diagnosis; anything else says what to change.
fn not_run(ev: &Evidence, live: &LiveProbe, fact: &str, out: &mut Findings) {
    let local = match &live.not_run_cause {
        Some(cause) => *cause == NotRun::LocalRoute,
        // Recordings made before the cause was recorded.
        None => live
            .route
            .as_ref()
            .is_some_and(|r| r.route_type == RouteType::Local),
    };
    if live.not_run_cause == Some(NotRun::IoUringUnavailable) {
        // io-uring-unavailable (raised above) says what is missing.
        return;
    }
    if local {
        if !out.has(Code::LocalDelivery) {
            path::raise_local_delivery(ev, path::LocalDelivery::Target(live), out);
        }
        return;
    }
    out.raise(
        Code::LiveProbeNotRun,
        fact.to_string(),
        json!({"target": live.target, "route": live.route, "cause": live.not_run_cause}),
        vec![not_run_fix(ev, live)],
    );
}

/// What the operator changes so the probe can send, by the cause the probe recorded.
fn not_run_fix(ev: &Evidence, live: &LiveProbe) -> String {
    let iface = &ev.interface;
    let target = &live.target;
    let choose = format!(
        "Choose a --target whose route leaves through {iface} (`ip route get ADDR` shows the device)."
    );
    match &live.not_run_cause {
        None
        | Some(
            NotRun::OtherDevice { .. }
            | NotRun::NoDevice
            | NotRun::LocalRoute
            | NotRun::IoUringUnavailable,
        ) => choose,
        Some(NotRun::NotUnicast { route_type }) => format!(
            "The route to {target} is {route_type}; the probe sends only unicast traffic. {choose}"
        ),
        Some(NotRun::RouteLookup { .. }) => format!(
            "Add a route to {target} through {iface}, or choose a --target this host can reach (`ip route get ADDR`)."
        ),
        Some(NotRun::Socket { error }) => match error.errno() {
            nix::errno::Errno::EPERM | nix::errno::Errno::EACCES => format!(
                "Run the probe as root (binding to {iface} needs CAP_NET_RAW), or from the namespace that owns it."
            ),
            nix::errno::Errno::ENOPROTOOPT | nix::errno::Errno::EOPNOTSUPP => {
                "This kernel refuses SO_ZEROCOPY for this socket: see `zcdoctor explain kernel-too-old`.".to_string()
            }
            _ => format!("The probe's socket could not be set up ({error}); fix that, then probe again."),
        },
        Some(NotRun::Connect {
            interrupted: true, ..
        }) => "The probe was interrupted while connecting; run it again and let it finish.".to_string(),
        Some(NotRun::Connect {
            timed_out: true, ..
        }) => format!(
            "Nothing answered {target} in time: check that the host is up and no firewall drops the connection, and that `zcdoctor sink --listen {target}` runs there."
        ),
        Some(NotRun::Connect { .. }) => format!(
            "Start the receiver first: `zcdoctor sink --listen {target}` on the target host, then probe again."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::fixture;
    use crate::evidence::OsError;

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
        let report = crate::check::diagnose(&ev, crate::evidence::Protocol::Udp);
        assert_eq!(report.verdict.zerocopy, crate::report::Zerocopy::Yes);
        assert!(!report.verdict.summary.contains("no completions"));
    }

    fn not_run_finding(cause: Option<NotRun>) -> crate::report::Finding {
        let mut ev = fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        live.not_run = Some("fact".to_string());
        live.not_run_cause = cause;
        live.runs.clear();
        let mut out = Findings::new();
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
        let mut out = Findings::new();
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
        let mut out = Findings::new();
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

    fn unavailable(why: UringUnavailable) -> crate::report::Finding {
        let mut ev = fixture("live-uring-disabled-sysctl");
        let live = ev.live.as_mut().expect("live");
        if let Some(s) = live.io_uring.as_mut() {
            s.unavailable = Some(why);
        }
        let mut out = Findings::new();
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
        let mut out = Findings::new();
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
