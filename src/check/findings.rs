//! The collector the checks push findings into.
//!
//! Each code has one file in `checks/findings/` (title, usual severity, meaning, why, fix);
//! [`Findings`] takes the title and the usual severity from the knowledge base it is given, so a
//! check only says what it saw and what to do about it here.

use serde_json::{Map, Value};

use crate::knowledge::Knowledge;
pub use crate::vocab::Code;
use crate::vocab::{Finding, NoteAbout, Passed, ProcessNote, Severity};

/// Collects findings and passed checks; titles and usual severities come from the knowledge
/// base.
pub struct Findings<'k> {
    kb: &'k Knowledge,
    pub(super) findings: Vec<Finding>,
    pub(super) passed: Vec<Passed>,
    pub(super) notes: Vec<ProcessNote>,
}

impl<'k> Findings<'k> {
    pub fn new(kb: &'k Knowledge) -> Findings<'k> {
        Findings {
            kb,
            findings: Vec::new(),
            passed: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The knowledge base the findings are written with.
    pub fn kb(&self) -> &'k Knowledge {
        self.kb
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

    /// Background on the process `pid`, given whatever the findings.
    pub fn note(&mut self, pid: u32, about: NoteAbout, text: String) {
        self.notes.push(ProcessNote { pid, about, text });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_takes_title_and_severity_from_the_knowledge_base() {
        let mut f = Findings::new(Knowledge::builtin());
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
