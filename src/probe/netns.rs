//! Network namespaces as handles, and running code inside one.
//!
//! Every netlink call (the `netlink` probe module, which points here) answers for the network
//! namespace of the *calling thread*. [`in_netns`] runs a closure on a short-lived thread that
//! entered another namespace first, so the caller's thread never changes namespace.
//! [`named_netns`] lists the namespaces of `/run/netns` (`ip netns add`), [`netns_of_pid`]
//! names the one of a process.
//!
//! (The tap probe, `taps/netns.rs`, discovers namespaces its own way for its hot loop over
//! every process; this module is for the few namespaces a path model visits.)

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{CloneFlags, setns};
use nix::sys::statfs::{NSFS_MAGIC, fstatfs};

/// Where named namespaces are mounted (`ip netns add NAME`).
const NETNS_RUN_DIR: &str = "/run/netns";

/// A network namespace: its nsfs inode (what identifies it), its `/run/netns` name when it has
/// one, and a path that opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsHandle {
    pub inode: u64,
    pub name: Option<String>,
    pub path: PathBuf,
}

impl NetnsHandle {
    /// Opens the namespace file and checks it still is this namespace (a pid may be reused, a
    /// name unmounted and added again).
    pub fn open(&self) -> io::Result<File> {
        let file = open_netns_file(&self.path)?;
        let inode = file.metadata()?.ino();
        if inode != self.inode {
            return Err(io::Error::other(format!(
                "{} now refers to net:[{inode}], not net:[{}]",
                self.path.display(),
                self.inode
            )));
        }
        Ok(file)
    }
}

/// Runs `f` on a new scoped thread that first entered the network namespace `ns` (an open
/// `/run/netns/X` or `/proc/PID/ns/net`) with `setns(CLONE_NEWNET)`, and returns its result.
/// The calling thread stays where it is. A panic in `f` is resumed on the calling thread.
///
/// Errors: `setns` failed (`EINVAL`: `ns` is no network namespace; `EPERM`: no
/// `CAP_SYS_ADMIN` over it).
pub fn in_netns<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> Result<T, nix::Error> {
    std::thread::scope(|scope| {
        let thread = scope.spawn(move || {
            setns(ns, CloneFlags::CLONE_NEWNET)?;
            Ok(f())
        });
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The named network namespaces (`/run/netns/*`), sorted by name. Entries that are no nsfs
/// mount of a network namespace (a stale file left by a crashed `ip netns add`) or cannot be
/// opened are left out; a missing `/run/netns` is an empty list.
pub fn named_netns() -> Vec<NetnsHandle> {
    let Ok(dir) = std::fs::read_dir(NETNS_RUN_DIR) else {
        return Vec::new();
    };
    let mut out: Vec<NetnsHandle> = dir
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let file = open_netns_file(&path).ok()?;
            Some(NetnsHandle {
                inode: file.metadata().ok()?.ino(),
                name: Some(entry.file_name().to_string_lossy().into_owned()),
                path,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The namespace `--netns` names: `NAME` (under `/run/netns`), a `PATH` to an nsfs file, or a
/// `PID` whose namespace is meant.
pub fn by_spec(spec: &str) -> io::Result<NetnsHandle> {
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        let pid = spec
            .parse::<u32>()
            .map_err(|_| io::Error::other(format!("{spec} is not a process id")))?;
        return netns_of_pid(pid);
    }
    let (path, name) = if spec.contains('/') {
        (PathBuf::from(spec), None)
    } else {
        (Path::new(NETNS_RUN_DIR).join(spec), Some(spec.to_string()))
    };
    let inode = open_netns_file(&path)?.metadata()?.ino();
    let name = name.or_else(|| {
        named_netns()
            .into_iter()
            .find(|n| n.inode == inode)
            .and_then(|n| n.name)
    });
    Ok(NetnsHandle { inode, name, path })
}

/// The network namespace of process `pid` (`/proc/PID/ns/net`), with its `/run/netns` name
/// when one of those is the same namespace.
pub fn netns_of_pid(pid: u32) -> io::Result<NetnsHandle> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let inode = open_netns_file(&path)?.metadata()?.ino();
    let name = named_netns()
        .into_iter()
        .find(|n| n.inode == inode)
        .and_then(|n| n.name);
    Ok(NetnsHandle { inode, name, path })
}

/// Opens `path` and checks it is a network namespace: a file of the nsfs filesystem whose
/// namespace type (`NS_GET_NSTYPE`, include/uapi/linux/nsfs.h) is `CLONE_NEWNET`.
///
/// (`/proc/self/fd/N` does not tell: for a `/run/netns` bind mount it reads as the mount path,
/// not as `net:[INODE]`.)
fn open_netns_file(path: &Path) -> io::Result<File> {
    let file = File::open(path)?;
    let fs = fstatfs(&file).map_err(io::Error::from)?;
    if fs.filesystem_type() != NSFS_MAGIC {
        return Err(io::Error::other(format!(
            "{} is not an nsfs file",
            path.display()
        )));
    }
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor, which `file` owns
    // for the duration of the call.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), libc::NS_GET_NSTYPE) };
    if kind < 0 {
        return Err(io::Error::last_os_error());
    }
    if kind != libc::CLONE_NEWNET {
        return Err(io::Error::other(format!(
            "{} is a namespace, but not a network namespace (type {kind:#x})",
            path.display()
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_namespace_is_a_handle() {
        let me = netns_of_pid(std::process::id()).expect("own netns");
        let thread = std::fs::metadata("/proc/thread-self/ns/net").expect("stat");
        assert_eq!(me.inode, thread.ino());
        me.open().expect("reopens");
        let stale = NetnsHandle {
            inode: me.inode + 1,
            ..me
        };
        assert!(stale.open().is_err());
    }

    #[test]
    fn other_namespace_kinds_and_plain_files_are_refused() {
        assert!(open_netns_file(Path::new("/proc/self/ns/uts")).is_err());
        assert!(open_netns_file(Path::new("/proc/self/status")).is_err());
        for n in named_netns() {
            assert!(n.name.is_some());
        }
    }

    #[test]
    fn in_netns_of_the_own_namespace_runs_and_returns() {
        let own = File::open("/proc/thread-self/ns/net").expect("own netns");
        let before = std::fs::metadata("/proc/thread-self/ns/net")
            .expect("stat")
            .ino();
        match in_netns(&own, || 6 * 7) {
            Ok(v) => assert_eq!(v, 42),
            // Without CAP_SYS_ADMIN even entering the own namespace is refused.
            Err(e) => assert_eq!(e, nix::errno::Errno::EPERM),
        }
        let uts = File::open("/proc/self/ns/uts").expect("uts ns");
        assert_eq!(in_netns(&uts, || ()), Err(nix::errno::Errno::EINVAL));
        let after = std::fs::metadata("/proc/thread-self/ns/net")
            .expect("stat")
            .ino();
        assert_eq!(before, after);
    }

    #[test]
    fn a_panic_in_the_closure_reaches_the_caller() {
        let own = File::open("/proc/thread-self/ns/net").expect("own netns");
        let r = std::panic::catch_unwind(|| in_netns(&own, || panic!("inside")));
        // Without CAP_SYS_ADMIN setns fails before the closure runs.
        if nix::unistd::geteuid().is_root() {
            assert!(r.is_err());
        }
    }
}
