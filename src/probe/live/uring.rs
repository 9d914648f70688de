//! io_uring zerocopy sends (`--api io_uring`): what the kernel offers ([`support`]), and the
//! same copy and zerocopy phases as the `sendmsg` probe ([`measure`]) with `IORING_OP_SEND`
//! and `IORING_OP_SEND_ZC` + `IORING_SEND_ZC_REPORT_USAGE`.
//!
//! Every CQE is read. A send CQE carries the bytes sent or `-errno`, and `IORING_CQE_F_MORE`
//! when a notification CQE (`IORING_CQE_F_NOTIF`) follows; the notification's `res` has
//! `IORING_NOTIF_USAGE_ZC_COPIED` when the kernel copied (6.2+, with the usage-report flag).
//!
//! The loop mirrors `bench/uring/zcuring.c`: up to [`DEPTH`] sends in flight, one
//! `io_uring_enter` per batch that submits and waits for one CQE (with a timeout, so a stop
//! request is seen), all ready CQEs reaped; nothing allocates per send and errno counts go to a
//! fixed array. The ring is set up with `SINGLE_ISSUER | DEFER_TASKRUN` (6.1+) when the kernel
//! takes them, plain otherwise.
//!
//! Buffer lifetime: each phase sends from a buffer this module owns ([`Sender`]). The kernel
//! reads a buffer only until the send's CQE is posted (a copy send copies it during the send; a
//! zerocopy send holds its own references to the pinned pages until the notification, and
//! registered buffers are pinned by the ring itself). So the buffer may go once every send CQE
//! is in: the phase waits for them, cancels what is left after the grace period, and if a send
//! still has not completed, the buffer is leaked rather than freed.

use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use io_uring::{IoUring, Probe, cqueue, opcode, squeue, types};
use nix::errno::Errno;

use super::phase::{
    self, AlignedBuf, ERRNO_SLOTS, Pattern, PhaseClock, Transport, count_errno, egress_counters,
};
use super::{Ctx, PhaseKind};
use crate::evidence::{LiveRun, OsError, Phase, PhaseEnd, SendApi, UringSupport, UringUnavailable};

/// Sends in flight at most (the submission queue's size).
pub(super) const DEPTH: u32 = 64;
/// Completion queue: sends and their notifications.
const CQ_ENTRIES: u32 = 1024;
/// Sends in flight plus notifications outstanding at most: past it, the loop waits.
const MAX_PENDING: u64 = 512;
/// `include/uapi/linux/io_uring.h`; the crate does not export these.
pub(super) const IORING_SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
pub(super) const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;
/// `user_data` of the cancel request; sends carry `UD_SEND | id` (ids count up from 0), and a
/// notification the `user_data` of its send.
const UD_SEND: u64 = 1 << 63;
const UD_CANCEL: u64 = 1 << 62;
/// Slots of the failed-send table, indexed by `id % FAILED_SLOTS`: more than the ids that can
/// be outstanding at once (sends in flight plus notifications pending), so no two collide.
const FAILED_SLOTS: usize = 2048;
/// A phase ends when this many sends in a row fail with an error that retrying cannot cure.
const MAX_CONSECUTIVE_FAILURES: u32 = 1000;
/// Longest wait in one `io_uring_enter`, so the stop flag and the clock are seen.
const WAIT: Duration = Duration::from_millis(100);
/// At the end of a phase, how long the sends in flight may take before they are cancelled.
const FINISH: Duration = Duration::from_secs(1);
/// After cancelling, how long the remaining send CQEs may take.
const CANCEL_WAIT: Duration = Duration::from_secs(2);
const SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";

/// What the kernel offers for io_uring zerocopy sends. Sends nothing: the usage-report test
/// goes to an unconnected UDP socket, which refuses it after the flags were checked.
pub fn support() -> UringSupport {
    let mut s = UringSupport {
        disabled_sysctl: std::fs::read_to_string(SYSCTL)
            .ok()
            .and_then(|v| v.trim().parse().ok()),
        ..UringSupport::default()
    };
    let ring = match IoUring::new(4) {
        Ok(r) => r,
        Err(e) => {
            let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
            s.unavailable = Some(match errno {
                Errno::ENOSYS => UringUnavailable::NoSyscall,
                Errno::EPERM | Errno::EACCES => match s.disabled_sysctl {
                    Some(v @ 1..) => UringUnavailable::DisabledBySysctl { value: v },
                    _ => UringUnavailable::Blocked,
                },
                _ => UringUnavailable::SetupFailed,
            });
            s.setup_error = Some(OsError::new("io_uring_setup", errno));
            return s;
        }
    };
    let mut probe = Probe::new();
    match ring.submitter().register_probe(&mut probe) {
        Ok(()) => {
            s.op_send = Some(probe.is_supported(opcode::Send::CODE));
            s.op_send_zc = Some(probe.is_supported(opcode::SendZc::CODE));
            s.op_sendmsg_zc = Some(probe.is_supported(opcode::SendMsgZc::CODE));
        }
        Err(e) => s.probe_error = Some(os_error("io_uring_register(PROBE)", &e)),
    }
    if s.op_send_zc == Some(false) || s.op_send == Some(false) {
        s.unavailable = Some(UringUnavailable::NoSendZc);
        return s;
    }
    let (accepted, error) = report_usage_accepted(ring);
    s.report_usage = accepted;
    s.report_usage_error = error;
    match (accepted, &s.report_usage_error) {
        (Some(false), _) => s.unavailable = Some(UringUnavailable::NoReportUsage),
        // The probe could not tell and SEND_ZC itself is unknown: an old kernel.
        (None, Some(e)) if e.errno() == Errno::EINVAL && s.op_send_zc.is_none() => {
            s.unavailable = Some(UringUnavailable::NoSendZc)
        }
        _ => {}
    }
    s
}

fn os_error(op: &str, e: &std::io::Error) -> OsError {
    OsError::new(op, Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

/// One byte that outlives every request (the usage-report test reads it, or not).
static ONE_BYTE: [u8; 1] = [0x5a];

/// `SEND_ZC` with `IORING_SEND_ZC_REPORT_USAGE` to an unconnected UDP socket: kernels that know
/// the flag fail the send itself (EDESTADDRREQ), older ones fail the request's preparation
/// (EINVAL). `None` when no answer came.
fn report_usage_accepted(mut ring: IoUring) -> (Option<bool>, Option<OsError>) {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let fd = match socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) {
        Ok(fd) => fd,
        Err(e) => return (None, Some(OsError::new("socket(AF_INET, SOCK_DGRAM)", e))),
    };
    let entry = opcode::SendZc::new(types::Fd(fd.as_raw_fd()), ONE_BYTE.as_ptr(), 1)
        .zc_flags(IORING_SEND_ZC_REPORT_USAGE)
        .build()
        .user_data(UD_SEND);
    // SAFETY: the entry points at ONE_BYTE, a static; the request takes its own reference to
    // the socket's file, and the ring is dropped before `fd` anyway.
    if unsafe { ring.submission().push(&entry) }.is_err() {
        return (None, None);
    }
    if let Err(e) = ring.submit_and_wait(1) {
        return (None, Some(os_error("io_uring_enter", &e)));
    }
    let res = ring
        .completion()
        .find(|c| c.user_data() & UD_SEND != 0 && !cqueue::notif(c.flags()))
        .map(|c| c.result());
    // The notification of the failed send, if any, is dropped with the ring.
    drop(ring);
    drop(fd);
    match res {
        None => (None, None),
        Some(r) if r >= 0 => (Some(true), None),
        Some(r) => {
            let errno = Errno::from_raw(-r);
            let e = Some(OsError::new("IORING_OP_SEND_ZC(REPORT_USAGE)", errno));
            (Some(errno != Errno::EINVAL), e)
        }
    }
}

/// A ring for the probe: `SINGLE_ISSUER | DEFER_TASKRUN` where the kernel takes them.
pub(super) fn new_ring(entries: u32) -> std::io::Result<IoUring> {
    let fast = IoUring::builder()
        .setup_cqsize(CQ_ENTRIES)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries);
    match fast {
        Ok(r) => Ok(r),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            IoUring::builder().setup_cqsize(CQ_ENTRIES).build(entries)
        }
        Err(e) => Err(e),
    }
}

/// The buffer a phase sends from, with the ring that sends it; see the module's comment on
/// lifetimes.
struct Sender {
    ring: IoUring,
    buf: ManuallyDrop<AlignedBuf>,
    len: usize,
    /// Sends submitted whose CQE has not been read.
    inflight: u64,
    /// The buffer is registered as fixed buffer 0.
    fixed: bool,
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.inflight == 0 {
            // SAFETY: every send CQE was read, so the kernel reads the buffer no more (see the
            // module's comment); it is dropped once, here.
            unsafe { ManuallyDrop::drop(&mut self.buf) };
        }
        // Otherwise the buffer is leaked: a send the kernel never finished may still read it.
    }
}

/// Counts of one phase, filled from CQEs.
struct Counts {
    bytes: u64,
    sends: u64,
    /// Notifications announced by `IORING_CQE_F_MORE` on send CQEs.
    notif_expected: u64,
    /// Of those, announced on failed sends.
    notif_of_failed: u64,
    notifs: u64,
    copied: u64,
    errs: [u64; ERRNO_SLOTS],
    failures: u32,
    /// Sends that failed but announced a notification, by `id % FAILED_SLOTS`: their
    /// notification says COPIED (nothing was sent zerocopy) and is not a completion.
    failed: Box<[bool; FAILED_SLOTS]>,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            bytes: 0,
            sends: 0,
            notif_expected: 0,
            notif_of_failed: 0,
            notifs: 0,
            copied: 0,
            errs: [0; ERRNO_SLOTS],
            failures: 0,
            failed: Box::new([false; FAILED_SLOTS]),
        }
    }

    fn pending_notifs(&self) -> u64 {
        self.notif_expected.saturating_sub(self.notifs)
    }
}

impl Sender {
    fn new(len: usize) -> Result<Sender, OsError> {
        let ring = new_ring(DEPTH).map_err(|e| os_error("io_uring_setup", &e))?;
        Ok(Sender {
            ring,
            buf: ManuallyDrop::new(AlignedBuf::new(len)),
            len,
            inflight: 0,
            fixed: false,
        })
    }

    /// Registers the buffer as fixed buffer 0.
    fn register(&mut self) -> Result<(), OsError> {
        let data = self.buf.as_slice();
        let iov = [libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        }];
        // SAFETY: the buffer is owned by `self` and outlives the ring's use of it: the ring is
        // dropped (unregistering it) before the buffer, or the buffer is leaked.
        unsafe { self.ring.submitter().register_buffers(&iov) }
            .map_err(|e| os_error("io_uring_register(BUFFERS)", &e))?;
        self.fixed = true;
        Ok(())
    }

    /// Reads every ready CQE into `c`.
    fn reap(&mut self, c: &mut Counts) {
        for cqe in self.ring.completion() {
            let (res, flags, ud) = (cqe.result(), cqe.flags(), cqe.user_data());
            let slot = (ud % FAILED_SLOTS as u64) as usize;
            if cqueue::notif(flags) {
                c.notifs += 1;
                if std::mem::take(&mut c.failed[slot]) {
                    c.notif_of_failed += 1;
                } else if (res as u32) & IORING_NOTIF_USAGE_ZC_COPIED != 0 {
                    c.copied += 1;
                }
                continue;
            }
            if ud & UD_SEND == 0 {
                continue;
            }
            self.inflight = self.inflight.saturating_sub(1);
            if cqueue::more(flags) {
                c.notif_expected += 1;
            }
            if res >= 0 {
                c.bytes += res as u64;
                c.sends += 1;
                c.failures = 0;
            } else {
                let e = -res;
                count_errno(&mut c.errs, e);
                if cqueue::more(flags) {
                    c.failed[slot] = true;
                }
                if e != libc::EAGAIN && e != libc::EINTR {
                    c.failures += 1;
                }
            }
        }
    }

    /// Submits what is queued and waits up to `wait` for one CQE (a timeout is no error).
    fn enter(&mut self, wait: Duration) -> Result<(), Errno> {
        let ts = types::Timespec::new()
            .sec(wait.as_secs())
            .nsec(wait.subsec_nanos());
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) => match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
                Errno::ETIME | Errno::EINTR | Errno::EBUSY | Errno::EAGAIN => Ok(()),
                other => Err(other),
            },
        }
    }

    /// After a phase: waits up to `grace` for the send CQEs and (`notifs`) the notifications
    /// still outstanding, then cancels the sends left and waits for their CQEs.
    fn settle(&mut self, c: &mut Counts, grace: Duration, notifs: bool) {
        let deadline = Instant::now() + grace;
        let outstanding =
            |s: &Sender, c: &Counts| s.inflight > 0 || (notifs && c.pending_notifs() > 0);
        while outstanding(self, c) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if self.enter((deadline - now).min(WAIT)).is_err() {
                break;
            }
            self.reap(c);
        }
        if self.inflight == 0 {
            return;
        }
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(UD_CANCEL);
        // SAFETY: a cancel request refers to no memory.
        if unsafe { self.ring.submission().push(&cancel) }.is_err() {
            return;
        }
        let deadline = Instant::now() + CANCEL_WAIT;
        while self.inflight > 0 && Instant::now() < deadline {
            if self.enter(WAIT).is_err() {
                break;
            }
            self.reap(c);
        }
    }
}

/// Copy phase (`IORING_OP_SEND`), then zerocopy phase (`IORING_OP_SEND_ZC` with
/// `IORING_SEND_ZC_REPORT_USAGE`, registered buffers with `--uring-fixed-buffers`) with every
/// notification.
pub(super) fn measure(
    ctx: &mut Ctx,
    fd: &OwnedFd,
    pattern: &Pattern,
    len: usize,
    transport: &Transport,
) -> LiveRun {
    let mut run = phase::empty_run(SendApi::IoUring, pattern, len);
    let mut copy = match Sender::new(len) {
        Ok(s) => s,
        Err(e) => {
            ctx.uring_errors.push(e);
            return run;
        }
    };
    let (copy_phase, _) = run_phase(ctx, &mut copy, fd, pattern, PhaseKind::Copy, transport);
    drop(copy);
    run.copy_phase = Some(copy_phase);
    if ctx.stopped() {
        return run;
    }
    (transport.between_phases)(fd);
    let mut zc = match Sender::new(len) {
        Ok(s) => s,
        Err(e) => {
            ctx.uring_errors.push(e);
            return run;
        }
    };
    if ctx.opts.uring_fixed_buffers {
        if let Err(e) = zc.register() {
            ctx.uring_errors.push(e);
        }
    }
    run.fixed_buffers = zc.fixed;
    let before = egress_counters(ctx);
    let (zc_phase, c) = run_phase(ctx, &mut zc, fd, pattern, PhaseKind::Zerocopy, transport);
    drop(zc);
    run.device_counters = phase::device_counters(before, egress_counters(ctx));
    run.sends = c.sends;
    // Notifications of failed sends carry nothing sent.
    run.completions = c.notifs.saturating_sub(c.notif_of_failed);
    run.copied = c.copied;
    run.missing = c.pending_notifs();
    run.notifications = c.notifs;
    run.enobufs = zc_phase.errors.get("ENOBUFS").copied().unwrap_or(0);
    run.errors = phase::errors_but_enobufs(&zc_phase.errors);
    run.zerocopy_phase = Some(zc_phase);
    run
}

/// One phase: batches of sends until the duration, the byte cap, a stop request or persistent
/// errors end it; then the outstanding CQEs (and, for zerocopy, notifications) are collected.
fn run_phase(
    ctx: &mut Ctx,
    s: &mut Sender,
    fd: &OwnedFd,
    pattern: &Pattern,
    kind: PhaseKind,
    transport: &Transport,
) -> (Phase, Counts) {
    let zerocopy = kind == PhaseKind::Zerocopy;
    let mut queue = SendQueue::new(s, fd, kind, ctx.opts.byte_cap);
    let mut c = Counts::new();
    let clock = PhaseClock::start(ctx, pattern.name, kind);
    let ended_by = send_until_end(ctx, s, &mut queue, &mut c, &clock, zerocopy);
    // The sends still in flight belong to the phase: wait for them before the clock stops.
    s.settle(&mut c, FINISH, false);
    let elapsed = clock.stop();
    if zerocopy {
        s.settle(&mut c, transport.grace, true);
    }
    (elapsed.phase(c.bytes, c.sends, &c.errs, ended_by), c)
}

/// Batches of sends, each batch submitted and its CQEs reaped, until the duration, the byte
/// cap, a stop request or persistent errors end the phase: why it ended.
fn send_until_end(
    ctx: &mut Ctx,
    s: &mut Sender,
    queue: &mut SendQueue,
    c: &mut Counts,
    clock: &PhaseClock,
    zerocopy: bool,
) -> PhaseEnd {
    loop {
        let pending = s.inflight + if zerocopy { c.pending_notifs() } else { 0 };
        let room =
            (u64::from(DEPTH).saturating_sub(s.inflight)).min(MAX_PENDING.saturating_sub(pending));
        queue.push(s, room);
        if s.inflight == 0 && pending == 0 {
            return PhaseEnd::ByteCap;
        }
        if let Err(e) = s.enter(WAIT) {
            count_errno(&mut c.errs, e as i32);
            return PhaseEnd::Errors;
        }
        s.reap(c);
        // Sends that failed sent nothing: give their bytes back to the cap.
        queue.queued_bytes = c.bytes + s.inflight * queue.step;
        if c.failures >= MAX_CONSECUTIVE_FAILURES {
            return PhaseEnd::Errors;
        }
        if let Err(end) = clock.check(ctx, c.bytes, c.sends) {
            return end;
        }
    }
}

/// The sends of a phase: the request each one repeats, the next send's id, and the bytes
/// queued so far against the byte cap.
struct SendQueue {
    entry: squeue::Entry,
    next_id: u64,
    queued_bytes: u64,
    /// Bytes of one send.
    step: u64,
    cap: u64,
}

impl SendQueue {
    /// `IORING_OP_SEND` of `s`'s buffer on `fd` for the copy phase, `IORING_OP_SEND_ZC` with
    /// `IORING_SEND_ZC_REPORT_USAGE` (from the registered buffer when it is) for zerocopy.
    fn new(s: &Sender, fd: &OwnedFd, kind: PhaseKind, cap: u64) -> SendQueue {
        let raw = types::Fd(fd.as_fd().as_raw_fd());
        let ptr = s.buf.as_slice().as_ptr();
        let len = s.len as u32;
        let entry = match kind {
            PhaseKind::Copy => opcode::Send::new(raw, ptr, len)
                .flags(libc::MSG_NOSIGNAL)
                .build(),
            PhaseKind::Zerocopy => {
                let op = opcode::SendZc::new(raw, ptr, len)
                    .flags(libc::MSG_NOSIGNAL)
                    .zc_flags(IORING_SEND_ZC_REPORT_USAGE);
                let op = if s.fixed { op.buf_index(Some(0)) } else { op };
                op.build()
            }
        };
        SendQueue {
            entry,
            next_id: 0,
            queued_bytes: 0,
            step: s.len as u64,
            cap,
        }
    }

    /// Queues up to `room` sends on `s`'s ring, as many as the byte cap leaves; they count as
    /// in flight from here.
    fn push(&mut self, s: &mut Sender, room: u64) {
        let mut pushed = 0u64;
        {
            let mut sq = s.ring.submission();
            while pushed < room && self.queued_bytes.saturating_add(self.step) <= self.cap {
                // SAFETY: the entry points at `s.buf`, which outlives every request (see the
                // module's comment), and at the socket `fd`, which the caller keeps open until
                // after this phase's settle returned.
                let e = self
                    .entry
                    .clone()
                    .user_data(UD_SEND | (self.next_id & !(UD_SEND | UD_CANCEL)));
                if unsafe { sq.push(&e) }.is_err() {
                    break;
                }
                self.next_id += 1;
                pushed += 1;
                self.queued_bytes += self.step;
            }
        }
        s.inflight += pushed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn support_is_probed_without_panicking() {
        let s = support();
        match &s.unavailable {
            // Disabled or blocked here: the cause is recorded with the error.
            Some(
                UringUnavailable::NoSyscall
                | UringUnavailable::DisabledBySysctl { .. }
                | UringUnavailable::Blocked
                | UringUnavailable::SetupFailed,
            ) => assert!(s.setup_error.is_some(), "{s:?}"),
            Some(_) => assert!(s.op_send_zc.is_some() || s.report_usage.is_some(), "{s:?}"),
            None => {
                assert_eq!(s.op_send_zc, Some(true), "{s:?}");
                assert_eq!(s.report_usage, Some(true), "{s:?}");
            }
        }
    }
}
