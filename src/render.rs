//! Renderers: the Report as text for a person (80 columns, optional color) or as one JSON
//! document. They decide nothing: every judgement is already in the Report.

mod codes;
pub mod escape;
pub mod nagios;
pub mod prometheus;
mod tables;
mod watch;

pub use codes::{explain, list, list_json, list_markdown};

use std::io::{self, BufWriter, Write};

use owo_colors::{OwoColorize, Style};

use crate::evidence::{
    Device, DeviceKind, NotDiagnosed, PathEnd, PathEvidence, ProbeState, Serving, SocketRouting,
};
use crate::report::{Basis, Report, Zerocopy};
use crate::vocab::Severity;

use escape::{MAX_TEXT, field};

const WIDTH: usize = 80;
/// A device with more lower devices than this shows the first few and counts the rest.
const MAX_PORTS_SHOWN: usize = 8;

/// The report as one JSON document. serde_json writes a token at a time, so it writes into a
/// buffer here: one `write` per 8 KiB, not one per token, whatever `out` is. Strings are
/// escaped as JSON requires (C0 controls); DEL, C1 and bidi characters stay as they are: JSON
/// is data, and its reader decides how to show it.
pub fn json(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let mut buf = BufWriter::with_capacity(8192, out);
    serde_json::to_writer_pretty(&mut buf, report)?;
    writeln!(buf)?;
    buf.flush()
}

/// Styles that collapse to plain text when color is off.
struct Palette {
    on: bool,
}

impl Palette {
    fn paint(&self, text: &str, style: Style) -> String {
        if self.on {
            text.style(style).to_string()
        } else {
            text.to_string()
        }
    }
    fn severity(&self, s: Severity) -> String {
        let (label, style) = match s {
            Severity::Blocker => ("BLOCKER", Style::new().red().bold()),
            Severity::Warning => ("WARNING", Style::new().yellow().bold()),
            Severity::Info => ("INFO   ", Style::new().blue()),
        };
        self.paint(label, style)
    }
    fn bold(&self, t: &str) -> String {
        self.paint(t, Style::new().bold())
    }
    fn dim(&self, t: &str) -> String {
        self.paint(t, Style::new().dimmed())
    }
    fn good(&self, t: &str) -> String {
        self.paint(t, Style::new().green())
    }
}

/// Greedy word wrap: the first line after `first`, the rest after `indent` spaces.
/// `first` is measured by `first_width` (it may hold color escapes); `text` is untrusted: it is
/// cut after [`MAX_TEXT`] characters and each word is escaped (see [`escape`]).
fn wrap(
    out: &mut dyn Write,
    first: &str,
    first_width: usize,
    indent: usize,
    text: &str,
) -> io::Result<()> {
    let mut line = String::from(first);
    let mut col = first_width;
    let mut empty = true;
    let text = escape::bounded(text, MAX_TEXT);
    for word in text.split_whitespace() {
        let word = escape::bounded(word, usize::MAX);
        let w = word.chars().count();
        if !empty && col + 1 + w > WIDTH {
            writeln!(out, "{line}")?;
            line = " ".repeat(indent);
            col = indent;
            empty = true;
        }
        if !empty {
            line.push(' ');
            col += 1;
        }
        line.push_str(&word);
        col += w;
        empty = false;
    }
    writeln!(out, "{line}")
}

fn device_line(d: &Device) -> String {
    let state = if d.admin_up {
        d.oper_state.as_str()
    } else {
        "admin down"
    };
    format!(
        "{} ({}, mtu {}, {})",
        field(&d.name),
        d.kind.as_str(),
        d.mtu,
        field(state)
    )
}

/// The VRF a diagnosed slave sends through (a second root of the stack).
fn l3_masters(out: &mut dyn Write, stack: &[Device], interface: &str) -> io::Result<()> {
    for d in stack
        .iter()
        .filter(|d| d.depth == 0 && d.name != interface && d.kind == DeviceKind::Vrf)
    {
        writeln!(out, "  and through its VRF {}", device_line(d))?;
    }
    Ok(())
}

fn write_tree(
    out: &mut dyn Write,
    stack: &[Device],
    name: &str,
    prefix: &str,
    last: bool,
    top: bool,
) -> io::Result<()> {
    let Some(dev) = stack.iter().find(|d| d.name == name) else {
        return Ok(());
    };
    if top {
        writeln!(out, "  {}", device_line(dev))?;
    } else {
        writeln!(
            out,
            "  {prefix}{} {}",
            if last { "└─" } else { "├─" },
            device_line(dev)
        )?;
    }
    let child_prefix = if top {
        String::new()
    } else {
        format!("{prefix}{}", if last { "   " } else { "│  " })
    };
    // Only devices first reached through this one (the stack is a tree by construction).
    let children: Vec<&String> = dev
        .lowers
        .iter()
        .filter(|lower| {
            stack
                .iter()
                .any(|d| &d.name == *lower && d.upper.as_deref() == Some(name))
        })
        .collect();
    // A bridge whose FDB picked a port: that port in full, the others summed up.
    let chosen = dev.forwards_to.as_ref().and_then(|c| c.port.as_ref());
    let (shown, hidden): (Vec<&String>, Vec<&String>) = match chosen {
        Some(port) => children.iter().partition(|l| **l == port),
        None if children.len() > MAX_PORTS_SHOWN => {
            let (a, b) = children.split_at(MAX_PORTS_SHOWN - 1);
            (a.to_vec(), b.to_vec())
        }
        None => (children.clone(), Vec::new()),
    };
    for (i, lower) in shown.iter().enumerate() {
        write_tree(
            out,
            stack,
            lower,
            &child_prefix,
            i + 1 == shown.len() && hidden.is_empty(),
            false,
        )?;
    }
    if !hidden.is_empty() {
        let what = match chosen {
            Some(port) if dev.kind == DeviceKind::Vrf => format!(
                "{} more slave{} off the path (the route in its table leaves by {})",
                hidden.len(),
                if hidden.len() == 1 { "" } else { "s" },
                escape::field(port)
            ),
            Some(port) => format!(
                "{} more port{} off the path (the FDB sends this traffic to {})",
                hidden.len(),
                if hidden.len() == 1 { "" } else { "s" },
                escape::field(port)
            ),
            None => format!("{} more ports", hidden.len()),
        };
        writeln!(out, "  {child_prefix}└─ … {what}")?;
    }
    Ok(())
}

/// The peers of a way: `a`, or `a with mark 0x2a (and b, c and 5 more peers)`; the routing
/// label belongs to the first, whose route was looked up.
fn peers(
    first: std::net::IpAddr,
    routing: Option<&SocketRouting>,
    also: &[std::net::IpAddr],
) -> String {
    const SHOWN: usize = 3;
    let head = format!("{first}{}", routing.map(|r| r.label()).unwrap_or_default());
    let rest: Vec<String> = also.iter().take(SHOWN).map(|p| p.to_string()).collect();
    match also.len() {
        0 => head,
        n if n <= SHOWN => format!("{head} (and {})", rest.join(", ")),
        n => format!(
            "{head} (and {} and {} more peers)",
            rest.join(", "),
            n - SHOWN
        ),
    }
}

/// At most this many sockets are named in a line of the header; the rest are counted (the JSON
/// report has them all).
const SOCKETS_NAMED: usize = 8;

fn socket_list(sockets: &[String]) -> String {
    if sockets.len() <= SOCKETS_NAMED {
        return sockets.join(", ");
    }
    format!(
        "{} and {} more",
        sockets[..SOCKETS_NAMED].join(", "),
        sockets.len() - SOCKETS_NAMED
    )
}

/// The path beyond the diagnosed stack, one line per segment, then how it ends.
fn path_chain(out: &mut dyn Write, p: &Palette, path: &PathEvidence) -> io::Result<()> {
    let toward = match path.target {
        Some(t) => format!("toward {t}"),
        None => "along default routes (no --target)".to_string(),
    };
    writeln!(out, "Path {toward}:")?;
    for (i, seg) in path.segments.iter().enumerate() {
        let ns = match &seg.netns.name {
            Some(n) => n.clone(),
            None => format!("net:[{}]", seg.netns.inode),
        };
        let devices: Vec<String> = seg
            .stack
            .iter()
            .map(|d| format!("{} ({})", d.name, d.kind.as_str()))
            .collect();
        let lead = format!("  {}. ", i + 2);
        wrap(
            out,
            &lead,
            lead.chars().count(),
            lead.chars().count(),
            &format!("{} in {ns}: {}", devices.join(" over "), seg.why),
        )?;
    }
    let end = match &path.end {
        PathEnd::Wire => "leaves the host".to_string(),
        PathEnd::LocalDelivery { netns, address } => format!(
            "{address} is an address of {}: delivered locally",
            netns
                .name
                .clone()
                .unwrap_or_else(|| format!("net:[{}]", netns.inode))
        ),
        PathEnd::Incomplete { reason, .. } => format!("not followed further: {reason}"),
    };
    wrap(out, "  → ", 4, 4, &p.paint(&end, Style::new().dimmed()))
}

pub fn human(report: &Report, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let p = Palette { on: color };
    if let Some(w) = &report.watch {
        watch::human(out, &p, w)?;
        if report.interface.is_empty() {
            return Ok(());
        }
        writeln!(out, "{}", p.dim("The static diagnosis follows."))?;
        writeln!(out)?;
    }
    heading(out, &p, report)?;
    if report.vsock_probe.is_none() && !report.stack.is_empty() {
        write_tree(out, &report.stack, &report.interface, "", true, true)?;
    }
    l3_masters(out, &report.stack, &report.interface)?;
    if let Some(path) = &report.path {
        path_chain(out, &p, path)?;
    }
    if let Some(serving) = &report.serving {
        other_routes(out, &p, serving)?;
    }
    for proc in &report.processes {
        tables::process_table(out, &p, proc)?;
    }
    writeln!(out)?;
    verdict(out, &p, report)?;
    if let Some(live) = &report.live_probe {
        tables::live_table(out, &p, live)?;
    }
    if let Some(v) = &report.vsock_probe {
        tables::vsock_table(out, &p, v)?;
    }
    findings(out, &p, report)?;
    process_notes(out, &p, report)?;
    passed_and_not_run(out, &p, report)
}

/// The tool, the host, the interface, and whose sockets' path it is.
fn heading(out: &mut dyn Write, p: &Palette, report: &Report) -> io::Result<()> {
    writeln!(
        out,
        "{} {} · host {} · Linux {}",
        p.bold("zcdoctor"),
        field(&report.tool.version),
        field(&report.host.hostname),
        field(&report.host.kernel)
    )?;
    if let Some(v) = &report.vsock_probe {
        writeln!(
            out,
            "Target {} (vsock stream: no IP path to inspect)",
            p.bold(&v.target())
        )?;
        return Ok(());
    }
    if report.stack.is_empty() && !report.processes.is_empty() {
        writeln!(
            out,
            "No IP path: this namespace has no default route and the process has no connected zerocopy socket"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "Interface {} ({} traffic), stack:",
        p.bold(&field(&report.interface).to_string()),
        report.protocol.as_str().to_uppercase()
    )?;
    if let Some(serving) = &report.serving {
        let text = format!(
            "the path of {}'s zerocopy socket(s) to {}: {}",
            serving.whose(),
            peers(serving.peer, serving.routing.as_ref(), &serving.also_peers),
            socket_list(&serving.sockets)
        );
        wrap(out, "  ", 2, 4, &escape::text(&text).to_string())?;
    }
    if !report.unpeered.is_empty() {
        let text = if report.serving.is_some() {
            format!(
                "zerocopy socket(s) with no peer, whose every send picks its destination, are not followed (give one with --target ADDR): {}",
                socket_list(&report.unpeered)
            )
        } else {
            format!(
                "no zerocopy socket of the process is connected, so this is the default route's path, an assumption (give a destination with --target ADDR): {}",
                socket_list(&report.unpeered)
            )
        };
        wrap(out, "  ", 2, 4, &escape::text(&text).to_string())?;
    }
    Ok(())
}

/// The process's other ways out, each with its stack and path, then the destinations not
/// diagnosed here.
fn other_routes(out: &mut dyn Write, p: &Palette, serving: &Serving) -> io::Result<()> {
    for route in &serving.routes {
        writeln!(
            out,
            "Also to {} by {}, stack:",
            escape::text(&peers(
                route.peer,
                route.routing.as_ref(),
                &route.also_peers
            )),
            p.bold(&field(&route.interface).to_string())
        )?;
        let text = format!(
            "{}'s socket(s): {}",
            serving.whose(),
            socket_list(&route.sockets)
        );
        wrap(out, "  ", 2, 4, &escape::text(&text).to_string())?;
        write_tree(out, &route.stack, &route.interface, "", true, true)?;
        if let Some(path) = &route.path {
            path_chain(out, p, path)?;
        }
    }
    if !serving.others.is_empty() {
        let others: Vec<String> = serving.others.iter().map(|o| o.to_string()).collect();
        let hint = if serving
            .others
            .iter()
            .any(|o| matches!(o, NotDiagnosed::OtherNamespace { .. }))
        {
            "diagnose each with --target, and --netns for another namespace"
        } else {
            "diagnose each with --target"
        };
        let text = format!("not diagnosed here ({hint}): {}", others.join("; "));
        wrap(out, "  ", 2, 4, &escape::text(&text).to_string())?;
    }
    Ok(())
}

/// `✗ zerocopy: no (predicted): …`: the verdict, its basis and its summary.
fn verdict(out: &mut dyn Write, p: &Palette, report: &Report) -> io::Result<()> {
    let (mark, word, style) = match report.verdict.zerocopy {
        Zerocopy::Yes => ("✓", "zerocopy: yes", Style::new().green().bold()),
        Zerocopy::No => ("✗", "zerocopy: no", Style::new().red().bold()),
        Zerocopy::Unknown => ("?", "zerocopy: unknown", Style::new().yellow().bold()),
    };
    let basis = match report.verdict.basis {
        Basis::Live => "proven live",
        Basis::Predicted => "predicted",
        Basis::Unproven => "not proven",
    };
    let head = format!("{mark} {word} ({basis}):");
    let lead = format!("{} ", p.paint(&head, style));
    wrap(
        out,
        &lead,
        head.chars().count() + 1,
        2,
        &report.verdict.summary,
    )
}

/// Each finding: severity, code and title, its summary, why, and how to fix it.
fn findings(out: &mut dyn Write, p: &Palette, report: &Report) -> io::Result<()> {
    for f in &report.findings {
        writeln!(out)?;
        let head = format!("{} {}", p.severity(f.severity), p.bold(f.code.as_str()));
        writeln!(out, "{head}  {}", field(&f.title))?;
        wrap(out, "  ", 2, 2, &f.summary)?;
        for note in &f.notes {
            wrap(out, &p.dim("  why: "), 7, 7, note)?;
        }
        for (i, step) in f.remediation.iter().enumerate() {
            let lead = if i == 0 { "  fix: " } else { "       " };
            wrap(out, &p.good(lead), lead.len(), 7, step)?;
        }
    }
    Ok(())
}

/// The notes on the processes diagnosed by pid, each naming its process.
fn process_notes(out: &mut dyn Write, p: &Palette, report: &Report) -> io::Result<()> {
    if report.process_notes.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "{}", p.dim("Notes:"))?;
    for note in &report.process_notes {
        wrap(out, "  • ", 4, 4, &note.text)?;
    }
    Ok(())
}

/// The checks that passed, then the probes that did not fully run and why.
fn passed_and_not_run(out: &mut dyn Write, p: &Palette, report: &Report) -> io::Result<()> {
    if !report.passed.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", p.dim("Passed:"))?;
        for pass in &report.passed {
            let lead = format!("  {} ", p.good("✓"));
            wrap(out, &lead, 4, 4, &pass.detail)?;
        }
    }
    let not_ok: Vec<_> = report
        .probes
        .iter()
        .filter(|pr| pr.status != ProbeState::Ok)
        .collect();
    if !not_ok.is_empty() {
        writeln!(out)?;
        writeln!(out, "{}", p.dim("Probes not fully run:"))?;
        for pr in not_ok {
            let state = match pr.status {
                ProbeState::Skipped => "skipped",
                _ => "error",
            };
            let lead = format!("  {} ({state}): ", pr.name);
            wrap(out, &p.dim(&lead), lead.chars().count(), 4, &pr.detail)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_80_columns() {
        let mut buf = Vec::new();
        let text = "word ".repeat(60);
        wrap(&mut buf, "  ", 2, 4, &text).unwrap();
        let s = String::from_utf8(buf).unwrap();
        assert!(s.lines().count() > 3);
        assert!(s.lines().all(|l| l.chars().count() <= WIDTH), "{s}");
        assert!(s.lines().skip(1).all(|l| l.starts_with("    word")));
    }
}
