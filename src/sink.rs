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

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// How often blocked reads and the accept loop look at the stop flag and the clock.
const TICK: Duration = Duration::from_millis(100);
const TCP_BUFFER: usize = 256 * 1024;
/// Larger than any UDP datagram.
const UDP_BUFFER: usize = 65536;
/// A connection must send `min_rate` bytes a second over each window this long (longer than
/// the live probe's 2 s grace after its zerocopy phase, when it sends nothing).
pub const RATE_WINDOW: Duration = Duration::from_secs(3);
/// How long a new connection waits for a slot when every slot is taken: the handlers of peers
/// that already closed release theirs within a scheduling delay. Not waited again within
/// [`REFUSAL_LOG_PERIOD`] of a refusal, so a flood is refused at full speed.
pub const SLOT_GRACE: Duration = Duration::from_millis(100);
/// Refusals are logged in one line per this period at most.
const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(1);
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

/// Totals of one TCP connection or one UDP peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerTotal {
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    pub peer: SocketAddr,
    pub bytes: u64,
    /// Reads (TCP) or datagrams (UDP).
    pub messages: u64,
    /// From the connection (TCP) or the first datagram (UDP) to the last data.
    pub seconds: f64,
    /// How it ended: `peer closed`, `idle`, `too slow`, `deadline`, `sink stopped`, or an
    /// error.
    pub end: String,
}

impl PeerTotal {
    pub fn bits_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 * 8.0 / self.seconds
        } else {
            0.0
        }
    }

    /// The line printed for it.
    pub fn line(&self) -> String {
        let unit = if self.protocol == "tcp" {
            "reads"
        } else {
            "datagrams"
        };
        format!(
            "{} {}: {} bytes in {} {unit}, {:.3} s, {} ({})",
            self.protocol,
            self.peer,
            self.bytes,
            self.messages,
            self.seconds,
            rate(self.bits_per_second()),
            self.end
        )
    }
}

/// What a sink received, once it stopped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkSummary {
    /// The last [`HISTORY`] TCP connections (each was printed when it ended).
    pub tcp: Vec<PeerTotal>,
    /// The last [`HISTORY`] UDP peers.
    pub udp: Vec<PeerTotal>,
    /// Every TCP connection served, and their bytes.
    pub tcp_connections: u64,
    pub tcp_bytes: u64,
    /// Every UDP peer tracked, and their bytes.
    pub udp_peers: u64,
    pub udp_bytes: u64,
    /// TCP connections closed at once because `max_conns` were open.
    pub rejected: u64,
    /// UDP bytes from peers beyond `max_conns`, not tracked one by one.
    pub untracked_udp_bytes: u64,
}

impl SinkSummary {
    fn add_tcp(&mut self, total: PeerTotal) {
        self.tcp_connections = self.tcp_connections.saturating_add(1);
        self.tcp_bytes = self.tcp_bytes.saturating_add(total.bytes);
        keep(&mut self.tcp, total);
    }

    fn add_udp(&mut self, total: PeerTotal) {
        self.udp_peers = self.udp_peers.saturating_add(1);
        self.udp_bytes = self.udp_bytes.saturating_add(total.bytes);
        keep(&mut self.udp, total);
    }
}

/// Appends `total`, dropping the oldest beyond [`HISTORY`].
fn keep(history: &mut Vec<PeerTotal>, total: PeerTotal) {
    if history.len() >= HISTORY {
        history.remove(0);
    }
    history.push(total);
}

/// The TCP connection slots: a count under a lock, and a condition signalled when one frees;
/// and the receive buffers of the slots, reused, so memory does not depend on how many
/// connections came and went (nor on which allocator arena each handler thread landed in).
struct Slots {
    open: Mutex<usize>,
    freed: Condvar,
    max: usize,
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            open: Mutex::new(0),
            freed: Condvar::new(),
            max,
            buffers: Mutex::new(Vec::new()),
        }
    }

    /// A receive buffer: a free one, or a new one (at most `max` exist, one per slot).
    fn buffer(&self) -> Vec<u8> {
        let free = self.buffers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        free.unwrap_or_else(|| vec![0u8; TCP_BUFFER])
    }

    fn give_back(&self, buf: Vec<u8>) {
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
    fn take(&self, grace: Duration) -> bool {
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

    fn release(&self) {
        let mut open = self.count();
        *open = open.saturating_sub(1);
        drop(open);
        self.freed.notify_one();
    }

    fn open(&self) -> usize {
        *self.count()
    }
}

/// At most one line per [`REFUSAL_LOG_PERIOD`] on stderr about refused connections.
struct RefusalLog {
    pending: u64,
    first: Option<SocketAddr>,
    last_line: Option<Instant>,
}

impl RefusalLog {
    fn refused(&mut self, peer: SocketAddr, max_conns: usize) {
        self.pending += 1;
        self.first.get_or_insert(peer);
        self.flush_due(max_conns);
    }

    fn flush_due(&mut self, max_conns: usize) {
        if self.pending > 0
            && self
                .last_line
                .is_none_or(|t| t.elapsed() >= REFUSAL_LOG_PERIOD)
        {
            self.flush(max_conns);
        }
    }

    fn flush(&mut self, max_conns: usize) {
        if let Some(first) = self.first.take() {
            eprintln!(
                "zcdoctor sink: closed {} tcp connection(s) (first from {first}): {max_conns} \
                 connections already open",
                self.pending
            );
            self.last_line = Some(Instant::now());
        }
        self.pending = 0;
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
        let slots_ref = &slots;
        // Only this thread prints: the caller may hold the stdout lock (the CLI does), and a
        // worker thread printing would then wait for it forever.
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();

        let mut summary = std::thread::scope(|s| {
            let udp_lines = lines_tx.clone();
            let udp_thread = s.spawn(move || udp_loop(udp, opts, max_conns, done_ref, &udp_lines));
            let mut conns = Vec::new();
            let mut tcp = SinkSummary::default();
            let mut rejected = 0u64;
            let mut last_refusal = None;
            let mut refusals = RefusalLog {
                pending: 0,
                first: None,
                last_line: None,
            };
            loop {
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                wait_readable(self.tcp.as_raw_fd(), TICK);
                match self.tcp.accept() {
                    Ok((stream, peer)) => {
                        let grace = if last_refusal
                            .is_some_and(|t: Instant| t.elapsed() < REFUSAL_LOG_PERIOD)
                        {
                            Duration::ZERO
                        } else {
                            SLOT_GRACE
                        };
                        if !slots.take(grace) {
                            last_refusal = Some(Instant::now());
                            rejected += 1;
                            refusals.refused(peer, max_conns);
                            drop(stream);
                            continue;
                        }
                        let limits = ConnLimits::of(opts);
                        let conn_lines = lines_tx.clone();
                        let spawned = std::thread::Builder::new()
                            .name("sink conn".to_string())
                            .spawn_scoped(s, move || {
                                let mut stream = stream;
                                let mut buf = slots_ref.buffer();
                                let total =
                                    tcp_conn(&mut stream, &mut buf, peer, &limits, done_ref);
                                slots_ref.give_back(buf);
                                // Free the slot before closing: a peer that waits for the
                                // close may connect again at once, and must find it free.
                                slots_ref.release();
                                drop(stream);
                                let _ = conn_lines.send(total.line());
                                total
                            });
                        match spawned {
                            Ok(handle) => conns.push(handle),
                            Err(e) => {
                                slots.release();
                                eprintln!("zcdoctor sink: cannot start a thread for {peer}: {e}");
                            }
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        // EMFILE and friends: do not spin.
                        eprintln!("zcdoctor sink: accept: {e}");
                        std::thread::sleep(TICK);
                    }
                }
                refusals.flush_due(max_conns);
                while let Ok(line) = lines_rx.try_recv() {
                    print_line(&line);
                }
                // Join the connections that ended, keeping their totals.
                let mut i = 0;
                while i < conns.len() {
                    if conns[i].is_finished() {
                        if let Ok(total) = conns.swap_remove(i).join() {
                            tcp.add_tcp(total);
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
            refusals.flush(max_conns);
            let mut summary = udp_thread.join().unwrap_or_default();
            for handle in conns {
                if let Ok(total) = handle.join() {
                    tcp.add_tcp(total);
                }
            }
            debug_assert_eq!(slots.open(), 0);
            summary.tcp = tcp.tcp;
            summary.tcp_connections = tcp.tcp_connections;
            summary.tcp_bytes = tcp.tcp_bytes;
            drop(lines_tx);
            while let Ok(line) = lines_rx.try_recv() {
                print_line(&line);
            }
            summary.rejected = rejected;
            summary
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

/// What a TCP connection may do before the sink closes it.
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    idle: Duration,
    min_rate: u64,
    max_time: Duration,
}

impl ConnLimits {
    fn of(opts: &SinkOptions) -> ConnLimits {
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
fn tcp_conn(
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

struct UdpPeer {
    bytes: u64,
    datagrams: u64,
    first: Instant,
    last: Instant,
}

impl UdpPeer {
    fn total(&self, peer: SocketAddr, end: &str) -> PeerTotal {
        PeerTotal {
            protocol: "udp",
            peer,
            bytes: self.bytes,
            messages: self.datagrams,
            seconds: self.last.duration_since(self.first).as_secs_f64(),
            end: end.to_string(),
        }
    }
}

/// Receives datagrams until `done`; a peer silent for the idle timeout is reported and
/// forgotten.
fn udp_loop(
    sock: &UdpSocket,
    opts: &SinkOptions,
    max_peers: usize,
    done: &AtomicBool,
    lines: &Sender<String>,
) -> SinkSummary {
    let mut summary = SinkSummary::default();
    let mut peers: HashMap<SocketAddr, UdpPeer> = HashMap::new();
    let mut buf = vec![0u8; UDP_BUFFER];
    let mut warned_full = false;
    let mut last_sweep = Instant::now();
    while !done.load(Ordering::Relaxed) {
        match sock.recv_from(&mut buf) {
            Ok((n, peer)) => {
                let now = Instant::now();
                if let Some(p) = peers.get_mut(&peer) {
                    p.bytes = p.bytes.saturating_add(n as u64);
                    p.datagrams += 1;
                    p.last = now;
                } else if peers.len() < max_peers {
                    peers.insert(
                        peer,
                        UdpPeer {
                            bytes: n as u64,
                            datagrams: 1,
                            first: now,
                            last: now,
                        },
                    );
                } else {
                    summary.untracked_udp_bytes =
                        summary.untracked_udp_bytes.saturating_add(n as u64);
                    if !warned_full {
                        warned_full = true;
                        eprintln!(
                            "zcdoctor sink: {max_peers} udp peers tracked; traffic from more \
                             (first {peer}) is only counted in the summary"
                        );
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            // ECONNREFUSED and the like from ICMP errors: not ours to act on.
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
        if last_sweep.elapsed() >= TICK {
            last_sweep = Instant::now();
            let idle: Vec<SocketAddr> = peers
                .iter()
                .filter(|(_, p)| p.last.elapsed() >= opts.idle_timeout)
                .map(|(a, _)| *a)
                .collect();
            for addr in idle {
                if let Some(p) = peers.remove(&addr) {
                    let total = p.total(addr, "idle");
                    let _ = lines.send(total.line());
                    summary.add_udp(total);
                }
            }
        }
    }
    let mut rest: Vec<(SocketAddr, UdpPeer)> = peers.into_iter().collect();
    rest.sort_by_key(|(addr, _)| *addr);
    for (addr, p) in rest {
        let total = p.total(addr, "sink stopped");
        let _ = lines.send(total.line());
        summary.add_udp(total);
    }
    summary
}

/// Waits up to `timeout` for `fd` to become readable.
fn wait_readable(fd: std::os::fd::RawFd, timeout: Duration) {
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

/// A line on stdout; a closed stdout is not a reason to panic. Called only from the thread
/// that runs [`Sink::serve`].
fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `2.46 Gbit/s`, `310.0 Mbit/s`, `12.0 kbit/s`.
fn rate(bits_per_second: f64) -> String {
    if bits_per_second >= 1e9 {
        format!("{:.2} Gbit/s", bits_per_second / 1e9)
    } else if bits_per_second >= 1e6 {
        format!("{:.1} Mbit/s", bits_per_second / 1e6)
    } else {
        format!("{:.1} kbit/s", bits_per_second / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Shutdown;

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

    #[test]
    fn formats_rates() {
        assert_eq!(rate(2.5e9), "2.50 Gbit/s");
        assert_eq!(rate(3.1e8), "310.0 Mbit/s");
        assert_eq!(rate(12e3), "12.0 kbit/s");
    }
}
