//! The fleet view as text for a person, as Markdown (for a ticket or a wiki page), or as JSON.
//! Host names, interfaces, codes and reasons come from reports, untrusted: the text forms pass
//! them through `render::escape`, Markdown also escapes its own punctuation.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{Hosts, Summary};
use crate::render::escape;
use crate::report::{Basis, Zerocopy};

fn verdict_name(z: Zerocopy, b: Basis) -> &'static str {
    match (z, b) {
        (Zerocopy::Yes, Basis::Live) => "zerocopy yes (proven live)",
        (Zerocopy::Yes, _) => "zerocopy yes (predicted)",
        (Zerocopy::No, Basis::Live) => "zerocopy no (proven live)",
        (Zerocopy::No, Basis::Unproven) => "zerocopy no (live probe unproven)",
        (Zerocopy::No, Basis::Predicted) => "zerocopy no (predicted)",
        (Zerocopy::Unknown, Basis::Unproven) => "zerocopy unknown (live probe unproven)",
        (Zerocopy::Unknown, _) => "zerocopy unknown",
    }
}

/// `host (iface), host (iface) and N more`, each name through `show`.
fn host_list(h: &Hosts, show: &dyn Fn(&str) -> String) -> String {
    let mut s = h
        .hosts
        .iter()
        .map(|r| format!("{} ({})", show(&r.host), show(&r.interface)))
        .collect::<Vec<_>>()
        .join(", ");
    if h.more > 0 {
        let _ = write!(s, " and {} more", h.more);
    }
    s
}

fn plural(n: u64, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

fn term(s: &str) -> String {
    escape::field(s).to_string()
}

/// Markdown: escaped for the terminal-unsafe characters, then for Markdown's punctuation.
fn md(s: &str) -> String {
    let mut out = String::new();
    for c in escape::field(s).to_string().chars() {
        if "\\`*_{}[]()<>#+-.!|~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn human(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Fleet: {} read, {} unreadable",
        plural(s.reports, "report"),
        s.unreadable_count
    );
    let _ = writeln!(o, "\nVerdicts:");
    for v in &s.verdicts {
        let _ = writeln!(
            o,
            "  {:<40} {:>6}  {}",
            verdict_name(v.zerocopy, v.basis),
            v.hosts.count,
            host_list(&v.hosts, &term)
        );
    }
    let _ = writeln!(o, "\nFindings (worst first):");
    if s.findings.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for c in &s.findings {
        let _ = writeln!(
            o,
            "  {:<8} {:<28} {:>6}  {}",
            c.severity.as_str().to_uppercase(),
            term(&c.code),
            c.hosts.count,
            host_list(&c.hosts, &term)
        );
    }
    if s.codes_dropped > 0 {
        let _ = writeln!(
            o,
            "  ({} findings of codes beyond the first {} not tracked)",
            s.codes_dropped,
            super::MAX_CODES
        );
    }
    let _ = writeln!(o, "\nLive result contradicts the prediction:");
    if s.contradictions.count == 0 {
        let _ = writeln!(o, "  none");
    } else {
        let _ = writeln!(
            o,
            "  {} {}",
            plural(s.contradictions.count, "host"),
            host_list(&s.contradictions, &term)
        );
    }
    if s.unreadable_count > 0 {
        let _ = writeln!(o, "\nUnreadable reports:");
        for u in &s.unreadable {
            let _ = writeln!(o, "  {}: {}", term(&u.source), escape::text(&u.error));
        }
        if s.unreadable_more > 0 {
            let _ = writeln!(o, "  and {} more", s.unreadable_more);
        }
    }
    o
}

pub fn markdown(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# zcdoctor fleet\n\n{} read, {} unreadable.\n\n## Verdicts\n\n| verdict | hosts | which |\n| --- | ---: | --- |",
        plural(s.reports, "report"),
        s.unreadable_count
    );
    for v in &s.verdicts {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            verdict_name(v.zerocopy, v.basis),
            v.hosts.count,
            host_list(&v.hosts, &md)
        );
    }
    let _ = writeln!(
        o,
        "\n## Findings (worst first)\n\n| severity | code | hosts | which |\n| --- | --- | ---: | --- |"
    );
    for c in &s.findings {
        let _ = writeln!(
            o,
            "| {} | `{}` | {} | {} |",
            c.severity.as_str(),
            escape::field(&c.code).to_string().replace(['`', '|'], "?"),
            c.hosts.count,
            host_list(&c.hosts, &md)
        );
    }
    let _ = writeln!(o, "\n## Live result contradicts the prediction\n");
    if s.contradictions.count == 0 {
        let _ = writeln!(o, "None.");
    } else {
        let _ = writeln!(o, "{}", host_list(&s.contradictions, &md));
    }
    if s.unreadable_count > 0 {
        let _ = writeln!(o, "\n## Unreadable reports\n");
        for u in &s.unreadable {
            let _ = writeln!(o, "- {}: {}", md(&u.source), md(&u.error));
        }
        if s.unreadable_more > 0 {
            let _ = writeln!(o, "- and {} more", s.unreadable_more);
        }
    }
    o
}

pub fn json(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, s)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::super::Fleet;
    use super::*;

    fn sample() -> Summary {
        let mut f = Fleet::new(1);
        let r = |host: &str, code: &str| {
            format!(
                r#"{{"schema_version":1,"host":{{"hostname":"{host}"}},"interface":"eth0","verdict":{{"zerocopy":"no","basis":"live"}},"findings":[{{"code":"{code}","severity":"blocker"}}]}}"#
            )
        };
        f.add_bytes("a", r("evil\\u001b[2J|*x*", "tap-forces-copy").as_bytes());
        f.add_bytes("b", r("b", "tap-forces-copy").as_bytes());
        f.add_bytes("c", b"nope");
        f.summary()
    }

    #[test]
    fn human_escapes_and_says_and_more() {
        let text = human(&sample());
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.contains("evil\\x1b[2J"), "{text}");
        assert!(text.contains("and 1 more"), "{text}");
        assert!(text.contains("BLOCKER  tap-forces-copy"), "{text}");
        assert!(
            text.contains("Unreadable reports:\n  c: not a zcdoctor report"),
            "{text}"
        );
    }

    #[test]
    fn markdown_escapes_its_punctuation() {
        let text = markdown(&sample());
        assert!(text.contains("evil\\\\x1b\\[2J\\|\\*x\\*"), "{text}");
        assert!(
            text.contains("| blocker | `tap-forces-copy` | 2 |"),
            "{text}"
        );
    }

    #[test]
    fn json_round_trips() {
        let s = sample();
        let mut out = Vec::new();
        json(&s, &mut out).unwrap();
        let back: Summary = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
    }
}
