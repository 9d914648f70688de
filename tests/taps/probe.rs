//! The tap probe against real sockets: ETH_P_ALL sockets this test holds inside throw-away
//! namespaces (which have no process of their own), and real tcpdump, dhclient and lldpd.
//!
//! Every test is privileged (root, network namespaces) and is reported as ignored otherwise;
//! see `common::run_cases`. Everything started is ended by pid, every namespace removed on drop.

use crate::common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::{Netns, TapSocket, pid_holds_packet_socket};
use zcdoctor::evidence::{Fanout, IgnoreOutgoing, PacketSocket, ScanProblem, TapScan, Unreadable};
use zcdoctor::knowledge::Knowledge;
use zcdoctor::probe::taps::{self, ScanOptions};

const WAIT: Duration = Duration::from_secs(15);

/// A scan told the known daemon names, as `zcdoctor` runs it.
fn scan() -> TapScan {
    taps::scan(&ScanOptions {
        known_daemons: Knowledge::builtin()
            .daemons
            .iter()
            .flat_map(|d| d.names.iter().cloned())
            .collect(),
    })
}

/// Words of advice or conclusion that a probe's account of a failure must not contain.
const ADVICE: [&str; 6] = [
    "run zcdoctor",
    "as root",
    "so no tap",
    "cannot skip",
    "should",
    "needs CAP",
];

fn assert_factual(reason: &str) {
    for word in ADVICE {
        assert!(!reason.contains(word), "{word:?} in {reason:?}");
    }
}

fn netns_inode(ns: &Netns) -> u64 {
    std::fs::metadata(format!("/run/netns/{}", ns.name))
        .expect("stat netns")
        .ino()
}

/// The socket with `inode`, or a panic that shows what the scan saw.
fn socket(scan: &TapScan, inode: u64) -> &PacketSocket {
    scan.sockets
        .iter()
        .find(|s| s.inode == inode)
        .unwrap_or_else(|| panic!("socket {inode} not in the scan: {scan:#?}"))
}

/// ETH_P_ALL sockets of namespace `ns` owned by `pid`.
fn taps_of<'a>(scan: &'a TapScan, ns: &Netns, pid: u32) -> Vec<&'a PacketSocket> {
    let ino = netns_inode(ns);
    scan.sockets
        .iter()
        .filter(|s| {
            s.netns.inode == ino
                && s.protocol == PacketSocket::ETH_P_ALL
                && s.owners.iter().any(|o| o.pid == pid)
        })
        .collect()
}

fn ifindex_in(ns: &Netns, dev: &str) -> u32 {
    let out = ns.exec_ok(&["cat", &format!("/sys/class/net/{dev}/ifindex")]);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ifindex")
}

fn own_netns() -> u64 {
    std::fs::metadata("/proc/self/ns/net")
        .expect("stat own netns")
        .ino()
}

fn bound_tap_held_by_this_process_is_found_and_not_set() {
    let ns = Netns::new("tpb");
    ns.ifb("ifbz", "198.18.0.1/24");
    let tap = ns.tap_socket(Some("ifbz"), false);
    let scan = scan();

    assert_eq!(scan.diagnosed_netns, own_netns());
    assert!(scan.namespaces_scanned >= 2, "{scan:#?}");
    let s = socket(&scan, tap.inode());
    assert_eq!(s.netns.inode, netns_inode(&ns));
    assert_eq!(s.netns.name.as_deref(), Some(ns.name.as_str()));
    assert_eq!(s.protocol, PacketSocket::ETH_P_ALL);
    assert_eq!(s.sock_type, "raw");
    assert!(s.is_tx_tap());
    assert_eq!(s.ifindex, Some(ifindex_in(&ns, "ifbz")));
    assert_eq!(s.device.as_deref(), Some("ifbz"));
    assert_eq!(s.uid, Some(0));
    let me = s
        .owners
        .iter()
        .find(|o| o.pid == std::process::id())
        .unwrap_or_else(|| panic!("this process is not an owner: {s:#?}"));
    assert!(!me.comm.is_empty());
    assert!(
        me.exe.as_deref().is_some_and(|e| e.contains("/taps-")),
        "{me:#?}"
    );
    assert!(!me.cmdline.is_empty());
    assert_eq!(me.uid, Some(0));
    assert!(me.cgroup.is_some());
    assert_eq!(s.ignore_outgoing, IgnoreOutgoing::NotSet);
    assert_eq!(s.fanout, None);
    assert!(
        scan.processes_scanned >= 1 && scan.fds_scanned >= 1,
        "{scan:#?}"
    );
}

fn bound_tap_with_ignore_outgoing_reads_set() {
    let ns = Netns::new("tpi");
    ns.ifb("ifbz", "198.18.0.1/24");
    let tap = ns.tap_socket(Some("ifbz"), true);
    let scan = scan();
    let s = socket(&scan, tap.inode());
    assert_eq!(s.device.as_deref(), Some("ifbz"));
    assert!(s.owners.iter().any(|o| o.pid == std::process::id()));
    assert_eq!(s.ignore_outgoing, IgnoreOutgoing::Set);
}

fn unbound_tap_has_no_ifindex() {
    let ns = Netns::new("tpu");
    ns.ifb("ifbz", "198.18.0.1/24");
    let tap = ns.tap_socket(None, false);
    let scan = scan();
    let s = socket(&scan, tap.inode());
    assert_eq!(s.netns.inode, netns_inode(&ns));
    assert_eq!(s.ifindex, None);
    assert_eq!(s.device, None);
    assert!(s.is_tx_tap());
    assert!(s.owners.iter().any(|o| o.pid == std::process::id()));
    assert_eq!(s.ignore_outgoing, IgnoreOutgoing::NotSet);
}

/// A tap in a fanout group, opened inside `ns` by a helper thread.
fn fanout_tap(ns: &Netns, group: u16, type_flags: u16, own_ignore_outgoing: bool) -> TapSocket {
    let path = format!("/run/netns/{}", ns.name);
    let fd = std::thread::spawn(move || {
        let nsfile = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&nsfile, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); checked below before being owned. Close-on-exec: a tcpdump
        // another test spawns meanwhile must not inherit it (the owner walk would then find
        // that tcpdump holding it, and stop there).
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: raw is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let ifindex = nix::net::if_::if_nametoindex("ifbz").expect("ifindex");
        // SAFETY: sockaddr_ll is plain data.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: bind with a properly sized sockaddr_ll.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let setopt = |opt: i32, val: i32| {
            // SAFETY: setsockopt with an int value.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    opt,
                    (&val as *const i32).cast(),
                    std::mem::size_of::<i32>() as u32,
                )
            };
            assert_eq!(
                rc,
                0,
                "setsockopt {opt}: {}",
                std::io::Error::last_os_error()
            );
        };
        if own_ignore_outgoing {
            setopt(libc::PACKET_IGNORE_OUTGOING, 1);
        }
        setopt(
            libc::PACKET_FANOUT,
            (u32::from(group) | (u32::from(type_flags) << 16)) as i32,
        );
        fd
    })
    .join()
    .expect("fanout thread");
    TapSocket { fd }
}

/// A fanout member's two settings are recorded as read: its own PACKET_IGNORE_OUTGOING in
/// `ignore_outgoing`, the group's flags in `fanout`. (That the group's hook, and so its
/// PACKET_FANOUT_FLAG_IGNORE_OUTGOING, decides is the checks' rule.)
fn fanout_records_own_option_and_group_flags() {
    const HASH: u16 = libc::PACKET_FANOUT_HASH as u16;
    const FLAG_IGNORE_OUTGOING: u16 = libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING as u16;
    let ns = Netns::new("tpf");
    ns.ifb("ifbz", "198.18.0.1/24");
    // Group 41 ignores outgoing as a group, its member does not; group 42 does not, although
    // its member sets the socket option; group 43 and its member both do.
    let with_flag = fanout_tap(&ns, 41, HASH | FLAG_IGNORE_OUTGOING, false);
    let own_only = fanout_tap(&ns, 42, HASH, true);
    let both = fanout_tap(&ns, 43, HASH | FLAG_IGNORE_OUTGOING, true);
    let scan = scan();

    let a = socket(&scan, with_flag.inode());
    assert_eq!(
        a.fanout,
        Some(Fanout {
            group: 41,
            flags: FLAG_IGNORE_OUTGOING
        })
    );
    assert_eq!(a.ignore_outgoing, IgnoreOutgoing::NotSet);

    let b = socket(&scan, own_only.inode());
    assert_eq!(
        b.fanout,
        Some(Fanout {
            group: 42,
            flags: 0
        })
    );
    assert_eq!(b.ignore_outgoing, IgnoreOutgoing::Set);

    let c = socket(&scan, both.inode());
    assert_eq!(
        c.fanout,
        Some(Fanout {
            group: 43,
            flags: FLAG_IGNORE_OUTGOING
        })
    );
    assert_eq!(c.ignore_outgoing, IgnoreOutgoing::Set);
    for s in [a, b, c] {
        assert!(
            s.owners.iter().any(|o| o.pid == std::process::id()),
            "{s:#?}"
        );
        assert_eq!(s.device.as_deref(), Some("ifbz"));
    }
}

/// A tap no process holds (its only descriptor is in flight in a unix socket's queue): found in
/// the table, no owner, and `Unknown` with the typed cause `NoOwner` and a factual account.
fn tap_held_by_no_process_is_unknown_with_no_owner() {
    use nix::sys::socket::{
        AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, sendmsg, socketpair,
    };
    let ns = Netns::new("tpn");
    ns.ifb("ifbz", "198.18.0.1/24");
    let tap = ns.tap_socket(Some("ifbz"), true);
    let inode = tap.inode();
    let (tx, rx) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let fds = [tap.fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"x")];
    sendmsg::<()>(
        tx.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .expect("send the tap");
    drop(tap);

    let scan = scan();
    let s = socket(&scan, inode);
    assert!(s.owners.is_empty(), "{s:#?}");
    assert_eq!(s.device.as_deref(), Some("ifbz"));
    assert_eq!(s.fanout, None);
    match &s.ignore_outgoing {
        IgnoreOutgoing::Unknown { reason, cause } => {
            assert_eq!(cause, &Some(Unreadable::NoOwner), "{s:#?}");
            assert!(reason.starts_with("no owner found"), "{reason}");
            assert!(
                reason.contains(&format!("{} process(es)", scan.processes_scanned)),
                "{reason}"
            );
            assert_factual(reason);
        }
        other => panic!("read although no process holds it: {other:?}"),
    }
    // Nobody stopped early: the whole host was walked for it.
    assert!(!scan.owner_walk_stopped_early);
    // Closing the receiving end releases the socket in flight.
    drop((tx, rx));
}

fn tcpdump_is_found_and_not_set() {
    let ns = Netns::new("tpt");
    ns.ifb("ifbz", "198.18.0.1/24");
    // -Q in and a filter do not help (the copy happens before both), so use them.
    let mut tcpdump = ns.spawn(&["tcpdump", "-i", "ifbz", "-n", "-Q", "in", "udp port 67"]);
    let pid = tcpdump.pid();
    tcpdump.wait_until("tcpdump opens its socket", WAIT, || {
        pid_holds_packet_socket(pid)
    });
    let scan = scan();
    let taps = taps_of(&scan, &ns, pid);
    assert!(!taps.is_empty(), "no tap owned by tcpdump {pid}: {scan:#?}");
    for s in taps {
        let o = s.owners.iter().find(|o| o.pid == pid).expect("owner");
        assert_eq!(o.comm, "tcpdump");
        assert!(
            o.exe.as_deref().is_some_and(|e| e.ends_with("tcpdump")),
            "{o:#?}"
        );
        assert!(o.cmdline.iter().any(|a| a == "ifbz"), "{o:#?}");
        assert_eq!(s.device.as_deref(), Some("ifbz"));
        assert_eq!(s.ignore_outgoing, IgnoreOutgoing::NotSet, "{s:#?}");
    }
}

fn dhclient_is_found_and_not_set() {
    let ns = Netns::new("tpd");
    ns.ifb("ifbz", "198.18.0.1/24");
    let dhclient = ns.start_dhclient("ifbz");
    let pid = dhclient.culprit.pid();
    let scan = scan();
    let taps = taps_of(&scan, &ns, pid);
    assert!(
        !taps.is_empty(),
        "no tap owned by dhclient {pid}: {scan:#?}"
    );
    for s in taps {
        let o = s.owners.iter().find(|o| o.pid == pid).expect("owner");
        assert_eq!(o.comm, "dhclient");
        assert_eq!(s.device.as_deref(), Some("ifbz"));
        assert_eq!(s.ignore_outgoing, IgnoreOutgoing::NotSet, "{s:#?}");
    }
}

/// lldpd's privileged monitor opens the raw socket and hands it to its unprivileged child
/// (user _lldpd), which holds it. Debian 12's lldpd 1.0.16 sets PACKET_IGNORE_OUTGOING on it
/// (the socket reads 1), so the probe must report Set, read from the socket itself.
fn lldpd_socket_reads_set() {
    let ns = Netns::new("tpl");
    ns.ifb("ifbz", "198.18.0.1/24");
    let lldpd = ns.start_lldpd("ifbz");
    let monitor = lldpd.culprit.pid();
    let children = lldpd.children.0.clone();
    let scan = scan();
    let ino = netns_inode(&ns);
    let taps: Vec<&PacketSocket> = scan
        .sockets
        .iter()
        .filter(|s| s.netns.inode == ino && s.protocol == PacketSocket::ETH_P_ALL)
        .collect();
    assert!(!taps.is_empty(), "no lldpd tap: {scan:#?}");
    for s in taps {
        let o = s
            .owners
            .iter()
            .find(|o| children.contains(&o.pid) || o.pid == monitor)
            .unwrap_or_else(|| {
                panic!("lldpd ({monitor}, children {children:?}) owns no tap: {s:#?}")
            });
        assert_eq!(o.comm, "lldpd");
        assert_eq!(s.device.as_deref(), Some("ifbz"));
        assert_eq!(s.ignore_outgoing, IgnoreOutgoing::Set, "{s:#?}");
    }
    drop(lldpd);
}

fn scan_counts_and_never_fails() {
    let scan = scan();
    assert!(scan.processes_listed > 0);
    assert!(scan.namespaces_scanned >= 1);
    assert_eq!(scan.diagnosed_netns, own_netns());
    // Every ETH_P_ALL socket either has a reason or a reading.
    for s in scan
        .sockets
        .iter()
        .filter(|s| s.protocol == PacketSocket::ETH_P_ALL)
    {
        if let IgnoreOutgoing::Unknown { reason, cause } = &s.ignore_outgoing {
            assert!(!reason.is_empty());
            // Every ETH_P_ALL socket that was not read says why, as data.
            assert!(cause.is_some(), "{s:#?}");
            assert_factual(reason);
        }
    }
    // Sockets of other protocols are not read, so they have no cause.
    for s in scan
        .sockets
        .iter()
        .filter(|s| s.protocol != PacketSocket::ETH_P_ALL)
    {
        assert!(
            matches!(&s.ignore_outgoing, IgnoreOutgoing::Unknown { cause: None, reason } if reason.starts_with("not read")),
            "{s:#?}"
        );
    }
    // Problems are data: a kind, never a sentence (a sentence is only how a recording made
    // before evidence version 2 loads).
    for p in &scan.problems {
        assert!(!matches!(p, ScanProblem::Text(_)), "{p:?}");
        assert_factual(&p.to_string());
    }
    // Recordings made before the new counters existed still parse.
    let mut v = serde_json::to_value(&scan).expect("serialize");
    let o = v.as_object_mut().expect("object");
    o.remove("processes_listed");
    o.remove("fds_scanned");
    o.remove("owner_walk_stopped_early");
    let back: TapScan = serde_json::from_value(v).expect("old recording parses");
    assert_eq!(back.processes_listed, 0);
}

/// Prints one scan as JSON and its wall time (used by bench/taps-scale.sh).
fn dump_scan() {
    let start = std::time::Instant::now();
    let scan = scan();
    let elapsed = start.elapsed();
    println!(
        "{}",
        serde_json::to_string_pretty(&scan).expect("serialize")
    );
    eprintln!("scan took {elapsed:?}");
}

crate::cases!(
    privileged: [
        bound_tap_held_by_this_process_is_found_and_not_set,
        bound_tap_with_ignore_outgoing_reads_set,
        unbound_tap_has_no_ifindex,
        fanout_records_own_option_and_group_flags,
        tap_held_by_no_process_is_unknown_with_no_owner,
        tcpdump_is_found_and_not_set needs ["tcpdump"],
        dhclient_is_found_and_not_set needs ["dhclient"],
        lldpd_socket_reads_set needs ["lldpd"],
        scan_counts_and_never_fails,
    ],
    on_request: [dump_scan]
);
