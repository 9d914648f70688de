//! Netfilter queueing on the path: the queue rules (nft `queue`, iptables-nft `NFQUEUE`) of
//! each namespace the diagnosed way crosses, in a chain whose hook that namespace's traffic
//! passes, and the readers bound to their queues. The rule `nfqueue_on_path` judges them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::hops::{Hop, every_hop, netns_label};
use crate::evidence::{BoundQueue, Evidence, HopRole, NfQueueScan, QueueRule};

/// One queue rule the diagnosed traffic passes.
pub struct QueueOnPath<'a> {
    pub hop: Hop<'a>,
    pub rule: &'a QueueRule,
    /// The hook the traffic meets it at (a regular chain's: the jumping base chain's).
    pub hook: &'a str,
    /// Expressions before the queue (or the jump to its chain) match: it may not take every
    /// packet.
    pub conditional: bool,
    /// Who reads its queues.
    pub reader: Reader<'a>,
}

/// The programs bound to a rule's queues.
pub enum Reader<'a> {
    /// None is bound: `bypass` accepts the packets, otherwise the kernel drops them.
    Nobody,
    Bound(Vec<&'a BoundQueue>),
    /// The namespace's bound queues could not be read.
    Unknown,
}

/// The hooks a hop's traffic passes in its namespace: a sender's own packets `output` and
/// `postrouting`; received packets `prerouting` and (forwarded) `forward`; forwarded ones
/// `forward` and `postrouting`; a tunnel's outer packets are sent locally. A lower device in
/// another namespace is transmitted to directly (no IP hook).
fn hooks_of(hop: &Hop) -> &'static [&'static str] {
    match hop.role {
        None | Some(HopRole::TunnelUnderlay) => &["output", "postrouting"],
        Some(HopRole::VethPeer | HopRole::MacvlanSibling | HopRole::IpvlanSibling) => {
            &["prerouting", "forward"]
        }
        Some(HopRole::ForwardedEgress) => &["forward", "postrouting"],
        Some(HopRole::StackedLower) => &[],
    }
}

/// The families whose tables see the traffic: `inet` always, `ip` or `ip6` by the
/// destination's family (both when it is not known).
fn families(ev: &Evidence) -> &'static [&'static str] {
    let target = ev
        .live
        .as_ref()
        .map(|l| l.target.ip())
        .or_else(|| ev.path.as_ref().and_then(|p| p.target));
    match target {
        Some(IpAddr::V4(_)) => &["inet", "ip"],
        Some(IpAddr::V6(_)) => &["inet", "ip6"],
        None => &["inet", "ip", "ip6"],
    }
}

/// The scan of hop `index` of the diagnosed way.
fn scan_of(ev: &Evidence, index: usize) -> Option<&NfQueueScan> {
    match index {
        0 => ev.nfqueue.as_ref(),
        i => ev.path.as_ref()?.segments.get(i - 1)?.nfqueue.as_ref(),
    }
}

/// Every queue rule on the diagnosed way, each once.
pub fn on_path(ev: &Evidence) -> Vec<QueueOnPath<'_>> {
    let families = families(ev);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for hop in every_hop(ev).into_iter().filter(|h| h.toward.is_none()) {
        let Some(scan) = scan_of(ev, hop.index) else {
            continue;
        };
        let hooks = hooks_of(&hop);
        for rule in scan
            .rules
            .iter()
            .filter(|r| families.contains(&r.family.as_str()))
        {
            let Some((hook, conditional)) = meets(rule, hooks) else {
                continue;
            };
            let key = (
                hop.netns_key,
                rule.family.as_str(),
                rule.table.as_str(),
                rule.chain.as_str(),
                rule.handle,
            );
            if seen.insert(key) {
                let reader = reader(scan, rule);
                out.push(QueueOnPath {
                    hop: hop.clone(),
                    rule,
                    hook,
                    conditional,
                    reader,
                });
            }
        }
    }
    out
}

/// The hook at which the traffic meets `rule`, and whether matches stand before it.
fn meets<'a>(rule: &'a QueueRule, hooks: &[&str]) -> Option<(&'a str, bool)> {
    let matches = !rule.matches.is_empty();
    if let Some(h) = &rule.hook {
        return hooks.contains(&h.as_str()).then_some((h.as_str(), matches));
    }
    let from = rule
        .reached_from
        .iter()
        .find(|j| hooks.contains(&j.hook.as_str()))?;
    Some((from.hook.as_str(), matches || from.conditional))
}

fn reader<'a>(scan: &'a NfQueueScan, rule: &QueueRule) -> Reader<'a> {
    match &scan.bound {
        None => Reader::Unknown,
        Some(bound) => {
            let readers: Vec<&BoundQueue> = bound.iter().filter(|b| rule.covers(b.queue)).collect();
            if readers.is_empty() {
                Reader::Nobody
            } else {
                Reader::Bound(readers)
            }
        }
    }
}

impl QueueOnPath<'_> {
    /// `nft rule ip table filter chain OUTPUT (hook output) handle 2 (queue 3 bypass) in
    /// namespace r (hop 2, …)`, with its comment.
    pub fn name(&self) -> String {
        let comment = match &self.rule.comment {
            Some(c) => format!(" \"{c}\""),
            None => String::new(),
        };
        let via = match &self.rule.hook {
            Some(_) => String::new(),
            None => format!(" (reached from hook {})", self.hook),
        };
        format!(
            "nft rule {}{via}{comment} ({}){}",
            self.rule.label(),
            self.rule.queue_label(),
            self.where_()
        )
    }

    fn where_(&self) -> String {
        match self.hop.netns {
            Some(_) => self.hop.whereabouts(),
            None => " in the sender's namespace".to_string(),
        }
    }

    /// The command that lists the rule's chain with handles, in its namespace.
    pub fn show(&self) -> String {
        let r = self.rule;
        self.hop.command(&format!(
            "nft -a list chain {} {} {}",
            r.family, r.table, r.chain
        ))
    }

    /// The command that deletes the rule, in its namespace.
    pub fn delete(&self) -> String {
        let r = self.rule;
        self.hop.command(&format!(
            "nft delete rule {} {} {} handle {}",
            r.family, r.table, r.chain, r.handle
        ))
    }

    /// The readers, as `queue 3 read by netlink port 812 (copy packet, range 65531)`.
    pub fn readers(&self) -> String {
        match &self.reader {
            Reader::Nobody => "no program reads its queue".to_string(),
            Reader::Unknown => "its readers could not be read".to_string(),
            Reader::Bound(b) => b
                .iter()
                .map(|q| {
                    format!(
                        "queue {} read by netlink port {} (copy mode {}, range {})",
                        q.queue,
                        q.portid,
                        q.mode_name(),
                        q.copy_range
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    pub fn evidence(&self) -> Value {
        let readers = match &self.reader {
            Reader::Bound(b) => json!(b),
            Reader::Nobody => json!([]),
            Reader::Unknown => Value::Null,
        };
        json!({
            "hop": self.hop.index + 1,
            "netns": self.hop.netns.map(netns_label),
            "hook": self.hook,
            "conditional": self.conditional,
            "rule": self.rule,
            "readers": readers,
        })
    }
}
