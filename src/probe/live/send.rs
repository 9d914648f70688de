//! The `sendmsg` send loop: a copy phase, then a zerocopy phase with its completions, each
//! bounded by the duration, the byte cap, the stop flag and persistent errors; errno counts and
//! the CPU time of the sending thread.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;

use super::errqueue::{self, Completions};
use super::phase::{
    self, ERRNO_SLOTS, ErrnoCounts, Pattern, PhaseClock, Transport, count_errno, egress_counters,
};
use super::{Ctx, PhaseKind};
use crate::evidence::{LiveRun, Phase, PhaseEnd, RunPattern, SendApi};

/// The clock, the stop flag and the progress callback are looked at every this many sends.
const CHECK_EVERY: u32 = 16;
/// The error queue is read every this many zerocopy sends.
const DRAIN_EVERY: u32 = 32;
/// A phase ends when this many sends in a row fail with an error that retrying cannot cure.
const MAX_CONSECUTIVE_FAILURES: u32 = 1000;
/// ENOBUFS with no completion queued: wait this long (ms) for one before retrying.
const ENOBUFS_BACKOFF_MS: u16 = 10;

/// Copy phase, then zerocopy phase with its completions.
pub(super) fn measure(
    ctx: &mut Ctx,
    fd: &OwnedFd,
    pattern: &Pattern,
    data: &[u8],
    transport: &Transport,
) -> LiveRun {
    let copy = send_phase(ctx, fd, data, pattern.name, None);
    let mut run = phase::empty_run(SendApi::Sendmsg, pattern, data.len());
    run.copy_phase = Some(copy.phase);
    if ctx.stopped() {
        return run;
    }
    (transport.between_phases)(fd);
    let mut zc = Completions::new();
    let before = egress_counters(ctx);
    let zerocopy = send_phase(ctx, fd, data, pattern.name, Some(&mut zc));
    zc.settle(fd.as_fd(), zerocopy.phase.sends, transport.grace);
    run.device_counters = phase::device_counters(before, egress_counters(ctx));
    run.sends = zerocopy.phase.sends;
    run.completions = zc.completions;
    run.copied = zc.copied;
    run.missing = run.sends.saturating_sub(zc.completions);
    run.enobufs = zerocopy.enobufs;
    run.notifications = zc.records;
    run.timestamps = ctx.opts.timestamping.then_some(zc.timestamps);
    run.errors = phase::errors_but_enobufs(&zerocopy.phase.errors);
    run.zerocopy_phase = Some(zerocopy.phase);
    run
}

struct PhaseOutcome {
    phase: Phase,
    enobufs: u64,
}

/// What a `sendmsg` phase has counted so far.
struct SendCounts {
    errs: ErrnoCounts,
    bytes: u64,
    sends: u64,
    enobufs: u64,
    /// Failures in a row that retrying cannot cure.
    failures: u32,
}

impl SendCounts {
    fn new() -> SendCounts {
        SendCounts {
            errs: [0; ERRNO_SLOTS],
            bytes: 0,
            sends: 0,
            enobufs: 0,
            failures: 0,
        }
    }

    fn sent(&mut self, n: u64) {
        self.bytes += n;
        self.sends += 1;
        self.failures = 0;
    }

    /// Counts a send that failed with errno `e`. ENOBUFS in the zerocopy phase (option memory
    /// full of notifications) reads them, or waits for one. True when persistent errors end
    /// the phase.
    fn failed(&mut self, e: i32, fd: &OwnedFd, zc: Option<&mut Completions>) -> bool {
        count_errno(&mut self.errs, e);
        match (e, zc) {
            (libc::ENOBUFS, Some(zc)) => {
                self.enobufs += 1;
                if !zc.drain(fd.as_fd(), self.sends) {
                    errqueue::wait(fd.as_fd(), ENOBUFS_BACKOFF_MS);
                    zc.drain(fd.as_fd(), self.sends);
                }
                false
            }
            (libc::EAGAIN | libc::EINTR | libc::ENOBUFS, _) => false,
            _ => {
                self.failures += 1;
                self.failures >= MAX_CONSECUTIVE_FAILURES
            }
        }
    }
}

/// One phase: `sendmsg` in a loop until the duration, the byte cap, a stop request or
/// persistent errors end it. `zc` is `Some` for the zerocopy phase.
fn send_phase(
    ctx: &mut Ctx,
    fd: &OwnedFd,
    data: &[u8],
    pattern: RunPattern,
    mut zc: Option<&mut Completions>,
) -> PhaseOutcome {
    let raw = fd.as_raw_fd();
    let kind = if zc.is_some() {
        PhaseKind::Zerocopy
    } else {
        PhaseKind::Copy
    };
    let flags = libc::MSG_NOSIGNAL
        | match kind {
            PhaseKind::Zerocopy => libc::MSG_ZEROCOPY,
            PhaseKind::Copy => 0,
        };
    let len = data.len() as u64;
    let cap = ctx.opts.byte_cap;
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data (with private padding on some libcs, hence zeroed rather
    // than a literal); all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;

    let mut c = SendCounts::new();
    let mut tick: u32 = 0;
    let mut drain_tick: u32 = 0;
    let clock = PhaseClock::start(ctx, pattern, kind);
    let ended_by = loop {
        if c.bytes.saturating_add(len) > cap {
            break PhaseEnd::ByteCap;
        }
        // SAFETY: msg points at iov, which points at `data`; both outlive the call, and the
        // kernel only reads them.
        let n = unsafe { libc::sendmsg(raw, &msg, flags) };
        if n >= 0 {
            c.sent(n as u64);
        } else {
            if c.failed(Errno::last_raw(), fd, zc.as_deref_mut()) {
                break PhaseEnd::Errors;
            }
            // A failed send may have blocked for SEND_TIMEOUT: look at the clock now.
            tick = CHECK_EVERY;
        }
        if let Some(zc) = zc.as_deref_mut() {
            drain_tick += 1;
            if drain_tick >= DRAIN_EVERY {
                drain_tick = 0;
                zc.drain(fd.as_fd(), c.sends);
            }
        }
        tick += 1;
        if tick >= CHECK_EVERY {
            tick = 0;
            if let Err(end) = clock.check(ctx, c.bytes, c.sends) {
                break end;
            }
        }
    };
    PhaseOutcome {
        phase: clock.stop().phase(c.bytes, c.sends, &c.errs, ended_by),
        enobufs: c.enobufs,
    }
}

#[cfg(test)]
mod tests {
    use super::super::phase::AlignedBuf;
    use super::super::{LiveOptions, Tick};
    use super::*;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    /// A copy phase into a non-blocking local datagram socket pair: nothing leaves the host.
    fn copy_phase(opts: &LiveOptions, on_tick: &mut dyn FnMut(&Tick)) -> Phase {
        let (tx, _rx) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        let stop = AtomicBool::new(false);
        let mut ctx = Ctx {
            opts,
            stop: &stop,
            on_tick,
            last_tick: Instant::now(),
            run_deadline: Instant::now() + opts.max_run_time,
            egress: None,
            api: SendApi::Sendmsg,
            uring_errors: Vec::new(),
        };
        let buf = AlignedBuf::new(64);
        send_phase(&mut ctx, &tx, buf.as_slice(), RunPattern::Datagram, None).phase
    }

    #[test]
    fn byte_cap_ends_a_phase() {
        let mut opts = LiveOptions::new("198.18.0.2:9".parse().expect("literal"), "ifbz");
        opts.byte_cap = 5 * 64 + 63;
        let phase = copy_phase(&opts, &mut |_| {});
        assert_eq!((phase.sends, phase.bytes), (5, 5 * 64));
        assert_eq!(phase.ended_by, Some(PhaseEnd::ByteCap));
        assert!(phase.errors.is_empty(), "{phase:?}");
    }

    #[test]
    fn the_run_bound_ends_a_phase() {
        let mut opts = LiveOptions::new("198.18.0.2:9".parse().expect("literal"), "ifbz");
        opts.duration = Duration::from_secs(5);
        opts.max_run_time = Duration::from_millis(100);
        let start = Instant::now();
        let phase = copy_phase(&opts, &mut |_| {});
        assert_eq!(phase.ended_by, Some(PhaseEnd::MaxRunTime));
        assert!(start.elapsed() < Duration::from_secs(1), "{phase:?}");
    }

    #[test]
    fn a_full_queue_is_counted_until_the_phase_ends() {
        let mut opts = LiveOptions::new("198.18.0.2:9".parse().expect("literal"), "ifbz");
        opts.duration = Duration::from_millis(50);
        let phase = copy_phase(&opts, &mut |_| {});
        assert_eq!(phase.ended_by, Some(PhaseEnd::Duration));
        assert!(phase.sends > 0, "{phase:?}");
        assert!(
            phase.errors.get("EAGAIN").is_some_and(|&n| n > 0),
            "{phase:?}"
        );
        assert!(phase.seconds >= 0.05 && phase.seconds < 1.0, "{phase:?}");
    }

    #[test]
    fn ticks_during_a_phase() {
        let mut opts = LiveOptions::new("198.18.0.2:9".parse().expect("literal"), "ifbz");
        opts.duration = Duration::from_millis(700);
        let mut ticks = Vec::new();
        copy_phase(&opts, &mut |t| ticks.push((Instant::now(), t.clone())));
        assert!((2..=3).contains(&ticks.len()), "{ticks:?}");
        for pair in ticks.windows(2) {
            let ((t0, a), (t1, b)) = (&pair[0], &pair[1]);
            assert!(*t1 - *t0 >= Duration::from_millis(190), "{ticks:?}");
            assert!(b.elapsed > a.elapsed && b.sends >= a.sends, "{ticks:?}");
        }
        for (_, t) in &ticks {
            assert_eq!(
                (t.pattern, t.phase),
                (RunPattern::Datagram, PhaseKind::Copy)
            );
            assert_eq!(t.bytes, t.sends * 64);
        }
    }
}
