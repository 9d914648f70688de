//! The live probe against real kernels paths, in network namespaces built for each test:
//! an `ifb` black-hole NIC (zerocopy completes unless something forces a copy), offloads turned
//! off, taps, local addresses, a veth pair with a sink behind it, and a tiny `optmem_max`.
//! When nothing is sent, the tests assert the cause as data (`not_run_cause`), exactly.
//!
//! The probe runs in a thread of this process that entered the test namespace (`setns` is per
//! thread), exactly as the CLI would run inside it. Traffic only goes to 198.18.0.0/15 addresses
//! inside these namespaces.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use nix::errno::Errno;
use zcdoctor::evidence::{LiveProbe, LiveRun, NotRun, OsError, PhaseEnd, RouteType, RunPattern};
use zcdoctor::probe::live::{self, LiveOptions, PhaseKind, Protocol, Tick};

const PHASE: Duration = Duration::from_millis(200);

/// A namespace with ifb `ifbz` 198.18.0.1/24.
fn ifb_ns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ifb("ifbz", "198.18.0.1/24");
    ns
}

/// Phases of [`PHASE`] and no byte cap, so every phase ends by its duration however fast the
/// machine (a fast one reaches the default 4 GiB cap within 200 ms of GSO).
fn options(target: &str, iface: &str) -> LiveOptions {
    let target: SocketAddr = target.parse().expect("target literal");
    let mut opts = LiveOptions::new(target, iface);
    opts.duration = PHASE;
    opts.byte_cap = u64::MAX;
    opts
}

fn probe_in(ns: &Netns, opts: LiveOptions) -> LiveProbe {
    in_netns(ns, move || {
        live::run(&opts, &AtomicBool::new(false), &mut |_| {})
    })
}

/// Runs the probe in `ns` and sets its stop flag after `after`; the probe and how long it took.
fn probe_stopped_after(ns: &Netns, opts: LiveOptions, after: Duration) -> (LiveProbe, Duration) {
    in_netns(ns, move || {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                // The delay is what is tested (the probe stops when told), not synchronisation.
                std::thread::sleep(after);
                stop.store(true, Ordering::SeqCst);
            });
            let start = Instant::now();
            let p = live::run(&opts, &stop, &mut |_| {});
            (p, start.elapsed())
        })
    })
}

/// Nothing was sent, for exactly this reason, said in exactly this sentence.
fn assert_not_run(p: &LiveProbe, sentence: &str, cause: NotRun) {
    assert_eq!(p.not_run.as_deref(), Some(sentence), "{p:#?}");
    assert_eq!(p.not_run_cause.as_ref(), Some(&cause), "{p:#?}");
    assert!(p.runs.is_empty(), "{p:#?}");
}

/// The probe ran: no sentence, no cause.
fn assert_ran(p: &LiveProbe) {
    assert_eq!(p.not_run, None, "{p:#?}");
    assert_eq!(p.not_run_cause, None, "{p:#?}");
}

fn run(probe: &LiveProbe, pattern: RunPattern) -> &LiveRun {
    probe
        .runs
        .iter()
        .find(|r| r.pattern == pattern)
        .unwrap_or_else(|| panic!("no {pattern} run in {probe:#?}"))
}

/// Every zerocopy send completed, none copied.
fn assert_zerocopy(r: &LiveRun) {
    assert!(r.sends > 0, "no sends: {r:#?}");
    assert_eq!(r.completions, r.sends, "{r:#?}");
    assert_eq!(r.missing, 0, "{r:#?}");
    assert_eq!(r.copied, 0, "{r:#?}");
}

/// Every zerocopy send completed, all copied.
fn assert_copied(r: &LiveRun) {
    assert!(r.completions > 0, "no completions: {r:#?}");
    assert_eq!(r.completions, r.sends, "{r:#?}");
    assert_eq!(r.copied, r.completions, "{r:#?}");
}

fn clean_ifb_completes_without_copies() {
    let ns = ifb_ns("lpclean");
    let p = probe_in(&ns, options("198.18.0.2:9", "ifbz"));
    assert_ran(&p);
    assert!(!p.interrupted);
    let route = p.route.as_ref().expect("route");
    assert_eq!(route.device.as_deref(), Some("ifbz"));
    assert_eq!(route.route_type, RouteType::Unicast);
    let dgram = run(&p, RunPattern::Datagram);
    assert_eq!(dgram.send_size, 1472, "payload that fits MTU 1500");
    assert_zerocopy(dgram);
    let gso = run(&p, RunPattern::Gso);
    assert_eq!(gso.gso_size, Some(1472));
    assert!(
        gso.send_size > 60_000 && gso.send_size <= 65_507,
        "{gso:#?}"
    );
    assert_zerocopy(gso);
    for r in &p.runs {
        let copy = r.copy_phase.as_ref().expect("copy phase");
        let zc = r.zerocopy_phase.as_ref().expect("zerocopy phase");
        assert!(
            copy.sends > 0 && copy.bytes == copy.sends * r.send_size as u64,
            "{r:#?}"
        );
        assert_eq!(zc.sends, r.sends);
        assert!(copy.seconds >= 0.19 && copy.seconds < 1.0, "{copy:#?}");
        assert!(
            copy.cpu_system_seconds + copy.cpu_user_seconds > 0.0,
            "{copy:#?}"
        );
        assert_eq!(copy.ended_by, Some(PhaseEnd::Duration));
        assert!(r.errors.is_empty(), "{r:#?}");
        // Completions are merged: far fewer records than sends.
        assert!(r.notifications > 0 && r.notifications <= r.completions);
    }
}

fn sg_off_copies() {
    let ns = ifb_ns("lpsg");
    ns.ethtool_k("ifbz", "sg", "off");
    let p = probe_in(&ns, options("198.18.0.2:9", "ifbz"));
    assert_copied(run(&p, RunPattern::Datagram));
}

fn tx_checksum_off_copies() {
    let ns = ifb_ns("lptx");
    ns.ethtool_k("ifbz", "tx", "off");
    let p = probe_in(&ns, options("198.18.0.2:9", "ifbz"));
    assert_copied(run(&p, RunPattern::Datagram));
    // With checksum offload off, UDP GSO sends are still accepted (segmented and
    // checksummed in software), and every one is flagged copied.
    assert_copied(run(&p, RunPattern::Gso));
}

fn oversize_datagrams_are_copied() {
    let ns = ifb_ns("lpover");
    let mut opts = options("198.18.0.2:9", "ifbz");
    opts.oversize = true;
    let p = probe_in(&ns, opts);
    let over = run(&p, RunPattern::Oversize);
    assert_eq!(over.send_size, 1473);
    assert_eq!(over.gso_size, None);
    assert_copied(over);
    assert_zerocopy(run(&p, RunPattern::Datagram));
}

fn bound_tap_copies_unless_it_ignores_outgoing() {
    let ns = ifb_ns("lptap");
    {
        let _tap = ns.tap_socket(Some("ifbz"), false);
        let p = probe_in(&ns, options("198.18.0.2:9", "ifbz"));
        assert_copied(run(&p, RunPattern::Datagram));
        assert_copied(run(&p, RunPattern::Gso));
    }
    let _quiet = ns.tap_socket(Some("ifbz"), true);
    let p = probe_in(&ns, options("198.18.0.2:9", "ifbz"));
    assert_zerocopy(run(&p, RunPattern::Datagram));
    assert_zerocopy(run(&p, RunPattern::Gso));
}

fn own_address_is_not_probed() {
    let ns = ifb_ns("lplocal");
    let p = probe_in(&ns, options("198.18.0.1:9", "ifbz"));
    assert_not_run(
        &p,
        "198.18.0.1 is an address of this host (route type local)",
        NotRun::LocalRoute,
    );
    assert_eq!(
        p.route.as_ref().map(|r| r.route_type),
        Some(RouteType::Local)
    );
    let p = probe_in(&ns, options("127.0.0.1:9", "ifbz"));
    assert_not_run(
        &p,
        "127.0.0.1 is an address of this host (route type local)",
        NotRun::LocalRoute,
    );
}

fn route_through_another_device_is_not_probed() {
    let ns = ifb_ns("lpother");
    ns.ifb("ifby", "198.18.2.1/24");
    let p = probe_in(&ns, options("198.18.2.2:9", "ifbz"));
    assert_not_run(
        &p,
        "the route to 198.18.2.2 leaves through ifby, not ifbz",
        NotRun::OtherDevice {
            device: "ifby".into(),
        },
    );
}

/// The subnet's broadcast address: a route of type broadcast through the right device.
fn broadcast_route_is_not_probed() {
    let ns = ifb_ns("lvbcast");
    let p = probe_in(&ns, options("198.18.0.255:9", "ifbz"));
    assert_not_run(
        &p,
        "the route to 198.18.0.255 is of type broadcast, not unicast",
        NotRun::NotUnicast {
            route_type: RouteType::Broadcast,
        },
    );
}

/// No route at all: the lookup fails, and the cause keeps the kernel's errno (ENETUNREACH).
fn missing_route_is_a_lookup_failure() {
    let ns = ifb_ns("lvnoroute");
    let p = probe_in(&ns, options("198.18.9.9:9", "ifbz"));
    assert_eq!(p.route, None, "{p:#?}");
    let why = p.not_run.as_deref().expect("not run");
    assert!(
        why.starts_with("the route to 198.18.9.9 could not be looked up: ")
            && why.contains("Network is unreachable"),
        "{why}"
    );
    match &p.not_run_cause {
        Some(NotRun::RouteLookup { error }) => {
            assert_eq!(error.errno(), Errno::ENETUNREACH, "{error}");
            assert!(error.op.starts_with("route get"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(p.runs.is_empty());
}

fn stop_flag_ends_the_probe_early() {
    let ns = ifb_ns("lpstop");
    let mut opts = options("198.18.0.2:9", "ifbz");
    opts.duration = Duration::from_secs(30);
    let (p, took) = probe_stopped_after(&ns, opts, Duration::from_millis(300));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(p.interrupted);
    let dgram = run(&p, RunPattern::Datagram);
    let copy = dgram.copy_phase.as_ref().expect("copy phase");
    assert_eq!(copy.ended_by, Some(PhaseEnd::Interrupted));
    assert!(copy.sends > 0);
    assert!(dgram.zerocopy_phase.is_none());
    assert_eq!(p.runs.len(), 1, "later patterns are skipped");
}

/// The progress callback: called while phases run, never more often than every 200 ms, with
/// the elapsed time of each phase growing.
fn progress_ticks_at_most_every_200ms() {
    let ns = ifb_ns("lvtick");
    let mut opts = options("198.18.0.2:9", "ifbz");
    opts.duration = Duration::from_millis(700);
    let (p, ticks) = in_netns(&ns, move || {
        let mut ticks: Vec<(Instant, Tick)> = Vec::new();
        let start = Instant::now();
        let p = live::run(&opts, &AtomicBool::new(false), &mut |t| {
            ticks.push((Instant::now(), t.clone()))
        });
        assert!(ticks.iter().all(|(at, _)| *at >= start));
        (p, ticks)
    });
    assert_ran(&p);
    // Two patterns, two phases of 700 ms each: 2.8 s of sending, so at least 10 ticks and at
    // most 14.
    assert!(
        (10..=14).contains(&ticks.len()),
        "{} ticks: {ticks:#?}",
        ticks.len()
    );
    for pair in ticks.windows(2) {
        let ((t0, a), (t1, b)) = (&pair[0], &pair[1]);
        // The probe measures 200 ms on its own clock reading, taken a moment before ours.
        assert!(*t1 - *t0 >= Duration::from_millis(190), "{ticks:#?}");
        if (a.pattern, a.phase) == (b.pattern, b.phase) {
            assert!(b.elapsed > a.elapsed, "{ticks:#?}");
            assert!(b.sends > a.sends && b.bytes > a.bytes, "{ticks:#?}");
        }
    }
    for pattern in [RunPattern::Datagram, RunPattern::Gso] {
        for phase in [PhaseKind::Copy, PhaseKind::Zerocopy] {
            assert!(
                ticks
                    .iter()
                    .any(|(_, t)| (t.pattern, t.phase) == (pattern, phase)),
                "no tick of {pattern} {phase}: {ticks:#?}"
            );
        }
    }
    for (_, t) in &ticks {
        assert!(t.elapsed < Duration::from_millis(700), "{t:?}");
        assert_eq!(t.bytes % t.sends.max(1), 0, "whole sends only: {t:?}");
    }
}

fn byte_cap_bounds_each_phase() {
    let ns = ifb_ns("lpcap");
    let mut opts = options("198.18.0.2:9", "ifbz");
    opts.byte_cap = 100 * 1472;
    opts.duration = Duration::from_secs(10);
    let p = probe_in(&ns, opts);
    let dgram = run(&p, RunPattern::Datagram);
    for phase in [&dgram.copy_phase, &dgram.zerocopy_phase] {
        let phase = phase.as_ref().expect("phase");
        assert_eq!(phase.sends, 100);
        assert_eq!(phase.ended_by, Some(PhaseEnd::ByteCap));
    }
    assert_zerocopy(dgram);
    // A 64 KB GSO send does not fit a cap of 147,200 bytes twice.
    let gso = run(&p, RunPattern::Gso);
    assert_eq!(gso.sends, 2);
}

/// ENOBUFS: option memory (`optmem_max`, per network namespace since Linux 6.8) too small for
/// the notifications of the sends in flight.
fn tiny_optmem_gives_enobufs() {
    let ns = ifb_ns("lpoptmem");
    // Room for one notification skb but not two: the second send fails until the first
    // notification has been read.
    ns.exec_ok(&["sysctl", "-q", "-w", "net.core.optmem_max=1000"]);
    let p = probe_in(&ns, options("198.18.0.2:9", "ifbz"));
    let dgram = run(&p, RunPattern::Datagram);
    assert!(dgram.enobufs > 0, "{dgram:#?}");
    assert!(
        dgram.sends > 0,
        "reading completions lets sends go on: {dgram:#?}"
    );
    assert_eq!(dgram.completions, dgram.sends, "{dgram:#?}");
    assert_eq!(dgram.copied, 0, "{dgram:#?}");
    let zc = dgram.zerocopy_phase.as_ref().expect("zerocopy phase");
    assert_eq!(zc.errors.get("ENOBUFS"), Some(&dgram.enobufs));
    assert!(!dgram.errors.contains_key("ENOBUFS"));
    // The copy phase needs no option memory.
    let copy = dgram.copy_phase.as_ref().expect("copy phase");
    assert!(copy.errors.is_empty(), "{copy:#?}");

    // Too small for even one notification: every zerocopy send fails, and the phase still
    // ends on time.
    ns.exec_ok(&["sysctl", "-q", "-w", "net.core.optmem_max=64"]);
    let start = Instant::now();
    let p = probe_in(&ns, options("198.18.0.2:9", "ifbz"));
    assert!(start.elapsed() < Duration::from_secs(5));
    let dgram = run(&p, RunPattern::Datagram);
    assert_eq!(dgram.sends, 0, "{dgram:#?}");
    assert!(dgram.enobufs > 0, "{dgram:#?}");
}

/// TCP over a veth pair to a sink in the peer namespace. The probe's output device is the veth,
/// but the traffic ends in a local socket of namespace B: local delivery, so every completion
/// is flagged copied (skb_orphan_frags_rx on delivery), even though nothing on the sending
/// side prevents zerocopy.
fn tcp_over_veth_to_a_local_socket_is_copied() {
    let a = Netns::new("lpva");
    let b = Netns::new("lpvb");
    a.veth_to(&b);

    let listen: SocketAddr = "198.18.1.2:5001".parse().expect("literal");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let b_path = format!("/run/netns/{}", b.name);
    let sink = std::thread::spawn(move || {
        let file = std::fs::File::open(&b_path).expect("open netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let sink = zcdoctor::sink::Sink::bind(listen).expect("sink bind");
        let _ = ready_tx.send(());
        let opts = zcdoctor::sink::SinkOptions {
            max_conns: 4,
            idle_timeout: Duration::from_secs(5),
            duration: Some(Duration::from_secs(4)),
            ..zcdoctor::sink::SinkOptions::default()
        };
        sink.serve(&opts, &AtomicBool::new(false)).expect("serve")
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("sink ready");

    let mut opts = options("198.18.1.2:5001", "va");
    opts.protocol = Protocol::Tcp;
    let p = probe_in(&a, opts);
    assert_ran(&p);
    assert_eq!(p.protocol, Protocol::Tcp);
    assert_eq!(
        p.route.as_ref().and_then(|r| r.device.as_deref()),
        Some("va")
    );
    let stream = run(&p, RunPattern::Stream);
    assert_copied(stream);
    assert_eq!(stream.missing, 0);

    let summary = sink.join().expect("sink thread");
    assert_eq!(summary.tcp.len(), 1, "{summary:#?}");
    let copy = stream.copy_phase.as_ref().expect("copy phase");
    let zc = stream.zerocopy_phase.as_ref().expect("zerocopy phase");
    assert_eq!(summary.tcp[0].bytes, copy.bytes + zc.bytes);
    assert_eq!(summary.tcp[0].end, "peer closed");
}

/// UDP from A through the veth to an address of B: local delivery in B, all copied, although
/// A's output device (the veth) is zerocopy-capable.
fn udp_over_veth_to_a_local_address_is_copied() {
    let a = Netns::new("lpua");
    let b = Netns::new("lpub");
    a.veth_to(&b);
    let p = probe_in(&a, options("198.18.1.2:9", "va"));
    assert_ran(&p);
    assert_copied(run(&p, RunPattern::Datagram));
    assert_copied(run(&p, RunPattern::Gso));
}

/// UDP from A through the veth, forwarded by B (ip_forward=1) out of an ifb: no copy since
/// Linux 6.17 (d2527ad3a9e1 "net: preserve MSG_ZEROCOPY with forwarding"); copied before.
fn udp_forwarded_through_veth_keeps_zerocopy() {
    let a = Netns::new("lpfa");
    let b = Netns::new("lpfb");
    a.veth_to(&b);
    b.ifb("ifbz", "198.18.3.1/24");
    b.exec_ok(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    a.ip("route add 198.18.3.0/24 via 198.18.1.2 dev va");
    let p = probe_in(&a, options("198.18.3.2:9", "va"));
    assert_ran(&p);
    assert_eq!(
        p.route.as_ref().and_then(|r| r.gateway.as_deref()),
        Some("198.18.1.2")
    );
    let release = nix::sys::utsname::uname().expect("uname");
    let release = release.release().to_string_lossy().to_string();
    let forwarding_keeps_zc = zcdoctor::evidence::KernelVersion::parse(&release)
        .is_some_and(|v| v.at_least(zcdoctor::evidence::KernelVersion::new(6, 17)));
    for pattern in [RunPattern::Datagram, RunPattern::Gso] {
        if forwarding_keeps_zc {
            assert_zerocopy(run(&p, pattern));
        } else {
            assert_copied(run(&p, pattern));
        }
    }
}

fn tcp_without_a_listener_is_not_run() {
    let a = Netns::new("lpnol");
    let b = Netns::new("lpnolb");
    a.veth_to(&b);
    let mut opts = options("198.18.1.2:5001", "va");
    opts.protocol = Protocol::Tcp;
    let p = probe_in(&a, opts);
    assert_not_run(
        &p,
        "the TCP connection to 198.18.1.2:5001 failed: connect: Connection refused \
         (ECONNREFUSED)",
        NotRun::Connect {
            error: Some(OsError::new("connect", Errno::ECONNREFUSED)),
            timed_out: false,
            interrupted: false,
        },
    );
    assert!(!p.interrupted);
}

/// TCP to an address behind the ifb black hole: the SYNs vanish, so the connection is never
/// answered.
fn tcp_connect_to_a_black_hole(tag: &str) -> (Netns, LiveOptions) {
    let ns = ifb_ns(tag);
    let mut opts = options("198.18.0.2:5001", "ifbz");
    opts.protocol = Protocol::Tcp;
    (ns, opts)
}

fn tcp_connect_is_stopped_by_the_stop_flag() {
    let (ns, opts) = tcp_connect_to_a_black_hole("lvconnstop");
    let (p, took) = probe_stopped_after(&ns, opts, Duration::from_millis(100));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_not_run(
        &p,
        "the TCP connection to 198.18.0.2:5001 was stopped before it was answered",
        NotRun::Connect {
            error: None,
            timed_out: false,
            interrupted: true,
        },
    );
    assert!(p.interrupted);
}

fn tcp_connect_times_out() {
    let (ns, opts) = tcp_connect_to_a_black_hole("lvconnto");
    let (p, took) = probe_stopped_after(&ns, opts, Duration::from_secs(30));
    assert!(
        took >= live::CONNECT_TIMEOUT && took < live::CONNECT_TIMEOUT + Duration::from_secs(1),
        "took {took:?}"
    );
    assert_not_run(
        &p,
        "the TCP connection to 198.18.0.2:5001 was not answered within 3s",
        NotRun::Connect {
            error: None,
            timed_out: true,
            interrupted: false,
        },
    );
    assert!(!p.interrupted);
}

/// Not a test: `bench/live/run.sh` runs this inside its namespace with ZCD_BENCH_* set and
/// reads the JSON it prints.
fn bench_live_probe() {
    let target = std::env::var("ZCD_BENCH_TARGET").unwrap_or_else(|_| "198.18.0.2:9".into());
    let iface = std::env::var("ZCD_BENCH_IFACE").unwrap_or_else(|_| "ifbz".into());
    let secs: f64 = std::env::var("ZCD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let mut opts = options(&target, &iface);
    opts.duration = Duration::from_secs_f64(secs);
    opts.byte_cap = u64::MAX;
    if std::env::var("ZCD_BENCH_PROTOCOL").as_deref() == Ok("tcp") {
        opts.protocol = Protocol::Tcp;
    }
    let p = live::run(&opts, &AtomicBool::new(false), &mut |_| {});
    println!(
        "ZCD_BENCH_JSON {}",
        serde_json::to_string(&p).expect("serialize")
    );
}

crate::cases!(
    privileged: [
        clean_ifb_completes_without_copies,
        sg_off_copies needs ["ethtool"],
        tx_checksum_off_copies needs ["ethtool"],
        oversize_datagrams_are_copied,
        bound_tap_copies_unless_it_ignores_outgoing,
        own_address_is_not_probed,
        route_through_another_device_is_not_probed,
        broadcast_route_is_not_probed,
        missing_route_is_a_lookup_failure,
        stop_flag_ends_the_probe_early,
        progress_ticks_at_most_every_200ms,
        byte_cap_bounds_each_phase,
        tiny_optmem_gives_enobufs,
        tcp_over_veth_to_a_local_socket_is_copied,
        udp_over_veth_to_a_local_address_is_copied,
        udp_forwarded_through_veth_keeps_zerocopy,
        tcp_without_a_listener_is_not_run,
        tcp_connect_is_stopped_by_the_stop_flag,
        tcp_connect_times_out,
    ],
    plain: [],
    on_request: [bench_live_probe]
);
