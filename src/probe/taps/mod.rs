//! Packet taps: every packet socket in every network namespace, the processes holding it, and
//! its real `PACKET_IGNORE_OUTGOING` and `PACKET_FANOUT` settings read through `pidfd_getfd`.
//!
//! How [`scan`] works, and why it is shaped this way:
//!
//! 1. **Namespaces** ([`netns`]). One pass over `/proc` stats every process's `ns/net` (the
//!    distinct inodes are the namespaces that have processes) and reads its `comm` (used to
//!    order step 3). Named namespaces under `/run/netns` and any other `nsfs` bind mount in
//!    `mountinfo` are added: they may have no process left but still hold sockets that
//!    processes elsewhere opened there. The diagnosed namespace is the calling thread's
//!    (`/proc/thread-self/ns/net`, the same as `/proc/self` unless the caller moved a thread).
//! 2. **Packet tables** ([`table`]). The own namespace's table is read directly; for every other
//!    namespace a single short-lived worker thread `setns(CLONE_NEWNET)`s into it (through a
//!    handle whose inode was checked), reads `/proc/thread-self/net/packet` and resolves the
//!    bound ifindexes with `if_indextoname` *there*. The worker is never used for anything else
//!    and exits afterwards. Without CAP_SYS_ADMIN it falls back to `/proc/PID/net/packet` (inode
//!    of the process's namespace re-checked after the read) and to the device names the
//!    namespace's `if_inet6` and `dev_mcast` files give.
//! 3. **Owners** ([`owners`], [`cgroup`]). Only ETH_P_ALL sockets need owners. The walk streams
//!    `/proc/PID/fd` one process at a time (one `readlinkat` per descriptor, a 64-byte stack
//!    buffer, nothing collected but hits): known tap daemons first (their names are an input,
//!    [`ScanOptions::known_daemons`]), then processes living in a namespace that holds a tap,
//!    then everyone else, and it stops once every tap has an owner. Large hosts are walked by a
//!    few threads sharing one cursor. Each owner's exe, command line, uid, cgroup, systemd unit
//!    and container id are read once.
//! 4. **Real settings** ([`setting`]). For each tap with an owner: `pidfd_open` + `pidfd_getfd`
//!    duplicate the socket (its inode is checked, so a reused descriptor number is never
//!    misread), then `getsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING)` and `PACKET_FANOUT`; the
//!    duplicate is closed at once. Both are recorded as read: `ignore_outgoing` is the socket's
//!    own option, `fanout` its group id and flags. That a fanout member's own hook is replaced by
//!    the group's, so `PACKET_FANOUT_FLAG_IGNORE_OUTGOING` decides for it, is the checks' rule,
//!    not the probe's. Anything that cannot be read is `Unknown` with a factual account and its
//!    cause as data ([`Unreadable`](crate::evidence::Unreadable)), never a guess.
//!
//! `procfs` is used where its cost does not matter (owner details, cgroups, mountinfo, the
//! prober's capabilities); the two hot loops (namespace stat and descriptor walk) use
//! `stat`/`readlinkat` over `getdents64` directly ([`dirent`]) because `procfs`'s descriptor
//! iterator spends four system calls per descriptor instead of one.
//!
//! Blind spots (recorded, not guessed around): a namespace reachable only through a non-leader
//! thread or an open descriptor is not enumerated; sockets held only by a thread with a private
//! descriptor table, or in flight over a unix socket, have no owner.

pub(crate) mod cgroup;
mod dirent;
mod netns;
mod owners;
pub(crate) mod setting;
mod table;

use std::collections::{HashMap, HashSet};

use crate::evidence::{NetnsRef, Owner, PacketSocket, ScanProblem, TapScan};

use setting::{PtraceContext, Reading};

const ETH_P_ALL: u16 = PacketSocket::ETH_P_ALL;

/// What [`scan`] is told rather than reads itself.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Process names (comm, or longer names that comm truncates to 15 bytes) of daemons known to
    /// hold taps: their descriptors are walked first, so the walk can stop sooner. Only the
    /// order depends on them; every process is still reachable.
    pub known_daemons: Vec<String>,
}

/// Every packet socket of every network namespace, with owners and the settings read from the
/// TX taps. Never fails: what cannot be read is counted in the scan and described in
/// `problems` or in the socket's `Unknown` setting.
pub fn scan(opts: &ScanOptions) -> TapScan {
    let mut scan = TapScan::default();

    let own = own_namespace(&mut scan);
    scan.diagnosed_netns = own.map_or(0, |(ino, _)| ino);

    let mut procs = netns::list_processes(&mut scan);
    let namespaces = netns::collect_namespaces(&procs, own, &mut scan);
    let tables = table::read_tables(&namespaces, scan.diagnosed_netns, &mut scan);
    let holders = tap_holders(&tables, &mut procs, opts, &mut scan);
    let owners = TapOwners::read(&procs, holders);

    for (ns_ino, table) in tables {
        let ns = namespaces.get(&ns_ino);
        let netns = NetnsRef {
            inode: ns_ino,
            name: ns.and_then(|n| n.name.clone()),
        };
        for raw in table.sockets {
            let socket = owners.packet_socket(raw, &table.names, netns.clone(), &mut scan);
            scan.sockets.push(socket);
        }
    }
    let diagnosed = scan.diagnosed_netns;
    scan.sockets
        .sort_by_key(|s| (s.netns.inode != diagnosed, s.netns.inode, s.inode));
    scan
}

/// The calling thread's namespace (inode, device), the one diagnosed; `None` (and a problem)
/// when it cannot be stat'ed.
fn own_namespace(scan: &mut TapScan) -> Option<(u64, u64)> {
    match netns::own_namespace() {
        Ok(own) => Some(own),
        Err(e) => {
            scan.problems.push(ScanProblem::OwnNamespaceUnknown {
                error: e.to_string(),
            });
            None
        }
    }
}

/// The processes holding each ETH_P_ALL socket of `tables` (the only ones that need owners):
/// known tap daemons are walked first, then processes in a namespace that holds a tap.
fn tap_holders(
    tables: &[(u64, table::NsTable)],
    procs: &mut [netns::Proc],
    opts: &ScanOptions,
    scan: &mut TapScan,
) -> owners::Holders {
    let mut taps: HashSet<u64> = HashSet::new();
    let mut tap_namespaces: HashSet<u64> = HashSet::new();
    for (ns_ino, table) in tables {
        for s in table.sockets.iter().filter(|s| s.protocol == ETH_P_ALL) {
            taps.insert(s.inode);
            tap_namespaces.insert(*ns_ino);
        }
    }
    if taps.is_empty() {
        return owners::Holders::new();
    }
    let known = owners::known_comms(&opts.known_daemons);
    owners::order_for_walk(procs, &tap_namespaces, &known);
    owners::walk_owners(procs, &taps, scan)
}

/// Who holds each tap, each holder's details (read once per pid), and what is needed to read
/// a tap's settings through its holders.
struct TapOwners {
    holders: owners::Holders,
    owner_of: HashMap<u32, Owner>,
    ptrace: PtraceContext,
}

impl TapOwners {
    fn read(procs: &[netns::Proc], holders: owners::Holders) -> TapOwners {
        let comm_of: HashMap<u32, &str> = procs.iter().map(|p| (p.pid, p.comm.as_str())).collect();
        let mut owner_of: HashMap<u32, Owner> = HashMap::new();
        for (pid, _) in holders.values().flatten() {
            owner_of
                .entry(*pid)
                .or_insert_with(|| owners::owner_details(*pid, comm_of.get(pid).copied()));
        }
        let ptrace = if holders.is_empty() {
            PtraceContext::default()
        } else {
            PtraceContext::read()
        };
        TapOwners {
            holders,
            owner_of,
            ptrace,
        }
    }

    /// Packet socket `raw` of namespace `netns` (whose bound devices are `names`) as recorded,
    /// with its owners and settings; what its reading ran into goes to `scan`'s problems.
    fn packet_socket(
        &self,
        raw: table::RawSocket,
        names: &HashMap<u32, String>,
        netns: NetnsRef,
        scan: &mut TapScan,
    ) -> PacketSocket {
        let device = (raw.ifindex != 0)
            .then(|| names.get(&raw.ifindex).cloned())
            .flatten();
        let (owners, reading) = self.settings(&raw, scan);
        scan.problems.extend(reading.problems);
        PacketSocket {
            inode: raw.inode,
            netns,
            sock_type: table::sock_type_name(raw.sock_type),
            protocol: raw.protocol,
            ifindex: (raw.ifindex != 0).then_some(raw.ifindex),
            device,
            running: raw.running,
            uid: Some(raw.uid),
            owners,
            ignore_outgoing: reading.ignore_outgoing,
            fanout: reading.fanout,
        }
    }

    /// A tap's owners and its settings read through them; other packet sockets have neither.
    fn settings(&self, raw: &table::RawSocket, scan: &TapScan) -> (Vec<Owner>, Reading) {
        let mut owners: Vec<Owner> = Vec::new();
        if raw.protocol != ETH_P_ALL {
            let reading = Reading {
                ignore_outgoing: setting::not_read(raw.protocol),
                fanout: None,
                problems: Vec::new(),
            };
            return (owners, reading);
        }
        let held = self
            .holders
            .get(&raw.inode)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for (pid, _) in held {
            if !owners.iter().any(|o| o.pid == *pid)
                && let Some(o) = self.owner_of.get(pid)
            {
                owners.push(o.clone());
            }
        }
        let reading = if held.is_empty() {
            Reading {
                ignore_outgoing: setting::no_owner(scan),
                fanout: None,
                problems: Vec::new(),
            }
        } else {
            setting::read_setting_any(held, raw.inode, &self.ptrace)
        };
        (owners, reading)
    }
}

/// The `taps` probe.
pub struct TapsProbe;

impl super::Probe for TapsProbe {
    fn name(&self) -> crate::evidence::ProbeName {
        crate::evidence::ProbeName::Taps
    }
    fn reads(&self) -> &'static str {
        "every namespace's /proc/net/packet, owners from /proc/*/fd, each tap's PACKET_IGNORE_OUTGOING via pidfd_getfd"
    }
    fn privileges(&self) -> &'static str {
        "CAP_SYS_ADMIN (enter other namespaces) and CAP_SYS_PTRACE (read other users' sockets): root"
    }
    fn gather(
        &self,
        cx: &mut super::Context,
        ev: &mut crate::evidence::Evidence,
    ) -> Result<super::Outcome, super::GatherError> {
        use crate::evidence::ProbeState;
        let caps = super::host::process_limits();
        let scan = scan(&ScanOptions {
            known_daemons: cx.opts.known_tap_daemons.clone(),
        });
        let mut detail = format!(
            "{} packet socket(s) in {} namespace(s); {} processes scanned, {} unreadable, {} vanished",
            scan.sockets.len(),
            scan.namespaces_scanned,
            scan.processes_scanned,
            scan.processes_unreadable,
            scan.processes_vanished
        );
        if !scan.problems.is_empty() {
            detail = format!(
                "{detail}; {}",
                summarize_problems(&scan.problems).join("; ")
            );
        }
        let mut lacking = Vec::new();
        if !caps.cap_sys_ptrace {
            lacking.push("CAP_SYS_PTRACE");
        }
        if !caps.cap_sys_admin {
            lacking.push("CAP_SYS_ADMIN");
        }
        let state = if lacking.is_empty() {
            ProbeState::Ok
        } else {
            detail = format!("{detail}; zcdoctor lacks {}", lacking.join(" and "));
            ProbeState::Error
        };
        ev.taps = Some(scan);
        Ok(super::Outcome::new(state, detail))
    }
}

/// The probe's one-line detail: per-namespace problems folded into one clause each kind (an
/// unprivileged run on a host with many containers has one per namespace); the full list stays
/// in `TapScan::problems`.
fn summarize_problems(problems: &[ScanProblem]) -> Vec<String> {
    let mut out = Vec::new();
    let mut tables = Vec::new();
    let mut unnamed = 0;
    for p in problems {
        match p {
            ScanProblem::PacketTableUnreadable {
                diagnosed: false, ..
            } => tables.push(p),
            ScanProblem::DevicesUnnamed { .. } => unnamed += 1,
            _ => out.push(p.to_string()),
        }
    }
    match tables.as_slice() {
        [] => {}
        [one] => out.push(one.to_string()),
        [first, ..] => out.push(format!(
            "the packet tables of {} namespaces could not be read (the first: {first})",
            tables.len()
        )),
    }
    if unnamed > 0 {
        out.push(format!(
            "in {unnamed} namespace(s) some bound devices could not be named"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_namespace_problems_fold_into_one_clause() {
        let problems: Vec<ScanProblem> = (0..30)
            .map(|n| ScanProblem::PacketTableUnreadable {
                netns: format!("net:[{n}]"),
                diagnosed: false,
                error: "EACCES".to_string(),
            })
            .chain([ScanProblem::DescriptorsUnreadable { processes: 3 }])
            .collect();
        let folded = summarize_problems(&problems);
        assert_eq!(folded.len(), 2, "{folded:?}");
        assert!(folded[1].starts_with("the packet tables of 30 namespaces"));
    }
    use crate::evidence::IgnoreOutgoing;

    #[test]
    fn scans_this_host_and_never_fails() {
        let scan = scan(&ScanOptions {
            known_daemons: vec!["tcpdump".to_string()],
        });
        assert!(scan.processes_listed >= 1);
        assert!(scan.namespaces_scanned >= 1 || scan.namespaces_unreadable >= 1);
        assert_ne!(scan.diagnosed_netns, 0);
        // Sorted: the diagnosed namespace first.
        let first_other = scan
            .sockets
            .iter()
            .position(|s| s.netns.inode != scan.diagnosed_netns)
            .unwrap_or(scan.sockets.len());
        assert!(
            scan.sockets[first_other..]
                .iter()
                .all(|s| s.netns.inode != scan.diagnosed_netns)
        );
        for s in &scan.sockets {
            match &s.ignore_outgoing {
                IgnoreOutgoing::Unknown { reason, cause } => {
                    assert!(!reason.is_empty());
                    // Only a socket that was not read has no cause.
                    assert_eq!(cause.is_none(), s.protocol != ETH_P_ALL, "{s:#?}");
                }
                _ => assert_eq!(s.protocol, ETH_P_ALL),
            }
        }
    }
}
