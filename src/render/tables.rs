//! The tables of the human report: a diagnosed process's sockets and limits, and the live
//! probe's runs.

use std::io::{self, Write};

use super::{Palette, wrap};
use crate::evidence::{Fact, LiveProbe, ProcessEvidence};

/// Sockets listed per diagnosed process; the rest are counted.
const PROCESS_SOCKETS_SHOWN: usize = 20;

/// A diagnosed process: who it is, then its TCP/UDP sockets (fd, protocol, local → peer,
/// SO_ZEROCOPY, option memory in use).
pub(super) fn process_table(
    out: &mut dyn Write,
    p: &Palette,
    proc: &ProcessEvidence,
) -> io::Result<()> {
    let netns = match &proc.netns {
        Fact::Read(n) => match &n.name {
            Some(name) => format!("netns {name} (net:[{}])", n.inode),
            None => format!("netns net:[{}]", n.inode),
        },
        _ => "netns unread".to_string(),
    };
    let managed = proc
        .managed_by()
        .map(|m| format!(", {m}"))
        .unwrap_or_default();
    writeln!(out)?;
    let text = format!("{} (pid {}{managed}), {netns}:", proc.comm, proc.pid);
    wrap(out, &format!("{} ", p.bold("Process")), 8, 4, &text)?;
    if proc.sockets.is_empty() {
        writeln!(out, "    no TCP or UDP socket")?;
    } else {
        writeln!(
            out,
            "    {}",
            p.dim(&format!(
                "{:>5} {:<5} {:<48} {:<3} {:>8}",
                "fd", "proto", "local → peer", "zc", "optmem"
            ))
        )?;
    }
    for s in proc.sockets.iter().take(PROCESS_SOCKETS_SHOWN) {
        let proto = match s.family.as_str() {
            "ipv6" => format!("{}6", s.protocol),
            _ => s.protocol.clone(),
        };
        let zc = match &s.zerocopy {
            Fact::Read(true) => "on",
            Fact::Read(false) => "off",
            _ => "?",
        };
        let optmem = s.optmem().map_or("?".to_string(), |o| o.to_string());
        writeln!(
            out,
            "    {:>5} {:<5} {:<48} {:<3} {:>8}",
            s.fd,
            proto,
            s.endpoints(),
            zc,
            optmem
        )?;
    }
    let hidden = proc.sockets.len().saturating_sub(PROCESS_SOCKETS_SHOWN);
    if hidden > 0 {
        writeln!(out, "    {hidden} more")?;
    }
    let unread = proc.sockets_unreadable + proc.sockets_not_read;
    if unread > 0 {
        writeln!(out, "    {unread} socket(s) not read")?;
    }
    vsock_rows(out, proc)
}

/// A diagnosed process's vsock sockets, in the socket table's columns.
fn vsock_rows(out: &mut dyn Write, proc: &ProcessEvidence) -> io::Result<()> {
    for s in proc.vsock_sockets.iter().take(PROCESS_SOCKETS_SHOWN) {
        let zc = match &s.zerocopy {
            Fact::Read(true) => "on",
            Fact::Read(false) => "off",
            _ => "?",
        };
        let buffer = s
            .buffer_size
            .value()
            .map_or("?".to_string(), |b| b.to_string());
        writeln!(
            out,
            "    {:>5} {:<5} {:<48} {:<3} {:>8}",
            s.fd,
            "vsock",
            format!("{} ({}, buffer {buffer})", s.endpoints(), s.kind),
            zc,
            "-"
        )?;
    }
    Ok(())
}

/// The vsock probe: one line per message size.
pub(super) fn vsock_table(
    out: &mut dyn Write,
    p: &Palette,
    v: &crate::evidence::VsockProbe,
) -> io::Result<()> {
    if v.runs.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let buffer = v
        .buffer_size
        .map(|b| format!(", own receive buffer {b}"))
        .unwrap_or_default();
    writeln!(
        out,
        "vsock probe: stream to {}{buffer}{}",
        v.target(),
        if v.interrupted { " (interrupted)" } else { "" }
    )?;
    writeln!(
        out,
        "  {}",
        p.dim("send bytes  sends   notified   copied  error")
    )?;
    for r in &v.runs {
        let line = format!(
            "  {:>10} {:>6} {:>10} {:>8}  {}",
            r.message,
            r.messages,
            r.completions,
            r.copied,
            r.error.as_ref().map(|e| e.to_string()).unwrap_or_default()
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

pub(super) fn live_table(out: &mut dyn Write, p: &Palette, live: &LiveProbe) -> io::Result<()> {
    if live.runs.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "Live probe: {} to {}{}",
        live.protocol.as_str().to_uppercase(),
        live.target,
        if live.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    )?;
    // An api column only when io_uring ran, so sendmsg-only reports read as before.
    let uring = live.runs.iter().any(|r| !r.api.is_sendmsg());
    let api = |r: &crate::evidence::LiveRun| {
        if uring {
            format!("{:<9}", r.api.as_str())
        } else {
            String::new()
        }
    };
    writeln!(
        out,
        "  {}{}",
        p.dim(if uring { "api      " } else { "" }),
        p.dim("pattern   bytes    sends   copied copy MB/s  zc MB/s  gain  CPU s copy/zc")
    )?;
    let cpu = |ph: &Option<crate::evidence::Phase>| {
        ph.as_ref()
            .map(|x| format!("{:.2}", x.cpu_system_seconds + x.cpu_user_seconds))
            .unwrap_or_else(|| "-".into())
    };
    for r in &live.runs {
        let mbps = |ph: &Option<crate::evidence::Phase>| {
            ph.as_ref()
                .map(|x| format!("{:.0}", x.bytes_per_second() / 1e6))
                .unwrap_or_else(|| "-".into())
        };
        writeln!(
            out,
            "  {}{:<8} {:>6} {:>8} {:>8} {:>9} {:>8} {:>5} {:>14}",
            api(r),
            r.pattern,
            r.send_size,
            r.sends,
            r.copied,
            mbps(&r.copy_phase),
            mbps(&r.zerocopy_phase),
            r.gain()
                .map(|g| format!("{g:.2}"))
                .unwrap_or_else(|| "-".into()),
            format!("{}/{}", cpu(&r.copy_phase), cpu(&r.zerocopy_phase)),
        )?;
    }
    Ok(())
}
