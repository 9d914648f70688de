//! The Report: what the renderers print. Built from Evidence by the checks; field names of its
//! JSON form are public contract (`schema_version` 1).

pub mod watch;

use serde::{Deserialize, Serialize};

use crate::evidence::{
    Device, Evidence, LiveProbe, PathEvidence, ProbeStatus, ProcessEvidence, Protocol, RunPattern,
    Serving, TapScan,
};
use crate::kernel::KernelFeatureState;
use crate::vocab::{Finding, Passed, ProcessNote, Severity};

pub const SCHEMA_VERSION: u32 = 1;

/// The JSON Schema of a report (`zcdoctor schema`, committed as schema/report.schema.json),
/// generated from the types.
pub fn json_schema() -> schemars::Schema {
    schemars::schema_for!(Report)
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
    /// The diagnosed namespace's netfilter queue rules and bound queues, when the `nfqueue`
    /// probe ran (each path segment's are in `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfqueue: Option<crate::evidence::NfQueueScan>,
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
    /// The vsock live probe (`--target vsock:CID:PORT`), when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock_probe: Option<crate::evidence::VsockProbe>,
    /// Totals, rates and gains derived from `live_probe` (present when it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_summary: Option<LiveSummary>,
    /// Applications diagnosed by pid (`--pid`), as read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessEvidence>,
    /// Background on each process of `processes`, whatever the findings: QEMU's migration
    /// channels and counter (`qemu`), `zcdoctor watch --pid PID` for one with zerocopy sockets
    /// (`watch`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub process_notes: Vec<ProcessNote>,
    /// `zcdoctor watch`: each copy the kernel made during the window, by cause and sender, and
    /// each sender's copied fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<watch::WatchSummary>,
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
    /// The report of `evidence`: what the checks found (`diagnosis`) beside the evidence
    /// itself.
    pub fn new(evidence: &Evidence, protocol: Protocol, diagnosis: Diagnosis) -> Report {
        let Diagnosis {
            findings,
            passed,
            process_notes,
            verdict,
            live_summary,
            watch,
        } = diagnosis;
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
            nfqueue: evidence.nfqueue.clone(),
            path: evidence.path.clone(),
            serving: evidence.serving.clone(),
            unpeered: evidence.unpeered.clone(),
            live_probe: evidence.live.clone(),
            vsock_probe: evidence.vsock.clone(),
            live_summary,
            processes: evidence.processes.clone(),
            process_notes,
            watch,
        }
    }

    /// The worst severity among the findings.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// What the checks make of an Evidence: the report's judgement, beside the evidence itself.
pub struct Diagnosis {
    /// Ranked: blockers first.
    pub findings: Vec<Finding>,
    pub passed: Vec<Passed>,
    /// Background on the processes diagnosed by pid.
    pub process_notes: Vec<ProcessNote>,
    pub verdict: Verdict,
    pub live_summary: Option<LiveSummary>,
    /// `zcdoctor watch`: its counts, attributed.
    pub watch: Option<watch::WatchSummary>,
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
