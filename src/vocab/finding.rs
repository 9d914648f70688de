//! A finding and its severity, and a check that passed.

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
