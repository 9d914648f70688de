//! Offload analysis: which devices of the path lack scatter-gather or TX checksum offload,
//! which the kernel needs on every device the traffic is transmitted through (UDP decides at
//! send time and copies at once without them; TCP linearises, copies, at transmit).
//!
//! [`Carriers`] sorts the hops by the address families whose ways cross each device;
//! [`lacking`] finds the lowest devices that lack an [`Offload`] ([`Lacking`]); the rules
//! `no_scatter_gather` and `no_tx_checksum` raise them, each with the summary, evidence and fix
//! [`Lacking`] writes.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::findings::{Code, Findings};
use super::hops::{Hop, Toward, Way, every_hop, with_toward};
use crate::evidence::{Device, DeviceKind, Evidence, HopRole, Protocol};
use crate::vocab::Severity;

/// Whether the traffic is transmitted through the hop's devices. A veth's peer (and the bridge
/// it is a port of) only receives it: their TX offloads play no part (measured: scatter-gather
/// or TX checksum off on the peer of a forwarding veth, 0 of 111,824 sends copied).
pub fn transmits(hop: &Hop) -> bool {
    !hop.role.is_some_and(HopRole::receives)
}

/// A feature group the kernel needs on every device of the path.
pub struct Offload {
    pub code: Code,
    pub label: &'static str,
    /// Any of these active satisfies the requirement.
    pub features: &'static [&'static str],
    /// The `ethtool -K` word that turns it on.
    pub ethtool_word: &'static str,
}

pub const SG: Offload = Offload {
    code: Code::NoScatterGather,
    label: "scatter-gather",
    features: &["tx-scatter-gather"],
    ethtool_word: "sg",
};

pub const CSUM_V4: Offload = Offload {
    code: Code::NoTxChecksum,
    label: "TX checksum offload (IPv4)",
    features: &["tx-checksum-ip-generic", "tx-checksum-ipv4"],
    ethtool_word: "tx",
};

pub const CSUM_V6: Offload = Offload {
    code: Code::NoTxChecksum,
    label: "TX checksum offload (IPv6)",
    features: &["tx-checksum-ip-generic", "tx-checksum-ipv6"],
    ethtool_word: "tx",
};

/// The hops whose devices transmit the traffic, and of them the devices each address family
/// crosses (which checksum a device needs follows the families of the ways through it).
pub struct Carriers<'a> {
    /// Every transmitting hop of a way that does not deliver locally.
    pub all: Vec<Hop<'a>>,
    /// Only the devices IPv6 traffic crosses.
    pub v6: Vec<Hop<'a>>,
    /// Only the devices IPv4 traffic crosses.
    pub v4: Vec<Hop<'a>>,
    /// Only the devices that IPv4 traffic crosses and IPv6 traffic does not.
    pub v4_only: Vec<Hop<'a>>,
}

impl<'a> Carriers<'a> {
    pub fn of(ev: &'a Evidence, ways: &[Way<'a>], hops: &[Hop<'a>]) -> Carriers<'a> {
        // Loopback and tun copy anyway: the offloads of a way that starts there are beside
        // the point.
        let delivers_locally: Vec<Option<Toward>> = ways
            .iter()
            .filter(|w| {
                w.stack
                    .first()
                    .is_some_and(|d| matches!(d.kind, DeviceKind::Loopback | DeviceKind::Tun))
            })
            .map(|w| w.toward)
            .collect();
        let families = families(ev, &delivers_locally);
        let all: Vec<Hop> = hops
            .iter()
            .filter(|h| !delivers_locally.contains(&h.toward) && transmits(h))
            .cloned()
            .collect();
        // The hops with only the devices whose families pass `carries`.
        let only = |carries: &dyn Fn((bool, bool)) -> bool| -> Vec<Hop<'a>> {
            all.iter()
                .cloned()
                .filter_map(|mut h| {
                    let key = h.netns_key;
                    h.stack
                        .retain(|d| families.get(&(key, d.ifindex)).is_some_and(|f| carries(*f)));
                    (!h.stack.is_empty()).then_some(h)
                })
                .collect()
        };
        Carriers {
            v6: only(&|(_, v6)| v6),
            v4: only(&|(v4, _)| v4),
            v4_only: only(&|(v4, v6)| v4 && !v6),
            all,
        }
    }
}

/// Whether IPv4 and IPv6 traffic crosses each device (by namespace and ifindex), over every
/// hop of every way that does not deliver locally.
fn families(
    ev: &Evidence,
    delivers_locally: &[Option<Toward>],
) -> HashMap<(u64, u32), (bool, bool)> {
    let v6_main = ev.live.as_ref().is_some_and(|l| l.target.is_ipv6())
        || ev
            .path
            .as_ref()
            .and_then(|p| p.target)
            .or(ev.serving.as_ref().map(|s| s.peer))
            .is_some_and(|t| t.is_ipv6());
    let mut families: HashMap<(u64, u32), (bool, bool)> = HashMap::new();
    for h in every_hop(ev)
        .iter()
        .filter(|h| !delivers_locally.contains(&h.toward))
    {
        let v6 = h.toward.map_or(v6_main, |t| t.peer.is_ipv6());
        for d in &h.stack {
            let f = families.entry((h.netns_key, d.ifindex)).or_default();
            if v6 {
                f.1 = true;
            } else {
                f.0 = true;
            }
        }
    }
    families
}

/// What the hops say about one offload.
pub enum Coverage<'h, 'a> {
    /// No device lacks it: the devices whose features were read (for the pass line).
    On(Vec<&'a str>),
    /// The lowest devices that lack it.
    Lacking(Vec<Lacking<'h, 'a>>),
}

/// A device that lacks an offload, not only because a lower device does.
pub struct Lacking<'h, 'a> {
    pub hop: &'h Hop<'a>,
    pub dev: &'a Device,
    pub offload: &'static Offload,
    /// The devices above it that lack the offload because it does.
    pub affects: Vec<String>,
    /// Requested on, but off (a stale aggregate).
    pub requested: bool,
    /// The driver does not let it change.
    pub fixed: bool,
}

fn lacks(offload: &Offload, d: &Device) -> bool {
    d.features
        .as_ref()
        .is_some_and(|f| !offload.features.iter().any(|name| f.is_active(name)))
}

/// Whether every device of `hops` has `offload`, or which lowest devices lack it: an upper
/// device that lacks it only because a lower one does (bond, macvlan, vlan inherit) is listed
/// in `affects`, not repeated.
pub fn coverage<'h, 'a>(hops: &'h [Hop<'a>], offload: &'static Offload) -> Coverage<'h, 'a> {
    let any_lacking = hops
        .iter()
        .any(|h| h.stack.iter().any(|d| lacks(offload, d)));
    if !any_lacking {
        let checked = hops
            .iter()
            .flat_map(|h| h.stack.iter())
            .filter(|d| d.features.is_some())
            .map(|d| d.name.as_str())
            .collect();
        return Coverage::On(checked);
    }
    Coverage::Lacking(hops.iter().flat_map(|h| lacking_in(h, offload)).collect())
}

/// One hop's lowest devices that lack `offload`.
fn lacking_in<'h, 'a>(hop: &'h Hop<'a>, offload: &'static Offload) -> Vec<Lacking<'h, 'a>> {
    let lacking: Vec<&Device> = hop
        .stack
        .iter()
        .copied()
        .filter(|d| lacks(offload, d))
        .collect();
    let mut found = Vec::new();
    for dev in lacking.iter().copied() {
        let lower_lacks = dev
            .lowers
            .iter()
            .filter_map(|n| hop.recorded.iter().find(|d| &d.name == n))
            .any(|d| lacks(offload, d));
        if lower_lacks {
            continue; // reported at the lower device, with this one in `affects`
        }
        let affects = uppers_of(&hop.stack, &dev.name)
            .into_iter()
            .filter(|u| lacking.iter().any(|l| &l.name == u))
            .collect();
        let state = |name: &str| dev.features.as_ref().and_then(|f| f.get(name));
        found.push(Lacking {
            hop,
            dev,
            offload,
            affects,
            requested: state(offload.features[0]).is_some_and(|s| s.wanted),
            fixed: offload
                .features
                .iter()
                .all(|n| state(n).is_none_or(|s| s.fixed)),
        });
    }
    found
}

impl Lacking<'_, '_> {
    /// The finding's severity: `usual`, or at most a warning on a device that carries only
    /// some flows (a hashing bond's slave).
    pub fn severity(&self, usual: Severity) -> Severity {
        if self.hop.partial_clause(&self.dev.name).is_some() {
            usual.min(Severity::Warning)
        } else {
            usual
        }
    }

    /// `eth1: scatter-gather is off (below bond0 in the stack); UDP sends are copied …`.
    pub fn summary(&self, protocol: Protocol) -> String {
        let (dev, hop) = (self.dev, self.hop);
        let state_word = if self.requested {
            "off [requested on]"
        } else if self.fixed {
            "off [fixed]"
        } else {
            "off"
        };
        let role = if dev.depth == 0 {
            String::new()
        } else {
            format!(
                " (below {} in the stack)",
                dev.upper.as_deref().unwrap_or(hop.top())
            )
        };
        let when = match protocol {
            Protocol::Udp => "UDP sends are copied at send time",
            _ => "TCP sends are linearised (copied) at transmit",
        };
        let mut summary = format!(
            "{}: {} is {state_word}{role}{}; {when}",
            dev.name,
            self.offload.label,
            hop.whereabouts()
        );
        // A hashing bond's slave carries only some flows: a possibility, not a certainty.
        summary.push_str(hop.partial_clause(&dev.name).as_deref().unwrap_or_default());
        if !self.affects.is_empty() {
            summary.push_str(&format!(
                " (also makes {} lack it)",
                self.affects.join(", ")
            ));
        }
        summary
    }

    /// What to do: re-evaluate a stale aggregate, give up on a fixed feature, or turn it on
    /// (in the hop's namespace) and persist it.
    pub fn remediation(&self) -> Vec<String> {
        let (dev, offload) = (self.dev, self.offload);
        let aggregate = matches!(
            dev.kind,
            DeviceKind::Bond | DeviceKind::Team | DeviceKind::Bridge
        );
        let mut fix = Vec::new();
        if aggregate && self.requested {
            let members: Vec<&str> = dev.lowers.iter().map(String::as_str).collect();
            fix.push(format!(
                "{} computes its features from its members ({}), which report {} on: the bond's own set is stale. Re-evaluate it with `ethtool -K {} {} on`, or release and re-add one member (`ip link set MEMBER nomaster; ip link set MEMBER master {}`).",
                dev.name,
                if members.is_empty() { "none".to_string() } else { members.join(", ") },
                offload.label,
                dev.name,
                offload.ethtool_word,
                dev.name
            ));
            fix.push(format!(
                "Check the members' vlan features too (`ethtool -k MEMBER`): a {} derives its offloads from its members' (vlan) features.",
                dev.kind.as_str()
            ));
        } else if self.fixed && !self.requested {
            fix.push(format!(
                "{}'s driver does not let {} change ([fixed]): zerocopy cannot work through this device. Send through a device whose driver supports it.",
                dev.name, offload.label
            ));
        } else {
            fix.push(self.hop.command(&format!(
                "ethtool -K {} {} on",
                dev.name, offload.ethtool_word
            )));
            fix.push(format!(
                "Persist it in the interface's configuration (systemd .link `{}=true`, NetworkManager `ethtool.feature-{}`).",
                link_file_key(offload.ethtool_word),
                offload.features[0]
            ));
        }
        if !self.affects.is_empty() {
            let one = self.affects.len() == 1;
            fix.push(format!(
                "{} {} {} and {} once it is fixed.",
                self.affects.join(", "),
                if one { "follows" } else { "follow" },
                dev.name,
                if one { "recovers" } else { "recover" }
            ));
        }
        fix
    }

    /// The device, where it is, what it affects and the states of the offload's features.
    pub fn evidence(&self, protocol: Protocol) -> Value {
        let (dev, hop) = (self.dev, self.hop);
        let states: Map<String, Value> = self
            .offload
            .features
            .iter()
            .filter_map(|name| {
                let st = dev.features.as_ref()?.get(name)?;
                Some((name.to_string(), json!(st)))
            })
            .collect();
        let mut evidence = json!({
            "device": dev.name,
            "kind": dev.kind.as_str(),
            "depth": dev.depth,
            "upper": dev.upper,
            "affects": self.affects,
            "protocol": protocol.as_str(),
            "features": states,
        });
        if let Value::Object(map) = &mut evidence {
            if let Some(ns) = hop.netns {
                map.insert("netns".into(), json!(ns));
            }
            if hop.netns.is_some() || hop.toward.is_some() {
                map.insert("hop".into(), json!(hop.index + 1));
            }
        }
        with_toward(&mut evidence, hop.toward);
        evidence
    }
}

/// At most this many device names in one line; the rest are counted.
const NAMES_LISTED: usize = 8;

/// `a, b, c`, or for a bridge with hundreds of ports `a, b, …, g and 193 more`.
pub fn name_list(names: &[&str]) -> String {
    if names.len() <= NAMES_LISTED {
        return names.join(", ");
    }
    let shown = NAMES_LISTED - 1;
    format!(
        "{} and {} more",
        names[..shown].join(", "),
        names.len() - shown
    )
}

fn link_file_key(word: &str) -> &'static str {
    match word {
        "sg" => "ScatterGather",
        _ => "TransmitChecksumOffload",
    }
}

/// Every device above `name` in the stack, nearest first.
fn uppers_of(stack: &[&Device], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = name.to_string();
    while let Some(up) = stack
        .iter()
        .find(|d| d.lowers.iter().any(|l| l == &current))
    {
        out.push(up.name.clone());
        current = up.name.clone();
    }
    out
}
/// Raises `offload.code` on the lowest devices of `hops` that lack `offload`, or passes it: the
/// one way `no-scatter-gather` and `no-tx-checksum` are raised. `usual` is the finding's
/// severity before a partial carrier lowers it; `None`: the knowledge base's.
pub fn raise(
    hops: &[Hop],
    protocol: Protocol,
    offload: &'static Offload,
    usual: Option<Severity>,
    out: &mut Findings,
) {
    let usual = usual
        .or_else(|| out.kb().entry(offload.code).map(|e| e.severity))
        .unwrap_or(Severity::Warning);
    match coverage(hops, offload) {
        Coverage::On(checked) if checked.is_empty() => {}
        Coverage::On(checked) => out.pass(
            offload.code.as_str(),
            format!("{} on: {}", offload.label, name_list(&checked)),
        ),
        Coverage::Lacking(lacking) => {
            for l in lacking {
                out.raise_as(
                    offload.code,
                    l.severity(usual),
                    l.summary(protocol),
                    l.evidence(protocol),
                    l.remediation(),
                );
            }
        }
    }
}
