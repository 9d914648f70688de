//! TCP connections: the slots that bound how many are open at once (with their reused receive
//! buffers), the limits a connection must keep, and the handler that reads and discards one.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{PeerTotal, RATE_WINDOW, SinkOptions, TICK};

const TCP_BUFFER: usize = 256 * 1024;

/// The TCP connection slots: a count under a lock, and a condition signalled when one frees;
/// and the receive buffers of the slots, reused, so memory does not depend on how many
/// connections came and went (nor on which allocator arena each handler thread landed in).
pub(super) struct Slots {
    open: Mutex<usize>,
    freed: Condvar,
    max: usize,
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl Slots {
    pub(super) fn new(max: usize) -> Slots {
        Slots {
            open: Mutex::new(0),
            freed: Condvar::new(),
            max,
            buffers: Mutex::new(Vec::new()),
        }
    }

    /// A receive buffer: a free one, or a new one (at most `max` exist, one per slot).
    pub(super) fn buffer(&self) -> Vec<u8> {
        let free = self.buffers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        free.unwrap_or_else(|| vec![0u8; TCP_BUFFER])
    }

    pub(super) fn give_back(&self, buf: Vec<u8>) {
        let mut free = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.max {
            free.push(buf);
        }
    }

    fn count(&self) -> MutexGuard<'_, usize> {
        // A poisoned count is still a count: the handlers never panic while holding it.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot, waiting up to `grace` for one to free when all are taken.
    pub(super) fn take(&self, grace: Duration) -> bool {
        let open = self.count();
        let (mut open, _) = self
            .freed
            .wait_timeout_while(open, grace, |n| *n >= self.max)
            .unwrap_or_else(|e| e.into_inner());
        if *open >= self.max {
            return false;
        }
        *open += 1;
        true
    }

    pub(super) fn release(&self) {
        let mut open = self.count();
        *open = open.saturating_sub(1);
        drop(open);
        self.freed.notify_one();
    }

    pub(super) fn open(&self) -> usize {
        *self.count()
    }
}

/// What a TCP connection may do before the sink closes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnLimits {
    idle: Duration,
    min_rate: u64,
    max_time: Duration,
}

impl ConnLimits {
    pub(super) fn of(opts: &SinkOptions) -> ConnLimits {
        ConnLimits {
            idle: opts.idle_timeout,
            min_rate: opts.min_rate,
            max_time: opts.max_conn_time,
        }
    }

    /// Bytes a connection must send in one [`RATE_WINDOW`].
    fn window_bytes(&self) -> u64 {
        self.min_rate.saturating_mul(RATE_WINDOW.as_secs())
    }
}

/// Reads and discards one connection until it ends, it is too slow, or its time is up.
pub(super) fn tcp_conn(
    stream: &mut TcpStream,
    buf: &mut [u8],
    peer: SocketAddr,
    limits: &ConnLimits,
    done: &AtomicBool,
) -> PeerTotal {
    let start = Instant::now();
    let mut last = start;
    let mut bytes = 0u64;
    let mut reads = 0u64;
    let mut window_start = start;
    let mut window_bytes = 0u64;
    let end = match stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(TICK)))
    {
        Err(e) => format!("error: {e}"),
        Ok(()) => {
            loop {
                if done.load(Ordering::Relaxed) {
                    break "sink stopped".to_string();
                }
                match stream.read(buf) {
                    Ok(0) => break "peer closed".to_string(),
                    Ok(n) => {
                        bytes = bytes.saturating_add(n as u64);
                        window_bytes = window_bytes.saturating_add(n as u64);
                        reads += 1;
                        last = Instant::now();
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        if last.elapsed() >= limits.idle {
                            break "idle".to_string();
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => break format!("error: {e}"),
                }
                // Checked after every read and every TICK without data, so a peer that
                // drips a byte just before each TICK is judged as surely as a silent one.
                let now = Instant::now();
                if now.duration_since(start) >= limits.max_time {
                    break "deadline".to_string();
                }
                if now.duration_since(window_start) >= RATE_WINDOW {
                    if window_bytes < limits.window_bytes() {
                        break "too slow".to_string();
                    }
                    window_start = now;
                    window_bytes = 0;
                }
            }
        }
    };
    PeerTotal {
        protocol: "tcp",
        peer,
        bytes,
        messages: reads,
        seconds: last.duration_since(start).as_secs_f64(),
        end,
    }
}

/// Waits up to `timeout` for `fd` to become readable.
pub(super) fn wait_readable(fd: std::os::fd::RawFd, timeout: Duration) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd; the result only tells whether to try accept.
    unsafe {
        libc::poll(&mut pfd, 1, ms);
    }
}
