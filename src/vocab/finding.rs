//! A finding and its severity, a check that passed, and a note on a process.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Code;

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

/// Background on a process diagnosed by pid, given whatever the findings (also when none
/// fires): what the process is and how to see what copies its traffic.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct ProcessNote {
    pub pid: u32,
    pub about: NoteAbout,
    /// One paragraph, naming the pid and the commands to run.
    pub text: String,
}

/// What a [`ProcessNote`] is about.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NoteAbout {
    /// The process is QEMU: its migration channels, `zero-copy-send` and QEMU's own counter
    /// `dirty-sync-missed-zero-copy`.
    Qemu,
    /// `zcdoctor watch --pid PID`: what copies the process's real traffic (a process with
    /// zerocopy sockets).
    Watch,
    /// The process's vsock sockets: whether this kernel has MSG_ZEROCOPY for vsock, and how to
    /// measure a connection (`--target vsock:CID:PORT`).
    Vsock,
}
