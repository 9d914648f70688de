//! TCP: one connection to a `zcdoctor sink`, made without blocking (so a silent target times
//! out and a stop request is seen), the pattern `stream` (64 KiB writes), and the send queue
//! flushed between the copy and the zerocopy phase.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{self, Shutdown, sockopt};

use super::phase::{AlignedBuf, Pattern, Transport};
use super::{Ctx, NotRunFact, socket as probe_socket};
use crate::evidence::{LiveProbe, NotRun, OsError, RunPattern};

/// TCP completions wait for ACKs of everything in flight.
const GRACE: Duration = Duration::from_secs(2);
/// Longest wait for the send queue to empty between the copy and the zerocopy phase.
const FLUSH: Duration = Duration::from_secs(1);
/// Longest wait for the target to answer the connection.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a pending connection looks at the stop flag.
const CONNECT_POLL: u16 = 100;
const SEND_SIZE: usize = 64 * 1024;

const TRANSPORT: Transport = Transport {
    grace: GRACE,
    between_phases: |fd| wait_flushed(fd, FLUSH),
};

pub(super) fn run(ctx: &mut Ctx, probe: &mut LiveProbe) {
    let opts = ctx.opts;
    let target = opts.target;
    let fd = match probe_socket::open(opts, &mut probe.notes) {
        Ok(fd) => fd,
        Err(error) => {
            NotRunFact {
                sentence: format!("cannot set up the probe's TCP socket: {error}"),
                cause: NotRun::Socket { error },
            }
            .record(probe);
            return;
        }
    };
    if let Err(fail) = connect(&fd, target, ctx.stop, CONNECT_TIMEOUT) {
        fail.into_fact(target).record(probe);
        return;
    }
    if let Some(route) = probe.route.as_mut() {
        if route.mtu.is_none() {
            route.mtu = probe_socket::path_mtu(&fd, target.is_ipv6()).ok();
        }
    }
    let pattern = Pattern {
        name: RunPattern::Stream,
        send_size: SEND_SIZE,
        gso_size: None,
    };
    let buf = AlignedBuf::new(pattern.send_size);
    let run = super::measure(ctx, &fd, &pattern, buf.as_slice(), &TRANSPORT);
    probe.runs.push(run);
    // Failure only means the peer is gone; the descriptor is closed on drop anyway.
    let _ = socket::shutdown(fd.as_raw_fd(), Shutdown::Write);
}

/// How a connection attempt ended without a connection.
#[derive(Debug, PartialEq)]
enum ConnectFail {
    Error(OsError),
    TimedOut(Duration),
    Interrupted,
}

impl ConnectFail {
    fn into_fact(self, target: SocketAddr) -> NotRunFact {
        let lead = format!("the TCP connection to {target}");
        let (sentence, error, timed_out, interrupted) = match self {
            ConnectFail::Error(e) => (format!("{lead} failed: {e}"), Some(e), false, false),
            ConnectFail::TimedOut(after) => (
                format!("{lead} was not answered within {after:?}"),
                None,
                true,
                false,
            ),
            ConnectFail::Interrupted => (
                format!("{lead} was stopped before it was answered"),
                None,
                false,
                true,
            ),
        };
        NotRunFact {
            sentence,
            cause: NotRun::Connect {
                error,
                timed_out,
                interrupted,
            },
        }
    }
}

/// A failed system call of the connection attempt.
fn fail(op: &'static str) -> impl Fn(Errno) -> ConnectFail {
    move |e| ConnectFail::Error(OsError::new(op, e))
}

/// Non-blocking connect with a timeout, so a silent target or a stop request cannot hang the
/// probe. The socket is blocking again afterwards.
fn connect(
    fd: &OwnedFd,
    target: SocketAddr,
    stop: &AtomicBool,
    timeout: Duration,
) -> Result<(), ConnectFail> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(fail("fcntl(F_GETFL)"))?;
    let flags = OFlag::from_bits_truncate(flags);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))
        .map_err(fail("fcntl(F_SETFL, O_NONBLOCK)"))?;
    match probe_socket::connect(fd, target) {
        Ok(()) => {}
        Err(Errno::EINPROGRESS) => {
            let start = Instant::now();
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Err(ConnectFail::Interrupted);
                }
                if start.elapsed() >= timeout {
                    return Err(ConnectFail::TimedOut(timeout));
                }
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::from(CONNECT_POLL)) {
                    Ok(n) if n > 0 => break,
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(fail("poll")(e)),
                }
            }
            let err = socket::getsockopt(fd, sockopt::SocketError)
                .map_err(fail("getsockopt(SO_ERROR)"))?;
            if err != 0 {
                return Err(fail("connect")(Errno::from_raw(err)));
            }
        }
        Err(e) => return Err(fail("connect")(e)),
    }
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(fail("fcntl(F_SETFL)"))?;
    Ok(())
}

/// Waits (up to `limit`) until the TCP send queue is empty, so the zerocopy phase does not
/// start behind the copy phase's data.
fn wait_flushed(fd: &OwnedFd, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut outq: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) on a socket we own writes one int to a valid pointer;
        // nix has no safe wrapper for it.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut outq) };
        if rc < 0 || outq == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, SockaddrIn};

    // These tests use loopback only: nothing leaves the host.

    fn tcp_socket() -> OwnedFd {
        socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .expect("socket")
    }

    fn is_blocking(fd: &OwnedFd) -> bool {
        let flags = fcntl(fd, FcntlArg::F_GETFL).expect("F_GETFL");
        !OFlag::from_bits_truncate(flags).contains(OFlag::O_NONBLOCK)
    }

    #[test]
    fn connects_and_restores_blocking_mode() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let target = listener.local_addr().expect("addr");
        let fd = tcp_socket();
        let stop = AtomicBool::new(false);
        assert_eq!(connect(&fd, target, &stop, Duration::from_secs(3)), Ok(()));
        assert!(is_blocking(&fd));
        wait_flushed(&fd, Duration::from_millis(100));
    }

    #[test]
    fn refusal_is_an_errno() {
        let target = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
            listener.local_addr().expect("addr")
        };
        let stop = AtomicBool::new(false);
        let fail = connect(&tcp_socket(), target, &stop, Duration::from_secs(3));
        assert_eq!(
            fail,
            Err(ConnectFail::Error(OsError::new(
                "connect",
                Errno::ECONNREFUSED
            )))
        );
        let fact = fail.expect_err("refused").into_fact(target);
        assert_eq!(
            fact.cause,
            NotRun::Connect {
                error: Some(OsError::new("connect", Errno::ECONNREFUSED)),
                timed_out: false,
                interrupted: false
            }
        );
        assert_eq!(
            fact.sentence,
            format!(
                "the TCP connection to {target} failed: connect: Connection refused \
                 (ECONNREFUSED)"
            )
        );
    }

    /// A listener whose accept queue is full (backlog 0, one connection not accepted): Linux
    /// drops further SYNs, so a connection attempt stays pending.
    fn silent_listener() -> (OwnedFd, std::net::TcpStream, SocketAddr) {
        let fd = tcp_socket();
        socket::bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind");
        socket::listen(&fd, Backlog::new(0).expect("backlog")).expect("listen");
        let addr: SockaddrIn = socket::getsockname(fd.as_raw_fd()).expect("getsockname");
        let target = SocketAddr::from(std::net::SocketAddrV4::from(addr));
        let filler = std::net::TcpStream::connect(target).expect("first connection");
        (fd, filler, target)
    }

    #[test]
    fn a_silent_target_times_out() {
        let (_listener, _filler, target) = silent_listener();
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let fail = connect(&tcp_socket(), target, &stop, Duration::from_millis(300));
        assert_eq!(fail, Err(ConnectFail::TimedOut(Duration::from_millis(300))));
        assert!(start.elapsed() < Duration::from_secs(1));
        let fact = fail.expect_err("timed out").into_fact(target);
        assert_eq!(
            fact.cause,
            NotRun::Connect {
                error: None,
                timed_out: true,
                interrupted: false
            }
        );
        assert_eq!(
            fact.sentence,
            format!("the TCP connection to {target} was not answered within 300ms")
        );
    }

    #[test]
    fn a_stop_request_ends_a_pending_connect() {
        let (_listener, _filler, target) = silent_listener();
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let fail = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::SeqCst);
            });
            connect(&tcp_socket(), target, &stop, Duration::from_secs(3))
        });
        assert_eq!(fail, Err(ConnectFail::Interrupted));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(
            fail.expect_err("interrupted").into_fact(target).cause,
            NotRun::Connect {
                error: None,
                timed_out: false,
                interrupted: true
            }
        );
    }
}
