//! The live probe's result: what the kernel said about real sends (copied, ENOBUFS, missing
//! completions), whether the static findings explain it, and why nothing was sent when the
//! probe could not run.

use serde_json::{Value, json};

use super::findings::{Code, Findings};
use super::{cost, memory, path};
use crate::evidence::{Evidence, LiveProbe, LiveRun, NotRun, RouteType, RunPattern};

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
}

impl Totals {
    pub fn of(live: &LiveProbe) -> Totals {
        let sum = |it: &mut dyn Iterator<Item = u64>| it.fold(0u64, u64::saturating_add);
        Totals {
            completions: sum(&mut primary_runs(live).map(|r| r.completions)),
            copied: sum(&mut primary_runs(live).map(|r| r.copied)),
            enobufs: sum(&mut live.runs.iter().map(|r| r.enobufs)),
            missing: sum(&mut live.runs.iter().map(|r| r.missing)),
        }
    }
}

pub fn check(ev: &Evidence, out: &mut Findings) {
    let Some(live) = &ev.live else {
        return;
    };
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
    copies(ev, live, totals, out);
    memory::check_enobufs(ev, totals.enobufs, out);
    memory::check_memlock(ev, totals.enobufs, out);
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
    if totals.copied == 0 && totals.completions > 0 {
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
fn copies(ev: &Evidence, live: &LiveProbe, totals: Totals, out: &mut Findings) {
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
                json!({
                    "pattern": r.pattern, "send_size": r.send_size, "sends": r.sends,
                    "completions": r.completions, "copied": r.copied, "enobufs": r.enobufs,
                    "missing": r.missing, "gain": r.gain(),
                })
            })
            .collect();
        let names: Vec<&str> = explained_by.iter().map(|c| c.as_str()).collect();
        out.raise(
            Code::LiveCopied,
            format!(
                "{copied} of {completions} zerocopy completions to {} were copied ({:.0}%){}",
                live.target,
                fraction * 100.0,
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
    if completions > 0 && !predicted_by.is_empty() {
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
        None | Some(NotRun::OtherDevice { .. } | NotRun::NoDevice | NotRun::LocalRoute) => choose,
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
