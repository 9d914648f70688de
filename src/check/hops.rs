//! The device stacks the traffic crosses, as the checks walk them: the diagnosed stack first,
//! then each segment of the path the path probe followed (another namespace's lower device, a
//! veth peer, the device a namespace forwards out of, a tunnel's underlay); then, for a process
//! diagnosed by pid, the same for each of its other destinations ([`Way`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::evidence::{
    Device, Entered, Evidence, HopRole, NetnsRef, Partial, PathEvidence, Segment, SocketRouting,
    off_path, partial_carriers,
};

/// Another destination of a process diagnosed by pid: its peer, and how its sockets are routed
/// when that sets them apart (two ways may lead to one peer, with another mark or device).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Toward<'a> {
    pub peer: IpAddr,
    pub routing: Option<&'a SocketRouting>,
}

impl std::fmt::Display for Toward<'_> {
    /// `198.18.2.2`, or `198.18.2.2 with mark 0x2a`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = self.routing.map(SocketRouting::label).unwrap_or_default();
        write!(f, "{}{label}", self.peer)
    }
}

/// One way out of the diagnosed namespace: the diagnosed one (`toward` `None`), or the way
/// toward another destination of the process diagnosed by pid.
pub struct Way<'a> {
    /// The other destination; `None` for the diagnosed way.
    pub toward: Option<Toward<'a>>,
    pub interface: &'a str,
    pub stack: &'a [Device],
    pub path: Option<&'a PathEvidence>,
}

impl Way<'_> {
    /// ` (on the way to ADDR)` for another destination, else empty: appended to what a check
    /// says about the way.
    pub fn label(&self) -> String {
        self.toward
            .map(|t| format!(" (on the way to {t})"))
            .unwrap_or_default()
    }
}

/// Adds the other destination a way goes to, to a finding's evidence: `toward` (the peer) and,
/// when its sockets' mark or bound device sets the way apart, `toward_routing`.
pub fn with_toward(evidence: &mut serde_json::Value, toward: Option<Toward>) {
    let (Some(t), Some(map)) = (toward, evidence.as_object_mut()) else {
        return;
    };
    map.insert("toward".into(), serde_json::json!(t.peer));
    if let Some(r) = t.routing.filter(|r| !r.label().is_empty()) {
        map.insert("toward_routing".into(), serde_json::json!(r));
    }
}

/// Every way out: the diagnosed one, then the other destinations of `check --pid`.
pub fn ways(ev: &Evidence) -> Vec<Way<'_>> {
    let mut ways = vec![Way {
        toward: None,
        interface: &ev.interface,
        stack: &ev.stack,
        path: ev.path.as_ref(),
    }];
    for r in ev.serving.iter().flat_map(|s| &s.routes) {
        ways.push(Way {
            toward: Some(Toward {
                peer: r.peer,
                routing: r.routing.as_ref(),
            }),
            interface: &r.interface,
            stack: &r.stack,
            path: r.path.as_ref(),
        });
    }
    ways
}

/// Where a way starts, as the rules of the path's first devices see it.
pub struct WayStart<'w, 'a> {
    pub way: &'w Way<'a>,
    /// The way's first device, unless an earlier way started at it (one device, one finding).
    pub new_top: Option<&'a Device>,
    /// The ifindexes of the earlier ways' stacks (a lower device elsewhere is named once).
    pub crossed_before: Vec<u32>,
}

/// Where each of `ways` starts.
pub fn way_starts<'w, 'a>(ways: &'w [Way<'a>]) -> Vec<WayStart<'w, 'a>> {
    let mut tops: Vec<u32> = Vec::new();
    let mut crossed: Vec<u32> = Vec::new();
    let mut starts = Vec::new();
    for way in ways {
        let new_top = way.stack.first().filter(|top| !tops.contains(&top.ifindex));
        tops.extend(new_top.map(|top| top.ifindex));
        starts.push(WayStart {
            way,
            new_top,
            crossed_before: crossed.clone(),
        });
        crossed.extend(way.stack.iter().map(|d| d.ifindex));
    }
    starts
}

/// One device stack on the path, in one namespace.
#[derive(Clone)]
pub struct Hop<'a> {
    /// 0 for the diagnosed stack, then 1, 2, … along the path.
    pub index: usize,
    /// The devices on the path: a bridge's ports its FDB does not send the traffic to are left
    /// out (see `BridgeChoice`).
    pub stack: Vec<&'a Device>,
    /// The namespace, for hops after the first (the diagnosed one is the probe's own).
    pub netns: Option<&'a NetnsRef>,
    pub role: Option<HopRole>,
    /// How zcdoctor entered the namespace (for commands that must run there).
    pub entered: Option<&'a Entered>,
    /// The other destination whose way this hop is on; `None` on the diagnosed way.
    pub toward: Option<Toward<'a>>,
    /// The hop's devices on the path, with those left out of `stack` because an earlier hop
    /// crossed them (to tell what a device inherits from such a lower one).
    pub recorded: Vec<&'a Device>,
    /// The hop's namespace inode, the diagnosed namespace's for the first hop of each way (0
    /// when unknown): with the ifindex, it names a device across ways.
    pub netns_key: u64,
    /// The first device of the hop's stack as recorded.
    top: &'a str,
    /// Devices that may carry only some of the traffic, each with its upper and why
    /// ([`partial_carriers`]).
    pub partial: BTreeMap<String, (String, Partial)>,
}

impl<'a> Hop<'a> {
    /// What makes `dev` carry only some of the traffic, as a clause for a finding's summary:
    /// `; bond0 (balance-xor) hashes each flow to one slave: …`; `None` when it carries all.
    pub fn partial_clause(&self, dev: &str) -> Option<String> {
        let (upper, why) = self.partial.get(dev)?;
        Some(match why {
            Partial::Hashed(mode) => format!(
                "; {upper} ({}) hashes each flow to one slave: only flows it sends by {dev} are affected, and a live probe with --target shows whether yours is",
                mode.as_str()
            ),
            Partial::PortUndecided => format!(
                "; {upper} is a bridge and no destination was given, so whether its FDB sends your traffic to {dev} is not known: give --target ADDR to decide"
            ),
        })
    }

    /// The name a device's "below X" refers to when it has no upper.
    pub fn top(&self) -> &'a str {
        self.top
    }

    /// Where this hop is, for sentences: empty for the diagnosed stack, else
    /// ` in namespace NAME (hop 2, veth peer)`.
    pub fn whereabouts(&self) -> String {
        let toward = self
            .toward
            .map(|t| format!(" on the way to {t}"))
            .unwrap_or_default();
        match (self.netns, self.role) {
            (Some(ns), Some(role)) => format!(
                " in namespace {} (hop {}{toward}, {})",
                netns_label(ns),
                self.index + 1,
                role_label(role)
            ),
            _ if self.toward.is_some() => format!(" ({})", toward.trim_start()),
            _ => String::new(),
        }
    }

    /// `cmd` as the operator runs it in this hop's namespace.
    pub fn command(&self, cmd: &str) -> String {
        match (self.netns, self.entered) {
            (None, _) | (_, Some(Entered::Current)) => cmd.to_string(),
            (
                Some(NetnsRef {
                    name: Some(name), ..
                }),
                _,
            ) => format!("ip netns exec {name} {cmd}"),
            (_, Some(Entered::Path { path })) => format!("nsenter --net={path} {cmd}"),
            (_, Some(Entered::Process { pid })) => {
                format!("nsenter --net=/proc/{pid}/ns/net {cmd}")
            }
            (Some(ns), None) => format!("nsenter --net=<net:[{}]> {cmd}", ns.inode),
        }
    }
}

/// Every stack on the path, diagnosed first; then the hops of each other way ([`ways`]),
/// without the devices an earlier hop already crossed (one device is one cause, whichever
/// destination crosses it), and without hops left empty by that.
pub fn hops(ev: &Evidence) -> Vec<Hop<'_>> {
    let mut hops: Vec<Hop> = Vec::new();
    let mut crossed: BTreeSet<(u64, u32)> = BTreeSet::new();
    for mut hop in every_hop(ev) {
        let key = hop.netns_key;
        let diagnosed_way = hop.toward.is_none();
        hop.stack
            .retain(|d| crossed.insert((key, d.ifindex)) || diagnosed_way);
        if !hop.stack.is_empty() {
            hops.push(hop);
        }
    }
    hops
}

/// Every hop of every way, devices crossed by several ways included in each.
pub fn every_hop(ev: &Evidence) -> Vec<Hop<'_>> {
    let diagnosed = diagnosed_netns(ev);
    // With a destination the bridges' FDB choice is read; without one a port is a maybe.
    let known = ev.live.is_some() || ev.path.as_ref().is_some_and(|p| p.target.is_some());
    let mut hops = Vec::new();
    for way in ways(ev) {
        let known = known || way.toward.is_some();
        hops.push(hop(0, way.stack, None, way.toward, diagnosed, known));
        for (i, seg) in way.path.iter().flat_map(|p| &p.segments).enumerate() {
            hops.push(hop(
                i + 1,
                &seg.stack,
                Some(seg),
                way.toward,
                diagnosed,
                known,
            ));
        }
    }
    hops
}

/// The inode of the diagnosed namespace, as far as the evidence says (0 when it does not).
fn diagnosed_netns(ev: &Evidence) -> u64 {
    let origins = std::iter::once(ev.path.as_ref())
        .chain(
            ev.serving
                .iter()
                .flat_map(|s| &s.routes)
                .map(|r| r.path.as_ref()),
        )
        .flatten()
        .map(|p| p.origin.inode);
    ev.taps
        .as_ref()
        .map(|t| t.diagnosed_netns)
        .into_iter()
        .chain(origins)
        .find(|i| *i != 0)
        .unwrap_or(0)
}

/// The hop of `stack`, the way's first (`seg` `None`) or a segment of its path.
fn hop<'a>(
    index: usize,
    stack: &'a [Device],
    seg: Option<&'a Segment>,
    toward: Option<Toward<'a>>,
    diagnosed: u64,
    destination_known: bool,
) -> Hop<'a> {
    Hop {
        index,
        stack: on_path(stack),
        netns: seg.map(|s| &s.netns),
        role: seg.map(|s| s.role),
        entered: seg.map(|s| &s.entered),
        toward,
        recorded: on_path(stack),
        netns_key: seg.map_or(diagnosed, |s| s.netns.inode),
        top: stack.first().map_or("", |d| d.name.as_str()),
        partial: partial_carriers(stack, destination_known),
    }
}

fn on_path(stack: &[Device]) -> Vec<&Device> {
    let off = off_path(stack);
    stack.iter().filter(|d| !off.contains(&d.name)).collect()
}

pub fn netns_label(ns: &NetnsRef) -> String {
    match &ns.name {
        Some(n) => format!("{n} (net:[{}])", ns.inode),
        None => format!("net:[{}]", ns.inode),
    }
}

pub fn role_label(role: HopRole) -> &'static str {
    match role {
        HopRole::StackedLower => "lower device",
        HopRole::VethPeer => "veth peer",
        HopRole::ForwardedEgress => "forwarded out",
        HopRole::TunnelUnderlay => "tunnel underlay",
        HopRole::MacvlanSibling => "macvlan sibling",
        HopRole::IpvlanSibling => "ipvlan sibling",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::fixture;

    /// A process whose sockets go four ways: every device is walked once, on the first way
    /// that crosses it, and the other ways' hops say where they lead.
    #[test]
    fn other_ways_add_only_devices_not_yet_crossed() {
        let ev = fixture("process-pid-many-ways");
        let ways = ways(&ev);
        assert_eq!(ways.len(), 4);
        assert_eq!(ways[0].toward, None);
        let hops = hops(&ev);
        let walked: Vec<(Option<String>, &str)> = hops
            .iter()
            .flat_map(|h| {
                h.stack
                    .iter()
                    .map(|d| (h.toward.map(|t| t.to_string()), d.name.as_str()))
            })
            .collect();
        assert_eq!(
            walked,
            [
                (None, "va"),
                (None, "vb"),
                (None, "ifbz"),
                (Some("198.18.3.2".to_string()), "ifbq"),
                (Some("198.18.1.1".to_string()), "lo"),
            ],
            "the way to 198.18.1.2 crosses only va and vb, both walked already"
        );
        let ifbq = &hops[3];
        assert_eq!(ifbq.index, 0);
        assert_eq!(ifbq.whereabouts(), " (on the way to 198.18.3.2)");
        assert!(ifbq.toward.is_some() && hops[0].toward.is_none());
    }
}
