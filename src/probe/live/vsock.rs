//! The vsock live probe (`--target vsock:CID:PORT`): one AF_VSOCK stream connection to a
//! listener the operator runs, `SO_ZEROCOPY` set before `connect` (as applications do), then
//! MSG_ZEROCOPY sends of growing sizes, each run's completions read from the error queue
//! (`SOL_VSOCK` / `VSOCK_RECVERR`).
//!
//! The sizes straddle what the virtio transport can send without a copy: a send is copied when
//! it is larger than the peer's free credit (its receive buffer, 256 KiB by default, minus
//! what it has not read yet) or when it resumes in the middle of the user's buffer
//! (`virtio_transport_can_zcopy`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, VsockAddr};

use super::errqueue::{Completions, wait};
use crate::evidence::{Fact, OsError, VsockProbe, VsockRun};
use crate::probe::sockopt::setsockopt_int_raw;

/// Bytes per send of each run: a page, the largest skb one zerocopy send makes (64 KiB), the
/// default receive buffer of a vsock peer (256 KiB), and four times that.
pub const SIZES: [u64; 4] = [4096, 65536, 262144, 1048576];
/// At most this many sends per run.
const MAX_MESSAGES: u64 = 2000;
/// How long a run waits for its last completions.
const GRACE: Duration = Duration::from_secs(2);

/// What the probe is asked to do.
#[derive(Debug, Clone)]
pub struct VsockOptions {
    pub cid: u32,
    pub port: u32,
    /// Each run sends for at most this long.
    pub duration: Duration,
    /// All runs together send at most this many bytes.
    pub byte_cap: u64,
    /// The probe socket's SO_VM_SOCKETS_BUFFER_SIZE, set (with the maximum) before connect.
    pub buffer: Option<u64>,
}

/// Runs the probe; whatever fails is recorded, never raised.
pub fn run(opts: &VsockOptions, stop: &AtomicBool) -> VsockProbe {
    let mut probe = VsockProbe {
        cid: opts.cid,
        port: opts.port,
        so_zerocopy: Fact::Malformed("not attempted".to_string()),
        connect: Fact::Malformed("not attempted".to_string()),
        buffer_size: None,
        buffer_requested: None,
        runs: Vec::new(),
        interrupted: false,
    };
    let sock = match crate::probe::process::vsock::stream_socket() {
        Ok(s) => s,
        Err(e) => {
            probe.connect = Fact::Failed(e);
            return probe;
        }
    };
    let op = "setsockopt(SOL_SOCKET, SO_ZEROCOPY, 1)";
    probe.so_zerocopy = match setsockopt_int_raw(&sock, libc::SOL_SOCKET, libc::SO_ZEROCOPY, 1, op)
    {
        Ok(()) => Fact::Read(()),
        Err(e) => Fact::Failed(e),
    };
    if let Some(b) = opts.buffer {
        probe.buffer_requested = Some(b);
        if let Err(e) = set_buffer(&sock, b) {
            probe.connect = Fact::Failed(e);
            return probe;
        }
    }
    // A blocked send (a peer that stopped reading) must not hold the probe: at most 1 s.
    let timeout = nix::sys::time::TimeVal::new(1, 0);
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::SendTimeout, &timeout);
    let addr = VsockAddr::new(opts.cid, opts.port);
    // vsock's own connect timeout (SO_VM_SOCKETS_CONNECT_TIMEOUT, 2 s by default) bounds this.
    probe.connect = match nix::sys::socket::connect(sock.as_raw_fd(), &addr) {
        Ok(()) => Fact::Read(()),
        Err(e) => Fact::Failed(OsError::new(
            format!("connect(vsock:{}:{})", opts.cid, opts.port),
            e,
        )),
    };
    if probe.connect.value().is_none() {
        return probe;
    }
    probe.buffer_size = crate::probe::process::vsock::buffer_size(&sock, sock.as_raw_fd())
        .value()
        .copied();
    let per_run = opts.byte_cap / SIZES.len() as u64;
    for size in SIZES {
        if stop.load(Ordering::Relaxed) {
            probe.interrupted = true;
            break;
        }
        let r = one_run(&sock, size, opts.duration, per_run, stop);
        let refused = r
            .error
            .as_ref()
            .is_some_and(|e| e.errno == libc::EOPNOTSUPP);
        probe.runs.push(r);
        if refused {
            break;
        }
    }
    probe
}

/// `SO_VM_SOCKETS_BUFFER_MAX_SIZE` then `SO_VM_SOCKETS_BUFFER_SIZE` (u64s, `linux/vm_sockets.h`).
fn set_buffer(sock: &OwnedFd, bytes: u64) -> Result<(), OsError> {
    for (name, what) in [
        (2, "SO_VM_SOCKETS_BUFFER_MAX_SIZE"),
        (0, "SO_VM_SOCKETS_BUFFER_SIZE"),
    ] {
        // SAFETY: `sock` is an open socket we own; the value is a live u64 and its size.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::AF_VSOCK,
                name,
                (&raw const bytes).cast(),
                std::mem::size_of::<u64>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(OsError::new(
                format!("setsockopt(AF_VSOCK, {what}, {bytes})"),
                Errno::last(),
            ));
        }
    }
    Ok(())
}

/// MSG_ZEROCOPY sends of `size` bytes for at most `duration` and `cap` bytes, then the
/// completions they earned.
fn one_run(sock: &OwnedFd, size: u64, duration: Duration, cap: u64, stop: &AtomicBool) -> VsockRun {
    let buf = vec![0x5au8; size as usize];
    let mut run = VsockRun {
        message: size,
        ..VsockRun::default()
    };
    let mut done = Completions::new();
    let started = Instant::now();
    let flags = MsgFlags::from_bits_retain(libc::MSG_ZEROCOPY);
    while run.messages < MAX_MESSAGES
        && run.bytes + size <= cap.max(size)
        && started.elapsed() < duration
        && !stop.load(Ordering::Relaxed)
    {
        match nix::sys::socket::send(sock.as_raw_fd(), &buf, flags) {
            Ok(n) => {
                run.bytes += n as u64;
                if n as u64 == size {
                    run.messages += 1;
                }
            }
            // Notification memory (optmem) is full: read completions, then go on.
            Err(Errno::ENOBUFS) => {
                wait(sock.as_fd(), 10);
            }
            Err(Errno::EINTR) => {}
            Err(e) => {
                run.error = Some(OsError::new(format!("send({size} bytes, MSG_ZEROCOPY)"), e));
                break;
            }
        }
        // Bounded: a queue can hold only so many records (optmem).
        for _ in 0..4096 {
            if !done.read_one(sock.as_fd()) {
                break;
            }
        }
    }
    settle(sock, &mut done);
    run.completions = done.completions;
    run.copied = done.copied;
    run.records = done.records;
    run
}

/// Reads completions until none came for 300 ms, at most [`GRACE`].
fn settle(sock: &OwnedFd, done: &mut Completions) {
    let deadline = Instant::now() + GRACE;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_millis(300) {
        if done.read_one(sock.as_fd()) {
            quiet_since = Instant::now();
        } else {
            wait(sock.as_fd(), 50);
        }
    }
}
