//! The Report: what the renderers print. Built from Evidence by the checks; field names of its
//! JSON form are public contract (`schema_version` 1).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::check::Code;
use crate::evidence::{
    Device, Evidence, LiveProbe, PathEvidence, ProbeStatus, ProcessEvidence, Protocol, TapScan,
};
use crate::kernel::KernelFeatureState;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Passed {
    pub check: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Zerocopy {
    Yes,
    No,
    Unknown,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    pub zerocopy: Zerocopy,
    pub basis: Basis,
    /// One sentence an operator can act on.
    pub summary: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostSummary {
    pub hostname: String,
    pub kernel: String,
    #[serde(default)]
    pub os: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// The path beyond the diagnosed stack, when the path probe followed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathEvidence>,
    pub live_probe: Option<LiveProbe>,
    /// Applications diagnosed by pid (`--pid`), as read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessEvidence>,
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
            kernel_features: crate::kernel::feature_table(evidence.kernel.version),
            verdict,
            findings,
            passed,
            probes: evidence.probes.clone(),
            taps: evidence.taps.clone(),
            path: evidence.path.clone(),
            live_probe: evidence.live.clone(),
            processes: evidence.processes.clone(),
        }
    }

    /// The worst severity among the findings.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}
