//! Applications diagnosed by pid: whether they ask for zerocopy at all (SO_ZEROCOPY), whether
//! their zerocopy sockets' option memory is filling with unread notifications, whether
//! RLIMIT_MEMLOCK caps their pinned pages, and whether they use io_uring (whose SEND_ZC copies
//! are invisible unless reported). QEMU gets its own names: migration channels, the
//! `zero-copy-send` capability and the `dirty-sync-missed-zero-copy` counter.
//!
//! `SO_ZEROCOPY` only says zerocopy is *allowed* on a socket (QEMU sets it on every outgoing
//! migration socket even with `zero-copy-send` off); option memory in use is what shows it used.

use serde_json::json;

use super::findings::{Code, Findings};
use crate::evidence::{Evidence, Fact, InetSocket, KernelVersion, ProcessEvidence};
use crate::report::Severity;

/// One zerocopy notification skb (`SKB_TRUESIZE(0)`) as measured on Linux 6.18 x86-64: 157
/// unread notifications held 130624 bytes. The next send needs this much headroom under
/// optmem_max, or it fails with ENOBUFS.
pub const NOTIFICATION_BYTES: u64 = 832;
/// Option memory at or above this share of optmem_max (in quarters) is "near" the limit.
const NEAR_QUARTERS: u64 = 3;
/// Kernel that reports SEND_ZC copies (IORING_SEND_ZC_REPORT_USAGE).
const SEND_ZC_REPORT_USAGE: KernelVersion = KernelVersion::new(6, 2);

pub fn check(ev: &Evidence, out: &mut Findings) {
    for p in &ev.processes {
        let before = out.findings.len();
        check_one(ev, p, out);
        if out.findings.len() == before {
            out.pass("process", pass_line(p));
        }
    }
}

fn check_one(ev: &Evidence, p: &ProcessEvidence, out: &mut Findings) {
    let qemu = is_qemu(p);
    let who = label(p);
    let notes = if qemu { qemu_notes(p) } else { Vec::new() };
    not_requested(p, &who, qemu, &notes, out);
    not_drained(p, &who, qemu, &notes, out);
    memlock(p, &who, qemu, out);
    io_uring(ev, p, &who, out);
}

/// `qemu-system-x86 (pid 4242, machine-qemu-1-vm1.scope)`.
fn label(p: &ProcessEvidence) -> String {
    match p.managed_by() {
        Some(m) => format!("{} (pid {}, {m})", p.comm, p.pid),
        None => format!("{} (pid {})", p.comm, p.pid),
    }
}

/// QEMU by comm (`qemu-system-x86` is comm's 15-byte cut) or executable.
pub fn is_qemu(p: &ProcessEvidence) -> bool {
    let exe_name = p
        .exe
        .value()
        .and_then(|e| e.rsplit('/').next())
        .unwrap_or_default();
    [p.comm.as_str(), exe_name]
        .iter()
        .any(|n| n.starts_with("qemu-system-") || *n == "qemu-kvm")
}

/// Connected TCP sockets grouped by peer: a group of several is QEMU's main migration channel
/// and its multifd channels (when this is the sending side).
fn migration_channels(p: &ProcessEvidence) -> Vec<(String, Vec<&InetSocket>)> {
    let mut groups: Vec<(String, Vec<&InetSocket>)> = Vec::new();
    for s in p.sockets.iter().filter(|s| s.is_connected_tcp()) {
        let Fact::Read(Some(peer)) = &s.peer else {
            continue;
        };
        match groups.iter_mut().find(|(k, _)| k == peer) {
            Some((_, v)) => v.push(s),
            None => groups.push((peer.clone(), vec![s])),
        }
    }
    groups
}

fn qemu_notes(p: &ProcessEvidence) -> Vec<String> {
    let mut notes = Vec::new();
    for (peer, socks) in migration_channels(p) {
        let fds: Vec<String> = socks
            .iter()
            .map(|s| {
                format!(
                    "fd {}{}",
                    s.fd,
                    if s.zerocopy.value() == Some(&true) {
                        " (SO_ZEROCOPY)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        let what = if socks.len() > 1 {
            format!(
                "the main migration channel and {} multifd channel(s) if this is the sending side",
                socks.len() - 1
            )
        } else {
            "a migration channel if this is the sending side".to_string()
        };
        notes.push(format!(
            "Connected TCP sockets to {peer}: {} ({what}).",
            fds.join(", ")
        ));
    }
    notes.push("QEMU sets SO_ZEROCOPY on every outgoing migration socket, the main channel too, even with `zero-copy-send` off: the flag shows zerocopy allowed, not used. Only multifd channels send with MSG_ZEROCOPY, and only with the capability on; option memory in use on them shows it used. Check with QMP `query-migrate-capabilities` (zero-copy-send) and `query-migrate`: ram.dirty-sync-missed-zero-copy (QEMU 7.1+) counts syncs in which no send avoided a copy.".to_string());
    notes
}

/// Whether every socket descriptor was read, so "none has SO_ZEROCOPY" is a fact.
fn all_read(p: &ProcessEvidence) -> bool {
    p.sockets_unreadable == 0
        && p.sockets_not_read == 0
        && p.sockets
            .iter()
            .all(|s| matches!(s.zerocopy, Fact::Read(_)))
}

fn not_requested(p: &ProcessEvidence, who: &str, qemu: bool, notes: &[String], out: &mut Findings) {
    // io_uring SEND_ZC needs no SO_ZEROCOPY: io-uring-in-use speaks for such a process.
    if p.zerocopy_sockets().next().is_some() || !all_read(p) || !p.io_urings.is_empty() {
        return;
    }
    let n = p.sockets.len();
    let summary = if n == 0 {
        format!(
            "{who} has no TCP or UDP socket open, so none with SO_ZEROCOPY: it is not sending with zerocopy now"
        )
    } else {
        let list: Vec<String> = p
            .sockets
            .iter()
            .take(4)
            .map(|s| format!("fd {} {} {}", s.fd, s.protocol, s.endpoints()))
            .collect();
        let more = if n > 4 {
            format!(" and {} more", n - 4)
        } else {
            String::new()
        };
        format!(
            "None of the {n} TCP/UDP socket(s) of {who} has SO_ZEROCOPY ({}{more}): MSG_ZEROCOPY on them is silently ignored, with no error and no notification",
            list.join(", ")
        )
    };
    let mut fix = Vec::new();
    if qemu {
        fix.push(format!("QEMU pid {}: before migrating, enable multifd and the capability over QMP: `{{\"execute\":\"migrate-set-capabilities\",\"arguments\":{{\"capabilities\":[{{\"capability\":\"multifd\",\"state\":true}},{{\"capability\":\"zero-copy-send\",\"state\":true}}]}}}}` (QEMU 7.1+); with libvirt: `virsh migrate --parallel --zerocopy`.", p.pid));
        fix.push(
            "Then watch `query-migrate`: ram.dirty-sync-missed-zero-copy should stay 0."
                .to_string(),
        );
    } else {
        fix.push(format!(
            "In the application (pid {}): setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) on each sending socket before sending with MSG_ZEROCOPY, or turn on its own zerocopy option.",
            p.pid
        ));
    }
    if let Some(unit) = p.unit.as_deref().filter(|u| u.ends_with(".service")) {
        fix.push(format!(
            "If that is a configuration change, apply it with `systemctl restart {unit}`."
        ));
    }
    let f = out.raise(
        Code::ZerocopyNotRequested,
        summary,
        json!({
            "pids": [p.pid],
            "comm": p.comm,
            "unit": p.unit,
            "container": p.container,
            "sockets": n,
        }),
        fix,
    );
    f.notes = notes.to_vec();
}

/// The optmem_max that applies to socket `s`: its own namespace's, else the process's.
fn optmem_max_for(p: &ProcessEvidence, s: &InetSocket) -> Option<u64> {
    match s.netns.value() {
        Some(ino) => p.optmem_max_of(*ino),
        None => p.netns_inode().and_then(|i| p.optmem_max_of(i)),
    }
}

/// How to set optmem_max in socket `s`'s namespace.
fn sysctl_command(p: &ProcessEvidence, s: &InetSocket, value: u64) -> String {
    let set = format!("sysctl -w net.core.optmem_max={value}");
    let ns = s.netns.value().copied();
    if ns.is_none() || ns == p.netns_inode() {
        return format!("`nsenter --target {} --net {set}`", p.pid);
    }
    match p
        .namespaces
        .iter()
        .find(|n| Some(n.netns.inode) == ns)
        .and_then(|n| n.netns.name.as_deref())
    {
        Some(name) => format!("`ip netns exec {name} {set}`"),
        None => format!("`{set}` inside net:[{}]", ns.unwrap_or_default()),
    }
}

fn not_drained(p: &ProcessEvidence, who: &str, qemu: bool, notes: &[String], out: &mut Findings) {
    struct Full<'a> {
        s: &'a InetSocket,
        optmem: u64,
        max: u64,
        in_flight: u64,
    }
    let full: Vec<Full> = p
        .zerocopy_sockets()
        .filter_map(|s| {
            let optmem = s.optmem()?;
            let max = optmem_max_for(p, s)?;
            let in_flight = s.meminfo.value().map_or(0, |m| u64::from(m.wmem_alloc));
            (optmem * 4 >= max * NEAR_QUARTERS).then_some(Full {
                s,
                optmem,
                max,
                in_flight,
            })
        })
        .collect();
    if full.is_empty() {
        return;
    }
    let at_limit = |f: &Full| f.max.saturating_sub(f.optmem) < NOTIFICATION_BYTES;
    let blocker = full.iter().any(at_limit);
    let parts: Vec<String> = full
        .iter()
        .take(4)
        .map(|f| {
            let left = f.max.saturating_sub(f.optmem);
            let room = if at_limit(f) {
                format!("{left} left, less than one {NOTIFICATION_BYTES}-byte notification")
            } else {
                format!("{left} left")
            };
            let flight = if f.in_flight == 0 {
                "nothing in flight (wmem_alloc 0), so all of it is unread notifications".to_string()
            } else {
                format!(
                    "{} bytes still in flight (wmem_alloc), part of it may be sends not yet completed",
                    f.in_flight
                )
            };
            format!(
                "fd {} {} {} holds {} of optmem_max {} bytes ({room}; {flight})",
                f.s.fd,
                f.s.protocol,
                f.s.endpoints(),
                f.optmem,
                f.max,
            )
        })
        .collect();
    let more = if full.len() > 4 {
        format!(" and {} more socket(s)", full.len() - 4)
    } else {
        String::new()
    };
    let consequence = if blocker {
        "the next MSG_ZEROCOPY send fails with ENOBUFS"
    } else {
        "ENOBUFS follows once it reaches the limit"
    };
    let summary = format!(
        "{who}: zerocopy option memory at or near the limit: {}{more}. Completions are not being read from MSG_ERRQUEUE fast enough; {consequence}",
        parts.join("; ")
    );
    let first = full[0].s;
    let raise_to = (full[0].max * 2).max(262_144);
    let mut fix = Vec::new();
    if qemu {
        fix.push(format!("QEMU pid {}: its migration thread drains the error queue; check QMP `query-migrate` (ram.dirty-sync-missed-zero-copy, status) for a stalled migration, and if it fails with ENOBUFS or \"can't lock enough memory\", turn `zero-copy-send` off with `migrate-set-capabilities` until optmem_max is raised.", p.pid));
    } else {
        fix.push(format!(
            "In the application (pid {}): read completions with recvmsg(fd, MSG_ERRQUEUE) whenever poll reports POLLERR, at least once per batch of MSG_ZEROCOPY sends.",
            p.pid
        ));
    }
    fix.push(format!(
        "Raise the limit for headroom in the socket's namespace: {}; persist it in /etc/sysctl.d/ (per namespace since Linux 6.8).",
        sysctl_command(p, first, raise_to)
    ));
    let sockets: Vec<serde_json::Value> = full
        .iter()
        .map(|f| {
            json!({
                "fd": f.s.fd,
                "inode": f.s.inode,
                "protocol": f.s.protocol,
                "local": f.s.local.value(),
                "peer": f.s.peer.value().cloned().flatten(),
                "optmem": f.optmem,
                "optmem_max": f.max,
                "wmem_alloc": f.in_flight,
            })
        })
        .collect();
    let severity = if blocker {
        Severity::Blocker
    } else {
        Severity::Warning
    };
    let f = out.raise_as(
        Code::ErrqueueNotDrained,
        severity,
        summary,
        json!({
            "pids": [p.pid],
            "comm": p.comm,
            "unit": p.unit,
            "notification_bytes": NOTIFICATION_BYTES,
            "sockets": sockets,
        }),
        fix,
    );
    f.notes = notes.to_vec();
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

fn memlock(p: &ProcessEvidence, who: &str, qemu: bool, out: &mut Findings) {
    let zc = p.zerocopy_sockets().count();
    let Some(limit) = p.memlock.value() else {
        return;
    };
    let Some(soft) = limit.soft else {
        return;
    };
    if zc == 0 || p.cap_ipc_lock() != Some(false) {
        return;
    }
    let hard = limit.hard.map_or("unlimited".to_string(), bytes);
    let own = match (p.vm_pin, p.vm_lck) {
        (Some(pin), Some(lck)) => format!("VmPin {}, VmLck {}", bytes(pin), bytes(lck)),
        _ => "VmPin and VmLck unread".to_string(),
    };
    let uid = p.uid.map_or("its user".to_string(), |u| format!("uid {u}"));
    let summary = format!(
        "{who} has RLIMIT_MEMLOCK {} (hard {hard}) and no CAP_IPC_LOCK while {zc} socket(s) allow MSG_ZEROCOPY: the pages of every zerocopy send in flight are charged to {uid}'s locked_vm, shared by all its processes, and checked against this limit; sends over it fail with ENOBUFS. This process shows {own}; the user's total locked_vm is not exposed by procfs.",
        bytes(soft)
    );
    let mut fix = Vec::new();
    match p.unit.as_deref() {
        Some(unit) if unit.ends_with(".service") => {
            fix.push(format!(
                "`systemctl edit {unit}`: add `[Service]` `LimitMEMLOCK=infinity` (or a size covering the sends in flight), then `systemctl restart {unit}`."
            ));
        }
        _ => {}
    }
    fix.push(format!(
        "Now, without a restart: `prlimit --pid {} --memlock=unlimited:unlimited` (raising the hard limit needs CAP_SYS_RESOURCE).",
        p.pid
    ));
    if qemu {
        fix.push("With libvirt, `virsh migrate --zerocopy` (VIR_MIGRATE_ZEROCOPY) lets QEMU lock all guest memory; set `<memtune><hard_limit>` so the limit libvirt derives covers it.".to_string());
    }
    out.raise(
        Code::ProcessMemlockLimit,
        summary,
        json!({
            "pids": [p.pid],
            "comm": p.comm,
            "unit": p.unit,
            "uid": p.uid,
            "memlock_soft": soft,
            "memlock_hard": limit.hard,
            "vm_pin": p.vm_pin,
            "vm_lck": p.vm_lck,
            "zerocopy_sockets": zc,
        }),
        fix,
    );
}

fn io_uring(ev: &Evidence, p: &ProcessEvidence, who: &str, out: &mut Findings) {
    if p.io_urings.is_empty() {
        return;
    }
    let opt = |v: Option<u64>| v.map_or("?".to_string(), |n| n.to_string());
    let rings: Vec<String> = p
        .io_urings
        .iter()
        .take(4)
        .map(|u| match &u.fdinfo_error {
            Some(e) => format!("fd {} (fdinfo unreadable: {e})", u.fd),
            None => format!(
                "fd {} ({} SQ / {} CQ entries, {}, {} registered buffer(s), {} registered file(s))",
                u.fd,
                opt(u.sq_entries),
                opt(u.cq_entries),
                match u.sq_thread {
                    Some(t) if t >= 0 => format!("SQPOLL thread {t}"),
                    Some(_) => "no SQPOLL".to_string(),
                    None => "SQPOLL unknown".to_string(),
                },
                opt(u.user_bufs),
                opt(u.user_files)
            ),
        })
        .collect();
    let more = if p.io_urings.len() > 4 {
        format!(" and {} more", p.io_urings.len() - 4)
    } else {
        String::new()
    };
    let kernel = match ev.kernel.version {
        Some(v) if v.at_least(SEND_ZC_REPORT_USAGE) => format!("Linux {v} has it"),
        Some(v) => format!("Linux {v} lacks it (6.2+), so copies cannot be seen at all"),
        None => "whether this kernel has it is unknown".to_string(),
    };
    let summary = format!(
        "{who} has {} io_uring instance(s): {}{more}. IORING_OP_SEND_ZC needs no SO_ZEROCOPY on the socket, and reports copies only with IORING_SEND_ZC_REPORT_USAGE ({kernel}); zcdoctor cannot see which operations it submits",
        p.io_urings.len(),
        rings.join(", ")
    );
    out.raise(
        Code::IoUringInUse,
        summary,
        json!({
            "pids": [p.pid],
            "comm": p.comm,
            "io_urings": p.io_urings,
        }),
        vec![
            format!("In the application (pid {}): set IORING_SEND_ZC_REPORT_USAGE in sqe->ioprio of each SEND_ZC / SENDMSG_ZC and count notification CQEs whose res has IORING_NOTIF_USAGE_ZC_COPIED.", p.pid),
            "A SEND_ZC memlock failure is ENOMEM in the CQE, not ENOBUFS.".to_string(),
        ],
    );
}

fn pass_line(p: &ProcessEvidence) -> String {
    let zc = p.zerocopy_sockets().count();
    let optmem: u64 = p.zerocopy_sockets().filter_map(InetSocket::optmem).sum();
    let mut parts = vec![format!(
        "{}: {zc} of {} TCP/UDP socket(s) allow MSG_ZEROCOPY",
        label(p),
        p.sockets.len()
    )];
    if zc > 0 {
        parts.push(format!("{optmem} bytes of option memory in use on them"));
        match (p.cap_ipc_lock(), p.memlock.value()) {
            (Some(true), _) => parts.push("RLIMIT_MEMLOCK does not apply (CAP_IPC_LOCK)".into()),
            (_, Some(l)) if l.soft.is_none() => parts.push("RLIMIT_MEMLOCK unlimited".into()),
            _ => {}
        }
    }
    if !all_read(p) {
        parts.push(format!(
            "{} socket(s) not read",
            p.sockets_unreadable + p.sockets_not_read
        ));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::fixture;
    use crate::evidence::{IoUring, Memlock, NamespaceSysctls, NetnsRef, OsError, SkMeminfo};

    const NS: u64 = 4026531840;

    fn socket(fd: i32, zerocopy: bool, optmem: u32, peer: Option<&str>) -> InetSocket {
        InetSocket {
            fd,
            inode: 1000 + fd as u64,
            family: "ipv4".into(),
            protocol: if peer.is_some() { "tcp" } else { "udp" }.into(),
            netns: Fact::Read(NS),
            local: Fact::Read(format!("198.18.0.1:{}", 40000 + fd)),
            peer: Fact::Read(peer.map(str::to_string)),
            tcp_state: peer.map(|_| Fact::Read("established".to_string())),
            zerocopy: Fact::Read(zerocopy),
            meminfo: Fact::Read(SkMeminfo {
                optmem,
                sndbuf: 212992,
                ..SkMeminfo::default()
            }),
        }
    }

    fn process(comm: &str, sockets: Vec<InetSocket>) -> ProcessEvidence {
        ProcessEvidence {
            pid: 4242,
            comm: comm.into(),
            exe: Fact::Read(format!("/usr/bin/{comm}")),
            cmdline: vec![comm.into()],
            cmdline_truncated: false,
            uid: Some(107),
            netns: Fact::Read(NetnsRef {
                inode: NS,
                name: None,
            }),
            cgroup: Some("/system.slice/app.service".into()),
            unit: Some("app.service".into()),
            container: None,
            memlock: Fact::Read(Memlock {
                soft: Some(8 << 20),
                hard: Some(8 << 20),
            }),
            capeff: Fact::Read(0),
            vm_lck: Some(0),
            vm_pin: Some(0),
            namespaces: vec![NamespaceSysctls {
                netns: NetnsRef {
                    inode: NS,
                    name: None,
                },
                optmem_max: Fact::Read(131072),
            }],
            sockets,
            sockets_not_read: 0,
            other_sockets: 0,
            unreadable_sockets: Vec::new(),
            sockets_unreadable: 0,
            io_urings: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn run(p: ProcessEvidence) -> Findings {
        let mut ev = fixture("clean-nic");
        ev.processes = vec![p];
        let mut out = Findings::new();
        check(&ev, &mut out);
        out
    }

    #[test]
    fn no_zerocopy_socket_is_named() {
        let out = run(process("app", vec![socket(3, false, 0, None)]));
        assert_eq!(out.codes_where(|_| true), [Code::ZerocopyNotRequested]);
        let f = &out.findings[0];
        assert!(
            f.summary.contains("app (pid 4242, app.service)"),
            "{}",
            f.summary
        );
        assert!(
            f.summary
                .contains("fd 3 udp 198.18.0.1:40003 (unconnected)")
        );
        assert!(f.remediation[0].contains("SO_ZEROCOPY"));
        assert!(f.remediation[1].contains("systemctl restart app.service"));
        // Unreadable sockets: no claim.
        let mut p = process("app", vec![socket(3, false, 0, None)]);
        p.sockets_unreadable = 1;
        let out = run(p);
        assert!(out.findings.is_empty());
        assert!(out.passed[0].detail.contains("1 socket(s) not read"));
    }

    #[test]
    fn full_option_memory_is_a_blocker_near_it_a_warning() {
        // Measured on 6.18: 157 unread notifications, 448 bytes left.
        let out = run(process("app", vec![socket(3, true, 130624, None)]));
        let f = &out.findings[0];
        assert_eq!(f.code, Code::ErrqueueNotDrained);
        assert_eq!(f.severity, Severity::Blocker);
        assert!(f.summary.contains("holds 130624 of optmem_max 131072 bytes (448 left, less than one 832-byte notification; nothing in flight"), "{}", f.summary);
        assert!(
            f.remediation[1]
                .contains("nsenter --target 4242 --net sysctl -w net.core.optmem_max=262144")
        );
        let out = run(process("app", vec![socket(3, true, 100_000, None)]));
        assert_eq!(out.findings[0].severity, Severity::Warning);
        // Far from the limit: nothing, but memlock applies (no CAP_IPC_LOCK, 8 MiB).
        let out = run(process("app", vec![socket(3, true, 832, None)]));
        assert_eq!(out.codes_where(|_| true), [Code::ProcessMemlockLimit]);
    }

    #[test]
    fn memlock_applies_only_without_cap_ipc_lock_and_with_a_limit() {
        let out = run(process("app", vec![socket(3, true, 0, None)]));
        let f = &out.findings[0];
        assert_eq!(f.code, Code::ProcessMemlockLimit);
        assert!(
            f.summary.contains("RLIMIT_MEMLOCK 8 MiB (hard 8 MiB)"),
            "{}",
            f.summary
        );
        assert!(f.remediation[0].contains("systemctl edit app.service"));
        assert!(f.remediation[1].contains("prlimit --pid 4242 --memlock="));
        let mut p = process("app", vec![socket(3, true, 0, None)]);
        p.capeff = Fact::Read(1 << ProcessEvidence::CAP_IPC_LOCK);
        let out = run(p);
        assert!(out.findings.is_empty());
        assert!(
            out.passed[0].detail.contains("CAP_IPC_LOCK"),
            "{}",
            out.passed[0].detail
        );
        let mut p = process("app", vec![socket(3, true, 0, None)]);
        p.memlock = Fact::Read(Memlock {
            soft: None,
            hard: None,
        });
        assert!(run(p).findings.is_empty());
        let mut p = process("app", vec![socket(3, true, 0, None)]);
        p.capeff = Fact::Failed(OsError::new("read", nix::errno::Errno::EACCES));
        assert!(run(p).findings.is_empty());
    }

    #[test]
    fn qemu_names_migration_channels() {
        let peer = Some("198.18.0.2:4444");
        let mut p = process(
            "qemu-system-x86",
            vec![
                socket(30, true, 0, peer),
                socket(31, true, 130624, peer),
                socket(32, true, 130000, peer),
            ],
        );
        p.capeff = Fact::Read(1 << ProcessEvidence::CAP_IPC_LOCK);
        p.unit = Some("machine-qemu\\x2d1\\x2dvm1.scope".into());
        let out = run(p);
        let f = &out.findings[0];
        assert_eq!(f.code, Code::ErrqueueNotDrained);
        assert!(
            f.notes[0].contains("fd 30 (SO_ZEROCOPY), fd 31 (SO_ZEROCOPY), fd 32 (SO_ZEROCOPY)")
        );
        assert!(f.notes[0].contains("2 multifd channel(s)"));
        assert!(f.notes[1].contains("dirty-sync-missed-zero-copy"));
        assert!(f.remediation[0].contains("zero-copy-send"));
        assert!(is_qemu(&process("qemu-kvm", vec![])));
    }

    #[test]
    fn io_uring_is_reported_with_its_fdinfo() {
        // Sockets without SO_ZEROCOPY: SEND_ZC does not need it, so no zerocopy-not-requested.
        let mut p = process("app", vec![socket(3, false, 0, None)]);
        p.io_urings = vec![IoUring {
            fd: 5,
            sq_entries: Some(256),
            cq_entries: Some(512),
            sq_thread: Some(-1),
            user_files: Some(0),
            user_bufs: Some(4),
            fdinfo_error: None,
        }];
        let out = run(p);
        assert_eq!(out.codes_where(|_| true), [Code::IoUringInUse]);
        let f = &out.findings[0];
        assert_eq!((f.code, f.severity), (Code::IoUringInUse, Severity::Info));
        assert!(f.summary.contains("fd 5 (256 SQ / 512 CQ entries, no SQPOLL, 4 registered buffer(s), 0 registered file(s))"), "{}", f.summary);
        assert!(f.summary.contains("Linux 6.18 has it"));
    }
}
