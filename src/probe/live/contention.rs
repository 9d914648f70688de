//! Facts about CPU contention around the live probe: the run queue and CPU pressure before and
//! after, hypervisor steal over the run, the number of CPUs, and the other zcdoctor live probes
//! that ran at the same time (seen through a lock file). Read outside the send loop only.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::evidence::Contention;

/// Held (`flock`, exclusive) by the first of concurrent live probes, which writes its pid on
/// the first line; a probe that finds it held appends its own pid on a line of its own, so the
/// holder learns about it when it finishes. In /run: shared by every network namespace of the
/// host, like the CPUs the probes compete for.
pub const LOCK_PATH: &str = "/run/zcdoctor.live.lock";

/// What is read before the probe, to compare with after.
pub(super) struct Before {
    runnable: Option<u32>,
    pressure: Option<f64>,
    stat: Option<CpuTimes>,
    lock: ProbeLock,
}

pub(super) fn before(lock_path: &Path) -> Before {
    Before {
        runnable: loadavg().and_then(|l| l.1),
        pressure: cpu_pressure(),
        stat: cpu_times(),
        lock: ProbeLock::acquire(lock_path),
    }
}

impl Before {
    /// Reads the after-side and releases the lock.
    pub(super) fn finish(self) -> Contention {
        let after_load = loadavg();
        let steal_fraction = match (self.stat, cpu_times()) {
            (Some(a), Some(b)) => {
                let total = b.total.saturating_sub(a.total);
                (total > 0).then(|| b.steal.saturating_sub(a.steal) as f64 / total as f64)
            }
            _ => None,
        };
        let (other_probes, lock_error) = self.lock.finish();
        Contention {
            cpus: std::thread::available_parallelism()
                .ok()
                .and_then(|n| u32::try_from(n.get()).ok()),
            runnable_before: self.runnable,
            runnable_after: after_load.and_then(|l| l.1),
            load1_after: after_load.map(|l| l.0),
            cpu_pressure_before: self.pressure,
            cpu_pressure_after: cpu_pressure(),
            steal_fraction,
            other_probes,
            lock_error,
        }
    }
}

/// `/proc/loadavg`: the one-minute load and the runnable tasks.
fn loadavg() -> Option<(f64, Option<u32>)> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

fn parse_loadavg(text: &str) -> Option<(f64, Option<u32>)> {
    let mut fields = text.split_whitespace();
    let load1 = fields.next()?.parse().ok()?;
    let runnable = fields
        .nth(2)
        .and_then(|f| f.split('/').next())
        .and_then(|n| n.parse().ok());
    Some((load1, runnable))
}

/// `some avg10` of `/proc/pressure/cpu` (absent without PSI).
fn cpu_pressure() -> Option<f64> {
    parse_pressure(&std::fs::read_to_string("/proc/pressure/cpu").ok()?)
}

fn parse_pressure(text: &str) -> Option<f64> {
    let some = text.lines().find(|l| l.starts_with("some "))?;
    some.split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?
        .parse()
        .ok()
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest time is inside user).
    total: u64,
    steal: u64,
}

fn cpu_times() -> Option<CpuTimes> {
    parse_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 8 {
        return None;
    }
    Some(CpuTimes {
        total: fields.iter().fold(0u64, |a, b| a.saturating_add(*b)),
        steal: fields[7],
    })
}

/// This probe's part in [`LOCK_PATH`].
struct ProbeLock {
    /// Open while this probe holds the lock.
    held: Option<File>,
    /// Other probes seen so far.
    others: Vec<u32>,
    error: Option<String>,
}

impl ProbeLock {
    fn acquire(path: &Path) -> ProbeLock {
        let mut lock = ProbeLock {
            held: None,
            others: Vec::new(),
            error: None,
        };
        let me = std::process::id();
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
        {
            Ok(f) => f,
            Err(e) => {
                lock.error = Some(format!("{}: {e}", path.display()));
                return lock;
            }
        };
        // SAFETY: flock(2) on a descriptor this function owns; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            // Stale content of a probe that ended without cleaning up goes.
            let written = file
                .set_len(0)
                .and_then(|()| (&file).write_all(format!("{me}\n").as_bytes()));
            if let Err(e) = written {
                lock.error = Some(format!("{}: {e}", path.display()));
            }
            lock.held = Some(file);
            return lock;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            lock.error = Some(format!("flock {}: {err}", path.display()));
            return lock;
        }
        // Another probe holds it: its pid is the first line; tell it about us.
        lock.others.extend(read_pids(&file).into_iter().take(1));
        let appended = OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(format!("{me}\n").as_bytes()));
        if let Err(e) = appended {
            lock.error = Some(format!("{}: {e}", path.display()));
        }
        lock
    }

    /// The other probes seen, and the lock's error; the holder learns who joined and releases
    /// the lock (leaving the file empty).
    fn finish(mut self) -> (Vec<u32>, Option<String>) {
        let me = std::process::id();
        if let Some(file) = self.held.take() {
            self.others.extend(read_pids(&file).into_iter().skip(1));
            // Failure leaves stale pids, which the next holder truncates.
            let _ = file.set_len(0);
        }
        self.others.retain(|p| *p != me);
        self.others.sort_unstable();
        self.others.dedup();
        (self.others, self.error)
    }
}

/// The pids in the lock file, one a line; what does not parse is skipped.
fn read_pids(file: &File) -> Vec<u32> {
    let mut text = String::new();
    let mut f = file;
    if std::io::Seek::rewind(&mut f).is_err() || f.read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            parse_loadavg("2.37 2.24 2.38 3/114 7809\n"),
            Some((2.37, Some(3)))
        );
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(
            parse_pressure(
                "some avg10=12.50 avg60=3.00 avg300=1.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
            ),
            Some(12.5)
        );
        assert_eq!(parse_pressure("full avg10=1.0\n"), None);
        assert_eq!(
            parse_stat("cpu  10 1 5 80 2 0 1 1 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n"),
            Some(CpuTimes {
                total: 100,
                steal: 1
            })
        );
        assert_eq!(parse_stat("cpu  10 1\n"), None);
    }

    #[test]
    fn a_second_probe_sees_the_first_and_the_first_learns_of_the_second() {
        let dir = std::env::temp_dir().join(format!("zcd-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("live.lock");
        let first = ProbeLock::acquire(&path);
        assert!(first.held.is_some() && first.error.is_none());
        // Both are this process: the file then names our own pid, which is never reported,
        // so write a stand-in pid for the holder.
        std::fs::write(&path, "4242\n").expect("write");
        let second = ProbeLock::acquire(&path);
        assert!(second.held.is_none(), "flock is per open file description");
        assert_eq!(second.others, [4242]);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"4343\n"))
            .expect("append");
        assert_eq!(first.finish(), (vec![4343], None));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "");
        let third = ProbeLock::acquire(&path);
        assert!(third.held.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
