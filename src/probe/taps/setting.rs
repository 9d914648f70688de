//! A tap's real settings, read from the socket itself: `pidfd_open` + `pidfd_getfd` duplicate
//! the owner's descriptor (its inode is checked, so a reused descriptor number is never
//! misread), then `getsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING)` and `PACKET_FANOUT` are read
//! and the duplicate is closed at once.
//!
//! Both values are recorded as read. Which of them the kernel obeys (for a fanout member, the
//! group's hook and its `PACKET_FANOUT_FLAG_IGNORE_OUTGOING`) is for the checks to decide.
//! What cannot be read is `Unknown` with a factual account (`reason`) and the failure as data
//! (`cause`), never a guess.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use procfs::FromRead;

use crate::evidence::{Fanout, IgnoreOutgoing, OsError, ScanProblem, TapScan, Unreadable};
use crate::probe::sockopt::getsockopt_int;

/// `CAP_SYS_PTRACE` of `linux/capability.h` (libc does not export capability numbers).
const CAP_SYS_PTRACE: u32 = 19;

/// What the probing thread may do, recorded with a refusal (EPERM).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct PtraceContext {
    pub(super) cap_sys_ptrace: bool,
    pub(super) yama_ptrace_scope: Option<u32>,
}

impl PtraceContext {
    /// The calling thread's effective capabilities and the Yama ptrace scope, when readable.
    pub(super) fn read() -> PtraceContext {
        let cap_sys_ptrace = procfs::process::Status::from_file("/proc/thread-self/status")
            .is_ok_and(|s| s.capeff & (1u64 << CAP_SYS_PTRACE) != 0);
        let yama_ptrace_scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        PtraceContext {
            cap_sys_ptrace,
            yama_ptrace_scope,
        }
    }
}

/// What was read from one tap.
#[derive(Debug, PartialEq)]
pub(super) struct Reading {
    pub(super) ignore_outgoing: IgnoreOutgoing,
    pub(super) fanout: Option<Fanout>,
    /// Factual notes for `TapScan::problems` (a fanout membership that could not be read).
    pub(super) problems: Vec<ScanProblem>,
}

/// Why one holder's socket could not be read: the account and the cause as data.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    reason: String,
    cause: Unreadable,
}

impl Failure {
    /// A call on behalf of owner `pid` failed with `error`: the account is the call and its
    /// errno, and for a refusal what the prober held.
    fn os(pid: u32, error: OsError, ptrace: &PtraceContext) -> Failure {
        let mut reason = error.to_string();
        let cause = cause_of(pid, error, ptrace);
        if let Unreadable::Refused {
            cap_sys_ptrace,
            yama_ptrace_scope,
            ..
        } = &cause
        {
            reason.push_str(if *cap_sys_ptrace {
                "; CAP_SYS_PTRACE is in zcdoctor's effective capabilities"
            } else {
                "; CAP_SYS_PTRACE is not in zcdoctor's effective capabilities"
            });
            match yama_ptrace_scope {
                Some(s) => reason.push_str(&format!("; Yama ptrace_scope is {s}")),
                None => reason.push_str("; Yama ptrace_scope is not readable"),
            }
        }
        Failure { reason, cause }
    }

    fn into_unknown(self) -> IgnoreOutgoing {
        IgnoreOutgoing::Unknown {
            reason: self.reason,
            cause: Some(self.cause),
        }
    }
}

/// The cause of a failed call on owner `pid`'s socket, by its errno.
fn cause_of(pid: u32, error: OsError, ptrace: &PtraceContext) -> Unreadable {
    match error.errno() {
        Errno::ENOSYS | Errno::ENOPROTOOPT => Unreadable::Unsupported { error },
        Errno::EPERM => Unreadable::Refused {
            pid,
            error,
            cap_sys_ptrace: ptrace.cap_sys_ptrace,
            yama_ptrace_scope: ptrace.yama_ptrace_scope,
        },
        // The process exited, or closed the descriptor, before it was duplicated.
        Errno::ESRCH | Errno::EBADF => Unreadable::OwnerGone { pid },
        _ => Unreadable::Failed {
            pid: Some(pid),
            error,
        },
    }
}

/// The setting of a socket no readable process holds.
pub(super) fn no_owner(scan: &TapScan) -> IgnoreOutgoing {
    let mut reason = format!(
        "no owner found among the descriptors of {} process(es)",
        scan.processes_scanned
    );
    let mut notes = Vec::new();
    if scan.processes_unreadable > 0 {
        notes.push(format!(
            "{} process(es) unreadable",
            scan.processes_unreadable
        ));
    }
    if scan.processes_vanished > 0 {
        notes.push(format!("{} exited meanwhile", scan.processes_vanished));
    }
    if !notes.is_empty() {
        reason = format!("{reason} ({})", notes.join(", "));
    }
    IgnoreOutgoing::Unknown {
        reason,
        cause: Some(Unreadable::NoOwner),
    }
}

/// The setting of a socket that is not read because it is not ETH_P_ALL: there is no failure,
/// so no cause.
pub(super) fn not_read(protocol: u16) -> IgnoreOutgoing {
    IgnoreOutgoing::Unknown {
        reason: format!("not read: protocol 0x{protocol:04x} is not ETH_P_ALL"),
        cause: None,
    }
}

/// Reads the socket `inode` through each (pid, fd) holding it until one can be read.
pub(super) fn read_setting_any(
    holders: &[(u32, i32)],
    inode: u64,
    ptrace: &PtraceContext,
) -> Reading {
    let mut failures: Vec<Failure> = Vec::new();
    for (pid, fd) in holders {
        match read_setting(*pid, *fd, inode, ptrace) {
            Ok(r) => return r,
            Err(f) => failures.push(f),
        }
    }
    Reading {
        ignore_outgoing: combine(failures),
        fanout: None,
        problems: Vec::new(),
    }
}

/// Every distinct account, and the most telling cause: a kernel without the call or option
/// first, then a refusal, another failure, an owner gone.
fn combine(failures: Vec<Failure>) -> IgnoreOutgoing {
    let rank = |c: &Unreadable| match c {
        Unreadable::Unsupported { .. } => 0u8,
        Unreadable::Refused { .. } => 1,
        Unreadable::Failed { .. } => 2,
        Unreadable::OwnerGone { .. } => 3,
        Unreadable::NoOwner => 4,
    };
    let mut reasons: Vec<&str> = Vec::new();
    for f in &failures {
        if !reasons.contains(&f.reason.as_str()) {
            reasons.push(&f.reason);
        }
    }
    let reason = reasons.join("; ");
    let cause = failures
        .iter()
        .min_by_key(|f| rank(&f.cause))
        .map_or(Unreadable::NoOwner, |f| f.cause.clone());
    IgnoreOutgoing::Unknown {
        reason: if reason.is_empty() {
            "no owner found".to_string()
        } else {
            reason
        },
        cause: Some(cause),
    }
}

/// Duplicates fd `fd` of `pid` and reads its PACKET_IGNORE_OUTGOING and PACKET_FANOUT.
fn read_setting(pid: u32, fd: i32, inode: u64, ptrace: &PtraceContext) -> Result<Reading, Failure> {
    let pidfd = pidfd_open(pid).map_err(|e| {
        Failure::os(
            pid,
            OsError::new(format!("pidfd_open(pid {pid})"), e),
            ptrace,
        )
    })?;
    let dup = pidfd_getfd(&pidfd, fd).map_err(|e| {
        Failure::os(
            pid,
            OsError::new(format!("pidfd_getfd(pid {pid}, fd {fd})"), e),
            ptrace,
        )
    })?;
    drop(pidfd);
    match nix::sys::stat::fstat(dup.as_fd()) {
        Ok(st) if st.st_ino == inode => {}
        Ok(st) => {
            return Err(Failure {
                reason: format!(
                    "fd {fd} of pid {pid} refers to inode {} now, not to socket {inode}",
                    st.st_ino
                ),
                cause: Unreadable::OwnerGone { pid },
            });
        }
        Err(e) => {
            let op = format!("fstat(duplicate of fd {fd} of pid {pid})");
            return Err(Failure::os(pid, OsError::new(op, e), ptrace));
        }
    }
    let ignore = getsockopt_int(&dup, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING);
    let fanout = getsockopt_int(&dup, libc::SOL_PACKET, libc::PACKET_FANOUT);
    drop(dup);

    let ignore_outgoing = match ignore {
        Ok(0) => IgnoreOutgoing::NotSet,
        Ok(_) => IgnoreOutgoing::Set,
        Err(e) => {
            let op =
                format!("getsockopt(fd {fd} of pid {pid}, SOL_PACKET, PACKET_IGNORE_OUTGOING)");
            Failure::os(pid, OsError::new(op, e), ptrace).into_unknown()
        }
    };
    let mut problems = Vec::new();
    let fanout = match fanout {
        Ok(v) => decode_fanout(v),
        Err(e) => {
            let op = format!("getsockopt(fd {fd} of pid {pid}, SOL_PACKET, PACKET_FANOUT)");
            problems.push(ScanProblem::FanoutUnreadable {
                inode,
                error: OsError::new(op, e),
            });
            None
        }
    };
    Ok(Reading {
        ignore_outgoing,
        fanout,
        problems,
    })
}

// nix 0.30 wraps neither pidfd_open nor pidfd_getfd (nor does libc as functions): raw syscalls.

pub(crate) fn pidfd_open(pid: u32) -> Result<OwnedFd, Errno> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| Errno::ESRCH)?;
    // SAFETY: pidfd_open(pid, flags) takes two integers and returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    owned_result(r)
}

pub(crate) fn pidfd_getfd(pidfd: &OwnedFd, target_fd: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_getfd(pidfd, targetfd, flags) takes three integers and returns a new
    // descriptor or -1; pidfd is open for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_getfd,
            pidfd.as_raw_fd(),
            target_fd,
            0 as libc::c_uint,
        )
    };
    owned_result(r)
}

/// A syscall's return value as a new descriptor, or the errno it left.
fn owned_result(r: libc::c_long) -> Result<OwnedFd, Errno> {
    if r < 0 {
        return Err(Errno::last());
    }
    let fd = i32::try_from(r).map_err(|_| Errno::EBADF)?;
    // SAFETY: fd is a fresh descriptor the kernel just returned to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `getsockopt(PACKET_FANOUT)` value: group id in the low 16 bits, `type | flags` above; 0
/// when the socket is in no group.
fn decode_fanout(v: libc::c_int) -> Option<Fanout> {
    let v = v as u32;
    (v != 0).then_some(Fanout {
        group: (v & 0xffff) as u16,
        flags: (v >> 16) as u16,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_CAP: PtraceContext = PtraceContext {
        cap_sys_ptrace: false,
        yama_ptrace_scope: Some(1),
    };

    fn getfd_error(e: Errno) -> OsError {
        OsError::new("pidfd_getfd(pid 812, fd 5)", e)
    }

    #[test]
    fn decodes_fanout() {
        assert_eq!(decode_fanout(0), None);
        let flag = libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
        let v = (7 | (libc::PACKET_FANOUT_HASH | flag) << 16) as i32;
        assert_eq!(
            decode_fanout(v),
            Some(Fanout {
                group: 7,
                flags: flag as u16
            })
        );
        // Group 0 with a type is still a group: the value is not 0.
        let v = (libc::PACKET_FANOUT_CPU << 16) as i32;
        assert_eq!(decode_fanout(v), Some(Fanout { group: 0, flags: 2 }));
        assert_eq!(
            decode_fanout(-1),
            Some(Fanout {
                group: 0xffff,
                flags: 0xffff
            })
        );
    }

    #[test]
    fn maps_errnos_to_causes() {
        let refused = cause_of(812, getfd_error(Errno::EPERM), &NO_CAP);
        assert_eq!(
            refused,
            Unreadable::Refused {
                pid: 812,
                error: getfd_error(Errno::EPERM),
                cap_sys_ptrace: false,
                yama_ptrace_scope: Some(1),
            }
        );
        assert_eq!(
            cause_of(812, getfd_error(Errno::ESRCH), &NO_CAP),
            Unreadable::OwnerGone { pid: 812 }
        );
        assert_eq!(
            cause_of(812, getfd_error(Errno::EBADF), &NO_CAP),
            Unreadable::OwnerGone { pid: 812 }
        );
        assert_eq!(
            cause_of(812, getfd_error(Errno::ENOSYS), &NO_CAP),
            Unreadable::Unsupported {
                error: getfd_error(Errno::ENOSYS)
            }
        );
        let opt = OsError::new("getsockopt(PACKET_IGNORE_OUTGOING)", Errno::ENOPROTOOPT);
        assert_eq!(
            cause_of(812, opt.clone(), &NO_CAP),
            Unreadable::Unsupported { error: opt }
        );
        assert_eq!(
            cause_of(812, getfd_error(Errno::EMFILE), &NO_CAP),
            Unreadable::Failed {
                pid: Some(812),
                error: getfd_error(Errno::EMFILE)
            }
        );
    }

    #[test]
    fn accounts_are_facts() {
        let f = Failure::os(812, getfd_error(Errno::EPERM), &NO_CAP);
        assert_eq!(
            f.reason,
            "pidfd_getfd(pid 812, fd 5): Operation not permitted (EPERM); \
             CAP_SYS_PTRACE is not in zcdoctor's effective capabilities; Yama ptrace_scope is 1"
        );
        let with_cap = PtraceContext {
            cap_sys_ptrace: true,
            yama_ptrace_scope: None,
        };
        let f = Failure::os(812, getfd_error(Errno::EPERM), &with_cap);
        assert!(f.reason.ends_with(
            "CAP_SYS_PTRACE is in zcdoctor's effective capabilities; Yama ptrace_scope is not readable"
        ));
        let f = Failure::os(812, getfd_error(Errno::ESRCH), &NO_CAP);
        assert_eq!(
            f.reason,
            "pidfd_getfd(pid 812, fd 5): No such process (ESRCH)"
        );
        let f = Failure::os(812, getfd_error(Errno::ENOSYS), &NO_CAP);
        assert_eq!(
            f.reason,
            "pidfd_getfd(pid 812, fd 5): Function not implemented (ENOSYS)"
        );
    }

    #[test]
    fn combines_failures_of_several_holders() {
        let gone = Failure::os(1, getfd_error(Errno::ESRCH), &NO_CAP);
        let refused = Failure::os(2, getfd_error(Errno::EPERM), &NO_CAP);
        let IgnoreOutgoing::Unknown { reason, cause } =
            combine(vec![gone.clone(), refused.clone(), gone.clone()])
        else {
            panic!("not unknown");
        };
        assert_eq!(reason, format!("{}; {}", gone.reason, refused.reason));
        assert_eq!(cause, Some(refused.cause));
        assert!(matches!(
            combine(Vec::new()),
            IgnoreOutgoing::Unknown {
                cause: Some(Unreadable::NoOwner),
                ..
            }
        ));
    }

    #[test]
    fn unread_sockets_say_what_was_seen() {
        let scan = TapScan {
            processes_scanned: 120,
            processes_unreadable: 3,
            processes_vanished: 1,
            ..TapScan::default()
        };
        assert_eq!(
            no_owner(&scan),
            IgnoreOutgoing::Unknown {
                reason: "no owner found among the descriptors of 120 process(es) (3 process(es) unreadable, 1 exited meanwhile)".to_string(),
                cause: Some(Unreadable::NoOwner),
            }
        );
        let scan = TapScan {
            processes_scanned: 5,
            ..TapScan::default()
        };
        assert!(
            matches!(no_owner(&scan), IgnoreOutgoing::Unknown { reason, .. }
            if reason == "no owner found among the descriptors of 5 process(es)")
        );
        assert_eq!(
            not_read(0x0800),
            IgnoreOutgoing::Unknown {
                reason: "not read: protocol 0x0800 is not ETH_P_ALL".to_string(),
                cause: None,
            }
        );
    }

    #[test]
    fn reads_this_process() {
        // pidfd_getfd on itself needs no privilege; a UDP socket has no PACKET options.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        let fd = sock.as_raw_fd();
        let st = nix::sys::stat::fstat(sock.as_fd()).expect("fstat");
        let me = std::process::id();
        let ptrace = PtraceContext::read();
        match read_setting(me, fd, st.st_ino, &ptrace) {
            Ok(r) => {
                assert!(matches!(
                    r.ignore_outgoing,
                    IgnoreOutgoing::Unknown {
                        cause: Some(Unreadable::Unsupported { .. } | Unreadable::Failed { .. }),
                        ..
                    }
                ));
                assert_eq!(r.fanout, None);
            }
            // Kernels before 5.6, or a seccomp filter.
            Err(f) => assert!(matches!(f.cause, Unreadable::Unsupported { .. })),
        }
        // A reused descriptor number is detected by its inode.
        if let Err(f) = read_setting(me, fd, st.st_ino + 1, &ptrace) {
            assert!(matches!(
                f.cause,
                Unreadable::OwnerGone { .. } | Unreadable::Unsupported { .. }
            ));
        } else {
            panic!("a wrong inode was read");
        }
    }
}
