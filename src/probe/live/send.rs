//! The send loop: a copy phase, then a zerocopy phase with its completions, each bounded by
//! the duration, the byte cap, the stop flag and persistent errors; errno counts and the CPU
//! time of the sending thread.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;

use super::errqueue::{self, Completions};
use super::{Ctx, PhaseKind, Tick};
use crate::evidence::{
    DeviceCounters, LinkCounters, LiveRun, Phase, PhaseEnd, RunPattern, SendApi,
};
use crate::probe::netlink;

/// The clock, the stop flag and the progress callback are looked at every this many sends.
const CHECK_EVERY: u32 = 16;
/// The error queue is read every this many zerocopy sends.
const DRAIN_EVERY: u32 = 32;
/// A phase ends when this many sends in a row fail with an error that retrying cannot cure.
const MAX_CONSECUTIVE_FAILURES: u32 = 1000;
/// ENOBUFS with no completion queued: wait this long (ms) for one before retrying.
const ENOBUFS_BACKOFF_MS: u16 = 10;
const PAGE: usize = 4096;
/// errno values counted individually; larger ones share the last slot.
pub(super) const ERRNO_SLOTS: usize = 160;

/// One traffic shape: what each send carries.
pub(super) struct Pattern {
    pub name: RunPattern,
    pub send_size: usize,
    pub gso_size: Option<u16>,
}

/// What a transport does around the phases.
pub(super) struct Transport {
    /// How long completions may take to arrive after the zerocopy phase.
    pub grace: Duration,
    /// Between the copy and the zerocopy phase (TCP: let the send queue empty).
    pub between_phases: fn(&OwnedFd),
}

/// Copy phase, then zerocopy phase with its completions.
pub(super) fn measure(
    ctx: &mut Ctx,
    fd: &OwnedFd,
    pattern: &Pattern,
    data: &[u8],
    transport: &Transport,
) -> LiveRun {
    if ctx.api == SendApi::IoUring {
        return super::uring::measure(ctx, fd, pattern, data.len(), transport);
    }
    let copy = send_phase(ctx, fd, data, pattern.name, None);
    let mut run = LiveRun {
        api: SendApi::Sendmsg,
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
        device_counters: None,
        fixed_buffers: false,
    };
    if ctx.stopped() {
        return run;
    }
    (transport.between_phases)(fd);
    let mut zc = Completions::new();
    let before = egress_counters(ctx);
    let zerocopy = send_phase(ctx, fd, data, pattern.name, Some(&mut zc));
    zc.settle(fd.as_fd(), zerocopy.phase.sends, transport.grace);
    if let (Some((device, kind, before)), Some((_, _, after))) = (before, egress_counters(ctx)) {
        run.device_counters = Some(DeviceCounters {
            device,
            kind,
            before,
            after,
        });
    }
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

/// The egress device's name, kind and counters, read outside the send loop (`None` when the
/// route named no device or the kernel did not answer).
pub(super) fn egress_counters(ctx: &Ctx) -> Option<(String, Option<String>, LinkCounters)> {
    let (ifindex, device) = ctx.egress.as_ref()?;
    let s = netlink::link_stats(*ifindex).ok()?;
    Some((
        device.clone(),
        s.kind,
        LinkCounters {
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
            tx_dropped: s.tx_dropped,
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
        },
    ))
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
    let deadline = (start + ctx.opts.duration).min(ctx.run_deadline);
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
                    if !zc.drain(fd.as_fd(), sends) {
                        errqueue::wait(fd.as_fd(), ENOBUFS_BACKOFF_MS);
                        zc.drain(fd.as_fd(), sends);
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
                zc.drain(fd.as_fd(), sends);
            }
        }
        tick += 1;
        if tick >= CHECK_EVERY {
            tick = 0;
            let now = match ctx.phase_end(deadline) {
                Ok(now) => now,
                Err(end) => {
                    ended_by = end;
                    break;
                }
            };
            ctx.tick(now, || Tick {
                pattern,
                phase: kind,
                elapsed: now - start,
                bytes,
                sends,
            });
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

pub(super) fn errno_name(e: i32) -> String {
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

/// System and user CPU seconds of the calling thread (zero when they cannot be read).
pub(super) fn thread_cpu() -> (f64, f64) {
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(ru) => {
            let secs = |tv: nix::sys::time::TimeVal| tv.num_microseconds() as f64 / 1e6;
            (secs(ru.system_time()), secs(ru.user_time()))
        }
        Err(_) => (0.0, 0.0),
    }
}

/// A page-aligned buffer filled with a non-zero byte (so its pages are real, not the shared
/// zero page, which would flatter the copy phase).
pub(super) struct AlignedBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    pub(super) fn new(len: usize) -> AlignedBuf {
        let storage = vec![0x5a_u8; len + PAGE];
        let offset = storage.as_ptr().align_offset(PAGE);
        let offset = if offset < PAGE { offset } else { 0 };
        AlignedBuf {
            storage,
            offset,
            len,
        }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::super::LiveOptions;
    use super::*;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    use std::sync::atomic::AtomicBool;

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
        assert!(buf.as_slice().iter().all(|&b| b == 0x5a));
    }

    #[test]
    fn reads_thread_cpu_time() {
        // A fresh test thread may not have run long enough to show: spin for a while first.
        let start = Instant::now();
        let mut spins = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            spins = std::hint::black_box(spins + 1);
        }
        let (sys, user) = thread_cpu();
        assert!(
            sys >= 0.0 && user >= 0.0 && sys + user > 0.0,
            "{sys} {user}"
        );
    }

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
