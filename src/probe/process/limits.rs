//! A process's memory limits and identity files, each read bounded in size: `/proc/PID/limits`
//! (RLIMIT_MEMLOCK), `/proc/PID/status` (uid, CapEff, VmLck, VmPin), `/proc/PID/cmdline`, and
//! `net.core.optmem_max` inside a network namespace (a short-lived thread `setns`es into it).

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use procfs::FromRead;
use procfs::process::{LimitValue, Limits, Status};

use crate::evidence::{Fact, Memlock, OsError};

/// Reads at most `max` bytes of `path`; `true` when there was more.
pub(super) fn read_bounded(path: &str, max: usize) -> Result<(Vec<u8>, bool), OsError> {
    let mut f = File::open(path).map_err(|e| io_error(&format!("open {path}"), &e))?;
    let mut buf = Vec::with_capacity(max.min(8192) + 1);
    (&mut f)
        .take(max as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_error(&format!("read {path}"), &e))?;
    let cut = buf.len() > max;
    buf.truncate(max);
    Ok((buf, cut))
}

/// An I/O error as the call and its errno (EIO when the error carries none).
pub(super) fn io_error(op: &str, e: &std::io::Error) -> OsError {
    OsError::new(op, Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// `RLIMIT_MEMLOCK` from `/proc/PID/limits`.
pub(super) fn memlock(pid: u32) -> Fact<Memlock> {
    let path = format!("/proc/{pid}/limits");
    match read_bounded(&path, 8192) {
        Ok((bytes, _)) => parse_memlock(&bytes),
        Err(e) => Fact::Failed(e),
    }
}

fn parse_memlock(bytes: &[u8]) -> Fact<Memlock> {
    match Limits::from_read(bytes) {
        Ok(l) => {
            let v = |x: &LimitValue| match x {
                LimitValue::Unlimited => None,
                LimitValue::Value(n) => Some(*n),
            };
            Fact::Read(Memlock {
                soft: v(&l.max_locked_memory.soft_limit),
                hard: v(&l.max_locked_memory.hard_limit),
            })
        }
        Err(e) => Fact::Malformed(format!("limits: {e}")),
    }
}

/// What `/proc/PID/status` gives: real uid, CapEff, VmLck and VmPin in bytes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StatusFacts {
    pub(super) uid: Option<u32>,
    pub(super) capeff: Fact<u64>,
    pub(super) vm_lck: Option<u64>,
    pub(super) vm_pin: Option<u64>,
}

pub(super) fn status(pid: u32) -> StatusFacts {
    let path = format!("/proc/{pid}/status");
    match read_bounded(&path, 16384) {
        Ok((bytes, _)) => parse_status(&bytes),
        Err(e) => StatusFacts {
            uid: None,
            capeff: Fact::Failed(e),
            vm_lck: None,
            vm_pin: None,
        },
    }
}

fn parse_status(bytes: &[u8]) -> StatusFacts {
    match Status::from_read(bytes) {
        Ok(s) => StatusFacts {
            uid: Some(s.ruid),
            capeff: Fact::Read(s.capeff),
            vm_lck: s.vmlck.map(|kb| kb.saturating_mul(1024)),
            vm_pin: s.vmpin.map(|kb| kb.saturating_mul(1024)),
        },
        Err(e) => StatusFacts {
            uid: None,
            capeff: Fact::Malformed(format!("status: {e}")),
            vm_lck: None,
            vm_pin: None,
        },
    }
}

/// The arguments of `/proc/PID/cmdline` within `max` bytes, and whether it was cut.
pub(super) fn cmdline(pid: u32, max: usize) -> Result<(Vec<String>, bool), OsError> {
    let (bytes, cut) = read_bounded(&format!("/proc/{pid}/cmdline"), max)?;
    Ok((split_cmdline(&bytes), cut))
}

fn split_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// `net.core.optmem_max` in the namespace `ns` (a handle on an nsfs file whose inode is
/// `ino`): read directly when it is the calling thread's own namespace, else by a short-lived
/// thread that `setns`es into it and exits.
pub(super) fn optmem_max_in(ns: &File, ino: u64) -> Fact<u64> {
    let own = std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino());
    if own.as_ref().is_ok_and(|o| *o == ino) {
        return read_optmem_max();
    }
    let ns = match ns.try_clone() {
        Ok(f) => f,
        Err(e) => return Fact::Failed(io_error("dup(netns handle)", &e)),
    };
    let worker = std::thread::Builder::new()
        .name("zcd-optmem".into())
        .spawn(move || {
            // This thread only reads one file in the namespace and exits.
            match nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET) {
                Ok(()) => read_optmem_max(),
                Err(e) => {
                    Fact::Failed(OsError::new(format!("setns(net:[{ino}], CLONE_NEWNET)"), e))
                }
            }
        });
    match worker {
        Ok(h) => h
            .join()
            .unwrap_or_else(|_| Fact::Malformed("namespace thread panicked".into())),
        Err(e) => Fact::Failed(io_error("spawn namespace thread", &e)),
    }
}

fn read_optmem_max() -> Fact<u64> {
    let path = "/proc/sys/net/core/optmem_max";
    match read_bounded(path, 64) {
        Ok((bytes, _)) => match String::from_utf8_lossy(&bytes).trim().parse() {
            Ok(v) => Fact::Read(v),
            Err(_) => Fact::Malformed(format!(
                "{path}: {:?}",
                String::from_utf8_lossy(&bytes).trim()
            )),
        },
        Err(e) => Fact::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max file size             unlimited            unlimited            bytes     \n\
Max data size             unlimited            unlimited            bytes     \n\
Max stack size            8388608              unlimited            bytes     \n\
Max core file size        0                    unlimited            bytes     \n\
Max resident set          unlimited            unlimited            bytes     \n\
Max processes             63448                63448                processes \n\
Max open files            1024                 524288               files     \n\
Max locked memory         65536                131072               bytes     \n\
Max address space         unlimited            unlimited            bytes     \n\
Max file locks            unlimited            unlimited            locks     \n\
Max pending signals       63448                63448                signals   \n\
Max msgqueue size         819200               819200               bytes     \n\
Max nice priority         0                    0                    \n\
Max realtime priority     0                    0                    \n\
Max realtime timeout      unlimited            unlimited            us        \n";

    #[test]
    fn parses_memlock() {
        assert_eq!(
            parse_memlock(LIMITS.as_bytes()),
            Fact::Read(Memlock {
                soft: Some(65536),
                hard: Some(131072)
            })
        );
        let unlimited = LIMITS.replace(
            "Max locked memory         65536                131072 ",
            "Max locked memory         unlimited            unlimited",
        );
        assert_eq!(
            parse_memlock(unlimited.as_bytes()),
            Fact::Read(Memlock {
                soft: None,
                hard: None
            })
        );
        assert!(matches!(parse_memlock(b"garbage"), Fact::Malformed(_)));
    }

    #[test]
    fn splits_command_lines() {
        assert_eq!(
            split_cmdline(b"qemu-system-x86_64\0-m\x004G\0"),
            ["qemu-system-x86_64", "-m", "4G"]
        );
        assert_eq!(split_cmdline(b"a\0\0b\0"), ["a", "", "b"]);
        assert!(split_cmdline(b"").is_empty());
        // A cut command line keeps its partial last argument.
        assert_eq!(split_cmdline(b"abc\0de"), ["abc", "de"]);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let s = status(me);
        assert!(s.uid.is_some());
        assert!(matches!(s.capeff, Fact::Read(_)));
        assert!(matches!(memlock(me), Fact::Read(_)));
        let (args, cut) = cmdline(me, 4096).expect("own cmdline");
        assert!(!args.is_empty());
        let (short, cut_short) = cmdline(me, 3).expect("own cmdline");
        assert!(cut_short || args.concat().len() <= 3, "{short:?} {cut}");
        let ns = File::open("/proc/self/ns/net").expect("own netns");
        let ino = ns.metadata().expect("stat").ino();
        assert!(matches!(optmem_max_in(&ns, ino), Fact::Read(_)));
        assert!(matches!(
            read_bounded("/proc/self/no-such-file", 10),
            Err(OsError { errno, .. }) if errno == libc::ENOENT
        ));
    }
}
