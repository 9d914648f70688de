//! Packet taps: every packet socket in every namespace, its owners, and its real
//! PACKET_IGNORE_OUTGOING setting read through pidfd_getfd.
//!
//! How [`scan`] works, and why it is shaped this way:
//!
//! 1. **Namespaces.** One pass over `/proc` stats every process's `ns/net` (the distinct inodes
//!    are the namespaces that have processes) and reads its `comm` (used to order step 3). Named
//!    namespaces under `/run/netns` and any other `nsfs` bind mount in `mountinfo` are added:
//!    they may have no process left but still hold sockets that processes elsewhere opened
//!    there. The diagnosed namespace is the calling thread's (`/proc/thread-self/ns/net`, the
//!    same as `/proc/self` unless the caller moved a thread).
//! 2. **Packet tables.** The own namespace's table is read directly; for every other namespace a
//!    single short-lived worker thread `setns(CLONE_NEWNET)`s into it (through a handle whose
//!    inode was checked), reads `/proc/thread-self/net/packet` and resolves the bound ifindexes
//!    with `if_indextoname` *there*. The worker is never used for anything else and exits
//!    afterwards. Without CAP_SYS_ADMIN it falls back to `/proc/PID/net/packet` (inode of the
//!    process's namespace re-checked after the read) and to the device names the namespace's
//!    `if_inet6` and `dev_mcast` files give.
//! 3. **Owners.** Only ETH_P_ALL sockets need owners. The walk streams `/proc/PID/fd` one process
//!    at a time (one `readlinkat` per descriptor, a 64-byte stack buffer, nothing collected but
//!    hits), known tap daemons first (their names come from `checks/tap-daemons.toml`), then
//!    processes living in a namespace that holds an unowned tap, then everyone else, and stops
//!    once every tap has an owner. Large hosts are walked by a few threads sharing one cursor.
//! 4. **Real setting.** For each tap with an owner: `pidfd_open` + `pidfd_getfd` duplicate the
//!    socket (its inode is checked, so a reused descriptor number is never misread), then
//!    `getsockopt(SOL_PACKET, PACKET_FANOUT)` and `PACKET_IGNORE_OUTGOING`; the duplicate is
//!    closed at once. A fanout member's own option is irrelevant: the group's hook replaces the
//!    socket's, so the group flag `PACKET_FANOUT_FLAG_IGNORE_OUTGOING` decides. Anything that
//!    cannot be read is `Unknown` with the precise reason, never a guess.
//!
//! `procfs` is used where its cost does not matter (owner details, cgroups, mountinfo); the two
//! hot loops (namespace stat and descriptor walk) use `readlinkat`/`stat` directly because
//! `procfs`'s descriptor iterator spends four system calls per descriptor instead of one.
//!
//! Blind spots (documented, not guessed around): a namespace reachable only through a
//! non-leader thread or an open descriptor is not enumerated; sockets held only by a thread with
//! a private descriptor table, or in flight over a unix socket, have no owner.

use super::sockopt::getsockopt_int;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CStr;
use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::Deserialize;

use crate::evidence::{Fanout, IgnoreOutgoing, NetnsRef, Owner, PacketSocket, TapScan};

const ETH_P_ALL: u16 = PacketSocket::ETH_P_ALL;
const SOL_PACKET: libc::c_int = 263;
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// In the upper 16 bits of `getsockopt(PACKET_FANOUT)` (the `type_flags` given to setsockopt).
const PACKET_FANOUT_FLAG_IGNORE_OUTGOING: u16 = 0x4000;
const CAP_SYS_PTRACE: u32 = 19;

/// The knowledge base the walk order is taken from (only `names` is read here).
const TAP_DAEMONS_TOML: &str = include_str!("../../checks/tap-daemons.toml");

/// Below this many processes the walk runs on the calling thread only.
const PARALLEL_WALK_MIN_PROCESSES: usize = 256;
const MAX_WALK_THREADS: usize = 4;

/// Every packet socket of every network namespace, with owners and real settings of the TX
/// taps. Never fails: what cannot be read is counted in the scan and explained in `problems`.
pub fn scan() -> TapScan {
    let mut scan = TapScan::default();

    let own = match nix::sys::stat::stat("/proc/thread-self/ns/net")
        .or_else(|_| nix::sys::stat::stat("/proc/self/ns/net"))
    {
        Ok(st) => Some((st.st_ino, st.st_dev)),
        Err(e) => {
            scan.problems.push(format!(
                "cannot stat /proc/thread-self/ns/net ({e}): the diagnosed namespace is unknown"
            ));
            None
        }
    };
    scan.diagnosed_netns = own.map_or(0, |(ino, _)| ino);

    let mut procs = list_processes(&mut scan);
    let namespaces = collect_namespaces(&procs, own, &mut scan);

    // Packet tables, per namespace.
    let tables = read_tables(&namespaces, scan.diagnosed_netns, &mut scan);

    // Every socket; the ETH_P_ALL ones need owners.
    let mut taps: HashSet<u64> = HashSet::new();
    let mut tap_namespaces: HashSet<u64> = HashSet::new();
    for (ns_ino, table) in &tables {
        for s in &table.sockets {
            if s.protocol == ETH_P_ALL {
                taps.insert(s.inode);
                tap_namespaces.insert(*ns_ino);
            }
        }
    }

    let hits = if taps.is_empty() {
        HashMap::new()
    } else {
        order_for_walk(&mut procs, &tap_namespaces);
        walk_owners(&procs, &taps, &mut scan)
    };

    // Owner details, once per pid.
    let comm_of: HashMap<u32, &str> = procs.iter().map(|p| (p.pid, p.comm.as_str())).collect();
    let mut owners_by_pid: HashMap<u32, Owner> = HashMap::new();
    for holders in hits.values() {
        for (pid, _) in holders {
            owners_by_pid
                .entry(*pid)
                .or_insert_with(|| owner_details(*pid, comm_of.get(pid).copied()));
        }
    }

    let ptrace = PtraceContext::read();
    for (ns_ino, table) in tables {
        let ns = namespaces.get(&ns_ino);
        let netns = NetnsRef {
            inode: ns_ino,
            name: ns.and_then(|n| n.name.clone()),
        };
        for raw in table.sockets {
            let device = (raw.ifindex != 0)
                .then(|| table.names.get(&raw.ifindex).cloned())
                .flatten();
            let (owners, ignore_outgoing, fanout) = if raw.protocol == ETH_P_ALL {
                let holders = hits.get(&raw.inode).map(Vec::as_slice).unwrap_or(&[]);
                let mut owners: Vec<Owner> = Vec::new();
                for (pid, _) in holders {
                    if owners.iter().any(|o| o.pid == *pid) {
                        continue;
                    }
                    if let Some(o) = owners_by_pid.get(pid) {
                        owners.push(o.clone());
                    }
                }
                let (setting, fanout) = if holders.is_empty() {
                    (
                        IgnoreOutgoing::Unknown {
                            reason: no_owner_reason(&scan),

                            cause: None,
                        },
                        None,
                    )
                } else {
                    read_setting_any(holders, raw.inode, &ptrace)
                };
                (owners, setting, fanout)
            } else {
                (
                    Vec::new(),
                    IgnoreOutgoing::Unknown {
                        reason: format!(
                            "not read: protocol 0x{:04x} is not ETH_P_ALL, so the socket never sees outgoing packets",
                            raw.protocol
                        ),

                        cause: None,
                    },
                    None,
                )
            };
            scan.sockets.push(PacketSocket {
                inode: raw.inode,
                netns: netns.clone(),
                sock_type: sock_type_name(raw.sock_type),
                protocol: raw.protocol,
                ifindex: (raw.ifindex != 0).then_some(raw.ifindex),
                device,
                running: raw.running,
                uid: Some(raw.uid),
                owners,
                ignore_outgoing,
                fanout,
            });
        }
    }
    let diagnosed = scan.diagnosed_netns;
    scan.sockets
        .sort_by_key(|s| (s.netns.inode != diagnosed, s.netns.inode, s.inode));
    scan
}

// ---------------------------------------------------------------------------------------------
// Processes and namespaces

struct Proc {
    pid: u32,
    /// Inode of its `ns/net`; 0 when it could not be read.
    netns: u64,
    comm: String,
}

fn list_processes(scan: &mut TapScan) -> Vec<Proc> {
    let mut out = Vec::with_capacity(512);
    let dir = match nix::fcntl::open(
        "/proc",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        Err(e) => {
            scan.problems
                .push(format!("cannot list /proc ({e}): no process was scanned"));
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
        scan.problems.push(format!(
            "reading /proc stopped early ({e}): the process list is incomplete"
        ));
    }
    if unreadable_ns > 0 {
        scan.problems.push(format!(
            "the network namespace of {unreadable_ns} process(es) could not be read (permission): namespaces only they use are missed"
        ));
    }
    out
}

struct Ns {
    name: Option<String>,
    /// A path that names the namespace without a process (`/run/netns/X` or another nsfs mount).
    path: Option<PathBuf>,
    /// A few processes living in it (several, in case one exits or moves).
    pids: Vec<u32>,
}

fn collect_namespaces(
    procs: &[Proc],
    own: Option<(u64, u64)>,
    scan: &mut TapScan,
) -> BTreeMap<u64, Ns> {
    let mut map: BTreeMap<u64, Ns> = BTreeMap::new();
    if let Some((ino, _)) = own {
        map.insert(
            ino,
            Ns {
                name: None,
                path: None,
                pids: Vec::new(),
            },
        );
    }
    for p in procs {
        if p.netns == 0 {
            continue;
        }
        let ns = map.entry(p.netns).or_insert_with(|| Ns {
            name: None,
            path: None,
            pids: Vec::new(),
        });
        if ns.pids.len() < 4 {
            ns.pids.push(p.pid);
        }
    }
    let nsfs_dev = own.map(|(_, dev)| dev);

    // Named namespaces.
    match std::fs::read_dir("/run/netns") {
        Ok(rd) => {
            let mut named: Vec<(String, PathBuf)> = rd
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect();
            named.sort();
            for (name, path) in named {
                let Ok(md) = std::fs::metadata(&path) else {
                    continue;
                };
                // A stale file that is not an nsfs mount has another device.
                if nsfs_dev.is_some_and(|d| d != md.dev()) {
                    continue;
                }
                let ns = map.entry(md.ino()).or_insert_with(|| Ns {
                    name: None,
                    path: None,
                    pids: Vec::new(),
                });
                if ns.name.is_none() {
                    ns.name = Some(name);
                    ns.path = Some(path);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => scan.problems.push(format!(
            "cannot list /run/netns ({e}): named namespaces may be missed"
        )),
    }

    // Other nsfs bind mounts (container runtimes keep some outside /run/netns).
    if let Ok(me) = procfs::process::Process::myself()
        && let Ok(mounts) = me.mountinfo()
    {
        for m in &mounts {
            if m.fs_type != "nsfs" {
                continue;
            }
            let Some(ino) = m
                .root
                .strip_prefix("net:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse::<u64>().ok())
            else {
                continue;
            };
            let ns = map.entry(ino).or_insert_with(|| Ns {
                name: None,
                path: None,
                pids: Vec::new(),
            });
            if ns.path.is_none() {
                ns.path = Some(m.mount_point.clone());
            }
        }
    }
    map
}

// ---------------------------------------------------------------------------------------------
// Packet tables

#[derive(Debug, Clone, PartialEq)]
struct RawSocket {
    inode: u64,
    sock_type: u32,
    protocol: u16,
    ifindex: u32,
    running: bool,
    uid: u32,
}

#[derive(Debug, Default)]
struct NsTable {
    sockets: Vec<RawSocket>,
    /// Bound ifindex → device name, resolved inside the namespace.
    names: HashMap<u32, String>,
}

/// Parses `/proc/net/packet`:
/// `sk RefCnt Type Proto Iface R Rmem User Inode`, Proto in hex (already host order).
/// Returns the sockets and the number of lines that did not parse.
fn parse_packet_table(text: &str) -> (Vec<RawSocket>, u32) {
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

fn sock_type_name(t: u32) -> String {
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

/// A namespace's table and the number of its lines that did not parse, or why it could not
/// be read.
type TableRead = Result<(NsTable, u32), String>;

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

fn ns_label(ino: u64, ns: Option<&Ns>) -> String {
    match ns.and_then(|n| n.name.as_deref()) {
        Some(name) => format!("{name} (net:[{ino}])"),
        None => format!("net:[{ino}]"),
    }
}

/// Opens a handle on the namespace and checks it is that namespace (a pid may be reused).
fn open_ns_handle(ino: u64, ns: &Ns) -> Result<File, String> {
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

fn read_tables(
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
                scan.problems.push(format!(
                    "packet table of the diagnosed namespace net:[{own}] unreadable: {e}"
                ));
            }
        }
    }

    // Every other namespace through one worker thread that setns()s from one to the next.
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
    let job_inodes: Vec<u64> = jobs.iter().map(|(i, _)| *i).collect();
    let worker = if jobs.is_empty() {
        Err(std::io::Error::other("nothing to read"))
    } else {
        std::thread::Builder::new()
            .name("zcd-netns".to_string())
            .stack_size(256 * 1024)
            .spawn(move || {
                let mut out: Vec<(u64, TableRead)> = Vec::new();
                for (ino, file) in jobs {
                    // This thread only ever moves forward through namespaces and then exits; it
                    // never runs anything else.
                    let r =
                        match nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                        {
                            Ok(()) => read_table_here(),
                            Err(e) => Err(format!("setns(CLONE_NEWNET): {e}")),
                        };
                    out.push((ino, r));
                }
                out
            })
    };
    let worker_out: Vec<(u64, TableRead)> = match worker {
        _ if job_inodes.is_empty() => Vec::new(),
        Ok(h) => h.join().unwrap_or_else(|_| {
            job_inodes
                .iter()
                .map(|i| (*i, Err("namespace worker thread panicked".to_string())))
                .collect()
        }),
        Err(e) => job_inodes
            .iter()
            .map(|i| {
                (
                    *i,
                    Err(format!("cannot start namespace worker thread: {e}")),
                )
            })
            .collect(),
    };
    for (ino, r) in worker_out {
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
        let ns = namespaces.get(&ino);
        match ns.map_or(Err("no process is known to live in it".to_string()), |n| {
            read_table_via_pid(ino, &n.pids)
        }) {
            Ok((t, bad, unnamed)) => {
                bad_lines += bad;
                if unnamed > 0 {
                    scan.problems.push(format!(
                        "namespace {}: {unnamed} bound device(s) could not be named ({why}; read through /proc/PID/net instead)",
                        ns_label(ino, ns)
                    ));
                }
                results.push((ino, t));
            }
            Err(e2) => {
                scan.namespaces_unreadable += 1;
                scan.problems.push(format!(
                    "packet table of namespace {} unreadable: {why}; {e2}",
                    ns_label(ino, ns)
                ));
            }
        }
    }
    if bad_lines > 0 {
        scan.problems.push(format!(
            "{bad_lines} line(s) of /proc/net/packet did not parse and were skipped"
        ));
    }
    scan.namespaces_scanned = u32::try_from(results.len()).unwrap_or(u32::MAX);
    results.sort_by_key(|(ino, _)| *ino);
    results
}

/// Reads a namespace's table through one of its processes, re-checking afterwards that the
/// process is still in that namespace. Names come from `if_inet6` and `dev_mcast`.
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
            names_from_proc_net(*pid, &mut names);
        }
        let unnamed = u32::try_from(wanted.iter().filter(|i| !names.contains_key(i)).count())
            .unwrap_or(u32::MAX);
        names.retain(|k, _| wanted.contains(k));
        return Ok((NsTable { sockets, names }, bad, unnamed));
    }
    Err(last)
}

/// ifindex → name from `/proc/PID/net/if_inet6` (hex index, name last) and `dev_mcast`
/// (decimal index, name second): every device with IPv6 or a multicast address.
fn names_from_proc_net(pid: u32, names: &mut HashMap<u32, String>) {
    if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/if_inet6")) {
        for line in t.lines() {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if let [_, idx, _, _, _, name] = f.as_slice()
                && let Ok(i) = u32::from_str_radix(idx, 16)
            {
                names.entry(i).or_insert_with(|| (*name).to_string());
            }
        }
    }
    if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/net/dev_mcast")) {
        for line in t.lines() {
            let mut f = line.split_ascii_whitespace();
            if let (Some(idx), Some(name)) = (f.next(), f.next())
                && let Ok(i) = idx.parse::<u32>()
            {
                names.entry(i).or_insert_with(|| name.to_string());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Owner walk

#[derive(Deserialize)]
struct DaemonNames {
    #[serde(default)]
    daemon: Vec<DaemonNamesEntry>,
}

#[derive(Deserialize)]
struct DaemonNamesEntry {
    #[serde(default)]
    names: Vec<String>,
}

/// comm values of known tap daemons (truncated to the kernel's 15 bytes, as comm is).
fn known_daemon_comms() -> &'static HashSet<String> {
    static NAMES: OnceLock<HashSet<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        // A malformed file only loses the ordering hint; knowledge.rs's tests catch it.
        toml::from_str::<DaemonNames>(TAP_DAEMONS_TOML)
            .map(|f| {
                f.daemon
                    .into_iter()
                    .flat_map(|d| d.names)
                    .map(|n| truncate_comm(&n).to_string())
                    .collect()
            })
            .unwrap_or_default()
    })
}

fn truncate_comm(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Known tap daemons first, then processes in a namespace that holds a tap, then the rest.
/// The order only decides how soon the walk can stop; every process is still reachable.
fn order_for_walk(procs: &mut [Proc], tap_namespaces: &HashSet<u64>) {
    let known = known_daemon_comms();
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
    hits: Mutex<HashMap<u64, Vec<(u32, i32)>>>,
}

#[derive(Default)]
struct WalkCounts {
    scanned: u32,
    unreadable: u32,
    vanished: u32,
    fds: u64,
    /// Unexpected errors (not permission, not exit), by message.
    odd: Vec<String>,
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

/// Finds, for each tap inode, the (pid, fd) pairs holding it.
fn walk_owners(
    procs: &[Proc],
    taps: &HashSet<u64>,
    scan: &mut TapScan,
) -> HashMap<u64, Vec<(u32, i32)>> {
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
                Err(_) => counts.odd.push("an owner walk thread panicked".to_string()),
            }
        }
    });
    scan.processes_scanned = counts.scanned;
    scan.processes_unreadable = counts.unreadable;
    scan.processes_vanished += counts.vanished;
    scan.fds_scanned = counts.fds;
    let stopped_early = shared.remaining.load(Ordering::Acquire) == 0
        && shared.next.load(Ordering::Acquire) < procs.len();
    scan.owner_walk_stopped_early = stopped_early;
    if counts.unreadable > 0 {
        scan.problems.push(format!(
            "the descriptors of {} process(es) could not be read (permission): a tap they hold has no owner",
            counts.unreadable
        ));
    }
    counts.odd.sort();
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
            c.odd.push(format!("cannot open {fd_dir}: {e}"));
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
        Err(e) => c.odd.push(format!("reading {fd_dir} failed: {e}")),
    }
}

/// Calls `f` with each entry name of the open directory `dir` (including `.` and `..`) until
/// it returns false. getdents64 into a stack buffer: no allocation, one system call per
/// buffer-full of entries.
fn for_each_dirent(dir: &OwnedFd, mut f: impl FnMut(&CStr) -> bool) -> Result<(), Errno> {
    // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    const NAME_OFFSET: usize = 19;
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: getdents64 writes at most buf.len() bytes into buf; dir is open.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr().cast::<libc::c_void>(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(Errno::last());
        }
        let n = usize::try_from(n).map_err(|_| Errno::EIO)?.min(buf.len());
        if n == 0 {
            return Ok(());
        }
        let mut off = 0;
        while off + NAME_OFFSET < n {
            let reclen = usize::from(u16::from_ne_bytes([buf[off + 16], buf[off + 17]]));
            if reclen <= NAME_OFFSET || off + reclen > n {
                return Err(Errno::EIO);
            }
            let name = CStr::from_bytes_until_nul(&buf[off + NAME_OFFSET..off + reclen])
                .map_err(|_| Errno::EIO)?;
            if !f(name) {
                return Ok(());
            }
            off += reclen;
        }
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

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    let mut v: u32 = 0;
    for d in s {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
    }
    Some(v)
}

fn no_owner_reason(scan: &TapScan) -> String {
    let mut r = format!(
        "no owner found: no readable process holds this socket in its descriptor table ({} processes scanned",
        scan.processes_scanned
    );
    if scan.processes_unreadable > 0 {
        let _ = write!(
            r,
            ", {} unreadable: run zcdoctor as root",
            scan.processes_unreadable
        );
    }
    if scan.processes_vanished > 0 {
        let _ = write!(r, ", {} exited meanwhile", scan.processes_vanished);
    }
    r.push_str(
        "); without an owner its socket cannot be duplicated to read PACKET_IGNORE_OUTGOING",
    );
    r
}

// ---------------------------------------------------------------------------------------------
// Owner details

fn owner_details(pid: u32, comm: Option<&str>) -> Owner {
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
    let Ok(p) = procfs::process::Process::new(pid as i32) else {
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
        let paths: Vec<(bool, String)> = cgroups
            .0
            .iter()
            .map(|c| {
                let unified = c.hierarchy == 0 && c.controllers.is_empty();
                let named_systemd = c.controllers.iter().any(|x| x == "name=systemd");
                (unified || named_systemd, c.pathname.clone())
            })
            .collect();
        let (cgroup, unit, container) = summarize_cgroups(&paths);
        o.cgroup = cgroup;
        o.unit = unit;
        o.container = container;
    }
    o
}

/// From the process's cgroup lines (`(is unified or name=systemd, path)`): the path to report
/// (the unified / systemd one when it is not `/`, else the first non-root path), the systemd
/// unit and a container id found in any of them.
fn summarize_cgroups(paths: &[(bool, String)]) -> (Option<String>, Option<String>, Option<String>) {
    let preferred = paths
        .iter()
        .find(|(primary, p)| *primary && p != "/")
        .or_else(|| paths.iter().find(|(_, p)| p != "/"))
        .or_else(|| paths.first())
        .map(|(_, p)| p.clone());
    let unit = preferred
        .as_deref()
        .and_then(unit_from_cgroup)
        .or_else(|| paths.iter().find_map(|(_, p)| unit_from_cgroup(p)));
    let container = preferred
        .as_deref()
        .and_then(container_from_cgroup)
        .or_else(|| paths.iter().find_map(|(_, p)| container_from_cgroup(p)));
    (preferred, unit, container)
}

/// The last path component that is a systemd unit (`.service` or `.scope`).
fn unit_from_cgroup(path: &str) -> Option<String> {
    path.split('/')
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope"))
        .map(str::to_string)
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A container id (`runtime:id`) from a cgroup path, for the layouts of docker, containerd,
/// CRI-O, podman (systemd and cgroupfs drivers), kubepods, LXC and systemd-nspawn.
fn container_from_cgroup(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, comp) in parts.iter().enumerate().rev() {
        let scoped = comp.strip_suffix(".scope").unwrap_or(comp);
        for (prefix, runtime) in [
            ("docker-", "docker"),
            ("cri-containerd-", "containerd"),
            ("crio-", "cri-o"),
            ("libpod-", "podman"),
        ] {
            if let Some(id) = scoped.strip_prefix(prefix)
                && is_container_id(id)
            {
                return Some(format!("{runtime}:{id}"));
            }
        }
        if is_container_id(comp) {
            let runtime = if parts.iter().take(i).any(|p| p.starts_with("kubepods")) {
                "kubepods"
            } else if i > 0 && parts[i - 1] == "docker" {
                "docker"
            } else if parts.iter().take(i).any(|p| p.contains("libpod")) {
                "podman"
            } else {
                "container"
            };
            return Some(format!("{runtime}:{comp}"));
        }
        if let Some(name) = comp.strip_prefix("lxc.payload.") {
            return Some(format!("lxc:{name}"));
        }
        if i > 0 && parts[i - 1] == "lxc" {
            return Some(format!("lxc:{comp}"));
        }
        if i > 0
            && parts[i - 1] == "machine.slice"
            && let Some(name) = comp
                .strip_prefix("machine-")
                .and_then(|n| n.strip_suffix(".scope"))
        {
            return Some(format!("machine:{name}"));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Reading the real setting

/// What the probing process may do, for precise EPERM reasons.
struct PtraceContext {
    has_cap_sys_ptrace: bool,
    yama_scope: Option<u32>,
}

impl PtraceContext {
    fn read() -> PtraceContext {
        let has_cap_sys_ptrace = std::fs::read_to_string("/proc/thread-self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .is_some_and(|caps| caps & (1 << CAP_SYS_PTRACE) != 0);
        let yama_scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        PtraceContext {
            has_cap_sys_ptrace,
            yama_scope,
        }
    }

    fn eperm(&self, pid: u32) -> String {
        if !self.has_cap_sys_ptrace {
            format!(
                "pidfd_getfd on pid {pid} refused (EPERM): duplicating another process's socket needs CAP_SYS_PTRACE over it; run zcdoctor as root"
            )
        } else if self.yama_scope == Some(3) {
            format!(
                "pidfd_getfd on pid {pid} refused (EPERM) although zcdoctor has CAP_SYS_PTRACE: Yama ptrace_scope=3 forbids all ptrace access"
            )
        } else {
            format!(
                "pidfd_getfd on pid {pid} refused (EPERM) although zcdoctor has CAP_SYS_PTRACE: a security module (SELinux, AppArmor) or the owner's user namespace forbids ptrace access"
            )
        }
    }
}

/// Tries each (pid, fd) holding the socket until one can be read.
fn read_setting_any(
    holders: &[(u32, i32)],
    inode: u64,
    ptrace: &PtraceContext,
) -> (IgnoreOutgoing, Option<Fanout>) {
    let mut reasons: Vec<String> = Vec::new();
    for (pid, fd) in holders {
        match read_setting(*pid, *fd, inode, ptrace) {
            Ok(r) => return r,
            Err(e) => {
                if !reasons.contains(&e) {
                    reasons.push(e);
                }
            }
        }
    }
    (
        IgnoreOutgoing::Unknown {
            reason: reasons.join("; "),

            cause: None,
        },
        None,
    )
}

fn pidfd_open(pid: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open(pid, flags) takes two integers and returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0 as libc::c_uint) };
    if r < 0 {
        return Err(Errno::last());
    }
    let fd = i32::try_from(r).map_err(|_| Errno::EBADF)?;
    // SAFETY: fd is a fresh descriptor the kernel just returned to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pidfd_getfd(pidfd: &OwnedFd, target_fd: i32) -> Result<OwnedFd, Errno> {
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
    if r < 0 {
        return Err(Errno::last());
    }
    let fd = i32::try_from(r).map_err(|_| Errno::EBADF)?;
    // SAFETY: fd is a fresh descriptor the kernel just returned to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `getsockopt(PACKET_FANOUT)` value: group id in the low 16 bits, `type | flags` above.
fn decode_fanout(v: libc::c_int) -> Option<Fanout> {
    let v = v as u32;
    (v != 0).then_some(Fanout {
        group: (v & 0xffff) as u16,
        flags: (v >> 16) as u16,
    })
}

/// Duplicates fd `fd` of `pid` and reads its PACKET_FANOUT and PACKET_IGNORE_OUTGOING.
fn read_setting(
    pid: u32,
    fd: i32,
    inode: u64,
    ptrace: &PtraceContext,
) -> Result<(IgnoreOutgoing, Option<Fanout>), String> {
    let pidfd = pidfd_open(pid).map_err(|e| match e {
        Errno::ENOSYS => "pidfd_open is not available (Linux older than 5.3, or blocked by seccomp): the socket cannot be duplicated to read PACKET_IGNORE_OUTGOING".to_string(),
        Errno::ESRCH => format!("process {pid} exited before its socket could be read"),
        e => format!("pidfd_open({pid}) failed: {e}"),
    })?;
    let dup = pidfd_getfd(&pidfd, fd).map_err(|e| match e {
        Errno::ENOSYS => "pidfd_getfd is not available (Linux older than 5.6, or blocked by seccomp): the socket cannot be duplicated to read PACKET_IGNORE_OUTGOING".to_string(),
        Errno::EPERM => ptrace.eperm(pid),
        Errno::ESRCH => format!("process {pid} exited before its socket could be read"),
        Errno::EBADF => format!("fd {fd} of pid {pid} was closed before it could be read"),
        e => format!("pidfd_getfd(pid {pid}, fd {fd}) failed: {e}"),
    })?;
    drop(pidfd);
    match nix::sys::stat::fstat(dup.as_fd()) {
        Ok(st) if st.st_ino == inode => {}
        Ok(_) => {
            return Err(format!(
                "fd {fd} of pid {pid} no longer refers to socket {inode} (closed and reused)"
            ));
        }
        Err(e) => {
            return Err(format!(
                "cannot fstat the duplicate of fd {fd} of pid {pid}: {e}"
            ));
        }
    }
    let ignore = getsockopt_int(&dup, SOL_PACKET, PACKET_IGNORE_OUTGOING);
    let fanout = getsockopt_int(&dup, SOL_PACKET, PACKET_FANOUT);
    drop(dup);

    let fanout = fanout.ok().and_then(decode_fanout);
    if let Some(f) = fanout {
        // The group's hook replaces the member's: only the group flag counts.
        let setting = if f.flags & PACKET_FANOUT_FLAG_IGNORE_OUTGOING != 0 {
            IgnoreOutgoing::Set
        } else {
            IgnoreOutgoing::NotSet
        };
        return Ok((setting, Some(f)));
    }
    let setting = match ignore {
        Ok(0) => IgnoreOutgoing::NotSet,
        Ok(_) => IgnoreOutgoing::Set,
        Err(Errno::ENOPROTOOPT) => IgnoreOutgoing::Unknown {
            reason: "this kernel does not know PACKET_IGNORE_OUTGOING (added in Linux 4.20), so no tap on it can skip outgoing packets".to_string(),

            cause: None,
        },
        Err(e) => IgnoreOutgoing::Unknown {
            reason: format!(
                "getsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING) on the duplicate of fd {fd} of pid {pid} failed: {e}"
            ),

            cause: None,
        },
    };
    Ok((setting, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_packet_table() {
        let text = "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n\
                    0000000033131ce4 3      3    0003   2     1 0      103    8998  \n\
                    0000000000000000 3      2    0800   0     1 0      0      123\n\
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
                }
            ]
        );
        assert_eq!(bound_ifindexes(&s), vec![2]);
    }

    #[test]
    fn parses_socket_links() {
        assert_eq!(parse_socket_link(b"socket:[8998]"), Some(8998));
        assert_eq!(parse_socket_link(b"socket:[]"), None);
        assert_eq!(parse_socket_link(b"pipe:[8998]"), None);
        assert_eq!(parse_socket_link(b"/dev/null"), None);
        assert_eq!(parse_socket_link(b"socket:[99999999999999999999999]"), None);
        assert_eq!(parse_u32(b"123"), Some(123));
        assert_eq!(parse_u32(b"12a"), None);
        assert_eq!(parse_u32(b"."), None);
    }

    #[test]
    fn decodes_fanout() {
        assert_eq!(decode_fanout(0), None);
        // group 7, PACKET_FANOUT_HASH with PACKET_FANOUT_FLAG_IGNORE_OUTGOING.
        let v = (7u32 | (0x4000u32 << 16)) as i32;
        assert_eq!(
            decode_fanout(v),
            Some(Fanout {
                group: 7,
                flags: 0x4000
            })
        );
    }

    #[test]
    fn finds_units_and_containers() {
        assert_eq!(
            unit_from_cgroup("/system.slice/lldpd.service").as_deref(),
            Some("lldpd.service")
        );
        assert_eq!(
            unit_from_cgroup("/system.slice/foo.service/payload").as_deref(),
            Some("foo.service")
        );
        assert_eq!(unit_from_cgroup("/"), None);
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            container_from_cgroup(&format!("/system.slice/docker-{id}.scope")),
            Some(format!("docker:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!("/docker/{id}")),
            Some(format!("docker:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{id}.scope"
            )),
            Some(format!("containerd:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!("/kubepods/burstable/pod1234/{id}")),
            Some(format!("kubepods:{id}"))
        );
        assert_eq!(
            container_from_cgroup(&format!("/machine.slice/libpod-{id}.scope/container")),
            Some(format!("podman:{id}"))
        );
        assert_eq!(
            container_from_cgroup("/lxc.payload.web1/init.scope"),
            Some("lxc:web1".to_string())
        );
        assert_eq!(
            container_from_cgroup("/machine.slice/machine-deb12.scope"),
            Some("machine:deb12".to_string())
        );
        assert_eq!(container_from_cgroup("/system.slice/lldpd.service"), None);
        assert_eq!(
            container_from_cgroup("/process_api/aba01ea505c9b582dc55e007d2c77937"),
            None
        );
        let (cg, unit, container) = summarize_cgroups(&[
            (true, "/".to_string()),
            (false, "/process_api/x".to_string()),
        ]);
        assert_eq!(cg.as_deref(), Some("/process_api/x"));
        assert_eq!(unit, None);
        assert_eq!(container, None);
    }

    #[test]
    fn knows_daemon_names() {
        let known = known_daemon_comms();
        for n in ["dhclient", "tcpdump", "lldpd", "dumpcap", "Suricata-Main"] {
            assert!(known.contains(n), "{n} missing from tap-daemons.toml");
        }
        assert_eq!(truncate_comm("a-very-long-daemon-name"), "a-very-long-dae");
    }
}
