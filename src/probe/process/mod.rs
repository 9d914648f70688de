//! Applications diagnosed by pid (`--pid PID`): who the process is (comm, exe, command line,
//! uid, namespace, cgroup, systemd unit, container), its memory limits (RLIMIT_MEMLOCK, CapEff,
//! VmLck, VmPin), `net.core.optmem_max` of its namespace, its TCP and UDP sockets with
//! `SO_ZEROCOPY`, `SO_TIMESTAMPING` and `SO_MEMINFO` ([`sockets`]), and its io_uring instances
//! ([`uring`]).
//!
//! Facts only, each bounded: at most [`ProcessEvidence::SOCKETS_MAX`] sockets are read (the
//! rest counted), every file read is capped. The error queue is never read: that would dequeue
//! the application's own completions.

mod limits;
pub mod routes;
mod sockets;
mod uring;
pub mod vsock;

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use crate::evidence::{
    Evidence, Fact, IoUring, NamespaceSysctls, NetnsRef, ProbeName, ProbeState, ProcessEvidence,
    ProcessProblem,
};

use super::taps::cgroup;
use super::{Context, GatherError, GatherOptions, Outcome, Probe};

/// At most this many io_uring instances are recorded per process.
const URINGS_MAX: usize = 64;

pub struct ProcessProbe;

impl Probe for ProcessProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Process
    }

    fn reads(&self) -> &'static str {
        "each --pid process: /proc/PID/{comm,exe,cmdline,status,limits,cgroup,fd,fdinfo}, its TCP/UDP sockets through pidfd_getfd (SO_ZEROCOPY, SO_TIMESTAMPING, SO_MEMINFO, addresses; never data or the error queue), optmem_max of its namespaces"
    }

    fn privileges(&self) -> &'static str {
        "CAP_SYS_PTRACE (or the same user) to duplicate its sockets; CAP_SYS_ADMIN to read optmem_max inside another network namespace"
    }

    fn not_requested(&self, opts: &GatherOptions) -> Option<String> {
        opts.pids
            .is_empty()
            .then(|| "not requested: no --pid given".to_string())
    }

    fn gather(&self, cx: &mut Context, ev: &mut Evidence) -> Result<Outcome, GatherError> {
        let pids = &cx.opts.pids;
        let mut details = Vec::new();
        let mut incomplete = false;
        for &pid in pids {
            if !exists(pid) {
                return Err(GatherError::NoSuchProcess { pid });
            }
            let p = match cx.opts.prefetched.iter().find(|p| p.pid == pid) {
                Some(p) => p.clone(),
                None => read_process(pid),
            };
            let zc = p.zerocopy_sockets().count();
            let mut d = format!(
                "pid {pid} ({}): {} TCP/UDP socket(s), {zc} with SO_ZEROCOPY, {} io_uring(s)",
                p.comm,
                p.sockets.len(),
                p.io_urings.len()
            );
            if !p.vsock_sockets.is_empty() {
                d.push_str(&format!(", {} vsock socket(s)", p.vsock_sockets.len()));
            }
            let unread = p.sockets_unreadable + p.sockets_not_read;
            if unread > 0 {
                d.push_str(&format!("; {unread} socket(s) not read"));
                incomplete = true;
            }
            if !p.problems.is_empty() {
                incomplete = true;
            }
            details.push(d);
            ev.processes.push(p);
        }
        let state = if incomplete {
            ProbeState::Error
        } else {
            ProbeState::Ok
        };
        Ok(Outcome::new(state, details.join("; ")))
    }
}

/// Whether `/proc/PID` exists (a process, or a thread id).
pub fn exists(pid: u32) -> bool {
    pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Everything about process `pid`; what cannot be read is recorded as such.
pub fn read_process(pid: u32) -> ProcessEvidence {
    let mut problems = Vec::new();
    let comm = read_comm(pid, &mut problems);
    let exe = match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(p) => Fact::Read(p.to_string_lossy().into_owned()),
        Err(e) => Fact::Failed(limits::io_error(&format!("readlink /proc/{pid}/exe"), &e)),
    };
    let (cmdline, cmdline_truncated) = match limits::cmdline(pid, ProcessEvidence::CMDLINE_MAX) {
        Ok(c) => c,
        Err(error) => {
            problems.push(ProcessProblem::Unreadable { error });
            (Vec::new(), false)
        }
    };
    let status = limits::status(pid);
    let (netns, ns_handle) = process_netns(pid);
    let cg = read_cgroup(pid, &mut problems);

    let fds = list_fds(pid, &mut problems);
    let scan = sockets::read_all(pid, &fds.sockets);
    note_unread_sockets(&scan, &mut problems);
    let namespaces = namespace_sysctls(&netns, ns_handle.as_ref(), &scan);
    let io_urings = read_urings(pid, &fds.urings, &mut problems);

    ProcessEvidence {
        pid,
        comm,
        exe,
        cmdline,
        cmdline_truncated,
        uid: status.uid,
        netns,
        cgroup: cg.path,
        unit: cg.unit,
        container: cg.container,
        memlock: limits::memlock(pid),
        capeff: status.capeff,
        vm_lck: status.vm_lck,
        vm_pin: status.vm_pin,
        namespaces,
        sockets: scan.sockets,
        sockets_not_read: fds.sockets_not_read,
        other_sockets: scan.other,
        unreadable_sockets: scan.unreadable,
        sockets_unreadable: scan.unreadable_count,
        io_urings,
        vsock_zerocopy: (!scan.vsock.is_empty()).then(vsock::zerocopy_support),
        vsock_sockets: scan.vsock,
        problems,
    }
}

/// `/proc/PID/comm` (empty when it cannot be read).
fn read_comm(pid: u32, problems: &mut Vec<ProcessProblem>) -> String {
    match limits::read_bounded(&format!("/proc/{pid}/comm"), 64) {
        Ok((b, _)) => String::from_utf8_lossy(&b).trim_end().to_string(),
        Err(error) => {
            problems.push(ProcessProblem::Unreadable { error });
            String::new()
        }
    }
}

/// The cgroup, systemd unit and container of `pid` from `/proc/PID/cgroup`.
fn read_cgroup(pid: u32, problems: &mut Vec<ProcessProblem>) -> cgroup::CgroupSummary {
    match limits::read_bounded(&format!("/proc/{pid}/cgroup"), 16384) {
        Ok((b, _)) => match <procfs::ProcessCGroups as procfs::FromRead>::from_read(&b[..]) {
            Ok(c) => cgroup::of_process(&c),
            Err(e) => {
                problems.push(ProcessProblem::CgroupUnparsed {
                    pid,
                    error: e.to_string(),
                });
                cgroup::CgroupSummary::default()
            }
        },
        Err(error) => {
            problems.push(ProcessProblem::Unreadable { error });
            cgroup::CgroupSummary::default()
        }
    }
}

/// The socket descriptors the scan could not read, or found closed or reused.
fn note_unread_sockets(scan: &sockets::SocketScan, problems: &mut Vec<ProcessProblem>) {
    if scan.vanished > 0 {
        problems.push(ProcessProblem::SocketsVanished {
            sockets: scan.vanished,
        });
    }
    if scan.unreadable_count as usize > scan.unreadable.len() {
        problems.push(ProcessProblem::SocketsUnread {
            sockets: scan.unreadable_count,
            listed: u32::try_from(scan.unreadable.len()).unwrap_or(u32::MAX),
        });
    }
}

/// optmem_max of the process's namespace, then of every other namespace its sockets are in.
fn namespace_sysctls(
    netns: &Fact<NetnsRef>,
    ns_handle: Option<&File>,
    scan: &sockets::SocketScan,
) -> Vec<NamespaceSysctls> {
    let mut namespaces = Vec::new();
    if let (Fact::Read(n), Some(h)) = (netns, ns_handle) {
        namespaces.push(NamespaceSysctls {
            netns: n.clone(),
            optmem_max: limits::optmem_max_in(h, n.inode),
        });
    }
    for (ino, handle) in &scan.namespaces {
        if namespaces.iter().any(|n| n.netns.inode == *ino) {
            continue;
        }
        namespaces.push(NamespaceSysctls {
            netns: NetnsRef {
                inode: *ino,
                name: netns_name(*ino),
            },
            optmem_max: limits::optmem_max_in(handle, *ino),
        });
    }
    namespaces
}

/// The io_uring instances of `pid` (the first [`URINGS_MAX`] of `fds`).
fn read_urings(pid: u32, fds: &[i32], problems: &mut Vec<ProcessProblem>) -> Vec<IoUring> {
    let io_urings = fds
        .iter()
        .take(URINGS_MAX)
        .map(|fd| uring::read(pid, *fd))
        .collect();
    if fds.len() > URINGS_MAX {
        problems.push(ProcessProblem::UringsCapped {
            urings: fds.len(),
            recorded: URINGS_MAX,
        });
    }
    io_urings
}

struct Fds {
    sockets: Vec<(i32, u64)>,
    sockets_not_read: u32,
    urings: Vec<i32>,
}

/// Socket and io_uring descriptors of `pid` from `/proc/PID/fd`, in descriptor order; sockets
/// beyond [`ProcessEvidence::SOCKETS_MAX`] only counted.
fn list_fds(pid: u32, problems: &mut Vec<ProcessProblem>) -> Fds {
    let mut out = Fds {
        sockets: Vec::new(),
        sockets_not_read: 0,
        urings: Vec::new(),
    };
    let dir = format!("/proc/{pid}/fd");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) => {
            problems.push(ProcessProblem::DescriptorsUnlisted {
                error: limits::io_error(&format!("open {dir}"), &e),
            });
            return out;
        }
    };
    let mut entries: Vec<(i32, String)> = rd
        .flatten()
        .filter_map(|e| {
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            Some((fd, link.to_string_lossy().into_owned()))
        })
        .collect();
    entries.sort_by_key(|(fd, _)| *fd);
    for (fd, link) in entries {
        if let Some(inode) = socket_inode(&link) {
            if out.sockets.len() < ProcessEvidence::SOCKETS_MAX {
                out.sockets.push((fd, inode));
            } else {
                out.sockets_not_read += 1;
            }
        } else if link == uring::LINK {
            out.urings.push(fd);
        }
    }
    out
}

/// The inode of a `socket:[N]` link.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The process's namespace and a handle on it (for reading its sysctls).
fn process_netns(pid: u32) -> (Fact<NetnsRef>, Option<File>) {
    let path = format!("/proc/{pid}/ns/net");
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            return (
                Fact::Failed(limits::io_error(&format!("open {path}"), &e)),
                None,
            );
        }
    };
    match f.metadata() {
        Ok(m) => (
            Fact::Read(NetnsRef {
                inode: m.ino(),
                name: netns_name(m.ino()),
            }),
            Some(f),
        ),
        Err(e) => (
            Fact::Failed(limits::io_error(&format!("stat {path}"), &e)),
            None,
        ),
    }
}

/// The name under /run/netns of namespace `ino`, when it has one.
fn netns_name(ino: u64) -> Option<String> {
    let nsfs_dev = std::fs::metadata("/proc/self/ns/net").ok()?.dev();
    let mut names: Vec<(String, std::path::PathBuf)> = std::fs::read_dir("/run/netns")
        .ok()?
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    names.sort();
    names.into_iter().find_map(|(name, path)| {
        let m = std::fs::metadata(path).ok()?;
        (m.ino() == ino && m.dev() == nsfs_dev).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::fd::AsRawFd;

    #[test]
    fn parses_socket_links() {
        assert_eq!(socket_inode("socket:[504976]"), Some(504976));
        assert_eq!(socket_inode("anon_inode:[io_uring]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn only_runs_with_pids() {
        let opts = GatherOptions::default();
        assert_eq!(
            ProcessProbe.not_requested(&opts).as_deref(),
            Some("not requested: no --pid given")
        );
        let opts = GatherOptions {
            pids: vec![1],
            ..GatherOptions::default()
        };
        assert_eq!(ProcessProbe.not_requested(&opts), None);
        assert!(!exists(0));
        assert!(exists(std::process::id()));
    }

    #[test]
    fn reads_this_process() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let me = std::process::id();
        let p = read_process(me);
        assert_eq!(p.pid, me);
        assert!(!p.comm.is_empty());
        assert!(matches!(p.exe, Fact::Read(_)));
        assert!(!p.cmdline.is_empty());
        assert!(p.uid.is_some());
        assert!(matches!(p.memlock, Fact::Read(_)));
        let own = std::fs::metadata("/proc/self/ns/net").expect("netns").ino();
        assert_eq!(p.netns_inode(), Some(own));
        assert_eq!(p.namespaces[0].netns.inode, own);
        assert!(p.optmem_max_of(own).is_some());
        if p.sockets_unreadable == 0 {
            assert!(p.sockets.iter().any(|s| s.fd == udp.as_raw_fd()));
        }
    }
}
