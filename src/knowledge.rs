//! The knowledge base in `checks/`, compiled in: what each finding code means and how to fix it,
//! and which daemons hold packet taps.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::vocab::{Code, Severity};

/// Every file of `checks/findings/`, each under `[[finding]]` with its code (build.rs).
const FINDINGS_TOML: &str = include_str!(concat!(env!("OUT_DIR"), "/findings.toml"));
const TAP_DAEMONS_TOML: &str = include_str!("../checks/tap-daemons.toml");

/// One finding code's entry (`zcdoctor explain`; `zcdoctor checks --json` prints them all).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Entry {
    pub code: Code,
    /// Where the check looks (`kernel`, `path`, `offloads`, `memory`, `taps`, `live`,
    /// `process`): `zcdoctor checks` lists the codes by area.
    pub area: String,
    /// What the finding means for the verdict (`predicts-copies`, `explains-copies`,
    /// `path-uncertain`); build.rs derives the predicates of `Code` from it.
    #[serde(default)]
    pub roles: Vec<String>,
    pub severity: Severity,
    pub title: String,
    pub meaning: String,
    pub why: String,
    pub fix: String,
    /// Which cause `zcdoctor watch` reports for the finding (`tap`, `local-delivery`, ...), or,
    /// for one watch cannot see, what it shows instead (required: build.rs).
    pub watch: String,
    #[serde(default)]
    pub references: Vec<String>,
    /// The kernels (`5.10`, `6.1`, `6.12`) on which the guest tier (tests/guest.rs) proved
    /// this finding against what the kernel did; the tier's own test keeps the list true.
    #[serde(default)]
    pub proven_on: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TapDaemon {
    pub id: String,
    /// Matched against the owner's comm and the basename of its exe.
    pub names: Vec<String>,
    pub title: String,
    pub what: String,
    /// `never`, `version-dependent` or `always`.
    pub ignores_outgoing: String,
    /// Remediation lines; `{pid}`, `{comm}`, `{unit}`, `{device}`, `{netns}` are filled in.
    pub fix: Vec<String>,
    /// Lines that help only where the tap sees transmitted traffic (those about the
    /// `PACKET_IGNORE_OUTGOING` setting): left out for a tap on the receive side.
    #[serde(default)]
    pub fix_transmit: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct FindingsFile {
    finding: Vec<Entry>,
}

#[derive(Debug, Deserialize, Default)]
struct DaemonsFile {
    #[serde(default)]
    daemon: Vec<TapDaemon>,
}

pub struct Knowledge {
    pub entries: Vec<Entry>,
    pub daemons: Vec<TapDaemon>,
}

impl Knowledge {
    /// The compiled-in knowledge base, parsed once; callers pass it on (`check::diagnose`
    /// takes it), so a test can diagnose with another. Its files are tested to parse, so this
    /// cannot fail at run time unless the build skipped the tests.
    pub fn builtin() -> &'static Knowledge {
        static KB: OnceLock<Knowledge> = OnceLock::new();
        KB.get_or_init(|| Knowledge::parse(FINDINGS_TOML, TAP_DAEMONS_TOML))
    }

    fn parse(findings: &str, daemons: &str) -> Knowledge {
        let mut entries = match toml::from_str::<FindingsFile>(findings) {
            Ok(f) => f.finding,
            Err(e) => panic!("checks/findings/*.toml is malformed: {e}"),
        };
        for e in &mut entries {
            for text in [&mut e.meaning, &mut e.why, &mut e.fix, &mut e.watch] {
                *text = unfold(text);
            }
        }
        let daemons = match toml::from_str::<DaemonsFile>(daemons) {
            Ok(f) => f.daemon,
            Err(e) => panic!("checks/tap-daemons.toml is malformed: {e}"),
        };
        Knowledge { entries, daemons }
    }

    pub fn entry(&self, code: Code) -> Option<&Entry> {
        self.entries.iter().find(|e| e.code == code)
    }

    /// The known daemon an owner is, by comm or exe basename.
    pub fn daemon(&self, comm: &str, exe: Option<&str>) -> Option<&TapDaemon> {
        let exe_base = exe.and_then(|e| e.rsplit('/').next());
        self.daemons.iter().find(|d| {
            d.names
                .iter()
                .any(|n| n == comm || Some(n.as_str()) == exe_base)
        })
    }
}

/// The prose of a knowledge file as one paragraph: its line breaks are only how the TOML source
/// is laid out (`explain` wraps it to the terminal; a raw newline would be escaped there).
fn unfold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knowledge_files_parse() {
        let kb = Knowledge::parse(FINDINGS_TOML, TAP_DAEMONS_TOML);
        assert!(!kb.entries.is_empty());
        for e in &kb.entries {
            assert!(
                !e.meaning.contains('\n') && !e.why.starts_with(' '),
                "{}",
                e.code
            );
        }
    }

    /// `proven_on` names only kernels of the guest tier (tests/guest/kernels.txt), and `explain`
    /// shows them; which codes each kernel proves is checked by the tier itself.
    #[test]
    fn proven_on_names_the_tiers_kernels_and_explain_shows_it() {
        let tier = include_str!("../tests/guest/kernels.txt");
        let kb = Knowledge::parse(FINDINGS_TOML, TAP_DAEMONS_TOML);
        for e in &kb.entries {
            for k in &e.proven_on {
                let label = format!("k{} ", k.replace('.', "_"));
                assert!(
                    tier.contains(&label),
                    "{}: {k} is not a tier kernel",
                    e.code
                );
            }
        }
        let entry = kb.entry(Code::TapForcesCopy).expect("entry");
        assert!(!entry.proven_on.is_empty());
        let mut out = Vec::new();
        crate::render::explain(entry, false, &mut out).expect("render");
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("Proven on\n  Linux 5.10, Linux 6.1, Linux 6.12"),
            "{text}"
        );
    }

    /// Exactly one entry per code, in the order of `Code::ALL`, each complete.
    #[test]
    fn one_entry_per_code() {
        let kb = Knowledge::builtin();
        let codes: Vec<Code> = kb.entries.iter().map(|e| e.code).collect();
        assert_eq!(codes, Code::ALL, "build.rs lists the entries as Code::ALL");
        for e in &kb.entries {
            assert!(
                !e.fix.is_empty()
                    && !e.title.is_empty()
                    && !e.meaning.is_empty()
                    && !e.watch.is_empty(),
                "{} incomplete",
                e.code
            );
        }
    }

    /// The causes `zcdoctor watch` attributes a copy to (stable names, defined by the watch
    /// work: docs/research/watch-design.md).
    const WATCH_CAUSES: [&str; 11] = [
        "tap",
        "local-delivery",
        "timestamping",
        "tun",
        "linearize",
        "checksum",
        "segmentation",
        "encryption",
        "send-fallback",
        "silent-segmentation",
        "other",
    ];

    /// Every entry's `watch` names at least one of watch's causes (in backquotes, each one a
    /// cause), or says it does not apply (`Does not apply: …` / `No copy to count: …`); and
    /// `explain` shows it.
    #[test]
    fn watch_names_a_cause_or_says_it_does_not_apply() {
        let kb = Knowledge::parse(FINDINGS_TOML, TAP_DAEMONS_TOML);
        for e in &kb.entries {
            let quoted: Vec<&str> = e.watch.split('`').skip(1).step_by(2).collect();
            let causes: Vec<&str> = quoted
                .iter()
                .copied()
                .filter(|q| WATCH_CAUSES.contains(q))
                .collect();
            let not_applicable = e.watch.starts_with("Does not apply: ")
                || e.watch.starts_with("No copy to count: ");
            assert!(
                !causes.is_empty() || not_applicable,
                "{}: watch = {:?} names no cause of {WATCH_CAUSES:?} and does not say it does not apply",
                e.code,
                e.watch
            );
            for q in quoted {
                let looks_like_cause =
                    !q.contains(' ') && q.chars().all(|c| c.is_ascii_lowercase() || c == '-');
                assert!(
                    !looks_like_cause || WATCH_CAUSES.contains(&q),
                    "{}: `{q}` is not a cause watch reports ({WATCH_CAUSES:?})",
                    e.code
                );
            }
        }
        let entry = kb.entry(Code::TapForcesCopy).expect("entry");
        let mut out = Vec::new();
        crate::render::explain(entry, false, &mut out).expect("render");
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("Seen by watch\n  `tap`: skb_copy_ubufs"),
            "{text}"
        );
    }

    #[test]
    fn daemons_have_fixes() {
        for d in &Knowledge::builtin().daemons {
            assert!(
                !d.names.is_empty() && !d.fix.is_empty(),
                "{} incomplete",
                d.id
            );
            assert!(
                ["never", "version-dependent", "always"].contains(&d.ignores_outgoing.as_str()),
                "{}: ignores_outgoing {}",
                d.id,
                d.ignores_outgoing
            );
        }
    }
}
