//! The packet table of every namespace (`/proc/net/packet`) and the names of the devices its
//! sockets are bound to, resolved inside that namespace.
//!
//! The own namespace is read directly. Every other one is read by a single short-lived worker
//! thread that `setns(CLONE_NEWNET)`s from one namespace to the next (through handles whose
//! inode was checked), reads `/proc/thread-self/net/packet` and calls `if_indextoname` there;
//! it does nothing else and exits afterwards. Without CAP_SYS_ADMIN a namespace is read through
//! `/proc/PID/net/packet` of a process inside (its namespace re-checked after the read), and
//! devices are named from that namespace's `if_inet6` and `dev_mcast`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::fd::AsFd;

use super::netns::{Ns, ns_label, open_ns_handle};
use crate::evidence::{ScanProblem, TapScan};

#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawSocket {
    pub(super) inode: u64,
    pub(super) sock_type: u32,
    pub(super) protocol: u16,
    /// 0 when unbound.
    pub(super) ifindex: u32,
    pub(super) running: bool,
    pub(super) uid: u32,
}

#[derive(Debug, Default)]
pub(super) struct NsTable {
    pub(super) sockets: Vec<RawSocket>,
    /// Bound ifindex → device name, resolved inside the namespace.
    pub(super) names: HashMap<u32, String>,
}

/// A namespace's table and the number of its lines that did not parse, or why it could not
/// be read.
type TableRead = Result<(NsTable, u32), String>;

/// The table of every namespace in `namespaces` (`own` is the calling thread's), sorted by
/// namespace inode. What cannot be read is counted and explained in `scan`.
pub(super) fn read_tables(
    namespaces: &BTreeMap<u64, Ns>,
    own: u64,
    scan: &mut TapScan,
) -> Vec<(u64, NsTable)> {
    let mut results: Vec<(u64, NsTable)> = Vec::new();
    let mut bad_lines = 0u32;

    // Own namespace: no setns needed.
    if own != 0 && namespaces.contains_key(&own) {
        match read_table_here() {
            Ok((t, bad)) => {
                bad_lines += bad;
                results.push((own, t));
            }
            Err(e) => {
                scan.namespaces_unreadable += 1;
                scan.problems.push(ScanProblem::PacketTableUnreadable {
                    netns: format!("net:[{own}]"),
                    diagnosed: true,
                    error: e.to_string(),
                });
            }
        }
    }

    // Every other namespace through one worker thread.
    let mut jobs: Vec<(u64, File)> = Vec::new();
    let mut failed: Vec<(u64, String)> = Vec::new();
    for (ino, ns) in namespaces {
        if *ino == own {
            continue;
        }
        match open_ns_handle(*ino, ns) {
            Ok(f) => jobs.push((*ino, f)),
            Err(e) => failed.push((*ino, e)),
        }
    }
    for (ino, r) in read_in_worker(jobs) {
        match r {
            Ok((t, bad)) => {
                bad_lines += bad;
                results.push((ino, t));
            }
            Err(e) => failed.push((ino, e)),
        }
    }

    // Fallback without setns: /proc/PID/net/packet of a process inside.
    for (ino, why) in failed {
        if let Some((t, bad)) = read_fallback(ino, namespaces.get(&ino), &why, scan) {
            bad_lines += bad;
            results.push((ino, t));
        }
    }
    if bad_lines > 0 {
        scan.problems
            .push(ScanProblem::LinesSkipped { lines: bad_lines });
    }
    scan.namespaces_scanned = u32::try_from(results.len()).unwrap_or(u32::MAX);
    results.sort_by_key(|(ino, _)| *ino);
    results
}

/// The table of namespace `ino` read through /proc/PID/net/packet of a process inside it, after
/// entering it failed (`why`); `None`, and the problem recorded in `scan`, when that fails too.
fn read_fallback(
    ino: u64,
    ns: Option<&Ns>,
    why: &str,
    scan: &mut TapScan,
) -> Option<(NsTable, u32)> {
    let read = ns.map_or(Err("no process is known to live in it".to_string()), |n| {
        read_table_via_pid(ino, &n.pids)
    });
    match read {
        Ok((t, bad, unnamed)) => {
            if unnamed > 0 {
                scan.problems.push(ScanProblem::DevicesUnnamed {
                    netns: ns_label(ino, ns),
                    count: unnamed,
                    why: why.to_string(),
                });
            }
            Some((t, bad))
        }
        Err(e2) => {
            scan.namespaces_unreadable += 1;
            scan.problems.push(ScanProblem::PacketTableUnreadable {
                netns: ns_label(ino, ns),
                diagnosed: false,
                error: format!("{why}; {e2}"),
            });
            None
        }
    }
}

/// Reads each namespace's table on one worker thread that setns()es from one to the next.
fn read_in_worker(jobs: Vec<(u64, File)>) -> Vec<(u64, TableRead)> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let job_inodes: Vec<u64> = jobs.iter().map(|(i, _)| *i).collect();
    let all_failed = |why: String| -> Vec<(u64, TableRead)> {
        job_inodes.iter().map(|i| (*i, Err(why.clone()))).collect()
    };
    let worker = std::thread::Builder::new()
        .name("zcd-netns".to_string())
        .stack_size(256 * 1024)
        .spawn(move || {
            let mut out: Vec<(u64, TableRead)> = Vec::new();
            for (ino, file) in jobs {
                // This thread only ever moves forward through namespaces and then exits; it
                // never runs anything else.
                let r = match nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                {
                    Ok(()) => read_table_here(),
                    Err(e) => Err(format!("setns(CLONE_NEWNET): {e}")),
                };
                out.push((ino, r));
            }
            out
        });
    match worker {
        Ok(h) => h
            .join()
            .unwrap_or_else(|_| all_failed("namespace worker thread panicked".to_string())),
        Err(e) => all_failed(format!("cannot start namespace worker thread: {e}")),
    }
}

/// Reads the packet table of the calling thread's namespace and names its bound devices.
fn read_table_here() -> TableRead {
    let text = std::fs::read_to_string("/proc/thread-self/net/packet")
        .map_err(|e| format!("cannot read /proc/thread-self/net/packet: {e}"))?;
    let (sockets, bad) = parse_packet_table(&text);
    let mut names = HashMap::new();
    for idx in bound_ifindexes(&sockets) {
        if let Ok(name) = nix::net::if_::if_indextoname(idx) {
            names.insert(idx, name.to_string_lossy().into_owned());
        }
    }
    Ok((NsTable { sockets, names }, bad))
}

/// Reads a namespace's table through one of its processes, re-checking afterwards that the
/// process is still in that namespace. Returns the table, its bad lines and how many bound
/// devices stayed unnamed.
fn read_table_via_pid(ino: u64, pids: &[u32]) -> Result<(NsTable, u32, u32), String> {
    let mut last = "no process is known to live in it".to_string();
    for pid in pids {
        let text = match std::fs::read_to_string(format!("/proc/{pid}/net/packet")) {
            Ok(t) => t,
            Err(e) => {
                last = format!("cannot read /proc/{pid}/net/packet: {e}");
                continue;
            }
        };
        let still_there = nix::sys::stat::stat(format!("/proc/{pid}/ns/net").as_str())
            .is_ok_and(|st| st.st_ino == ino);
        if !still_there {
            last = format!("process {pid} left the namespace while it was read");
            continue;
        }
        let (sockets, bad) = parse_packet_table(&text);
        let mut names = HashMap::new();
        let wanted = bound_ifindexes(&sockets);
        if !wanted.is_empty() {
            if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/if_inet6")) {
                names_from_if_inet6(&t, &mut names);
            }
            if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/dev_mcast")) {
                names_from_dev_mcast(&t, &mut names);
            }
        }
        let unnamed = u32::try_from(wanted.iter().filter(|i| !names.contains_key(i)).count())
            .unwrap_or(u32::MAX);
        names.retain(|k, _| wanted.contains(k));
        return Ok((NsTable { sockets, names }, bad, unnamed));
    }
    Err(last)
}

/// Parses `/proc/net/packet`:
/// `sk RefCnt Type Proto Iface R Rmem User Inode`, Proto in hex (already host order).
/// Returns the sockets and the number of lines that did not parse.
pub(super) fn parse_packet_table(text: &str) -> (Vec<RawSocket>, u32) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.split_ascii_whitespace();
        let parsed = (|| {
            let _sk = f.next()?;
            let _refcnt = f.next()?;
            let sock_type = f.next()?.parse::<u32>().ok()?;
            let protocol = u16::from_str_radix(f.next()?, 16).ok()?;
            let ifindex = f.next()?.parse::<i64>().ok()?;
            let running = f.next()? != "0";
            let _rmem = f.next()?;
            let uid = f.next()?.parse::<u32>().ok()?;
            let inode = f.next()?.parse::<u64>().ok()?;
            Some(RawSocket {
                inode,
                sock_type,
                protocol,
                ifindex: u32::try_from(ifindex).unwrap_or(0),
                running,
                uid,
            })
        })();
        match parsed {
            Some(s) => out.push(s),
            None => bad += 1,
        }
    }
    (out, bad)
}

/// `raw`, `dgram` (or `packet`, the obsolete SOCK_PACKET), else `type N`.
pub(super) fn sock_type_name(t: u32) -> String {
    match t {
        2 => "dgram".to_string(),
        3 => "raw".to_string(),
        10 => "packet".to_string(),
        n => format!("type {n}"),
    }
}

fn bound_ifindexes(sockets: &[RawSocket]) -> Vec<u32> {
    let mut v: Vec<u32> = sockets
        .iter()
        .filter(|s| s.ifindex != 0)
        .map(|s| s.ifindex)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// ifindex → name from `if_inet6` (hex index second, name last): every device with IPv6.
fn names_from_if_inet6(text: &str, names: &mut HashMap<u32, String>) {
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if let [_, idx, _, _, _, name] = f.as_slice()
            && let Ok(i) = u32::from_str_radix(idx, 16)
        {
            names.entry(i).or_insert_with(|| (*name).to_string());
        }
    }
}

/// ifindex → name from `dev_mcast` (decimal index first, name second): every device with a
/// multicast address.
fn names_from_dev_mcast(text: &str, names: &mut HashMap<u32, String>) {
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        if let (Some(idx), Some(name)) = (f.next(), f.next())
            && let Ok(i) = idx.parse::<u32>()
        {
            names.entry(i).or_insert_with(|| name.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_packet_table() {
        let text = "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n\
                    0000000033131ce4 3      3    0003   2     1 0      103    8998  \n\
                    0000000000000000 3      2    0800   0     1 0      0      123\n\
                    0000000000000000 3      3    0003   -1    0 0      0      124\n\
                    garbage line\n";
        let (s, bad) = parse_packet_table(text);
        assert_eq!(bad, 1);
        assert_eq!(
            s,
            vec![
                RawSocket {
                    inode: 8998,
                    sock_type: 3,
                    protocol: 3,
                    ifindex: 2,
                    running: true,
                    uid: 103
                },
                RawSocket {
                    inode: 123,
                    sock_type: 2,
                    protocol: 0x0800,
                    ifindex: 0,
                    running: true,
                    uid: 0
                },
                RawSocket {
                    inode: 124,
                    sock_type: 3,
                    protocol: 3,
                    ifindex: 0,
                    running: false,
                    uid: 0
                }
            ]
        );
        assert_eq!(bound_ifindexes(&s), vec![2]);
        assert_eq!(parse_packet_table("header only\n"), (Vec::new(), 0));
    }

    #[test]
    fn names_socket_types() {
        assert_eq!(sock_type_name(3), "raw");
        assert_eq!(sock_type_name(2), "dgram");
        assert_eq!(sock_type_name(10), "packet");
        assert_eq!(sock_type_name(5), "type 5");
    }

    #[test]
    fn names_devices_from_proc_net() {
        let mut names = HashMap::new();
        names_from_if_inet6(
            "fe800000000000000000000000000001 0000000c 40 20 80 ifbz\n\
             00000000000000000000000000000001 01 80 10 80       lo\n",
            &mut names,
        );
        names_from_dev_mcast(
            "2    eth0            1     0     333300000001\n\
             12   other           1     0     333300000001\n",
            &mut names,
        );
        assert_eq!(names.get(&12).map(String::as_str), Some("ifbz"));
        assert_eq!(names.get(&1).map(String::as_str), Some("lo"));
        assert_eq!(names.get(&2).map(String::as_str), Some("eth0"));
        assert_eq!(names.len(), 3);
    }

    #[test]
    fn reads_the_own_table_and_a_pid_table() {
        // Readable without privilege; the host may hold any number of packet sockets.
        let (_, bad) = read_table_here().expect("own packet table");
        assert_eq!(bad, 0);
        let ino = nix::sys::stat::stat("/proc/self/ns/net")
            .expect("own namespace")
            .st_ino;
        let (_, bad, _) = read_table_via_pid(ino, &[std::process::id()]).expect("via pid");
        assert_eq!(bad, 0);
        // A process that is not in the namespace is not read through.
        assert!(read_table_via_pid(ino + 1, &[std::process::id()]).is_err());
        assert!(read_table_via_pid(ino, &[]).is_err());
    }
}
