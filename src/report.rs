//! The Report: what the renderers print. Built from Evidence by the checks; field names of its
//! JSON form are public contract (`schema_version` 1).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::check::Code;
use crate::check::live::{Totals, primary_runs};
use crate::evidence::{
    Device, Evidence, LiveProbe, LiveRun, PathEvidence, Phase, ProbeStatus, ProcessEvidence,
    Protocol, RunPattern, Serving, TapScan,
};
use crate::kernel::KernelFeatureState;

pub const SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of a report (`zcdoctor schema`, committed as schema/report.schema.json),
/// generated from the types.
pub fn json_schema() -> schemars::Schema {
    schemars::schema_for!(Report)
}

#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Blocker,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Blocker => "blocker",
        }
    }
}

/// One diagnosis: a stable code, how bad it is, what showed it, and how to fix it here.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub title: String,
    /// One line naming what was seen, with the actual device/pid/values.
    pub summary: String,
    /// Background an operator needs to act (for a tap: what the owning daemon is and why it
    /// holds the socket).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The observed facts that triggered the finding (keys depend on the code).
    pub evidence: Map<String, Value>,
    /// Concrete steps, naming the actual device, pid and command.
    pub remediation: Vec<String>,
}

/// A check that found nothing wrong, shown briefly.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Passed {
    pub check: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Zerocopy {
    Yes,
    No,
    Unknown,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// From the findings; no live probe was asked for.
    Predicted,
    /// Proven by the live probe.
    Live,
    /// A live probe was asked for (`--target`) and did not prove the verdict (it did not send,
    /// sent too little, was interrupted, or nothing left the device): `zerocopy` is the
    /// prediction, never `yes`. `zcdoctor check` exits 3 unless a finding gives 1.
    Unproven,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Verdict {
    pub zerocopy: Zerocopy,
    pub basis: Basis,
    /// One sentence an operator can act on.
    pub summary: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct HostSummary {
    pub hostname: String,
    pub kernel: String,
    #[serde(default)]
    pub os: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub host: HostSummary,
    pub interface: String,
    pub protocol: Protocol,
    pub stack: Vec<Device>,
    pub kernel_features: Vec<KernelFeatureState>,
    pub verdict: Verdict,
    /// Ranked: blockers first.
    pub findings: Vec<Finding>,
    pub passed: Vec<Passed>,
    pub probes: Vec<ProbeStatus>,
    /// Every packet socket seen (including harmless ones), when the tap probe ran.
    pub taps: Option<TapScan>,
    /// `check --pid` without an interface: the process's sockets this path carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<Serving>,
    /// `check --pid` without an interface: zerocopy sockets with no peer, whose path is not
    /// followed (see the evidence field of the same name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpeered: Vec<String>,
    /// The path beyond the diagnosed stack, when the path probe followed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathEvidence>,
    pub live_probe: Option<LiveProbe>,
    /// Totals, rates and gains derived from `live_probe` (present when it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_summary: Option<LiveSummary>,
    /// Applications diagnosed by pid (`--pid`), as read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessEvidence>,
}

/// Kernel features the live probe tried (io_uring's opcode probe and its copy report): the
/// kernel's answer outranks its version.
fn probed_features(evidence: &Evidence) -> Vec<(&'static str, bool)> {
    let Some(u) = evidence.live.as_ref().and_then(|l| l.io_uring.as_ref()) else {
        return Vec::new();
    };
    [
        ("io-uring-send-zc", u.op_send_zc),
        ("io-uring-zc-copied-report", u.report_usage),
    ]
    .into_iter()
    .filter_map(|(id, answer)| Some((id, answer?)))
    .collect()
}

impl Report {
    pub fn new(
        evidence: &Evidence,
        protocol: Protocol,
        findings: Vec<Finding>,
        passed: Vec<Passed>,
        verdict: Verdict,
    ) -> Report {
        Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: env!("CARGO_PKG_NAME").to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
            },
            host: HostSummary {
                hostname: evidence.host.hostname.clone(),
                kernel: evidence.kernel.release.clone(),
                os: evidence.host.os.clone(),
            },
            interface: evidence.interface.clone(),
            protocol,
            stack: evidence.stack.clone(),
            kernel_features: crate::kernel::feature_table(
                evidence.kernel.version,
                &probed_features(evidence),
            ),
            verdict,
            findings,
            passed,
            probes: evidence.probes.clone(),
            taps: evidence.taps.clone(),
            path: evidence.path.clone(),
            serving: evidence.serving.clone(),
            unpeered: evidence.unpeered.clone(),
            live_probe: evidence.live.clone(),
            live_summary: evidence.live.as_ref().map(LiveSummary::of),
            processes: evidence.processes.clone(),
        }
    }

    /// The worst severity among the findings.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// What the live probe's runs add up to: derived from `live_probe` when the report is made
/// (recordings do not carry it). The primary runs are every run but `oversize` (an experiment).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct LiveSummary {
    /// Zerocopy sends the kernel accepted, over the primary runs.
    pub sends: u64,
    /// Completions received, over the primary runs.
    pub completions: u64,
    /// Of those, copied (`SO_EE_CODE_ZEROCOPY_COPIED`).
    pub copied: u64,
    /// Sends still without a completion after the grace period, over every run.
    pub missing: u64,
    /// Sends refused with ENOBUFS, over every run.
    pub enobufs: u64,
    /// `copied / completions`, 0 to 1; `null` without completions.
    pub copied_ratio: Option<f64>,
    /// Zerocopy throughput over copy throughput, all primary runs whose phases were timed
    /// enough taken together (total bytes over total seconds of each phase); `null` when none
    /// was.
    pub gain: Option<f64>,
    /// Zerocopy bytes per CPU-second over copy bytes per CPU-second, taken together the same
    /// way; `null` when no run was timed enough.
    pub cpu_gain: Option<f64>,
    /// One entry per entry of `live_probe.runs`, in the same order.
    pub runs: Vec<RunSummary>,
}

/// Rates and gains of one live-probe run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct RunSummary {
    pub pattern: RunPattern,
    /// Bytes per send call.
    pub send_size: usize,
    /// `copied / completions`, 0 to 1; `null` without completions.
    pub copied_ratio: Option<f64>,
    /// Zerocopy throughput over copy throughput; `null` unless both phases were timed enough
    /// (at least 0.1 s and 100 sends each).
    pub gain: Option<f64>,
    /// Zerocopy bytes per CPU-second over copy bytes per CPU-second; `null` as for `gain`.
    pub cpu_gain: Option<f64>,
    /// The same traffic without MSG_ZEROCOPY.
    pub copy_phase: Option<PhaseSummary>,
    /// With MSG_ZEROCOPY.
    pub zerocopy_phase: Option<PhaseSummary>,
}

/// Rates of one phase of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct PhaseSummary {
    /// Bytes sent per second of the phase.
    pub bytes_per_sec: f64,
    /// CPU time of the sending thread, system and user, in seconds.
    pub cpu_seconds: f64,
    /// Bytes sent per CPU-second of the sending thread; 0 when no CPU time was accounted.
    pub bytes_per_cpu_second: f64,
}

/// A finite number, or `None` (serde would write NaN and infinities as `null` anyway).
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl PhaseSummary {
    fn of(p: &Phase) -> PhaseSummary {
        PhaseSummary {
            bytes_per_sec: finite(p.bytes_per_second()).unwrap_or(0.0),
            cpu_seconds: finite(p.cpu_system_seconds + p.cpu_user_seconds).unwrap_or(0.0),
            bytes_per_cpu_second: finite(p.bytes_per_cpu_second()).unwrap_or(0.0),
        }
    }
}

impl RunSummary {
    fn of(r: &LiveRun) -> RunSummary {
        RunSummary {
            pattern: r.pattern,
            send_size: r.send_size,
            copied_ratio: ratio(r.copied, r.completions),
            gain: r.gain().and_then(finite),
            cpu_gain: r.cpu_gain().and_then(finite),
            copy_phase: r.copy_phase.as_ref().map(PhaseSummary::of),
            zerocopy_phase: r.zerocopy_phase.as_ref().map(PhaseSummary::of),
        }
    }
}

impl LiveSummary {
    pub fn of(live: &LiveProbe) -> LiveSummary {
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
            runs: live.runs.iter().map(RunSummary::of).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    fn live(runs: Vec<LiveRun>) -> LiveProbe {
        LiveProbe {
            protocol: Protocol::Udp,
            target: "198.18.0.2:9".into(),
            route: None,
            not_run: None,
            not_run_cause: None,
            runs,
            interrupted: false,
            notes: vec![],
            contention: None,
            api: Default::default(),
            io_uring: None,
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
        let s = LiveSummary::of(&l);
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
        let s = LiveSummary::of(&l);
        assert_eq!((s.gain, s.cpu_gain, s.runs[0].gain), (None, None, None));
        let empty = LiveSummary::of(&live(vec![]));
        assert_eq!((empty.copied_ratio, empty.gain), (None, None));
    }
}
