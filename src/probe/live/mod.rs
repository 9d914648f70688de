//! The live probe: a bounded burst of MSG_ZEROCOPY traffic with completions read from the
//! error queue, and the same traffic copied, to measure what zerocopy gains.
//!
//! How it works:
//! - The route to the target is looked up first. A local address (loopback, an address of this
//!   host), a route that is not unicast, or a route through another device than the one
//!   diagnosed means nothing is sent: [`LiveProbe::not_run`] says so in a sentence of fact and
//!   [`LiveProbe::not_run_cause`] as data ([`NotRun`]); the checks say what it means.
//! - UDP ([`udp`]): one socket per traffic pattern (so notification ids start at 0 for each),
//!   with `SO_ZEROCOPY`, bound to the diagnosed device (`SO_BINDTODEVICE`) and connected.
//!   Patterns: `datagram` (the largest payload that fits the path MTU), `gso` (`UDP_SEGMENT`
//!   super-datagrams of about 64 KB cut into that payload), and on request `oversize` (one byte
//!   over the path MTU, no GSO: fragmented).
//! - TCP ([`tcp`]): one connection to a `zcdoctor sink`, made without blocking so a silent
//!   target times out and a stop request is seen; pattern `stream` (64 KiB writes).
//! - Each pattern runs a copy phase (plain `sendmsg`) and then a zerocopy phase
//!   (`MSG_ZEROCOPY`), each for [`LiveOptions::duration`] and at most
//!   [`LiveOptions::byte_cap`] bytes ([`send`]). During the zerocopy phase completions are read
//!   from `MSG_ERRQUEUE` as it goes ([`errqueue`]), so notifications do not pile up in option
//!   memory; ENOBUFS is counted and answered by reading completions (waiting briefly for them
//!   when none are queued). After the phase, a grace period collects the completions still
//!   outstanding.
//!
//! The send loop has to cost what a minimal C `sendmsg` loop costs (see `bench/live/`): the
//! `msghdr` is built once, the buffer is page-aligned and filled once, nothing allocates per
//! send, errno counts go to a fixed array, and the clock, the stop flag and the progress
//! callback are only looked at every `CHECK_EVERY` (16) sends. The error queue is read every
//! `DRAIN_EVERY` (32) zerocopy sends, and only while some completion is outstanding: the kernel
//! merges consecutive completions into one record, so one `recvmsg` usually covers them all.
//!
//! With `--timestamping` ([`LiveOptions::timestamping`]) each socket also asks for transmit
//! timestamps without `OPT_TSONLY`, as many applications do: each comes back on the error queue
//! on a clone of the packet (origin `SO_EE_ORIGIN_TIMESTAMPING`), is read with the completions
//! and dropped, and the completions show what the kernel copied for it.
//!
//! The probe draws nothing and handles no signal: the caller passes a stop flag (set it from a
//! SIGINT handler) and a progress callback, called with a [`Tick`] at most every
//! [`TICK_EVERY`] while a phase runs.

mod contention;
mod errqueue;
mod phase;
mod refusal;

use refusal::{NotRunFact, refusal};
mod send;
mod socket;
mod tcp;
mod udp;
pub mod uring;
pub mod vsock;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;

pub use crate::evidence::Protocol;
pub use crate::evidence::{ApiRequest, SendApi};
use crate::evidence::{
    Fact, LiveNote, LiveProbe, LiveRun, NotRun, OsError, PhaseEnd, RunPattern, TimestampingFlags,
    UringUnavailable,
};
use crate::probe::netlink;

/// UDP discard port, the default target port.
pub const DEFAULT_PORT: u16 = 9;
/// Default length of each phase.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(1);
/// Default cap on the bytes of each phase (4 GiB).
pub const DEFAULT_BYTE_CAP: u64 = 4 << 30;
/// The progress callback is called at most this often.
pub const TICK_EVERY: Duration = Duration::from_millis(200);
/// TCP: longest wait for the target to answer the connection.
pub const CONNECT_TIMEOUT: Duration = tcp::CONNECT_TIMEOUT;
/// Default bound on the whole live run (every pattern and phase).
pub const DEFAULT_MAX_RUN_TIME: Duration = Duration::from_secs(600);
/// The largest `--max-run-time` accepted.
pub const MAX_MAX_RUN_TIME: Duration = Duration::from_secs(3600);
pub use contention::LOCK_PATH;

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
    /// UDP only: add the `oversize` pattern, datagrams one byte over what fits the path MTU,
    /// sent without `UDP_SEGMENT` (so the kernel fragments them, and copies).
    pub oversize: bool,
    /// Bound on the whole run: a phase that reaches it ends `max_run_time` and nothing more is
    /// sent (completions of what was sent are still collected, for at most the grace period).
    pub max_run_time: Duration,
    /// The lock file that shows concurrent probes ([`LOCK_PATH`]).
    pub lock_path: std::path::PathBuf,
    /// Which send APIs run (`--api`): `sendmsg(MSG_ZEROCOPY)`, io_uring `SEND_ZC`, or both.
    pub api: ApiRequest,
    /// io_uring: the zerocopy phase sends from a registered buffer.
    pub uring_fixed_buffers: bool,
    /// Ask for transmit timestamps ([`socket::TIMESTAMPING`], without OPT_TSONLY) on the
    /// probe's sockets, to measure their copies; the timestamps are read and dropped.
    pub timestamping: bool,
}

impl LiveOptions {
    /// UDP, one second per phase, [`DEFAULT_BYTE_CAP`], no oversize pattern.
    pub fn new(target: SocketAddr, iface: &str) -> LiveOptions {
        LiveOptions {
            target,
            protocol: Protocol::Udp,
            iface: iface.to_string(),
            duration: DEFAULT_DURATION,
            byte_cap: DEFAULT_BYTE_CAP,
            oversize: false,
            max_run_time: DEFAULT_MAX_RUN_TIME,
            lock_path: LOCK_PATH.into(),
            api: ApiRequest::Sendmsg,
            uring_fixed_buffers: false,
            timestamping: false,
        }
    }
}

/// Which phase of a pattern is sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhaseKind {
    /// Plain `sendmsg`.
    Copy,
    /// `sendmsg` with `MSG_ZEROCOPY`.
    Zerocopy,
}

impl PhaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseKind::Copy => "copy",
            PhaseKind::Zerocopy => "zerocopy",
        }
    }
}

impl std::fmt::Display for PhaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a running phase is, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub pattern: RunPattern,
    pub phase: PhaseKind,
    /// Since the phase started.
    pub elapsed: Duration,
    /// Sent by the phase so far.
    pub bytes: u64,
    pub sends: u64,
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
        let target = match &req.target {
            super::TargetSpec::Vsock { cid, port } => {
                let opts = vsock::VsockOptions {
                    cid: *cid,
                    port: *port,
                    duration: req.duration,
                    byte_cap: req.byte_cap,
                    buffer: req.vsock_buffer,
                };
                let result = vsock::run(&opts, cx.stop);
                let detail = match &result.connect {
                    Fact::Failed(e) => format!("{}: {e}", result.target()),
                    _ => format!("{} runs to {}", result.runs.len(), result.target()),
                };
                ev.vsock = Some(result);
                return Ok(super::Outcome::ok(detail));
            }
            super::TargetSpec::Addr(a) => *a,
            super::TargetSpec::ScopedByName { ip, port, iface } => {
                let scope = nix::net::if_::if_nametoindex(iface.as_str()).map_err(|e| {
                    super::GatherError::NoScope {
                        iface: iface.clone(),
                        error: e.desc().to_string(),
                    }
                })?;
                SocketAddr::V6(std::net::SocketAddrV6::new(*ip, *port, 0, scope))
            }
            super::TargetSpec::Gateway { port } => {
                let top = ev.stack.first().map(|d| d.ifindex);
                let gw = netlink::default_routes(false)
                    .into_iter()
                    .chain(netlink::default_routes(true))
                    .flatten()
                    .filter(|r| Some(r.ifindex) == top)
                    .find_map(|r| r.gateway);
                match gw {
                    Some(ip) => SocketAddr::new(ip, *port),
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
            oversize: req.oversize,
            max_run_time: req.max_run_time,
            lock_path: LOCK_PATH.into(),
            api: req.api,
            uring_fixed_buffers: req.uring_fixed_buffers,
            timestamping: req.timestamping,
        };
        let result = run(&opts, cx.stop, &mut *cx.on_tick);
        let outcome = match &result.not_run {
            Some(why) => super::Outcome::new(ProbeState::Skipped, why.clone()),
            None => super::Outcome::ok(format!("{} to {}", result.protocol, result.target)),
        };
        ev.live = Some(result);
        Ok(outcome)
    }
}

/// Runs the live probe. Never panics on what the system answers: whatever cannot be done is
/// said in `not_run` and `not_run_cause` (nothing sent) or `notes` (a pattern skipped).
/// `stop` ends it early (phases end `interrupted`, later patterns are skipped); `on_tick` is
/// called at most every [`TICK_EVERY`] while a phase runs.
pub fn run(opts: &LiveOptions, stop: &AtomicBool, on_tick: &mut dyn FnMut(&Tick)) -> LiveProbe {
    let started = Instant::now();
    let busy = contention::before(&opts.lock_path);
    let mut probe = LiveProbe::new(opts.protocol, opts.target, opts.api);
    probe.timestamping = opts
        .timestamping
        .then_some(TimestampingFlags(socket::TIMESTAMPING));
    look_up_route(opts, &mut probe);
    if probe.not_run.is_none() && opts.api.includes_io_uring() {
        probe_uring(opts, &mut probe);
    }
    if probe.not_run.is_none() {
        let mut ctx = Ctx {
            opts,
            stop,
            on_tick,
            last_tick: Instant::now(),
            run_deadline: started + opts.max_run_time,
            egress: probe
                .route
                .as_ref()
                .and_then(|r| Some((r.ifindex?, r.device.clone()?))),
            api: SendApi::Sendmsg,
            uring_errors: Vec::new(),
        };
        send_with_each_api(&mut ctx, &mut probe);
        record_uring_errors(std::mem::take(&mut ctx.uring_errors), &mut probe);
    }
    probe.interrupted = stop.load(Ordering::Relaxed);
    if probe.not_run.is_none() {
        probe.contention = Some(busy.finish());
    }
    probe
}

/// The route to the target, looked up as the probe's socket (bound to the interface: inside a
/// VRF that selects the VRF's table) will be routed; a route the probe must not send on, or
/// none, is why it does not run.
fn look_up_route(opts: &LiveOptions, probe: &mut LiveProbe) {
    let ip = opts.target.ip();
    let links = netlink::dump_links().unwrap_or_default();
    match netlink::route_lookup(&netlink::RouteQuery::bound_to(ip, &opts.iface, &links)) {
        Ok(route) => {
            if let Some(refused) = refusal(&route, ip, &opts.iface, &links) {
                refused.record(probe);
            }
            probe.route = Some(route);
        }
        Err(e) => NotRunFact {
            sentence: format!("the route to {ip} could not be looked up: {e}"),
            cause: NotRun::RouteLookup {
                error: e.to_os_error().unwrap_or_else(|| {
                    OsError::new(format!("route get {ip}"), Errno::UnknownErrno)
                }),
            },
        }
        .record(probe),
    }
}

/// What the kernel offers for io_uring zerocopy sends. When it lacks something, the probe does
/// not run (`--api io_uring`) or runs without io_uring (`--api both`).
fn probe_uring(opts: &LiveOptions, probe: &mut LiveProbe) {
    let support = uring::support();
    if let Some(why) = &support.unavailable {
        let sentence = uring_unavailable_sentence(why, &support);
        if opts.api == ApiRequest::IoUring {
            NotRunFact {
                sentence,
                cause: NotRun::IoUringUnavailable,
            }
            .record(probe);
        } else {
            probe
                .notes
                .push(LiveNote::UringRunsSkipped { why: why.clone() });
        }
    }
    probe.io_uring = Some(support);
}

/// Every pattern of the protocol with each send API asked for (io_uring only where the kernel
/// offers it), until one cannot run or the run is stopped.
fn send_with_each_api(ctx: &mut Ctx, probe: &mut LiveProbe) {
    let uring_ok = probe
        .io_uring
        .as_ref()
        .is_some_and(|s| s.unavailable.is_none());
    for &api in ctx.opts.api.apis() {
        if probe.not_run.is_some() || ctx.stopped() {
            break;
        }
        if api == SendApi::IoUring && !uring_ok {
            continue;
        }
        ctx.api = api;
        match ctx.opts.protocol {
            Protocol::Udp => udp::run(ctx, probe),
            Protocol::Tcp => tcp::run(ctx, probe),
        }
    }
}

/// io_uring set-up failures met while sending, recorded with the kernel's io_uring support.
fn record_uring_errors(errors: Vec<OsError>, probe: &mut LiveProbe) {
    for e in errors {
        match probe.io_uring.as_mut() {
            Some(s) if e.op.contains("BUFFERS") && s.register_buffers_error.is_none() => {
                probe
                    .notes
                    .push(LiveNote::UringBufferUnregistered { error: e.clone() });
                s.register_buffers_error = Some(e);
            }
            Some(s) => {
                probe.notes.push(LiveNote::UringError { error: e.clone() });
                s.ring_errors.push(e);
            }
            None => probe.notes.push(LiveNote::UringError { error: e }),
        }
    }
}

/// One pattern's copy phase, then its zerocopy phase with its completions, sent with the API
/// of the moment (`sendmsg`, or io_uring).
fn measure(
    ctx: &mut Ctx,
    fd: &std::os::fd::OwnedFd,
    pattern: &phase::Pattern,
    data: &[u8],
    transport: &phase::Transport,
) -> LiveRun {
    if ctx.api == SendApi::IoUring {
        return uring::measure(ctx, fd, pattern, data.len(), transport);
    }
    send::measure(ctx, fd, pattern, data, transport)
}

/// What is missing for io_uring zerocopy sends, in a sentence of fact.
fn uring_unavailable_sentence(why: &UringUnavailable, s: &crate::evidence::UringSupport) -> String {
    let error = match why {
        UringUnavailable::NoSendZc => None,
        UringUnavailable::NoReportUsage => s.report_usage_error.as_ref(),
        _ => s.setup_error.as_ref(),
    };
    match error {
        Some(e) => format!("{why} ({e})"),
        None => why.to_string(),
    }
}

/// What a run needs besides its socket.
struct Ctx<'a> {
    opts: &'a LiveOptions,
    stop: &'a AtomicBool,
    on_tick: &'a mut dyn FnMut(&Tick),
    /// When `on_tick` was last called (or the probe started).
    last_tick: Instant,
    /// [`LiveOptions::max_run_time`] after the probe started.
    run_deadline: Instant,
    /// The egress device (ifindex, name) whose counters are read around each zerocopy phase.
    egress: Option<(u32, String)>,
    /// The API the patterns are sent with now.
    api: SendApi,
    /// io_uring set-up failures met while sending (a ring, registering the buffer).
    uring_errors: Vec<OsError>,
}

impl Ctx<'_> {
    /// A stop was requested or the run's time is up: send nothing more.
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.run_deadline
    }

    /// Why a phase whose own deadline is `deadline` must end now, if it must: a stop request,
    /// then the phase's deadline (which is capped at the run's, so reaching the run's is
    /// `MaxRunTime`). `now` is returned for the progress tick.
    fn phase_end(&self, deadline: Instant) -> Result<Instant, PhaseEnd> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(PhaseEnd::Interrupted);
        }
        let now = Instant::now();
        if now < deadline {
            Ok(now)
        } else if now >= self.run_deadline {
            Err(PhaseEnd::MaxRunTime)
        } else {
            Err(PhaseEnd::Duration)
        }
    }

    /// Calls the progress callback unless it was called less than [`TICK_EVERY`] ago.
    fn tick(&mut self, now: Instant, tick: impl FnOnce() -> Tick) {
        if now.saturating_duration_since(self.last_tick) >= TICK_EVERY {
            self.last_tick = now;
            (self.on_tick)(&tick());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_spaced() {
        let opts = LiveOptions::new("198.18.0.2:9".parse().expect("literal"), "ifbz");
        let stop = AtomicBool::new(false);
        let mut seen = Vec::new();
        let mut on_tick = |t: &Tick| seen.push(t.sends);
        let start = Instant::now();
        let mut ctx = Ctx {
            opts: &opts,
            stop: &stop,
            on_tick: &mut on_tick,
            last_tick: start,
            run_deadline: start + Duration::from_secs(60),
            egress: None,
            api: SendApi::Sendmsg,
            uring_errors: Vec::new(),
        };
        let tick = |sends| {
            move || Tick {
                pattern: RunPattern::Datagram,
                phase: PhaseKind::Copy,
                elapsed: Duration::ZERO,
                bytes: 0,
                sends,
            }
        };
        ctx.tick(start + Duration::from_millis(100), tick(1));
        ctx.tick(start + Duration::from_millis(200), tick(2));
        ctx.tick(start + Duration::from_millis(399), tick(3));
        ctx.tick(start + Duration::from_millis(400), tick(4));
        assert!(!ctx.stopped());
        assert_eq!(seen, [2, 4]);
    }
}
