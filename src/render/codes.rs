//! The knowledge base for a reader: `zcdoctor explain CODE` (one entry in full) and
//! `zcdoctor checks` (one line per code).

use std::io::{self, Write};

use super::escape::field;
use super::{Palette, wrap};
use crate::knowledge::Entry;

/// `zcdoctor explain CODE`.
pub fn explain(entry: &Entry, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let p = Palette { on: color };
    writeln!(
        out,
        "{} {}  {}",
        p.severity(entry.severity),
        p.bold(entry.code.as_str()),
        field(&entry.title)
    )?;
    for (label, text) in [
        ("What it means", &entry.meaning),
        ("Why it copies or fails", &entry.why),
        ("Fix", &entry.fix),
    ] {
        writeln!(out)?;
        writeln!(out, "{}", p.bold(label))?;
        wrap(out, "  ", 2, 2, text)?;
    }
    if !entry.proven_on.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", p.bold("Proven on"))?;
        let kernels: Vec<String> = entry
            .proven_on
            .iter()
            .map(|k| format!("Linux {k}"))
            .collect();
        wrap(
            out,
            "  ",
            2,
            2,
            &format!(
                "{} (Debian's kernels in the guest tier, tests/guest.rs: the kernel's own COPIED counts against this finding)",
                kernels.join(", ")
            ),
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{}", p.bold("Seen by watch"))?;
    wrap(out, "  ", 2, 2, &entry.watch)?;
    if !entry.references.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", p.bold("References"))?;
        for r in &entry.references {
            wrap(out, "  - ", 4, 4, r)?;
        }
    }
    Ok(())
}

/// `zcdoctor checks --format markdown`: a table of every code (the one docs/codes.md opens with).
pub fn list_markdown(entries: &[Entry], out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "| Code | Severity | Title |\n|---|---|---|")?;
    for e in entries {
        let title = field(&e.title).to_string().replace('|', "\\|");
        writeln!(out, "| `{}` | {} | {title} |", e.code, e.severity.as_str())?;
    }
    Ok(())
}

/// `zcdoctor checks --json`: every entry of the knowledge base, as one JSON array.
pub fn list_json(entries: &[Entry], out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, entries)?;
    writeln!(out)
}

/// `zcdoctor checks`: one line per code.
pub fn list(entries: &[Entry], color: bool, out: &mut dyn Write) -> io::Result<()> {
    let p = Palette { on: color };
    for e in entries {
        writeln!(
            out,
            "{} {:<28} {}",
            p.severity(e.severity),
            e.code,
            field(&e.title)
        )?;
    }
    Ok(())
}
