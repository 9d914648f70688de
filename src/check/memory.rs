//! Memory limits: `net.core.optmem_max` (notifications are charged to the socket's option
//! memory until read) and `RLIMIT_MEMLOCK` (pinned pages are charged to the user), and which
//! of them an ENOBUFS hit. The rules `optmem_low`, `zerocopy_enobufs`, `zerocopy_enomem` and
//! `memlock_limit` raise what these say.

use crate::evidence::Evidence;

/// One notification skb (SKB_TRUESIZE(0) on x86-64) is charged to optmem until its completion
/// is read; this many sends in flight per socket is a modest burst.
pub const NOTIFICATION_TRUESIZE: u64 = 576;
pub const BURST_IN_FLIGHT: u64 = 64;

/// The limit a zerocopy ENOBUFS ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    OptmemMax,
    Memlock,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::OptmemMax => "net.core.optmem_max",
            Limit::Memlock => "RLIMIT_MEMLOCK",
        }
    }
}

/// Which limit an ENOBUFS hit, from evidence: MEMLOCK only when it applies to the prober
/// (a finite limit and no CAP_IPC_LOCK).
pub fn enobufs_limit(ev: &Evidence) -> Limit {
    match &ev.process {
        Some(p) if !p.cap_ipc_lock && p.memlock_soft.is_some() => Limit::Memlock,
        _ => Limit::OptmemMax,
    }
}
