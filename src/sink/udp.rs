//! UDP peers: datagrams counted per source address, at most `max_conns` peers tracked at once,
//! each reported when it falls silent or the sink stops.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::{PeerTotal, SinkOptions, SinkSummary, TICK};

/// Larger than any UDP datagram.
const UDP_BUFFER: usize = 65536;

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
pub(super) fn udp_loop(
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
