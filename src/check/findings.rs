//! Finding codes and the collector the checks push into.
//!
//! [`Code`] is the public contract: dashboards and CI gates key on the kebab-case names, which
//! never change (a test pins them). Each code has one entry in `checks/findings.toml` (title,
//! usual severity, meaning, why, fix); [`Findings`] takes the title and the usual severity from
//! there, so a check only says what it saw and what to do about it here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::knowledge::Knowledge;
use crate::report::{Finding, Passed, Severity};

/// Every finding zcdoctor can raise.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    KernelTooOld,
    NoScatterGather,
    NoTxChecksum,
    LocalDelivery,
    VethPath,
    OptmemLow,
    MemlockLimit,
    DeviceDown,
    FeaturesUnreadable,
    LowerDeviceElsewhere,
    TapForcesCopy,
    TapIgnoresOutgoing,
    TapUnknownSetting,
    TapsNotChecked,
    UdpFragmentation,
    LiveCopied,
    CopiesUnexplained,
    LiveContradictsPrediction,
    ZerocopyEnobufs,
    ZerocopySlower,
    CompletionsMissing,
    LiveProbeNotRun,
    PathIncomplete,
    LiveSampleTooSmall,
    LiveNothingTransmitted,
    LiveTimingUnreliable,
    ZerocopyNotRequested,
    ErrqueueNotDrained,
    ProcessMemlockLimit,
    IoUringInUse,
    IoUringUnavailable,
    ZerocopyEnomem,
    TunnelEncrypts,
    TunnelMtuFragments,
}

impl Code {
    /// Every code, in the order `zcdoctor checks` lists them.
    pub const ALL: [Code; 34] = [
        Code::KernelTooOld,
        Code::NoScatterGather,
        Code::NoTxChecksum,
        Code::LocalDelivery,
        Code::VethPath,
        Code::OptmemLow,
        Code::MemlockLimit,
        Code::DeviceDown,
        Code::FeaturesUnreadable,
        Code::LowerDeviceElsewhere,
        Code::TapForcesCopy,
        Code::TapIgnoresOutgoing,
        Code::TapUnknownSetting,
        Code::TapsNotChecked,
        Code::UdpFragmentation,
        Code::LiveCopied,
        Code::CopiesUnexplained,
        Code::LiveContradictsPrediction,
        Code::ZerocopyEnobufs,
        Code::ZerocopySlower,
        Code::CompletionsMissing,
        Code::LiveProbeNotRun,
        Code::PathIncomplete,
        Code::LiveSampleTooSmall,
        Code::LiveNothingTransmitted,
        Code::LiveTimingUnreliable,
        Code::ZerocopyNotRequested,
        Code::ErrqueueNotDrained,
        Code::ProcessMemlockLimit,
        Code::IoUringInUse,
        Code::IoUringUnavailable,
        Code::ZerocopyEnomem,
        Code::TunnelEncrypts,
        Code::TunnelMtuFragments,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::KernelTooOld => "kernel-too-old",
            Code::NoScatterGather => "no-scatter-gather",
            Code::NoTxChecksum => "no-tx-checksum",
            Code::LocalDelivery => "local-delivery",
            Code::VethPath => "veth-path",
            Code::OptmemLow => "optmem-low",
            Code::MemlockLimit => "memlock-limit",
            Code::DeviceDown => "device-down",
            Code::FeaturesUnreadable => "features-unreadable",
            Code::LowerDeviceElsewhere => "lower-device-elsewhere",
            Code::TapForcesCopy => "tap-forces-copy",
            Code::TapIgnoresOutgoing => "tap-ignores-outgoing",
            Code::TapUnknownSetting => "tap-unknown-setting",
            Code::TapsNotChecked => "taps-not-checked",
            Code::UdpFragmentation => "udp-fragmentation",
            Code::LiveCopied => "live-copied",
            Code::CopiesUnexplained => "copies-unexplained",
            Code::LiveContradictsPrediction => "live-contradicts-prediction",
            Code::ZerocopyEnobufs => "zerocopy-enobufs",
            Code::ZerocopySlower => "zerocopy-slower",
            Code::CompletionsMissing => "completions-missing",
            Code::LiveProbeNotRun => "live-probe-not-run",
            Code::PathIncomplete => "path-incomplete",
            Code::LiveSampleTooSmall => "live-sample-too-small",
            Code::LiveNothingTransmitted => "live-nothing-transmitted",
            Code::LiveTimingUnreliable => "live-timing-unreliable",
            Code::ZerocopyNotRequested => "zerocopy-not-requested",
            Code::ErrqueueNotDrained => "errqueue-not-drained",
            Code::ProcessMemlockLimit => "process-memlock-limit",
            Code::IoUringInUse => "io-uring-in-use",
            Code::IoUringUnavailable => "io-uring-unavailable",
            Code::ZerocopyEnomem => "zerocopy-enomem",
            Code::TunnelEncrypts => "tunnel-encrypts",
            Code::TunnelMtuFragments => "tunnel-mtu-fragments",
        }
    }

    /// Codes whose finding predicts that sends are copied.
    pub fn predicts_copies(self) -> bool {
        matches!(
            self,
            Code::NoScatterGather
                | Code::NoTxChecksum
                | Code::LocalDelivery
                | Code::TapForcesCopy
                | Code::UdpFragmentation
                | Code::KernelTooOld
                | Code::TunnelEncrypts
                | Code::TunnelMtuFragments
        )
    }

    /// Codes that can explain copies seen live: the predictors, `veth-path` (some traffic
    /// through a veth is copied), and `tap-unknown-setting` (a tap on the path whose setting
    /// could not be read is the first suspect, before any tracing).
    pub fn explains_copies(self) -> bool {
        self.predicts_copies() || matches!(self, Code::VethPath | Code::TapUnknownSetting)
    }

    /// Codes that say part of the path could not be inspected.
    pub fn leaves_path_uncertain(self) -> bool {
        matches!(
            self,
            Code::TapsNotChecked
                | Code::TapUnknownSetting
                | Code::FeaturesUnreadable
                | Code::PathIncomplete
        )
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Code {
    type Err = String;
    fn from_str(s: &str) -> Result<Code, String> {
        Code::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown finding code {s:?}"))
    }
}

/// Collects findings and passed checks; titles and usual severities come from the knowledge
/// base.
pub struct Findings {
    kb: &'static Knowledge,
    pub(super) findings: Vec<Finding>,
    pub(super) passed: Vec<Passed>,
}

impl Findings {
    pub fn new() -> Findings {
        Findings {
            kb: Knowledge::get(),
            findings: Vec::new(),
            passed: Vec::new(),
        }
    }

    /// Raises `code` with its usual severity.
    pub fn raise(
        &mut self,
        code: Code,
        summary: String,
        evidence: Value,
        remediation: Vec<String>,
    ) -> &mut Finding {
        self.push(code, None, summary, evidence, remediation)
    }

    /// Raises `code` with a severity the evidence decided (higher or lower than usual).
    pub fn raise_as(
        &mut self,
        code: Code,
        severity: Severity,
        summary: String,
        evidence: Value,
        remediation: Vec<String>,
    ) -> &mut Finding {
        self.push(code, Some(severity), summary, evidence, remediation)
    }

    fn push(
        &mut self,
        code: Code,
        severity: Option<Severity>,
        summary: String,
        evidence: Value,
        remediation: Vec<String>,
    ) -> &mut Finding {
        let entry = self.kb.entry(code);
        let evidence = match evidence {
            Value::Object(map) => map,
            other => {
                let mut map = Map::new();
                map.insert("value".into(), other);
                map
            }
        };
        let index = self.findings.len();
        self.findings.push(Finding {
            code,
            severity: severity
                .or(entry.map(|e| e.severity))
                .unwrap_or(Severity::Warning),
            title: entry.map(|e| e.title.clone()).unwrap_or_default(),
            summary,
            notes: Vec::new(),
            evidence,
            remediation,
        });
        &mut self.findings[index]
    }

    /// A check that found nothing wrong; `check` names it in the report's `passed` list.
    pub fn pass(&mut self, check: &str, detail: String) {
        self.passed.push(Passed {
            check: check.to_string(),
            detail,
        });
    }

    pub fn has(&self, code: Code) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }

    /// The codes raised so far as blockers that satisfy `pred`, each once, in the order raised:
    /// firm predictions (a warning says what may happen, such as a tap on one of a hashing
    /// bond's slaves).
    pub fn blocking_codes_where(&self, pred: impl Fn(Code) -> bool) -> Vec<Code> {
        let mut codes: Vec<Code> = Vec::new();
        for f in &self.findings {
            if f.severity == Severity::Blocker && pred(f.code) && !codes.contains(&f.code) {
                codes.push(f.code);
            }
        }
        codes
    }

    /// The codes raised so far that satisfy `pred`, each once, in the order raised.
    pub fn codes_where(&self, pred: impl Fn(Code) -> bool) -> Vec<Code> {
        let mut codes: Vec<Code> = Vec::new();
        for f in &self.findings {
            if pred(f.code) && !codes.contains(&f.code) {
                codes.push(f.code);
            }
        }
        codes
    }
}

impl Default for Findings {
    fn default() -> Self {
        Findings::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public contract: dashboards key on these names. Changing one is a breaking change.
    #[test]
    fn public_codes_are_pinned() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "completions-missing",
                "copies-unexplained",
                "device-down",
                "errqueue-not-drained",
                "features-unreadable",
                "io-uring-in-use",
                "io-uring-unavailable",
                "kernel-too-old",
                "live-contradicts-prediction",
                "live-copied",
                "live-nothing-transmitted",
                "live-probe-not-run",
                "live-sample-too-small",
                "live-timing-unreliable",
                "local-delivery",
                "lower-device-elsewhere",
                "memlock-limit",
                "no-scatter-gather",
                "no-tx-checksum",
                "optmem-low",
                "path-incomplete",
                "process-memlock-limit",
                "tap-forces-copy",
                "tap-ignores-outgoing",
                "tap-unknown-setting",
                "taps-not-checked",
                "tunnel-encrypts",
                "tunnel-mtu-fragments",
                "udp-fragmentation",
                "veth-path",
                "zerocopy-enobufs",
                "zerocopy-enomem",
                "zerocopy-not-requested",
                "zerocopy-slower",
            ]
        );
    }

    #[test]
    fn serde_names_are_the_public_names() {
        for code in Code::ALL {
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(code.as_str().parse::<Code>(), Ok(code));
        }
        assert!("tap-forces-copies".parse::<Code>().is_err());
    }

    #[test]
    fn collector_takes_title_and_severity_from_the_knowledge_base() {
        let mut f = Findings::new();
        f.raise(Code::OptmemLow, "s".into(), serde_json::json!({}), vec![]);
        f.raise_as(
            Code::TapForcesCopy,
            Severity::Warning,
            "s".into(),
            serde_json::json!(1),
            vec![],
        );
        assert_eq!(f.findings[0].severity, Severity::Warning);
        assert!(!f.findings[0].title.is_empty());
        assert_eq!(f.findings[1].severity, Severity::Warning);
        assert_eq!(
            f.findings[1].evidence.get("value"),
            Some(&serde_json::json!(1))
        );
        assert_eq!(
            f.codes_where(Code::predicts_copies),
            vec![Code::TapForcesCopy]
        );
    }
}
