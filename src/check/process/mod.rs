//! Applications diagnosed by pid: whether they ask for zerocopy at all (SO_ZEROCOPY), whether
//! their zerocopy sockets' option memory is filling with unread notifications, whether
//! RLIMIT_MEMLOCK caps their pinned pages, and whether they use io_uring (whose SEND_ZC copies
//! are invisible unless reported). QEMU gets its own names: migration channels, the
//! `zero-copy-send` capability and the `dirty-sync-missed-zero-copy` counter.
//!
//! `SO_ZEROCOPY` only says zerocopy is *allowed* on a socket (QEMU sets it on every outgoing
//! migration socket even with `zero-copy-send` off); option memory in use is what shows it used.
//!
//! One module per finding: `not_requested` (zerocopy-not-requested), `not_drained`
//! (errqueue-not-drained), `memlock` (process-memlock-limit), `io_uring` (io-uring-in-use);
//! `qemu` recognizes QEMU and names its migration channels. This file runs them per process
//! and writes the pass line of a process none of them flagged.

mod io_uring;
mod memlock;
mod not_drained;
mod not_requested;
mod qemu;
#[cfg(test)]
mod testing;

use super::findings::Findings;
use crate::evidence::{Evidence, Fact, InetSocket, ProcessEvidence};

pub use not_drained::NOTIFICATION_BYTES;
pub use qemu::is_qemu;

use io_uring::io_uring;
use memlock::memlock;
use not_drained::not_drained;
use not_requested::not_requested;
use qemu::qemu_notes;

pub fn check(ev: &Evidence, out: &mut Findings) {
    for p in &ev.processes {
        let before = out.findings.len();
        check_one(ev, p, out);
        if out.findings.len() == before {
            out.pass("process", pass_line(p));
        }
    }
}

fn check_one(ev: &Evidence, p: &ProcessEvidence, out: &mut Findings) {
    let qemu = is_qemu(p);
    let who = label(p);
    let notes = if qemu { qemu_notes(p) } else { Vec::new() };
    not_requested(p, &who, qemu, &notes, out);
    not_drained(p, &who, qemu, &notes, out);
    memlock(p, &who, qemu, out);
    io_uring(ev, p, &who, out);
}

/// `qemu-system-x86 (pid 4242, machine-qemu-1-vm1.scope)`.
fn label(p: &ProcessEvidence) -> String {
    match p.managed_by() {
        Some(m) => format!("{} (pid {}, {m})", p.comm, p.pid),
        None => format!("{} (pid {})", p.comm, p.pid),
    }
}

/// Whether every socket descriptor was read, so "none has SO_ZEROCOPY" is a fact.
fn all_read(p: &ProcessEvidence) -> bool {
    p.sockets_unreadable == 0
        && p.sockets_not_read == 0
        && p.sockets
            .iter()
            .all(|s| matches!(s.zerocopy, Fact::Read(_)))
}

fn pass_line(p: &ProcessEvidence) -> String {
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
