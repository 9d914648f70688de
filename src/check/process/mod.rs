//! Applications diagnosed by pid: whether they ask for zerocopy at all (SO_ZEROCOPY), whether
//! their zerocopy sockets' option memory is filling with unread notifications, whether
//! RLIMIT_MEMLOCK caps their pinned pages, and whether they use io_uring (whose SEND_ZC copies
//! are invisible unless reported). QEMU gets its own names: migration channels, the
//! `zero-copy-send` capability and the `dirty-sync-missed-zero-copy` counter.
//!
//! `SO_ZEROCOPY` only says zerocopy is *allowed* on a socket (QEMU sets it on every outgoing
//! migration socket even with `zero-copy-send` off); option memory in use is what shows it used.
//!
//! The rules of one finding each are `zerocopy_not_requested`, `errqueue_not_drained`,
//! `process_memlock_limit` and `io_uring_in_use` (in `rules/`); here is what they share: the
//! process as they name it ([`Subject`]) and the pass line of a process none of them flagged.
//! Beside the findings, every process gets its [`notes`], whatever fired: QEMU's migration
//! channels and counter (`qemu`), and for one with zerocopy sockets, `zcdoctor watch --pid`.

pub mod qemu;

use crate::evidence::{Fact, InetSocket, ProcessEvidence};
use crate::vocab::NoteAbout;

pub use qemu::is_qemu;

use qemu::qemu_notes;

/// A process diagnosed by pid, as its rules name it.
pub struct Subject<'a> {
    pub p: &'a ProcessEvidence,
    /// `qemu-system-x86 (pid 4242, machine-qemu-1-vm1.scope)`.
    pub who: String,
    pub qemu: bool,
}

impl<'a> Subject<'a> {
    pub fn of(p: &'a ProcessEvidence) -> Subject<'a> {
        let qemu = is_qemu(p);
        Subject {
            p,
            who: label(p),
            qemu,
        }
    }
}

/// The notes on a process, given whatever its findings: QEMU's (what it is, its migration
/// channels, where it counts copies), then, for a process with zerocopy sockets, how `watch`
/// shows what copies its real traffic.
pub fn notes(s: &Subject) -> Vec<(NoteAbout, String)> {
    let mut notes = Vec::new();
    if s.qemu {
        notes.extend(qemu_notes(s.p, &s.who).map(|n| (NoteAbout::Qemu, n)));
    }
    if s.p.zerocopy_sockets().next().is_some() {
        notes.push((NoteAbout::Watch, watch_note(s)));
    }
    if let Some(n) = vsock_note(s.p) {
        notes.push((NoteAbout::Vsock, n));
    }
    notes
}

/// A process with vsock sockets: what this kernel does with MSG_ZEROCOPY on them, from its
/// answer to SO_ZEROCOPY on a vsock socket, and which of them asked for it.
fn vsock_note(p: &ProcessEvidence) -> Option<String> {
    use crate::evidence::VsockZerocopySupport as Support;
    let first = p.vsock_sockets.first()?;
    let on: Vec<String> = p
        .vsock_sockets
        .iter()
        .filter(|v| v.zerocopy.value() == Some(&true))
        .take(8)
        .map(|v| format!("fd {} ({})", v.fd, v.endpoints()))
        .collect();
    let n = p.vsock_sockets.len();
    let measure = match first.peer.value().cloned().flatten() {
        Some(peer) => format!("`zcdoctor check --target vsock:{peer}` against a listener that only reads measures which send sizes stay zerocopy"),
        None => "`zcdoctor check --target vsock:CID:PORT` against a listener that only reads measures which send sizes stay zerocopy".to_string(),
    };
    Some(match (&p.vsock_zerocopy, on.is_empty()) {
        (Some(Support::Refused { error }), _) => format!(
            "It holds {n} vsock socket(s); this kernel has no MSG_ZEROCOPY for vsock ({error}; Linux 6.7+): MSG_ZEROCOPY sends on them are plain copies with no completion."
        ),
        (_, false) => format!(
            "vsock socket(s) with SO_ZEROCOPY: {}. The virtio transport copies a send larger than the peer's free credit (its receive buffer, SO_VM_SOCKETS_BUFFER_SIZE, 256 KiB by default, minus what it has not read) and completes it as COPIED; {measure}.",
            on.join(", ")
        ),
        (_, true) => format!(
            "It holds {n} vsock socket(s), none with SO_ZEROCOPY: MSG_ZEROCOPY on them is ignored (plain copies, no completion) until SO_ZEROCOPY is set."
        ),
    })
}

/// `zcdoctor watch --pid PID`: each copy of the process's zerocopy data, its cause, and each
/// socket's (QEMU: each multifd channel's) copied fraction.
fn watch_note(s: &Subject) -> String {
    let pid = s.p.pid;
    if s.qemu {
        format!(
            "To see what copies its migration traffic: `zcdoctor watch --pid {pid}` counts each copy of its zerocopy data in the kernel, names the cause of each, and gives each multifd channel's copied fraction, which dirty-sync-missed-zero-copy's all-or-nothing count hides."
        )
    } else {
        format!(
            "To see what copies this process's real traffic: `zcdoctor watch --pid {pid}` counts each copy of its zerocopy data in the kernel, names the cause of each, and gives each socket's copied fraction."
        )
    }
}

/// `qemu-system-x86 (pid 4242, machine-qemu-1-vm1.scope)`.
fn label(p: &ProcessEvidence) -> String {
    match p.managed_by() {
        Some(m) => format!("{} (pid {}, {m})", p.comm, p.pid),
        None => format!("{} (pid {})", p.comm, p.pid),
    }
}

/// Whether every socket descriptor was read, so "none has SO_ZEROCOPY" is a fact.
pub fn all_read(p: &ProcessEvidence) -> bool {
    p.sockets_unreadable == 0
        && p.sockets_not_read == 0
        && p.sockets
            .iter()
            .all(|s| matches!(s.zerocopy, Fact::Read(_)))
}

pub fn pass_line(p: &ProcessEvidence) -> String {
    let zc = p.zerocopy_sockets().count();
    let optmem: u64 = p.zerocopy_sockets().filter_map(InetSocket::optmem).sum();
    let mut parts = vec![format!(
        "{}: {zc} of {} TCP/UDP socket(s) allow MSG_ZEROCOPY",
        label(p),
        p.sockets.len()
    )];
    if zc > 0 {
        parts.push(format!("{optmem} bytes of option memory in use on them"));
        match (p.cap_ipc_lock(), p.memlock.value()) {
            (Some(true), _) => parts.push("RLIMIT_MEMLOCK does not apply (CAP_IPC_LOCK)".into()),
            (_, Some(l)) if l.soft.is_none() => parts.push("RLIMIT_MEMLOCK unlimited".into()),
            _ => {}
        }
    }
    parts.extend(p.zerocopy_sockets().filter_map(harmless_timestamps));
    if !all_read(p) {
        parts.push(format!(
            "{} socket(s) not read",
            p.sockets_unreadable + p.sockets_not_read
        ));
    }
    parts.join(", ")
}

/// A socket as a finding's evidence names it: descriptor, inode, protocol and addresses.
pub fn socket_evidence(s: &InetSocket) -> serde_json::Value {
    serde_json::json!({
        "fd": s.fd,
        "inode": s.inode,
        "protocol": s.protocol,
        "local": s.local.value(),
        "peer": s.peer.value().cloned().flatten(),
    })
}

/// `fd 5 timestamps with TX_SOFTWARE|SOFTWARE|OPT_ID|OPT_TSONLY (OPT_TSONLY: no copy)`, for
/// a zerocopy socket whose timestamping flags do not copy its sends.
fn harmless_timestamps(s: &InetSocket) -> Option<String> {
    let flags = s.timestamping.as_ref()?.value()?;
    if flags.0 == 0 || flags.copies_zerocopy() {
        return None;
    }
    let why = if flags.transmit() {
        "OPT_TSONLY: timestamps come back without the payload, no copy"
    } else {
        "no transmit timestamps, no copy"
    };
    Some(format!(
        "fd {} timestamps with {} ({why})",
        s.fd,
        flags.names()
    ))
}

#[cfg(test)]
mod tests {
    use crate::check::testing::process::{process, run, socket};
    use crate::vocab::NoteAbout;

    /// Any process with a zerocopy socket is pointed at `watch` with its own pid, beside its
    /// findings (here its 8 MiB RLIMIT_MEMLOCK); one without gets no note.
    #[test]
    fn a_zerocopy_process_is_pointed_at_watch_by_its_pid() {
        let out = run(process("app", vec![socket(3, true, 0, None)]));
        let [note] = &out.notes[..] else {
            panic!("{:?}", out.notes)
        };
        assert_eq!((note.pid, note.about), (4242, NoteAbout::Watch));
        assert!(note.text.contains("`zcdoctor watch --pid 4242`"));
        assert!(note.text.contains("each socket's copied fraction"));
        let out = run(process("app", vec![socket(3, false, 0, None)]));
        assert!(out.notes.is_empty(), "{:?}", out.notes);
    }
}
