//! What both send loops (`sendmsg` and io_uring) share: the traffic pattern and transport they
//! are given, the page-aligned buffer they send from, a phase's clocks (wall, CPU, deadline and
//! progress ticks), its errno counts, and the run assembled from its phases. Both loops build on
//! this module; it knows neither of them.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeValLike;

use super::{Ctx, PhaseKind, Tick};
use crate::evidence::{
    DeviceCounters, LinkCounters, LiveRun, Phase, PhaseEnd, RunPattern, SendApi,
};
use crate::probe::netlink;

const PAGE: usize = 4096;
/// errno values counted individually; larger ones share the last slot.
pub(super) const ERRNO_SLOTS: usize = 160;

/// A phase's failed sends, by errno (see [`ERRNO_SLOTS`]).
pub(super) type ErrnoCounts = [u64; ERRNO_SLOTS];

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

/// Counts one failed send with errno `e`.
pub(super) fn count_errno(errs: &mut ErrnoCounts, e: i32) {
    errs[(e.max(0) as usize).min(ERRNO_SLOTS - 1)] += 1;
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

/// When a phase started (wall clock and the sending thread's CPU clock), when it must end, and
/// what its progress ticks name.
pub(super) struct PhaseClock {
    pattern: RunPattern,
    kind: PhaseKind,
    cpu0: (f64, f64),
    start: Instant,
    deadline: Instant,
}

impl PhaseClock {
    /// Starts the clocks of a phase; its deadline is the phase's duration, capped at the run's.
    pub(super) fn start(ctx: &Ctx, pattern: RunPattern, kind: PhaseKind) -> PhaseClock {
        let cpu0 = thread_cpu();
        let start = Instant::now();
        let deadline = (start + ctx.opts.duration).min(ctx.run_deadline);
        PhaseClock {
            pattern,
            kind,
            cpu0,
            start,
            deadline,
        }
    }

    /// Why the phase must end now (`Err`: a stop request or its deadline); otherwise reports
    /// its progress (at most every [`super::TICK_EVERY`]).
    pub(super) fn check(&self, ctx: &mut Ctx, bytes: u64, sends: u64) -> Result<(), PhaseEnd> {
        let now = ctx.phase_end(self.deadline)?;
        ctx.tick(now, || Tick {
            pattern: self.pattern,
            phase: self.kind,
            elapsed: now - self.start,
            bytes,
            sends,
        });
        Ok(())
    }

    /// The phase's wall and CPU time until now.
    pub(super) fn stop(&self) -> Elapsed {
        let seconds = self.start.elapsed().as_secs_f64();
        let cpu1 = thread_cpu();
        Elapsed {
            seconds,
            cpu_system_seconds: (cpu1.0 - self.cpu0.0).max(0.0),
            cpu_user_seconds: (cpu1.1 - self.cpu0.1).max(0.0),
        }
    }
}

/// How long a phase took, on the wall clock and the sending thread's CPU clock.
pub(super) struct Elapsed {
    seconds: f64,
    cpu_system_seconds: f64,
    cpu_user_seconds: f64,
}

impl Elapsed {
    /// The phase as recorded: what it sent, its time, its errors by name, why it ended.
    pub(super) fn phase(
        self,
        bytes: u64,
        sends: u64,
        errs: &ErrnoCounts,
        ended_by: PhaseEnd,
    ) -> Phase {
        let mut errors = BTreeMap::new();
        for (e, &count) in errs.iter().enumerate() {
            if count > 0 {
                errors.insert(errno_name(e as i32), count);
            }
        }
        Phase {
            bytes,
            sends,
            seconds: self.seconds,
            cpu_system_seconds: self.cpu_system_seconds,
            cpu_user_seconds: self.cpu_user_seconds,
            errors,
            ended_by: Some(ended_by),
        }
    }
}

/// A run of `pattern` with `api`, before any phase was sent.
pub(super) fn empty_run(api: SendApi, pattern: &Pattern, send_size: usize) -> LiveRun {
    LiveRun {
        api,
        pattern: pattern.name,
        send_size,
        gso_size: pattern.gso_size,
        sends: 0,
        completions: 0,
        copied: 0,
        missing: 0,
        enobufs: 0,
        notifications: 0,
        errors: BTreeMap::new(),
        copy_phase: None,
        zerocopy_phase: None,
        device_counters: None,
        fixed_buffers: false,
        timestamps: None,
    }
}

/// The zerocopy phase's errors but ENOBUFS (a run counts those apart).
pub(super) fn errors_but_enobufs(errors: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    errors
        .iter()
        .filter(|(name, _)| name.as_str() != "ENOBUFS")
        .map(|(name, n)| (name.clone(), *n))
        .collect()
}

/// The egress device's name, kind and counters.
pub(super) type EgressCounters = (String, Option<String>, LinkCounters);

/// The egress device's name, kind and counters, read outside the send loop (`None` when the
/// route named no device or the kernel did not answer).
pub(super) fn egress_counters(ctx: &Ctx) -> Option<EgressCounters> {
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

/// The egress device's counters around the zerocopy phase, when both readings were made.
pub(super) fn device_counters(
    before: Option<EgressCounters>,
    after: Option<EgressCounters>,
) -> Option<DeviceCounters> {
    let ((device, kind, before), (_, _, after)) = (before?, after?);
    Some(DeviceCounters {
        device,
        kind,
        before,
        after,
    })
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
    use super::*;

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
}
