//! `zcdoctor sink`: the receiving end of the live probe. Listens on one address for TCP and UDP,
//! discards what arrives, and prints each connection's (TCP) or peer's (UDP) totals to stdout
//! when it ends: bytes, duration, rate.
//!
//! Bounded: at most `max_conns` TCP connections at once (more are accepted and closed at once,
//! logged in at most one line a second) and as many tracked UDP peers (traffic from more is
//! counted in the summary only). A connection that sends less than `min_rate` bytes a second
//! over a [`RATE_WINDOW`], or lives longer than `max_conn_time`, is closed, so slow-drip and
//! silent peers cannot hold the slots real probes need; a connection or peer silent for
//! `idle_timeout` is closed or reported. A slot is free again as soon as its peer has closed:
//! the slot is released before the sink closes its end, and a new connection arriving while
//! every slot is taken waits up to [`SLOT_GRACE`] for one whose peer already left. Memory is
//! flat: a connection leaves nothing behind but its share of the totals, and only the last
//! [`HISTORY`] totals are kept. It stops after `duration` when one is given, or on Ctrl-C, and
//! then reports every connection and peer still open. Nothing a peer sends can make it panic:
//! it never looks at the bytes.

mod log;
mod summary;
mod tcp;
mod udp;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use log::{REFUSAL_LOG_PERIOD, RefusalLog};
pub use summary::{PeerTotal, SinkSummary};
use tcp::{ConnLimits, Slots, tcp_conn, wait_readable};
use udp::udp_loop;

/// How often blocked reads and the accept loop look at the stop flag and the clock.
const TICK: Duration = Duration::from_millis(100);
/// A connection must send `min_rate` bytes a second over each window this long (longer than
/// the live probe's 2 s grace after its zerocopy phase, when it sends nothing).
pub const RATE_WINDOW: Duration = Duration::from_secs(3);
/// How long a new connection waits for a slot when every slot is taken: the handlers of peers
/// that already closed release theirs within a scheduling delay. Not waited again within
/// [`REFUSAL_LOG_PERIOD`] of a refusal, so a flood is refused at full speed.
pub const SLOT_GRACE: Duration = Duration::from_millis(100);
/// Totals kept for the summary (the counts cover every connection and peer).
pub const HISTORY: usize = 64;

#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Most TCP connections at once, and most UDP peers tracked at once.
    pub max_conns: usize,
    /// A connection or peer silent this long is closed (TCP) or reported (UDP).
    pub idle_timeout: Duration,
    /// Stop after this long; `None`: until Ctrl-C.
    pub duration: Option<Duration>,
    /// Bytes a second a TCP connection must send, averaged over each [`RATE_WINDOW`]; slower
    /// ones are closed (`too slow`). 0 turns the check off.
    pub min_rate: u64,
    /// Longest life of a TCP connection (`deadline`).
    pub max_conn_time: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            max_conns: 16,
            idle_timeout: Duration::from_secs(30),
            duration: None,
            min_rate: 1024,
            max_conn_time: Duration::from_secs(600),
        }
    }
}

/// A bound sink: TCP listener and UDP socket on the same address and port.
pub struct Sink {
    tcp: TcpListener,
    udp: UdpSocket,
}

impl Sink {
    /// Binds TCP and UDP on `listen`; port 0 picks a free TCP port and uses it for UDP too.
    pub fn bind(listen: SocketAddr) -> anyhow::Result<Sink> {
        let tcp =
            TcpListener::bind(listen).with_context(|| format!("cannot listen on tcp {listen}"))?;
        let addr = tcp
            .local_addr()
            .context("cannot read the listening address")?;
        let udp = UdpSocket::bind(addr).with_context(|| format!("cannot bind udp {addr}"))?;
        Ok(Sink { tcp, udp })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.tcp
            .local_addr()
            .context("cannot read the listening address")
    }

    /// Receives until `opts.duration` has passed or `stop` is set; prints a line per connection
    /// and peer to stdout as each ends, then a summary line.
    pub fn serve(self, opts: &SinkOptions, stop: &AtomicBool) -> anyhow::Result<SinkSummary> {
        let start = Instant::now();
        let deadline = opts.duration.map(|d| start + d);
        let done = AtomicBool::new(false);
        let max_conns = opts.max_conns.max(1);
        let slots = Slots::new(max_conns);
        self.tcp
            .set_nonblocking(true)
            .context("cannot make the listener non-blocking")?;
        self.udp
            .set_read_timeout(Some(TICK))
            .context("cannot set a UDP read timeout")?;
        let udp = &self.udp;
        let done_ref = &done;
        // Only this thread prints: the caller may hold the stdout lock (the CLI does), and a
        // worker thread printing would then wait for it forever.
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();

        let mut summary = std::thread::scope(|s| {
            let udp_lines = lines_tx.clone();
            let udp_thread = s.spawn(move || udp_loop(udp, opts, max_conns, done_ref, &udp_lines));
            let mut tcp = Acceptor::new(&self.tcp, opts, max_conns, &slots, done_ref, lines_tx);
            loop {
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if tcp.accept_next(s) == Accepted::Refused {
                    continue;
                }
                tcp.refusals.flush_due(max_conns);
                while let Ok(line) = lines_rx.try_recv() {
                    print_line(&line);
                }
                tcp.join_finished();
            }
            done.store(true, Ordering::SeqCst);
            tcp.finish(udp_thread, &lines_rx)
        });
        summary.tcp.sort_by_key(|t| t.peer);
        let bytes = summary
            .tcp_bytes
            .saturating_add(summary.udp_bytes)
            .saturating_add(summary.untracked_udp_bytes);
        print_line(&format!(
            "sink: {} tcp connections ({} rejected), {} udp peers, {bytes} bytes in {:.3} s",
            summary.tcp_connections,
            summary.rejected,
            summary.udp_peers,
            start.elapsed().as_secs_f64()
        ));
        Ok(summary)
    }
}

/// What one look at the listener gave.
#[derive(PartialEq)]
enum Accepted {
    /// A connection, now served by its own thread; or nothing (no connection, an error).
    Served,
    /// A connection closed at once: every slot stayed taken.
    Refused,
}

/// The TCP side of a serving sink: the listener, the connections being served (each on its own
/// scoped thread), the totals of those that ended, and the refusals.
struct Acceptor<'scope> {
    listener: &'scope TcpListener,
    opts: &'scope SinkOptions,
    max_conns: usize,
    slots: &'scope Slots,
    /// Set when the sink stops: the connections end.
    done: &'scope AtomicBool,
    /// Where each connection sends its line when it ends.
    lines: Sender<String>,
    conns: Vec<ScopedJoinHandle<'scope, PeerTotal>>,
    totals: SinkSummary,
    rejected: u64,
    last_refusal: Option<Instant>,
    refusals: RefusalLog,
}

impl<'scope> Acceptor<'scope> {
    fn new(
        listener: &'scope TcpListener,
        opts: &'scope SinkOptions,
        max_conns: usize,
        slots: &'scope Slots,
        done: &'scope AtomicBool,
        lines: Sender<String>,
    ) -> Acceptor<'scope> {
        Acceptor {
            listener,
            opts,
            max_conns,
            slots,
            done,
            lines,
            conns: Vec::new(),
            totals: SinkSummary::default(),
            rejected: 0,
            last_refusal: None,
            refusals: RefusalLog {
                pending: 0,
                first: None,
                last_line: None,
            },
        }
    }

    /// Waits up to a [`TICK`] for a connection, and serves it or refuses it.
    fn accept_next<'env>(&mut self, s: &'scope Scope<'scope, 'env>) -> Accepted {
        wait_readable(self.listener.as_raw_fd(), TICK);
        match self.listener.accept() {
            Ok((stream, peer)) => return self.admit(s, stream, peer),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE and friends: do not spin.
                eprintln!("zcdoctor sink: accept: {e}");
                std::thread::sleep(TICK);
            }
        }
        Accepted::Served
    }

    /// A slot for `stream` (waiting up to [`SLOT_GRACE`] for one, unless a connection was
    /// refused lately) and a thread that serves it; refused when no slot comes free.
    fn admit<'env>(
        &mut self,
        s: &'scope Scope<'scope, 'env>,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Accepted {
        let grace = if self
            .last_refusal
            .is_some_and(|t: Instant| t.elapsed() < REFUSAL_LOG_PERIOD)
        {
            Duration::ZERO
        } else {
            SLOT_GRACE
        };
        if !self.slots.take(grace) {
            self.last_refusal = Some(Instant::now());
            self.rejected += 1;
            self.refusals.refused(peer, self.max_conns);
            drop(stream);
            return Accepted::Refused;
        }
        let limits = ConnLimits::of(self.opts);
        let conn_lines = self.lines.clone();
        let (slots, done) = (self.slots, self.done);
        let spawned = std::thread::Builder::new()
            .name("sink conn".to_string())
            .spawn_scoped(s, move || {
                let mut stream = stream;
                let mut buf = slots.buffer();
                let total = tcp_conn(&mut stream, &mut buf, peer, &limits, done);
                slots.give_back(buf);
                // Free the slot before closing: a peer that waits for the close may connect
                // again at once, and must find it free.
                slots.release();
                drop(stream);
                let _ = conn_lines.send(total.line());
                total
            });
        match spawned {
            Ok(handle) => self.conns.push(handle),
            Err(e) => {
                self.slots.release();
                eprintln!("zcdoctor sink: cannot start a thread for {peer}: {e}");
            }
        }
        Accepted::Served
    }

    /// Joins the connections that ended, keeping their totals.
    fn join_finished(&mut self) {
        let mut i = 0;
        while i < self.conns.len() {
            if self.conns[i].is_finished() {
                if let Ok(total) = self.conns.swap_remove(i).join() {
                    self.totals.add_tcp(total);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Once the sink stopped: the last refusals logged, every connection and the UDP side
    /// joined, the lines still queued printed, and the summary of both sides.
    fn finish(
        mut self,
        udp_thread: ScopedJoinHandle<'scope, SinkSummary>,
        lines_rx: &Receiver<String>,
    ) -> SinkSummary {
        self.refusals.flush(self.max_conns);
        let mut summary = udp_thread.join().unwrap_or_default();
        for handle in self.conns {
            if let Ok(total) = handle.join() {
                self.totals.add_tcp(total);
            }
        }
        debug_assert_eq!(self.slots.open(), 0);
        summary.tcp = self.totals.tcp;
        summary.tcp_connections = self.totals.tcp_connections;
        summary.tcp_bytes = self.totals.tcp_bytes;
        drop(self.lines);
        while let Ok(line) = lines_rx.try_recv() {
            print_line(&line);
        }
        summary.rejected = self.rejected;
        summary
    }
}

/// `zcdoctor sink`: binds `listen`, then serves until `opts.duration` or until `stop` is set
/// (the command line sets it on Ctrl-C).
pub fn run(listen: SocketAddr, opts: SinkOptions, stop: &AtomicBool) -> anyhow::Result<()> {
    let sink = Sink::bind(listen)?;
    eprintln!(
        "zcdoctor sink: listening on tcp and udp {} (Ctrl-C to stop)",
        sink.local_addr()?
    );
    sink.serve(&opts, stop)?;
    Ok(())
}

/// A line on stdout; a closed stdout is not a reason to panic. Called only from the thread
/// that runs [`Sink::serve`].
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{Shutdown, TcpStream};

    fn loopback_sink(opts: SinkOptions) -> (SocketAddr, std::thread::JoinHandle<SinkSummary>) {
        let sink = Sink::bind("127.0.0.1:0".parse().expect("literal")).expect("bind");
        let addr = sink.local_addr().expect("addr");
        let handle = std::thread::spawn(move || {
            let stop = AtomicBool::new(false);
            sink.serve(&opts, &stop).expect("serve")
        });
        (addr, handle)
    }

    #[test]
    fn counts_tcp_and_udp_and_stops_after_duration() {
        let (addr, handle) = loopback_sink(SinkOptions {
            duration: Some(Duration::from_millis(800)),
            ..SinkOptions::default()
        });
        let mut c = TcpStream::connect(addr).expect("connect");
        c.write_all(&[0xff; 100_000]).expect("write");
        c.shutdown(Shutdown::Write).expect("shutdown");
        let u = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        for _ in 0..10 {
            u.send_to(&[1u8; 1000], addr).expect("send_to");
        }
        let start = Instant::now();
        let summary = handle.join().expect("sink thread");
        assert!(start.elapsed() < Duration::from_secs(3));
        assert_eq!(summary.tcp.len(), 1);
        assert_eq!(summary.tcp[0].bytes, 100_000);
        assert_eq!(summary.tcp[0].end, "peer closed");
        assert_eq!(summary.udp.len(), 1);
        assert_eq!(summary.udp[0].bytes, 10_000);
        assert_eq!(summary.udp[0].messages, 10);
    }

    #[test]
    fn bounds_connections_and_closes_idle_ones() {
        let (addr, handle) = loopback_sink(SinkOptions {
            max_conns: 2,
            idle_timeout: Duration::from_millis(300),
            duration: Some(Duration::from_millis(1200)),
            ..SinkOptions::default()
        });
        // Two half-open peers that never send, and a third that is rejected.
        let a = TcpStream::connect(addr).expect("a");
        let b = TcpStream::connect(addr).expect("b");
        std::thread::sleep(Duration::from_millis(150));
        let mut c = TcpStream::connect(addr).expect("c");
        c.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut byte = [0u8; 1];
        // The sink closes it: EOF or a reset, never data.
        assert!(matches!(c.read(&mut byte), Ok(0) | Err(_)));
        let summary = handle.join().expect("sink thread");
        drop((a, b));
        assert_eq!(summary.rejected, 1);
        assert_eq!(summary.tcp.len(), 2);
        assert!(summary.tcp.iter().all(|t| t.end == "idle"), "{summary:?}");
    }

    #[test]
    fn garbage_and_resets_do_not_hurt() {
        let (addr, handle) = loopback_sink(SinkOptions {
            duration: Some(Duration::from_millis(600)),
            ..SinkOptions::default()
        });
        let mut c = TcpStream::connect(addr).expect("connect");
        c.write_all(b"\x00\xffGET / HTTP/1.1\r\n\r\n")
            .expect("write");
        // SO_LINGER 0: close sends a reset.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: SO_LINGER with a linger struct.
        unsafe {
            libc::setsockopt(
                c.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(c);
        let summary = handle.join().expect("sink thread");
        assert_eq!(summary.tcp.len(), 1);
        // The reset may overtake the data: what counts is a clean end, not the count.
        assert!(summary.tcp[0].bytes <= 20, "{summary:?}");
    }

    /// The CLI holds the stdout lock while the sink runs: workers must not print themselves.
    #[test]
    fn serves_while_the_caller_holds_stdout() {
        let sink = Sink::bind("127.0.0.1:0".parse().expect("literal")).expect("bind");
        let addr = sink.local_addr().expect("addr");
        let handle = std::thread::spawn(move || {
            let _held = std::io::stdout().lock();
            let opts = SinkOptions {
                idle_timeout: Duration::from_millis(200),
                duration: Some(Duration::from_millis(900)),
                ..SinkOptions::default()
            };
            sink.serve(&opts, &AtomicBool::new(false)).expect("serve")
        });
        let mut c = TcpStream::connect(addr).expect("connect");
        c.write_all(&[7u8; 5000]).expect("write");
        drop(c);
        let u = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        u.send_to(&[1u8; 100], addr).expect("send_to");
        let start = Instant::now();
        while !handle.is_finished() {
            assert!(start.elapsed() < Duration::from_secs(5), "sink deadlocked");
            std::thread::sleep(Duration::from_millis(20));
        }
        let summary = handle.join().expect("sink thread");
        assert_eq!(summary.tcp.len(), 1);
        assert_eq!(summary.udp.len(), 1);
        assert_eq!(summary.udp[0].end, "idle");
    }
}
