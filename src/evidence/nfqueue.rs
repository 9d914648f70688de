//! Netfilter queueing in one network namespace: the nftables rules that hand packets to a
//! userspace queue (the `queue` expression, and iptables-nft's `NFQUEUE` target, an xt target
//! in an nftables rule), read through nfnetlink (`NFT_MSG_GETCHAIN`, `NFT_MSG_GETRULE` dumps)
//! by the `nfqueue` probe.

use serde::{Deserialize, Serialize};

use super::OsError;

/// At most this many queue rules are recorded per namespace.
pub const MAX_QUEUE_RULES: usize = 64;
/// At most this many rules are read per namespace (of any kind) before the dump is left.
pub const MAX_NFT_RULES: usize = 20_000;

/// The queue rules of one namespace. Empty when it has none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct NfQueueScan {
    /// Rules that queue packets, in the kernel's dump order (at most [`MAX_QUEUE_RULES`]).
    #[serde(default)]
    pub rules: Vec<QueueRule>,
    /// nf_tables is a module that is not loaded: no nftables rule can exist, and the rule set
    /// was not asked for (asking would load it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nf_tables_absent: bool,
    /// How many nftables rules the namespace has (all kinds), as read.
    #[serde(default)]
    pub rules_read: usize,
    /// More rules than were read or recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// iptables-legacy tables present (`/proc/net/ip_tables_names`, `ip6_tables_names`):
    /// their rules are not in nftables and are not read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_tables: Vec<String>,
    /// The queues a program has bound (`/proc/net/netfilter/nfnetlink_queue` of the
    /// namespace; empty when nfnetlink_queue is not loaded); `None` when it could not be read.
    #[serde(default)]
    pub bound: Option<Vec<BoundQueue>>,
    /// What could not be read, as data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<NfQueueProblem>,
}

/// A queue a program reads (one line of `/proc/net/netfilter/nfnetlink_queue`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct BoundQueue {
    pub queue: u16,
    /// The reader's netlink port id (its pid for a process's first netlink socket).
    pub portid: u32,
    /// `NFQNL_COPY_NONE` 0, `NFQNL_COPY_META` 1, `NFQNL_COPY_PACKET` 2.
    pub copy_mode: u8,
    /// The most payload bytes copied to the reader per packet.
    pub copy_range: u32,
    /// Packets waiting for a verdict.
    #[serde(default)]
    pub waiting: u32,
    /// Packets dropped because the queue was full, and because the reader's socket was.
    #[serde(default)]
    pub dropped: u32,
    #[serde(default)]
    pub user_dropped: u32,
}

impl BoundQueue {
    /// Parses `queue portid waiting copy_mode copy_range dropped user_dropped id_sequence 1`
    /// (`seq_show` in net/netfilter/nfnetlink_queue.c, the same on 5.10 to 6.18).
    pub fn parse(line: &str) -> Option<BoundQueue> {
        let f: Vec<u32> = line
            .split_whitespace()
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        Some(BoundQueue {
            queue: u16::try_from(*f.first()?).ok()?,
            portid: *f.get(1)?,
            waiting: *f.get(2)?,
            copy_mode: u8::try_from(*f.get(3)?).ok()?,
            copy_range: *f.get(4)?,
            dropped: *f.get(5)?,
            user_dropped: *f.get(6)?,
        })
    }

    pub fn mode_name(&self) -> &'static str {
        match self.copy_mode {
            0 => "none",
            1 => "meta",
            2 => "packet",
            _ => "unknown",
        }
    }
}

/// One nftables rule with a `queue` expression (or an xt `NFQUEUE` target).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct QueueRule {
    /// The table's family: `ip`, `ip6`, `inet`, `bridge`, `netdev`, `arp`.
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The base chain's hook (`output`, `postrouting`, `forward`, `prerouting`, `input`,
    /// `ingress`, `egress`); `None` for a regular chain (reached only by a jump).
    #[serde(default)]
    pub hook: Option<String>,
    /// The base chain's priority.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Base chains (`table chain` in the same table) that jump or go to this regular chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reached_from: Vec<JumpFrom>,
    /// The rule's handle: what `nft delete rule FAMILY TABLE CHAIN handle N` names.
    pub handle: u64,
    /// The first queue number.
    pub queue: u16,
    /// How many queues from `queue` on (fanout or balance); 1 for one queue.
    #[serde(default = "one")]
    pub queues: u16,
    /// `bypass`: with no program listening on the queue the packet is accepted.
    #[serde(default)]
    pub bypass: bool,
    /// `fanout`: the queue is chosen by CPU.
    #[serde(default)]
    pub fanout: bool,
    /// The queue number comes from a register (`queue to EXPR`): `queue` is meaningless.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_register: bool,
    /// `queue` for nftables' own expression, `xt NFQUEUE` for iptables-nft's target.
    pub expression: String,
    /// The expressions before the queue (matches: `payload`, `cmp`, `meta`, …; `counter`
    /// does not match and is left out): empty when the rule queues every packet it sees.
    #[serde(default)]
    pub matches: Vec<String>,
    /// The rule's comment (`NFTNL_UDATA_RULE_COMMENT` in its user data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

fn one() -> u16 {
    1
}

/// A base chain that reaches a regular chain by `jump` or `goto`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct JumpFrom {
    pub chain: String,
    pub hook: String,
    /// The jumping rule has expressions before the jump (it does not jump for every packet).
    #[serde(default)]
    pub conditional: bool,
}

impl QueueRule {
    /// `inet table zc chain out (hook output) handle 4`.
    pub fn label(&self) -> String {
        let hook = match &self.hook {
            Some(h) => format!(" (hook {h})"),
            None => String::new(),
        };
        format!(
            "{} table {} chain {}{hook} handle {}",
            self.family, self.table, self.chain, self.handle
        )
    }

    /// Whether the rule can hand packets to queue `q`.
    pub fn covers(&self, q: u16) -> bool {
        self.from_register
            || (q >= self.queue
                && u32::from(q) < u32::from(self.queue) + u32::from(self.queues.max(1)))
    }

    /// `queue 3`, `queues 3-6`, with `bypass`, `fanout`.
    pub fn queue_label(&self) -> String {
        let mut s = if self.from_register {
            "queue chosen by a register".to_string()
        } else if self.queues > 1 {
            let last = u32::from(self.queue) + u32::from(self.queues) - 1;
            format!("queues {}-{last}", self.queue)
        } else {
            format!("queue {}", self.queue)
        };
        if self.bypass {
            s.push_str(" bypass");
        }
        if self.fanout {
            s.push_str(" fanout");
        }
        s
    }
}

/// What the probe could not read in a namespace.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NfQueueProblem {
    /// A dump failed (`EPROTONOSUPPORT`: the kernel has no nf_tables).
    DumpFailed { error: OsError },
    /// A reply did not decode, or failed without an errno.
    Malformed { detail: String },
    /// The namespace could not be entered: nothing of it was read.
    Unenterable { error: String },
}

impl std::fmt::Display for NfQueueProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NfQueueProblem::DumpFailed { error } => write!(f, "nftables: {error}"),
            NfQueueProblem::Malformed { detail } => write!(f, "nftables: {detail}"),
            NfQueueProblem::Unenterable { error } => f.write_str(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_queue_line_is_parsed() {
        let q =
            BoundQueue::parse("    3  11834     0 2 65531     0     0    37616  1").expect("line");
        assert_eq!(
            (q.queue, q.portid, q.copy_mode, q.copy_range),
            (3, 11834, 2, 65531)
        );
        assert_eq!(q.mode_name(), "packet");
        assert!(BoundQueue::parse("3 x").is_none());
    }
}
