//! The human view of `zcdoctor watch`: what was probed and what it cost, the copies by cause
//! with their place, sender and culprit, and each sender's copied fraction.

use std::io::{self, Write};

use super::Palette;
use super::escape::field;
use crate::evidence::watch::WatchDevice;
use crate::report::watch::{WatchCopies, WatchSender, WatchSenderTotals, WatchSummary};

/// Rows of copies shown; the rest are counted.
const ROWS: usize = 40;

/// `7.0 MB`, `512 B`.
fn bytes(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1000.0 && u + 1 < units.len() {
        x /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.1} {}", units[u])
    }
}

fn device(d: Option<&WatchDevice>) -> String {
    let Some(d) = d else {
        return "no device".to_string();
    };
    let name = d.name.as_deref().map_or_else(
        || format!("ifindex {}", d.ifindex),
        |n| field(n).to_string(),
    );
    match (&d.netns, d.own_netns) {
        (_, true) => name,
        (Some(ns), false) => format!("{name} (netns {})", field(ns)),
        (None, false) => format!("{name} (net:[{}])", d.netns_inode),
    }
}

/// `pid 123 zc_sender fd 3`, or the socket when no holder was found.
pub(super) fn sender(s: &WatchSender) -> String {
    match (s.pid, &s.comm, s.fd, s.socket) {
        (Some(pid), Some(comm), Some(fd), _) => format!("{} pid {pid} fd {fd}", field(comm)),
        (Some(pid), _, _, _) => format!("pid {pid}"),
        (None, _, _, Some(inode)) => format!("socket:[{inode}] (closed)"),
        (None, _, _, None) => "unknown sender".to_string(),
    }
}

fn culprit(c: &WatchCopies) -> String {
    let who: Vec<String> = c
        .culprits
        .iter()
        .map(|t| match &t.unit {
            Some(unit) => format!("{} pid {} ({})", field(&t.comm), t.pid, field(unit)),
            None => format!("{} pid {}", field(&t.comm), t.pid),
        })
        .collect();
    who.join(", ")
}

fn copies(out: &mut dyn Write, p: &Palette, w: &WatchSummary) -> io::Result<()> {
    writeln!(
        out,
        "{} {} reported to the senders, {} silent (completions say zerocopy)",
        p.bold("Copies of zerocopy data:"),
        w.reported_copies,
        w.silent_copies
    )?;
    if w.copies.is_empty() {
        return writeln!(out, "  none");
    }
    writeln!(
        out,
        "  {}",
        p.dim(&format!(
            "{:<19} {:>9} {:>9} {:>9}  {:<28} {}",
            "cause", "copies", "/s", "bytes", "where", "sender"
        ))
    )?;
    for c in w.copies.iter().take(ROWS) {
        writeln!(
            out,
            "  {:<19} {:>9} {:>9.1} {:>9}  {:<28} {}",
            c.cause.as_str(),
            c.count,
            c.per_second,
            bytes(c.bytes),
            device(c.device.as_ref()),
            sender(&c.sender)
        )?;
        let mut why = Vec::new();
        if !c.culprits.is_empty() {
            why.push(format!("tap held by {}", culprit(c)));
        }
        if let Some(caller) = &c.caller {
            why.push(format!("called from {}", field(caller)));
        }
        if let Some(code) = c.code {
            why.push(format!("zcdoctor explain {}", code.as_str()));
        }
        writeln!(out, "      {}", p.dim(&why.join("; ")))?;
    }
    if w.copies.len() > ROWS {
        writeln!(
            out,
            "  … and {} more rows (--json has all)",
            w.copies.len() - ROWS
        )?;
    }
    Ok(())
}

fn totals_line(s: &WatchSenderTotals) -> String {
    let label = s
        .sender
        .socket_label
        .as_deref()
        .map(|l| format!(" ({})", field(l)))
        .unwrap_or_default();
    let fraction = s
        .copied_fraction
        .map(|f| format!(" ({:.1}%)", f * 100.0))
        .unwrap_or_default();
    let mut line = format!(
        "{}{label}: {} sends in {} notifications, {} reported copied{fraction}",
        sender(&s.sender),
        s.sends,
        s.notifications,
        s.copied_sends
    );
    if s.send_fallback {
        line.push_str("; no copy site ran for it: copied when sending (send-fallback)");
    }
    if s.silent_copies > 0 {
        line.push_str(&format!(
            "; {} skbs copied silently by software segmentation",
            s.silent_copies
        ));
    }
    line
}

/// The watch section, printed before the static report.
pub(super) fn human(out: &mut dyn Write, p: &Palette, w: &WatchSummary) -> io::Result<()> {
    if let Some(why) = &w.refused {
        writeln!(
            out,
            "{} cannot run here: {}",
            p.bold("zcdoctor watch:"),
            super::escape::text(why)
        )?;
        return writeln!(out);
    }
    let secs = w.duration_ms as f64 / 1000.0;
    let ended = if w.interrupted { ", ended early" } else { "" };
    writeln!(
        out,
        "{} {secs:.1} s{ended}, {}",
        p.bold("zcdoctor watch:"),
        field(&w.scope)
    )?;
    let probed: Vec<String> = w
        .functions
        .iter()
        .map(|f| format!("{} {}", f.function, f.hits))
        .collect();
    writeln!(out, "  probed (hits): {}", probed.join(", "))?;
    writeln!(
        out,
        "  cost: the programs ran {:.2} ms in all, {:.3}% of the CPUs' time{}",
        w.overhead.bpf_ns as f64 / 1e6,
        w.overhead.cpu_share * 100.0,
        if w.overhead.lost > 0 {
            format!("; {} events lost (maps full)", w.overhead.lost)
        } else {
            String::new()
        }
    )?;
    for n in &w.not_probed {
        writeln!(out, "  not probed: {}: {}", n.function, field(&n.reason))?;
    }
    writeln!(out)?;
    copies(out, p, w)?;
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        p.bold("Senders (their MSG_ZEROCOPY completions):")
    )?;
    if w.senders.is_empty() {
        writeln!(out, "  no zerocopy completion in the window")?;
    }
    for s in &w.senders {
        writeln!(out, "  {}", totals_line(s))?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(7_000_000), "7.0 MB");
    }
}
