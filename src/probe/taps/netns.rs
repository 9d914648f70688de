//! Which network namespaces exist and how to reach them: the namespace of every process
//! (`/proc/PID/ns/net`), named namespaces (`/run/netns`) and other `nsfs` bind mounts
//! (`mountinfo`), which may hold sockets although no process lives in them any more.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::dirent::{for_each_dirent, parse_u32};
use crate::evidence::{ScanProblem, TapScan};

/// At most this many processes are remembered per namespace (several, in case one exits).
const PIDS_PER_NAMESPACE: usize = 4;

pub(super) struct Proc {
    pub(super) pid: u32,
    /// Inode of its `ns/net`; 0 when it could not be read.
    pub(super) netns: u64,
    pub(super) comm: String,
}

/// Inode and device of the calling thread's network namespace (the diagnosed one).
pub(super) fn own_namespace() -> Result<(u64, u64), Errno> {
    nix::sys::stat::stat("/proc/thread-self/ns/net")
        .or_else(|_| nix::sys::stat::stat("/proc/self/ns/net"))
        .map(|st| (st.st_ino, st.st_dev))
}

/// Every process with its namespace inode and comm. One `stat` and one small read per process:
/// this is the first hot loop, kept free of `procfs`'s per-process allocations.
pub(super) fn list_processes(scan: &mut TapScan) -> Vec<Proc> {
    let mut out = Vec::with_capacity(512);
    let dir = match nix::fcntl::open(
        "/proc",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        Err(e) => {
            scan.problems.push(ScanProblem::ProcUnlisted {
                error: e.to_string(),
            });
            return out;
        }
    };
    let mut path = String::with_capacity(32);
    let mut unreadable_ns = 0u32;
    let listed = for_each_dirent(&dir, |name| {
        let Some(pid) = parse_u32(name.to_bytes()) else {
            return true;
        };
        scan.processes_listed += 1;
        path.clear();
        let _ = write!(path, "/proc/{pid}/ns/net");
        let netns = match nix::sys::stat::stat(path.as_str()) {
            Ok(st) => st.st_ino,
            Err(Errno::ENOENT | Errno::ESRCH) => {
                scan.processes_vanished += 1;
                return true;
            }
            Err(_) => {
                unreadable_ns += 1;
                0
            }
        };
        path.clear();
        let _ = write!(path, "/proc/{pid}/comm");
        let comm = std::fs::read(&path)
            .map(|b| String::from_utf8_lossy(b.trim_ascii_end()).into_owned())
            .unwrap_or_default();
        out.push(Proc { pid, netns, comm });
        true
    });
    if let Err(e) = listed {
        scan.problems.push(ScanProblem::ProcListIncomplete {
            error: e.to_string(),
        });
    }
    if unreadable_ns > 0 {
        scan.problems.push(ScanProblem::NamespacesUnreadable {
            processes: unreadable_ns,
        });
    }
    out
}

#[derive(Debug, Default, PartialEq)]
pub(super) struct Ns {
    pub(super) name: Option<String>,
    /// A path that names the namespace without a process (`/run/netns/X` or another nsfs mount).
    pub(super) path: Option<PathBuf>,
    /// A few processes living in it.
    pub(super) pids: Vec<u32>,
}

/// Every namespace: the own one, those with processes, named ones and other nsfs mounts.
pub(super) fn collect_namespaces(
    procs: &[Proc],
    own: Option<(u64, u64)>,
    scan: &mut TapScan,
) -> BTreeMap<u64, Ns> {
    let mut map = group_by_namespace(procs, own.map(|(ino, _)| ino));
    add_named(&mut map, own.map(|(_, dev)| dev), scan);
    add_nsfs_mounts(&mut map);
    map
}

/// The namespaces processes live in (and the own one, even without a process), each with its
/// first few processes.
fn group_by_namespace(procs: &[Proc], own: Option<u64>) -> BTreeMap<u64, Ns> {
    let mut map: BTreeMap<u64, Ns> = BTreeMap::new();
    if let Some(ino) = own {
        map.insert(ino, Ns::default());
    }
    for p in procs {
        if p.netns == 0 {
            continue;
        }
        let ns = map.entry(p.netns).or_default();
        if ns.pids.len() < PIDS_PER_NAMESPACE {
            ns.pids.push(p.pid);
        }
    }
    map
}

/// Named namespaces under `/run/netns`; a stale file that is not an nsfs mount (another device
/// than the own namespace's) is skipped.
fn add_named(map: &mut BTreeMap<u64, Ns>, nsfs_dev: Option<u64>, scan: &mut TapScan) {
    let rd = match std::fs::read_dir("/run/netns") {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            scan.problems.push(ScanProblem::NamedNamespacesUnlisted {
                error: e.to_string(),
            });
            return;
        }
    };
    let mut named: Vec<(String, PathBuf)> = rd
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    named.sort();
    for (name, path) in named {
        let Ok(md) = std::fs::metadata(&path) else {
            continue;
        };
        if nsfs_dev.is_some_and(|d| d != md.dev()) {
            continue;
        }
        let ns = map.entry(md.ino()).or_default();
        if ns.name.is_none() {
            ns.name = Some(name);
            ns.path = Some(path);
        }
    }
}

/// Other nsfs bind mounts (container runtimes keep some outside /run/netns).
fn add_nsfs_mounts(map: &mut BTreeMap<u64, Ns>) {
    let Ok(me) = procfs::process::Process::myself() else {
        return;
    };
    let Ok(mounts) = me.mountinfo() else {
        return;
    };
    for m in &mounts {
        if m.fs_type != "nsfs" {
            continue;
        }
        let Some(ino) = nsfs_net_inode(&m.root) else {
            continue;
        };
        let ns = map.entry(ino).or_default();
        if ns.path.is_none() {
            ns.path = Some(m.mount_point.clone());
        }
    }
}

/// The root of an nsfs mount of a network namespace, `net:[4026531840]`, as its inode.
fn nsfs_net_inode(root: &str) -> Option<u64> {
    root.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// `name (net:[ino])`, or `net:[ino]` for an unnamed namespace.
pub(super) fn ns_label(ino: u64, ns: Option<&Ns>) -> String {
    match ns.and_then(|n| n.name.as_deref()) {
        Some(name) => format!("{name} (net:[{ino}])"),
        None => format!("net:[{ino}]"),
    }
}

/// Opens a handle on the namespace and checks it is that namespace (a pid may be reused, a
/// mount replaced).
pub(super) fn open_ns_handle(ino: u64, ns: &Ns) -> Result<File, String> {
    let mut last = String::from("no process and no name refer to it");
    let candidates = ns.path.iter().cloned().chain(
        ns.pids
            .iter()
            .map(|p| PathBuf::from(format!("/proc/{p}/ns/net"))),
    );
    for path in candidates {
        match File::open(&path) {
            Ok(f) => match f.metadata() {
                Ok(md) if md.ino() == ino => return Ok(f),
                Ok(_) => last = format!("{} now names another namespace", path.display()),
                Err(e) => last = format!("cannot stat {}: {e}", path.display()),
            },
            Err(e) => last = format!("cannot open {}: {e}", path.display()),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, netns: u64) -> Proc {
        Proc {
            pid,
            netns,
            comm: String::new(),
        }
    }

    #[test]
    fn groups_processes_by_namespace() {
        let procs: Vec<Proc> = (1..=6)
            .map(|pid| proc(pid, 10))
            .chain([proc(7, 20), proc(8, 0)])
            .collect();
        let map = group_by_namespace(&procs, Some(30));
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), [10, 20, 30]);
        assert_eq!(map[&10].pids, [1, 2, 3, 4]);
        assert_eq!(map[&20].pids, [7]);
        // The own namespace is listed even without a process.
        assert_eq!(map[&30], Ns::default());
    }

    #[test]
    fn reads_nsfs_roots() {
        assert_eq!(nsfs_net_inode("net:[4026531840]"), Some(4026531840));
        assert_eq!(nsfs_net_inode("mnt:[4026531841]"), None);
        assert_eq!(nsfs_net_inode("net:[]"), None);
        assert_eq!(nsfs_net_inode("/"), None);
    }

    #[test]
    fn labels_namespaces() {
        let named = Ns {
            name: Some("blue".to_string()),
            ..Ns::default()
        };
        assert_eq!(ns_label(5, Some(&named)), "blue (net:[5])");
        assert_eq!(ns_label(5, None), "net:[5]");
    }

    #[test]
    fn finds_the_own_namespace_and_this_process() {
        let (ino, _) = own_namespace().expect("own namespace");
        let mut scan = TapScan::default();
        let procs = list_processes(&mut scan);
        let me = procs
            .iter()
            .find(|p| p.pid == std::process::id())
            .expect("this process is listed");
        assert_eq!(me.netns, ino);
        assert!(!me.comm.is_empty());
        assert!(scan.processes_listed >= 1);
        let map = collect_namespaces(&procs, Some((ino, 0)), &mut scan);
        assert!(map.contains_key(&ino));
        let handle = open_ns_handle(ino, &map[&ino]);
        // Reachable through a process (or a path) living in it, and checked to be that one.
        if !map[&ino].pids.is_empty() {
            assert!(handle.is_ok(), "{handle:?}");
        }
        assert!(open_ns_handle(ino + 1, &map[&ino]).is_err());
    }
}
