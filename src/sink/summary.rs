//! What the sink reports: the totals of one TCP connection or UDP peer, printed as each ends,
//! and the summary of all of them, kept within [`HISTORY`] entries.

use std::net::SocketAddr;

use super::HISTORY;

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
    pub(super) fn add_tcp(&mut self, total: PeerTotal) {
        self.tcp_connections = self.tcp_connections.saturating_add(1);
        self.tcp_bytes = self.tcp_bytes.saturating_add(total.bytes);
        keep(&mut self.tcp, total);
    }

    pub(super) fn add_udp(&mut self, total: PeerTotal) {
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

    #[test]
    fn formats_rates() {
        assert_eq!(rate(2.5e9), "2.50 Gbit/s");
        assert_eq!(rate(3.1e8), "310.0 Mbit/s");
        assert_eq!(rate(12e3), "12.0 kbit/s");
    }
}
