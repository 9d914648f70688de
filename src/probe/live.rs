//! The live probe: a bounded burst of MSG_ZEROCOPY traffic with completions read from the
//! error queue, and the same traffic copied, to measure what zerocopy gains.
//!
//! How it works:
//! - The route to the target is looked up first. A local address (loopback, an address of this
//!   host) or a route through another device than the one diagnosed means nothing is sent:
//!   [`LiveProbe::not_run`] says why.
//! - UDP: one socket per traffic pattern (so notification ids start at 0 for each), with
//!   `SO_ZEROCOPY`, bound to the diagnosed device (`SO_BINDTODEVICE`) and connected. Patterns:
//!   `datagram` (the largest payload that fits the path MTU), `gso` (`UDP_SEGMENT`
//!   super-datagrams of about 64 KB cut into that payload), and on request `oversize` (one byte
//!   over the path MTU, no GSO: fragmented).
//! - TCP: one connection to a `zcdoctor sink`, pattern `stream` (64 KiB writes).
//! - Each pattern runs a copy phase (plain `sendmsg`) and then a zerocopy phase
//!   (`MSG_ZEROCOPY`), each for [`LiveOptions::duration`] and at most
//!   [`LiveOptions::byte_cap`] bytes. During the zerocopy phase completions are read from
//!   `MSG_ERRQUEUE` as it goes, so notifications do not pile up in option memory; ENOBUFS is
//!   counted and answered by reading completions (waiting briefly for them when none are
//!   queued). After the phase, a grace period collects the completions still outstanding.
//!
//! The send loop has to cost what a minimal C `sendmsg` loop costs (see `bench/live/`): the
//! `msghdr` is built once, the buffer is page-aligned and filled once, nothing allocates per
//! send, errno counts go to a fixed array, and the clock, the stop flag and the progress line
//! are only looked at every [`CHECK_EVERY`] sends. The error queue is read every
//! [`DRAIN_EVERY`] zerocopy sends, and only while some completion is outstanding: the kernel
//! merges consecutive completions into one record, so one `recvmsg` usually covers them all.

use super::sockopt::{getsockopt_int, setsockopt_int};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;

pub use crate::evidence::Protocol;
use crate::evidence::{LiveProbe, LiveRun, Phase, PhaseEnd, RouteInfo, RouteType, RunPattern};

use crate::probe::netlink;

/// UDP discard port, the default target port.
pub const DEFAULT_PORT: u16 = 9;
/// Default length of each phase.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(1);
/// Default cap on the bytes of each phase (4 GiB).
pub const DEFAULT_BYTE_CAP: u64 = 4 << 30;

/// The clock, the stop flag and the progress line are looked at every this many sends.
const CHECK_EVERY: u32 = 16;
/// The error queue is read every this many zerocopy sends.
const DRAIN_EVERY: u32 = 32;
/// `SO_SNDTIMEO`: a blocked send returns EAGAIN after this, so a stop request is seen.
const SEND_TIMEOUT: Duration = Duration::from_millis(100);
/// How long completions may take to arrive after a UDP phase.
const UDP_GRACE: Duration = Duration::from_millis(200);
/// TCP completions wait for ACKs of everything in flight.
const TCP_GRACE: Duration = Duration::from_secs(2);
/// Longest wait for the TCP send queue to empty between the copy and the zerocopy phase.
const TCP_FLUSH: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A phase ends when this many sends in a row fail with an error that retrying cannot cure.
const MAX_CONSECUTIVE_FAILURES: u32 = 1000;
/// ENOBUFS with no completion queued: wait this long for one before retrying.
const ENOBUFS_BACKOFF_MS: libc::c_int = 10;
const TCP_SEND_SIZE: usize = 64 * 1024;
/// `UDP_MAX_SEGMENTS` of older kernels (raised to 128 in 6.x; 64 works everywhere).
const UDP_MAX_SEGMENTS: usize = 64;
const PAGE: usize = 4096;
/// errno values counted individually; larger ones share the last slot.
const ERRNO_SLOTS: usize = 160;

/// `include/uapi/linux/errqueue.h`; libc does not export these two.
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Where traffic goes. UDP: any address whose route leaves through `iface` (port 9,
    /// discard, unless given). TCP: a `zcdoctor sink` listening there.
    pub target: SocketAddr,
    pub protocol: Protocol,
    /// The diagnosed device; the route to `target` must leave through it.
    pub iface: String,
    /// Length of each phase (copy, then zerocopy) of each pattern.
    pub duration: Duration,
    /// Most bytes sent by each phase.
    pub byte_cap: u64,
    /// A single updating progress line on stderr (set it when stderr is a tty).
    pub progress: bool,
    /// UDP only: add the `oversize` pattern, datagrams one byte over what fits the path MTU,
    /// sent without `UDP_SEGMENT` (so the kernel fragments them, and copies).
    pub oversize: bool,
}

impl LiveOptions {
    /// UDP, one second per phase, [`DEFAULT_BYTE_CAP`], no progress, no oversize pattern.
    pub fn new(target: SocketAddr, iface: &str) -> LiveOptions {
        LiveOptions {
            target,
            protocol: Protocol::Udp,
            iface: iface.to_string(),
            duration: DEFAULT_DURATION,
            byte_cap: DEFAULT_BYTE_CAP,
            progress: false,
            oversize: false,
        }
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs a SIGINT handler that sets the returned flag (once per process; later calls return
/// the same flag). The handler resets itself, so a second Ctrl-C ends the process the usual way.
pub fn install_interrupt_handler() -> &'static AtomicBool {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let action = SigAction::new(
            SigHandler::Handler(on_sigint),
            SaFlags::SA_RESETHAND | SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe. If the
        // call fails, Ctrl-C keeps its default action; nothing to recover.
        let _ = unsafe { sigaction(Signal::SIGINT, &action) };
    });
    &INTERRUPTED
}

/// The `live` probe: runs only when a target was given.
pub struct LiveProbeRunner;

impl super::Probe for LiveProbeRunner {
    fn name(&self) -> crate::evidence::ProbeName {
        crate::evidence::ProbeName::Live
    }
    fn reads(&self) -> &'static str {
        "sends a bounded MSG_ZEROCOPY burst to --target and reads every completion (only with --target)"
    }
    fn privileges(&self) -> &'static str {
        "none (SO_BINDTODEVICE to the interface needs CAP_NET_RAW; without it the route decides)"
    }
    fn not_requested(&self, opts: &super::GatherOptions) -> Option<String> {
        opts.live
            .is_none()
            .then(|| "not requested: no --target given".to_string())
    }
    fn gather(
        &self,
        cx: &mut super::Context,
        ev: &mut crate::evidence::Evidence,
    ) -> Result<super::Outcome, super::GatherError> {
        use crate::evidence::ProbeState;
        let Some(req) = &cx.opts.live else {
            return Ok(super::Outcome::new(
                ProbeState::Skipped,
                "not requested: no --target given",
            ));
        };
        let target = match req.target {
            super::TargetSpec::Addr(a) => a,
            super::TargetSpec::Gateway { port } => {
                let top = ev.stack.first().map(|d| d.ifindex);
                let gw = netlink::default_routes(false)
                    .into_iter()
                    .chain(netlink::default_routes(true))
                    .flatten()
                    .filter(|r| Some(r.ifindex) == top)
                    .find_map(|r| r.gateway);
                match gw {
                    Some(ip) => SocketAddr::new(ip, port),
                    None => {
                        return Err(super::GatherError::NoGateway {
                            iface: ev.interface.clone(),
                        });
                    }
                }
            }
        };
        let opts = LiveOptions {
            target,
            protocol: req.protocol,
            iface: ev.interface.clone(),
            duration: req.duration,
            byte_cap: req.byte_cap,
            progress: req.progress,
            oversize: req.oversize,
        };
        let result = run(&opts, cx.stop);
        let outcome = match &result.not_run {
            Some(why) => super::Outcome::new(ProbeState::Skipped, why.clone()),
            None => super::Outcome::ok(format!("{} to {}", result.protocol, result.target)),
        };
        ev.live = Some(result);
        Ok(outcome)
    }
}

/// Runs the live probe. Never panics on what the system answers: whatever cannot be done is
/// said in `not_run` (nothing sent) or `notes` (a pattern skipped).
pub fn run(opts: &LiveOptions, stop: &AtomicBool) -> LiveProbe {
    let mut probe = LiveProbe {
        protocol: opts.protocol,
        target: opts.target.to_string(),
        route: None,
        not_run: None,
        not_run_cause: None,
        runs: Vec::new(),
        interrupted: false,
        notes: Vec::new(),
    };
    let ip = opts.target.ip();
    match netlink::route_get(ip) {
        Ok(route) => {
            probe.not_run = refusal(&route, ip, &opts.iface);
            probe.route = Some(route);
        }
        Err(e) => probe.not_run = Some(format!("cannot look up the route to {ip}: {e}")),
    }
    if probe.not_run.is_some() {
        return probe;
    }
    let mut ctx = Ctx {
        opts,
        stop,
        progress: Progress::new(opts.progress),
    };
    match opts.protocol {
        Protocol::Udp => run_udp(&mut ctx, &mut probe),
        Protocol::Tcp => run_tcp(&mut ctx, &mut probe),
    }
    ctx.progress.clear();
    probe.interrupted = stop.load(Ordering::Relaxed);
    probe
}

/// Why traffic to `ip` must not be sent (or would prove nothing about `iface`).
fn refusal(route: &RouteInfo, ip: IpAddr, iface: &str) -> Option<String> {
    if route.route_type == RouteType::Local || ip.is_loopback() {
        return Some(format!(
            "{ip} is an address of this host: traffic is delivered locally and always copied"
        ));
    }
    if route.route_type != RouteType::Unicast {
        return Some(format!(
            "the route to {ip} is of type {}, not unicast: the probe sends only unicast traffic",
            route.route_type
        ));
    }
    match route.device.as_deref() {
        Some(dev) if dev == iface => None,
        Some(dev) => Some(format!("route to {ip} leaves through {dev}, not {iface}")),
        None => Some(format!(
            "the route to {ip} names no output device, so traffic would not leave through {iface}"
        )),
    }
}

/// What a run needs besides its socket.
struct Ctx<'a> {
    opts: &'a LiveOptions,
    stop: &'a AtomicBool,
    progress: Progress,
}

impl Ctx<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

struct Pattern {
    name: RunPattern,
    send_size: usize,
    gso_size: Option<u16>,
}

// ---------------------------------------------------------------------------------------------
// UDP

fn run_udp(ctx: &mut Ctx, probe: &mut LiveProbe) {
    let opts = ctx.opts;
    let v6 = opts.target.is_ipv6();
    let first = match open_socket(opts, libc::SOCK_DGRAM, &mut probe.notes) {
        Ok(fd) => fd,
        Err(why) => {
            probe.not_run = Some(why);
            return;
        }
    };
    if let Err(e) = connect_udp(&first, opts.target) {
        probe.not_run = Some(format!(
            "cannot connect a UDP socket to {}: {e}",
            opts.target
        ));
        return;
    }
    // IP and UDP headers.
    let headers: usize = if v6 { 40 + 8 } else { 20 + 8 };
    let route_mtu = probe.route.as_ref().and_then(|r| r.mtu);
    let mtu = match path_mtu(&first, v6) {
        Ok(m) if m as usize > headers => m,
        Ok(_) | Err(_) => route_mtu.unwrap_or(1500),
    };
    if let Some(route) = probe.route.as_mut() {
        if route.mtu.is_none() {
            route.mtu = Some(mtu);
        }
    }
    let payload = (mtu as usize).saturating_sub(headers).max(1);
    // Largest UDP payload: 65535 minus the IPv4 header and the UDP header (IPv6's payload
    // length excludes its own header).
    let max_udp = if v6 { 65535 - 8 } else { 65535 - 20 - 8 };
    let segments = (max_udp / payload).min(UDP_MAX_SEGMENTS);

    let mut patterns = vec![Pattern {
        name: RunPattern::Datagram,
        send_size: payload,
        gso_size: None,
    }];
    match u16::try_from(payload) {
        Ok(gso) if segments >= 2 => patterns.push(Pattern {
            name: RunPattern::Gso,
            send_size: payload * segments,
            gso_size: Some(gso),
        }),
        _ => probe.notes.push(format!(
            "no gso pattern: a payload of {payload} bytes leaves no room for several segments"
        )),
    }
    if opts.oversize {
        patterns.push(Pattern {
            name: RunPattern::Oversize,
            send_size: payload + 1,
            gso_size: None,
        });
    }

    let largest = patterns
        .iter()
        .map(|p| p.send_size)
        .max()
        .unwrap_or(payload);
    let buf = AlignedBuf::new(largest);
    let mut first = Some(first);
    for pattern in &patterns {
        if ctx.stopped() {
            break;
        }
        let fd = match first.take() {
            Some(fd) => fd,
            None => {
                let fd = match open_socket(opts, libc::SOCK_DGRAM, &mut Vec::new()) {
                    Ok(fd) => fd,
                    Err(why) => {
                        probe
                            .notes
                            .push(format!("{} pattern skipped: {why}", pattern.name));
                        continue;
                    }
                };
                if let Err(e) = connect_udp(&fd, opts.target) {
                    probe.notes.push(format!(
                        "{} pattern skipped: cannot connect a UDP socket to {}: {e}",
                        pattern.name, opts.target
                    ));
                    continue;
                }
                fd
            }
        };
        if let Some(gso) = pattern.gso_size {
            if let Err(e) = setsockopt_int(&fd, libc::SOL_UDP, libc::UDP_SEGMENT, gso.into()) {
                probe.notes.push(format!(
                    "{} pattern skipped: UDP GSO is not available (UDP_SEGMENT: {e}); it needs \
                     Linux 4.18",
                    pattern.name
                ));
                continue;
            }
        }
        let run = measure(
            ctx,
            &fd,
            pattern,
            &buf.as_slice()[..pattern.send_size],
            UDP_GRACE,
        );
        probe.runs.push(run);
    }
    probe.notes.push(format!(
        "path MTU {mtu}: datagrams of {payload} bytes fit it{}",
        if route_mtu.is_some() {
            " (MTU of the route)"
        } else {
            ""
        }
    ));
}

fn connect_udp(fd: &OwnedFd, target: SocketAddr) -> Result<(), Errno> {
    let addr = nix::sys::socket::SockaddrStorage::from(target);
    nix::sys::socket::connect(fd.as_raw_fd(), &addr)
}

/// `IP_MTU` / `IPV6_MTU` of a connected socket: the path MTU the kernel will use for it.
fn path_mtu(fd: &OwnedFd, v6: bool) -> Result<u32, Errno> {
    let (level, name) = if v6 {
        (libc::SOL_IPV6, libc::IPV6_MTU)
    } else {
        (libc::SOL_IP, libc::IP_MTU)
    };
    let v = getsockopt_int(fd, level, name)?;
    u32::try_from(v).map_err(|_| Errno::EINVAL)
}

// ---------------------------------------------------------------------------------------------
// TCP

fn run_tcp(ctx: &mut Ctx, probe: &mut LiveProbe) {
    let opts = ctx.opts;
    let fd = match open_socket(opts, libc::SOCK_STREAM, &mut probe.notes) {
        Ok(fd) => fd,
        Err(why) => {
            probe.not_run = Some(why);
            return;
        }
    };
    if let Err(e) = connect_tcp(&fd, opts.target, ctx.stop) {
        probe.not_run = Some(format!(
            "cannot connect to {} over TCP ({e}): run `zcdoctor sink --listen {}` there first",
            opts.target, opts.target
        ));
        return;
    }
    if let Some(route) = probe.route.as_mut() {
        if route.mtu.is_none() {
            route.mtu = path_mtu(&fd, opts.target.is_ipv6()).ok();
        }
    }
    let pattern = Pattern {
        name: RunPattern::Stream,
        send_size: TCP_SEND_SIZE,
        gso_size: None,
    };
    let buf = AlignedBuf::new(pattern.send_size);
    let run = measure(ctx, &fd, &pattern, buf.as_slice(), TCP_GRACE);
    probe.runs.push(run);
    // SAFETY: shutdown on a descriptor we own; failure only means the peer is gone.
    unsafe {
        libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR);
    }
}

/// Non-blocking connect with a timeout, so a silent target or Ctrl-C cannot hang the probe.
fn connect_tcp(fd: &OwnedFd, target: SocketAddr, stop: &AtomicBool) -> Result<(), Errno> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    let fl = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if fl < 0 {
        return Err(Errno::last());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(raw, libc::F_SETFL, fl | libc::O_NONBLOCK) } < 0 {
        return Err(Errno::last());
    }
    let addr = nix::sys::socket::SockaddrStorage::from(target);
    match nix::sys::socket::connect(raw, &addr) {
        Ok(()) => {}
        Err(Errno::EINPROGRESS) => {
            let start = Instant::now();
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Err(Errno::EINTR);
                }
                if start.elapsed() >= CONNECT_TIMEOUT {
                    return Err(Errno::ETIMEDOUT);
                }
                let mut pfd = libc::pollfd {
                    fd: raw,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let n = unsafe { libc::poll(&mut pfd, 1, 100) };
                if n > 0 {
                    break;
                }
                if n < 0 && Errno::last() != Errno::EINTR {
                    return Err(Errno::last());
                }
            }
            let err = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
            if err != 0 {
                return Err(Errno::from_raw(err));
            }
        }
        Err(e) => return Err(e),
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(raw, libc::F_SETFL, fl) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Waits (up to `limit`) until the TCP send queue is empty, so the zerocopy phase does not
/// start behind the copy phase's data.
fn wait_tcp_flushed(fd: &OwnedFd, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut outq: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut outq) };
        if rc < 0 || outq == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------
// Sockets

/// A socket with `SO_ZEROCOPY`, bound to `opts.iface`, with a send timeout. A refused
/// `SO_ZEROCOPY` is an error (the probe cannot run); a refused `SO_BINDTODEVICE` is a note.
fn open_socket(
    opts: &LiveOptions,
    ty: libc::c_int,
    notes: &mut Vec<String>,
) -> Result<OwnedFd, String> {
    let domain = if opts.target.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    let proto = opts.protocol.as_str().to_uppercase();
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let raw = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!("cannot open a {proto} socket: {}", Errno::last()));
    }
    // SAFETY: raw is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if let Err(e) = setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1) {
        let needs = match opts.protocol {
            Protocol::Udp => "5.0",
            Protocol::Tcp => "4.14",
        };
        return Err(format!(
            "the kernel refused SO_ZEROCOPY on a {proto} socket ({e}): MSG_ZEROCOPY for {proto} \
             needs Linux {needs}"
        ));
    }
    // SAFETY: SO_BINDTODEVICE takes the name bytes and their length.
    let rc = unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            opts.iface.as_ptr().cast(),
            opts.iface.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        notes.push(format!(
            "SO_BINDTODEVICE {} refused ({}): traffic follows the routing table, which also \
             leads through {}",
            opts.iface,
            Errno::last(),
            opts.iface
        ));
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: SEND_TIMEOUT.as_micros() as libc::suseconds_t,
    };
    // SAFETY: SO_SNDTIMEO takes a timeval.
    let rc = unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        notes.push(format!(
            "SO_SNDTIMEO refused ({}): a blocked send may delay a stop request",
            Errno::last()
        ));
    }
    Ok(fd)
}

/// A page-aligned buffer filled with a non-zero byte (so its pages are real, not the shared
/// zero page, which would flatter the copy phase).
struct AlignedBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> AlignedBuf {
        let storage = vec![0x5a_u8; len + PAGE];
        let offset = storage.as_ptr().align_offset(PAGE);
        let offset = if offset < PAGE { offset } else { 0 };
        AlignedBuf {
            storage,
            offset,
            len,
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// Copy phase, then zerocopy phase with its completions.
fn measure(
    ctx: &mut Ctx,
    fd: &OwnedFd,
    pattern: &Pattern,
    data: &[u8],
    grace: Duration,
) -> LiveRun {
    let tcp = ctx.opts.protocol == Protocol::Tcp;
    let mut zc = Completions::default();
    let copy = send_phase(ctx, fd, data, pattern.name.as_str(), None);
    let mut run = LiveRun {
        pattern: pattern.name,
        send_size: data.len(),
        gso_size: pattern.gso_size,
        sends: 0,
        completions: 0,
        copied: 0,
        missing: 0,
        enobufs: 0,
        notifications: 0,
        errors: BTreeMap::new(),
        copy_phase: Some(copy.phase),
        zerocopy_phase: None,
    };
    if ctx.stopped() {
        return run;
    }
    if tcp {
        wait_tcp_flushed(fd, TCP_FLUSH);
    }
    let zerocopy = send_phase(ctx, fd, data, pattern.name.as_str(), Some(&mut zc));
    zc.settle(fd.as_raw_fd(), zerocopy.phase.sends, grace);
    run.sends = zerocopy.phase.sends;
    run.completions = zc.completions;
    run.copied = zc.copied;
    run.missing = run.sends.saturating_sub(zc.completions);
    run.enobufs = zerocopy.enobufs;
    run.notifications = zc.records;
    run.errors = zerocopy
        .phase
        .errors
        .iter()
        .filter(|(name, _)| name.as_str() != "ENOBUFS")
        .map(|(name, n)| (name.clone(), *n))
        .collect();
    run.zerocopy_phase = Some(zerocopy.phase);
    run
}

struct PhaseOutcome {
    phase: Phase,
    enobufs: u64,
}

/// One phase: `sendmsg` in a loop until the duration, the byte cap, a stop request or
/// persistent errors end it. `zc` is `Some` for the zerocopy phase.
fn send_phase(
    ctx: &mut Ctx,
    fd: &OwnedFd,
    data: &[u8],
    label: &str,
    mut zc: Option<&mut Completions>,
) -> PhaseOutcome {
    let raw = fd.as_raw_fd();
    let zerocopy = zc.is_some();
    let phase_name = if zerocopy { "zerocopy" } else { "copy" };
    let flags = libc::MSG_NOSIGNAL | if zerocopy { libc::MSG_ZEROCOPY } else { 0 };
    let len = data.len() as u64;
    let cap = ctx.opts.byte_cap;
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;

    let mut errs = [0u64; ERRNO_SLOTS];
    let mut bytes: u64 = 0;
    let mut sends: u64 = 0;
    let mut enobufs: u64 = 0;
    let mut failures: u32 = 0;
    let mut tick: u32 = 0;
    let mut drain_tick: u32 = 0;
    let ended_by;
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let deadline = start + ctx.opts.duration;
    loop {
        if bytes.saturating_add(len) > cap {
            ended_by = PhaseEnd::ByteCap;
            break;
        }
        // SAFETY: msg points at iov, which points at `data`; both outlive the call, and the
        // kernel only reads them.
        let n = unsafe { libc::sendmsg(raw, &msg, flags) };
        if n >= 0 {
            bytes += n as u64;
            sends += 1;
            failures = 0;
        } else {
            let e = Errno::last_raw();
            errs[(e.max(0) as usize).min(ERRNO_SLOTS - 1)] += 1;
            match (e, zc.as_deref_mut()) {
                (libc::ENOBUFS, Some(zc)) => {
                    // Option memory is full of notifications: read them, or wait for one.
                    enobufs += 1;
                    if !zc.drain(raw, sends) {
                        wait_errqueue(raw, ENOBUFS_BACKOFF_MS);
                        zc.drain(raw, sends);
                    }
                }
                (libc::EAGAIN | libc::EINTR | libc::ENOBUFS, _) => {}
                _ => {
                    failures += 1;
                    if failures >= MAX_CONSECUTIVE_FAILURES {
                        ended_by = PhaseEnd::Errors;
                        break;
                    }
                }
            }
            // A failed send may have blocked for SEND_TIMEOUT: look at the clock now.
            tick = CHECK_EVERY;
        }
        if let Some(zc) = zc.as_deref_mut() {
            drain_tick += 1;
            if drain_tick >= DRAIN_EVERY {
                drain_tick = 0;
                zc.drain(raw, sends);
            }
        }
        tick += 1;
        if tick >= CHECK_EVERY {
            tick = 0;
            if ctx.stop.load(Ordering::Relaxed) {
                ended_by = PhaseEnd::Interrupted;
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                ended_by = PhaseEnd::Duration;
                break;
            }
            ctx.progress
                .tick(now, label, phase_name, now - start, bytes, sends);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu1 = thread_cpu();
    let mut errors = BTreeMap::new();
    for (e, &count) in errs.iter().enumerate() {
        if count > 0 {
            errors.insert(errno_name(e as i32), count);
        }
    }
    PhaseOutcome {
        phase: Phase {
            bytes,
            sends,
            seconds,
            cpu_system_seconds: (cpu1.0 - cpu0.0).max(0.0),
            cpu_user_seconds: (cpu1.1 - cpu0.1).max(0.0),
            errors,
            ended_by: Some(ended_by),
        },
        enobufs,
    }
}

fn errno_name(e: i32) -> String {
    if e as usize >= ERRNO_SLOTS - 1 {
        return format!("errno {}+", ERRNO_SLOTS - 1);
    }
    let name = format!("{:?}", Errno::from_raw(e));
    if name == "UnknownErrno" {
        format!("errno {e}")
    } else {
        name
    }
}

/// System and user CPU seconds of the calling thread.
fn thread_cpu() -> (f64, f64) {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid out pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } < 0 {
        return (0.0, 0.0);
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (secs(ru.ru_stime), secs(ru.ru_utime))
}

/// Waits up to `ms` for the error queue to hold something (POLLERR), or for a hang-up.
fn wait_errqueue(fd: RawFd, ms: libc::c_int) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0 && pfd.revents & libc::POLLERR != 0
}

/// Zerocopy notifications read from the error queue.
#[derive(Default)]
struct Completions {
    /// Ids covered by the ranges read.
    completions: u64,
    /// Of those, ids whose record carried SO_EE_CODE_ZEROCOPY_COPIED.
    copied: u64,
    /// Records read.
    records: u64,
}

impl Completions {
    /// Reads the queued records while some of `sent` is outstanding; true when any was read.
    fn drain(&mut self, fd: RawFd, sent: u64) -> bool {
        let mut any = false;
        while self.completions < sent && self.read_one(fd) {
            any = true;
        }
        any
    }

    /// After a phase: waits up to `grace` for the completions still outstanding.
    fn settle(&mut self, fd: RawFd, sent: u64, grace: Duration) {
        let deadline = Instant::now() + grace;
        loop {
            self.drain(fd, sent);
            if self.completions >= sent {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            let ms = (deadline - now).as_millis().clamp(1, 50) as libc::c_int;
            if !wait_errqueue(fd, ms) {
                // Timed out, or woke for another reason (a TCP peer hung up): do not spin.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Reads one record without blocking; false when the queue is empty.
    fn read_one(&mut self, fd: RawFd) -> bool {
        // u64 elements keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; 16];
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: msg describes a valid control buffer and no data buffer.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if n < 0 {
            return false;
        }
        let want = std::mem::size_of::<libc::sock_extended_err>();
        // SAFETY: the CMSG_* helpers walk the control buffer the kernel just filled, bounded by
        // msg_controllen; the payload is read unaligned after checking its length.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                let level = (*cmsg).cmsg_level;
                let ty = (*cmsg).cmsg_type;
                let is_err = (level == libc::SOL_IP && ty == libc::IP_RECVERR)
                    || (level == libc::SOL_IPV6 && ty == libc::IPV6_RECVERR);
                if is_err && (*cmsg).cmsg_len as usize >= libc::CMSG_LEN(want as u32) as usize {
                    let ee = std::ptr::read_unaligned(
                        libc::CMSG_DATA(cmsg) as *const libc::sock_extended_err
                    );
                    if ee.ee_origin == SO_EE_ORIGIN_ZEROCOPY && ee.ee_errno == 0 {
                        // ee_info..=ee_data is the id range this record covers.
                        let count = u64::from(ee.ee_data.wrapping_sub(ee.ee_info)) + 1;
                        self.completions += count;
                        if ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0 {
                            self.copied += count;
                        }
                        self.records += 1;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// Progress

/// A single updating line on stderr, redrawn at most every 200 ms.
struct Progress {
    enabled: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            last: None,
            shown: false,
        }
    }

    fn tick(
        &mut self,
        now: Instant,
        pattern: &str,
        phase: &str,
        elapsed: Duration,
        bytes: u64,
        sends: u64,
    ) {
        if !self.enabled {
            return;
        }
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(now);
        let secs = elapsed.as_secs_f64();
        let gbit = if secs > 0.0 {
            bytes as f64 * 8.0 / secs / 1e9
        } else {
            0.0
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Klive probe: {pattern} {phase} {secs:.1}s {sends} sends {gbit:.2} Gbit/s"
        );
        let _ = err.flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(ty: &str, dev: Option<&str>) -> RouteInfo {
        RouteInfo {
            device: dev.map(str::to_string),
            ifindex: None,
            gateway: None,
            source: None,
            route_type: RouteType::try_from(ty.to_string()).expect("route type literal"),
            mtu: None,
        }
    }

    #[test]
    fn refuses_local_and_foreign_routes() {
        let ip: IpAddr = "198.18.0.1".parse().expect("literal");
        assert_eq!(
            refusal(&route("local", Some("lo")), ip, "ifbz").as_deref(),
            Some(
                "198.18.0.1 is an address of this host: traffic is delivered locally and always \
                 copied"
            )
        );
        let ip: IpAddr = "10.1.2.3".parse().expect("literal");
        assert_eq!(
            refusal(&route("unicast", Some("eth0")), ip, "ifbz").as_deref(),
            Some("route to 10.1.2.3 leaves through eth0, not ifbz")
        );
        assert_eq!(refusal(&route("unicast", Some("ifbz")), ip, "ifbz"), None);
        assert!(refusal(&route("blackhole", None), ip, "ifbz").is_some());
    }

    #[test]
    fn names_errnos() {
        assert_eq!(errno_name(libc::ENOBUFS), "ENOBUFS");
        assert_eq!(errno_name(libc::EAGAIN), "EAGAIN");
        assert_eq!(errno_name(ERRNO_SLOTS as i32 + 5), "errno 159+");
    }

    #[test]
    fn buffer_is_page_aligned() {
        let buf = AlignedBuf::new(1472);
        assert_eq!(buf.as_slice().len(), 1472);
        assert_eq!(buf.as_slice().as_ptr() as usize % PAGE, 0);
    }
}
