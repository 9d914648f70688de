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
//! process as they name it ([`Subject`]), QEMU's migration channels and notes (`qemu`), and the
//! pass line of a process none of them flagged.

mod qemu;

use crate::evidence::{Fact, InetSocket, ProcessEvidence};

pub use qemu::is_qemu;

use qemu::qemu_notes;

/// A process diagnosed by pid, as its rules name it.
pub struct Subject<'a> {
    pub p: &'a ProcessEvidence,
    /// `qemu-system-x86 (pid 4242, machine-qemu-1-vm1.scope)`.
    pub who: String,
    pub qemu: bool,
    /// QEMU's notes (migration channels, `zero-copy-send`), for its findings.
    pub notes: Vec<String>,
}

impl<'a> Subject<'a> {
    pub fn of(p: &'a ProcessEvidence) -> Subject<'a> {
        let qemu = is_qemu(p);
        Subject {
            p,
            who: label(p),
            qemu,
            notes: if qemu { qemu_notes(p) } else { Vec::new() },
        }
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
    if !all_read(p) {
        parts.push(format!(
            "{} socket(s) not read",
            p.sockets_unreadable + p.sockets_not_read
        ));
    }
    parts.join(", ")
}
