//! Who holds each tap: a walk over `/proc/PID/fd` that stops as soon as every tap has an
//! owner, and the details of the owners found.
//!
//! The walk streams one process's descriptor table at a time: one `readlinkat` per descriptor
//! into a 64-byte stack buffer, nothing collected but hits. It is the second hot loop, kept on
//! raw calls because `procfs`'s descriptor iterator spends four system calls per descriptor.
//! Known tap daemons are walked first, then processes living in a namespace that holds a tap,
//! then everyone else; large hosts are walked by a few threads sharing one cursor.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::cgroup;
use super::dirent::{for_each_dirent, parse_u32};
use super::netns::Proc;
use crate::evidence::{Owner, ScanProblem, TapScan};

/// Below this many processes the walk runs on the calling thread only.
const PARALLEL_WALK_MIN_PROCESSES: usize = 256;
const MAX_WALK_THREADS: usize = 4;
/// The kernel's comm is at most 15 bytes (TASK_COMM_LEN 16 with its NUL).
const COMM_MAX: usize = 15;

/// Tap inode → the (pid, fd) pairs found holding it, in the order found.
pub(super) type Holders = HashMap<u64, Vec<(u32, i32)>>;

/// The comm values the given daemon names show as (truncated as the kernel truncates comm).
pub(super) fn known_comms(names: &[String]) -> HashSet<String> {
    names.iter().map(|n| truncate_comm(n).to_string()).collect()
}

fn truncate_comm(name: &str) -> &str {
    let mut end = name.len().min(COMM_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Known tap daemons first, then processes in a namespace that holds a tap, then the rest
/// (stable within each class). The order only decides how soon the walk can stop; every process
/// is still reachable.
pub(super) fn order_for_walk(
    procs: &mut [Proc],
    tap_namespaces: &HashSet<u64>,
    known: &HashSet<String>,
) {
    procs.sort_by_key(|p| {
        if known.contains(p.comm.as_str()) {
            0u8
        } else if tap_namespaces.contains(&p.netns) {
            1
        } else {
            2
        }
    });
}

struct WalkShared<'a> {
    procs: &'a [Proc],
    taps: &'a HashSet<u64>,
    next: AtomicUsize,
    /// Taps still without an owner; the walk stops at 0.
    remaining: AtomicUsize,
    hits: Mutex<Holders>,
}

#[derive(Default)]
struct WalkCounts {
    scanned: u32,
    unreadable: u32,
    vanished: u32,
    fds: u64,
    /// Unexpected errors (not permission, not exit), by message.
    odd: Vec<ScanProblem>,
}

impl WalkCounts {
    fn add(&mut self, o: WalkCounts) {
        self.scanned += o.scanned;
        self.unreadable += o.unreadable;
        self.vanished += o.vanished;
        self.fds += o.fds;
        self.odd.extend(o.odd);
    }
}

/// Finds, for each tap inode, the (pid, fd) pairs holding it, walking `procs` in order.
pub(super) fn walk_owners(procs: &[Proc], taps: &HashSet<u64>, scan: &mut TapScan) -> Holders {
    let shared = WalkShared {
        procs,
        taps,
        next: AtomicUsize::new(0),
        remaining: AtomicUsize::new(taps.len()),
        hits: Mutex::new(HashMap::new()),
    };
    let threads = if procs.len() < PARALLEL_WALK_MIN_PROCESSES {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_WALK_THREADS)
    };
    let mut counts = WalkCounts::default();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for i in 1..threads {
            let sh = &shared;
            if let Ok(h) = std::thread::Builder::new()
                .name(format!("zcd-walk{i}"))
                .stack_size(256 * 1024)
                .spawn_scoped(s, move || walk_worker(sh))
            {
                handles.push(h);
            }
        }
        counts.add(walk_worker(&shared));
        for h in handles {
            match h.join() {
                Ok(c) => counts.add(c),
                Err(_) => counts.odd.push(ScanProblem::OwnerWalkPanicked),
            }
        }
    });
    scan.processes_scanned = counts.scanned;
    scan.processes_unreadable = counts.unreadable;
    scan.processes_vanished += counts.vanished;
    scan.fds_scanned = counts.fds;
    scan.owner_walk_stopped_early = shared.remaining.load(Ordering::Acquire) == 0
        && shared.next.load(Ordering::Acquire) < procs.len();
    if counts.unreadable > 0 {
        scan.problems.push(ScanProblem::DescriptorsUnreadable {
            processes: counts.unreadable,
        });
    }
    counts.odd.sort_by_key(ScanProblem::to_string);
    counts.odd.dedup();
    scan.problems.extend(counts.odd);
    shared
        .hits
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
}

fn walk_worker(sh: &WalkShared<'_>) -> WalkCounts {
    let mut c = WalkCounts::default();
    let mut path = String::with_capacity(32);
    loop {
        if sh.remaining.load(Ordering::Acquire) == 0 {
            break;
        }
        let i = sh.next.fetch_add(1, Ordering::AcqRel);
        let Some(p) = sh.procs.get(i) else {
            break;
        };
        path.clear();
        let _ = write!(path, "/proc/{}/fd", p.pid);
        walk_process(p.pid, &path, sh, &mut c);
    }
    c
}

/// Streams one process's descriptor table: one `readlinkat` per descriptor into a stack buffer.
fn walk_process(pid: u32, fd_dir: &str, sh: &WalkShared<'_>, c: &mut WalkCounts) {
    let dir = match nix::fcntl::open(
        fd_dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        Err(Errno::ENOENT | Errno::ESRCH) => {
            c.vanished += 1;
            return;
        }
        Err(Errno::EACCES | Errno::EPERM) => {
            c.unreadable += 1;
            return;
        }
        Err(e) => {
            c.unreadable += 1;
            c.odd.push(ScanProblem::DescriptorsFailed {
                path: fd_dir.to_string(),
                error: e.to_string(),
            });
            return;
        }
    };
    c.scanned += 1;
    let dfd = dir.as_raw_fd();
    let mut buf = [0u8; 64];
    let walked = for_each_dirent(&dir, |name| {
        if name.to_bytes().first() == Some(&b'.') {
            return true;
        }
        // SAFETY: dfd is the open directory `dir` owns for the whole walk; name is a valid
        // NUL-terminated string and buf is a writable buffer of buf.len() bytes.
        let n = unsafe {
            libc::readlinkat(
                dfd,
                name.as_ptr(),
                buf.as_mut_ptr().cast::<libc::c_char>(),
                buf.len(),
            )
        };
        let Ok(n) = usize::try_from(n) else {
            return true; // closed meanwhile
        };
        c.fds += 1;
        let Some(ino) = parse_socket_link(&buf[..n.min(buf.len())]) else {
            return true;
        };
        if !sh.taps.contains(&ino) {
            return true;
        }
        let Some(fd) = parse_u32(name.to_bytes()).and_then(|f| i32::try_from(f).ok()) else {
            return true;
        };
        let mut hits = sh.hits.lock().unwrap_or_else(PoisonError::into_inner);
        let holders = hits.entry(ino).or_default();
        if holders.is_empty() {
            sh.remaining.fetch_sub(1, Ordering::AcqRel);
        }
        holders.push((pid, fd));
        true
    });
    match walked {
        Ok(()) => {}
        Err(Errno::ENOENT | Errno::ESRCH) => c.vanished += 1,
        Err(e) => c.odd.push(ScanProblem::DescriptorsFailed {
            path: fd_dir.to_string(),
            error: e.to_string(),
        }),
    }
}

/// `socket:[12345]` → 12345.
fn parse_socket_link(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}

/// Who process `pid` is (`comm` as listed, when known): exe, command line, euid and what its
/// cgroup says. Whatever cannot be read stays empty.
pub(super) fn owner_details(pid: u32, comm: Option<&str>) -> Owner {
    let mut o = Owner {
        pid,
        comm: comm.unwrap_or_default().to_string(),
        exe: None,
        cmdline: Vec::new(),
        uid: None,
        unit: None,
        container: None,
        cgroup: None,
    };
    let Ok(p) = i32::try_from(pid).map(procfs::process::Process::new) else {
        return o;
    };
    let Ok(p) = p else {
        return o;
    };
    if o.comm.is_empty()
        && let Ok(st) = p.stat()
    {
        o.comm = st.comm;
    }
    o.exe = p.exe().ok().map(|e| e.to_string_lossy().into_owned());
    o.cmdline = p.cmdline().unwrap_or_default();
    o.uid = p.status().ok().map(|s| s.euid);
    if let Ok(cgroups) = p.cgroups() {
        let summary = cgroup::of_process(&cgroups);
        o.cgroup = summary.path;
        o.unit = summary.unit;
        o.container = summary.container;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn proc(pid: u32, netns: u64, comm: &str) -> Proc {
        Proc {
            pid,
            netns,
            comm: comm.to_string(),
        }
    }

    #[test]
    fn parses_socket_links() {
        assert_eq!(parse_socket_link(b"socket:[8998]"), Some(8998));
        assert_eq!(parse_socket_link(b"socket:[]"), None);
        assert_eq!(parse_socket_link(b"socket:[12x]"), None);
        assert_eq!(parse_socket_link(b"pipe:[8998]"), None);
        assert_eq!(parse_socket_link(b"/dev/null"), None);
        assert_eq!(parse_socket_link(b"socket:[99999999999999999999999]"), None);
    }

    #[test]
    fn truncates_daemon_names_like_comm() {
        assert_eq!(truncate_comm("a-very-long-daemon-name"), "a-very-long-dae");
        assert_eq!(truncate_comm("tcpdump"), "tcpdump");
        // Never splits a character.
        assert_eq!(truncate_comm("daemon-éééééé"), "daemon-éééé");
        let known = known_comms(&[
            "Suricata-Main".to_string(),
            "a-very-long-daemon-name".into(),
        ]);
        assert!(known.contains("Suricata-Main"));
        assert!(known.contains("a-very-long-dae"));
        assert!(!known.contains("a-very-long-daemon-name"));
    }

    #[test]
    fn orders_known_daemons_then_tap_namespaces_then_the_rest() {
        let mut procs = vec![
            proc(1, 10, "init"),
            proc(2, 20, "worker"),
            proc(3, 10, "tcpdump"),
            proc(4, 20, "other"),
            proc(5, 30, "a-very-long-dae"),
        ];
        let known = known_comms(&["tcpdump".to_string(), "a-very-long-daemon-name".into()]);
        order_for_walk(&mut procs, &HashSet::from([20]), &known);
        let order: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        assert_eq!(order, [3, 5, 2, 4, 1]);
    }

    #[test]
    fn walk_finds_the_holder_of_a_socket() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
        let fd = sock.as_raw_fd();
        let ino = std::fs::metadata(format!("/proc/self/fd/{fd}"))
            .expect("stat own fd")
            .ino();
        let me = std::process::id();
        let procs = vec![proc(me, 0, "t")];
        let mut scan = TapScan::default();
        let hits = walk_owners(&procs, &HashSet::from([ino]), &mut scan);
        assert_eq!(hits.get(&ino).map(Vec::as_slice), Some(&[(me, fd)][..]));
        assert_eq!(scan.processes_scanned, 1);
        assert!(scan.fds_scanned >= 1);
        // Every process was walked, so the walk did not stop early.
        assert!(!scan.owner_walk_stopped_early);

        // A process that does not exist counts as vanished.
        let mut scan = TapScan::default();
        let gone = vec![proc(u32::MAX - 1, 0, "gone")];
        assert!(walk_owners(&gone, &HashSet::from([ino]), &mut scan).is_empty());
        assert_eq!((scan.processes_scanned, scan.processes_vanished), (0, 1));
    }

    #[test]
    fn describes_this_process() {
        let o = owner_details(std::process::id(), None);
        assert!(!o.comm.is_empty());
        assert!(o.exe.is_some());
        assert!(!o.cmdline.is_empty());
        assert!(o.uid.is_some());
        let listed = owner_details(std::process::id(), Some("listed"));
        assert_eq!(listed.comm, "listed");
    }
}
