//! The refusal log: connections closed at once because every slot was taken are summed up on
//! stderr in at most one line per [`REFUSAL_LOG_PERIOD`], so a flood cannot flood the log.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Refusals are logged in one line per this period at most.
pub(super) const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(1);

/// At most one line per [`REFUSAL_LOG_PERIOD`] on stderr about refused connections.
pub(super) struct RefusalLog {
    pub(super) pending: u64,
    pub(super) first: Option<SocketAddr>,
    pub(super) last_line: Option<Instant>,
}

impl RefusalLog {
    pub(super) fn refused(&mut self, peer: SocketAddr, max_conns: usize) {
        self.pending += 1;
        self.first.get_or_insert(peer);
        self.flush_due(max_conns);
    }

    pub(super) fn flush_due(&mut self, max_conns: usize) {
        if self.pending > 0
            && self
                .last_line
                .is_none_or(|t| t.elapsed() >= REFUSAL_LOG_PERIOD)
        {
            self.flush(max_conns);
        }
    }

    pub(super) fn flush(&mut self, max_conns: usize) {
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
