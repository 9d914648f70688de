//! The report as a monitoring plugin's output (Nagios, Icinga, Naemon, Sensu, Zabbix agents):
//! one line `ZCDOCTOR STATE - summary | perfdata`, and the plugin's exit status 0 OK,
//! 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Perfdata follows the monitoring-plugins development
//! guidelines: `'label'=value[UOM];[warn];[crit];[min];[max]`, space-separated.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::render::escape;
use crate::report::{Basis, Report, Zerocopy};
use crate::vocab::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// The plugin's exit status.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }
}

/// CRITICAL for a blocker; UNKNOWN when zcdoctor could not decide (verdict unknown, or a live
/// probe was asked for and proved nothing); WARNING for a warning; OK otherwise.
pub fn status(report: &Report) -> Status {
    match report.worst() {
        Some(Severity::Blocker) => Status::Critical,
        _ if report.verdict.zerocopy == Zerocopy::Unknown
            || report.verdict.basis == Basis::Unproven =>
        {
            Status::Unknown
        }
        Some(Severity::Warning) => Status::Warning,
        _ => Status::Ok,
    }
}

/// A perfdata label: quoted when it holds anything but `[A-Za-z0-9_.-]`, a `'` doubled.
pub fn label(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Text for the status line: escaped (no control characters, so one line), bounded, and
/// without `|`, which would start the perfdata.
fn plain(s: &str, max: usize) -> String {
    escape::bounded(s, max).replace('|', "/")
}

/// A perfdata value: plain decimal, no exponent (the guidelines' `[-0-9.]+`).
fn value(x: f64) -> String {
    if !x.is_finite() {
        return "0".to_string();
    }
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// The status line (with its line feed).
pub fn render(report: &Report) -> String {
    let st = status(report);
    let count = |sev| report.findings.iter().filter(|f| f.severity == sev).count();
    let (blockers, warnings) = (count(Severity::Blocker), count(Severity::Warning));
    let zerocopy = match report.verdict.zerocopy {
        Zerocopy::Yes => "yes",
        Zerocopy::No => "no",
        Zerocopy::Unknown => "unknown",
    };
    let basis = match report.verdict.basis {
        Basis::Predicted => "predicted",
        Basis::Live => "live",
        Basis::Unproven => "unproven",
    };
    let mut line = format!(
        "ZCDOCTOR {} - {}: zerocopy {zerocopy} ({basis}): {}",
        st.as_str(),
        plain(&report.interface, escape::MAX_FIELD),
        plain(&report.verdict.summary, 512),
    );
    let mut codes: Vec<&str> = Vec::new();
    for f in report
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
    {
        if !codes.contains(&f.code.as_str()) {
            codes.push(f.code.as_str());
        }
    }
    if !codes.is_empty() {
        let _ = write!(line, "; findings: {}", codes.join(", "));
    }
    line.push_str(" |");
    // Thresholds: any blocker is critical, any warning is a warning (`0`: alert above 0).
    let _ = write!(line, " {}={blockers};;0;0;", label("blockers"));
    let _ = write!(line, " {}={warnings};0;;0;", label("warnings"));
    if let Some(s) = &report.live_summary {
        let _ = write!(line, " {}={}c;;;0;", label("completions"), s.completions);
        if let Some(r) = s.copied_ratio {
            let _ = write!(line, " {}={};;;0;1", label("copied_ratio"), value(r));
        }
        if let Some(g) = s.gain {
            let _ = write!(line, " {}={};;;0;", label("gain"), value(g));
        }
        for r in &s.runs {
            if let Some(g) = r.gain {
                let name = format!("gain {}", r.pattern.as_str());
                let _ = write!(line, " {}={};;;0;", label(&name), value(g));
            }
        }
    }
    line.push('\n');
    line
}

pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(render(report).as_bytes())
}

/// The status line of a run that failed before a report existed: UNKNOWN.
pub fn error_line(message: &str) -> String {
    format!("ZCDOCTOR UNKNOWN - {}\n", plain(message, escape::MAX_TEXT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::diagnose;
    use crate::evidence::{Evidence, Protocol};

    /// A recording of `fixtures/`, by `area/name`.
    fn fixture(name: &str) -> Report {
        let path = format!(
            "{}/fixtures/{name}/evidence.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("fixture");
        let ev: Evidence = serde_json::from_str(&text).expect("evidence");
        diagnose(&ev, Protocol::Udp, crate::knowledge::Knowledge::builtin())
    }

    /// One perfdata item, per the monitoring-plugins guidelines (strict: no spaces inside).
    pub fn perfdata_ok(item: &str) -> bool {
        let Some((l, rest)) = item.rsplit_once('=') else {
            return false;
        };
        let label_ok = if let Some(inner) = l.strip_prefix('\'').and_then(|x| x.strip_suffix('\''))
        {
            !inner.is_empty() && !inner.replace("''", "").contains('\'') && !inner.contains('=')
        } else {
            !l.is_empty() && !l.contains(['\'', '=', ' '])
        };
        let fields: Vec<&str> = rest.split(';').collect();
        let num = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        };
        let v = fields[0].trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
        let uom = &fields[0][v.len()..];
        label_ok
            && num(v)
            && ["", "s", "ms", "us", "%", "B", "KB", "MB", "TB", "c"].contains(&uom)
            && fields.len() <= 5
            && fields[1..].iter().all(|f| {
                f.is_empty() || f.chars().all(|c| c.is_ascii_digit() || ".-~:@".contains(c))
            })
    }

    #[test]
    fn states_follow_the_plugin_convention() {
        for (name, want) in [
            ("live/live-clean", Status::Warning), // zerocopy-slower
            ("live/live-tap-copied", Status::Critical),
            ("taps/clean-nic", Status::Ok),
            ("live/live-sample-too-small", Status::Unknown),
        ] {
            let r = fixture(name);
            assert_eq!(status(&r), want, "{name}: {}", render(&r));
            assert!(render(&r).starts_with(&format!("ZCDOCTOR {} - ", want.as_str())));
        }
        assert_eq!(Status::Unknown.exit_code(), 3);
    }

    #[test]
    fn one_line_with_valid_perfdata() {
        for name in [
            "live/live-clean",
            "live/live-tap-copied",
            "taps/clean-nic",
            "render/hostile-names",
        ] {
            let text = render(&fixture(name));
            assert_eq!(text.matches('\n').count(), 1, "{text:?}");
            let (_, perf) = text.trim_end().split_once(" | ").expect("perfdata");
            // Quoted labels may hold spaces: split on spaces outside quotes.
            let mut items = Vec::new();
            let (mut cur, mut quoted) = (String::new(), false);
            for c in perf.chars() {
                if c == '\'' {
                    quoted = !quoted;
                }
                if c == ' ' && !quoted {
                    items.push(std::mem::take(&mut cur));
                } else {
                    cur.push(c);
                }
            }
            items.push(cur);
            for item in items {
                assert!(perfdata_ok(&item), "{name}: {item:?}");
            }
        }
        let text = render(&fixture("live/live-clean"));
        assert!(text.contains("'gain gso'=1.857143;;;0;"), "{text}");
    }

    #[test]
    fn labels_and_values() {
        assert_eq!(label("gain"), "gain");
        assert_eq!(label("gain gso"), "'gain gso'");
        assert_eq!(label("it's"), "'it''s'");
        assert_eq!(value(0.125), "0.125");
        assert_eq!(value(2.0), "2");
        assert_eq!(value(f64::NAN), "0");
        assert_eq!(error_line("a|b\nc"), "ZCDOCTOR UNKNOWN - a/b\\nc\n");
    }
}
