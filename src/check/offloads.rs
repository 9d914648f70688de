//! Offloads: scatter-gather and TX checksum on every device of the stack. UDP decides at send
//! time and copies at once without them; TCP linearises (copies) at transmit.

use serde_json::{Map, Value, json};

use super::findings::{Code, Findings};
use std::collections::HashMap;

use super::hops::{Hop, Toward, every_hop, hops, ways, with_toward};
use crate::evidence::{Device, DeviceKind, Evidence, HopRole, ProbeName, ProbeState, Protocol};
use crate::vocab::Severity;

fn features_unreadable(ev: &Evidence, out: &mut Findings) {
    let unreadable: Vec<&str> = hops(ev)
        .iter()
        .filter(|h| transmits(h))
        .flat_map(|h| h.stack.iter())
        .filter(|d| d.features.is_none())
        .map(|d| d.name.as_str())
        .collect();
    if !unreadable.is_empty() {
        let why = ev
            .probes
            .iter()
            .find(|p| p.name == ProbeName::Features && p.status != ProbeState::Ok)
            .map(|p| p.detail.clone())
            .unwrap_or_default();
        out.raise(
            Code::FeaturesUnreadable,
            format!(
                "offload features of {} could not be read{}",
                unreadable.join(", "),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ),
            json!({"devices": unreadable, "reason": why}),
            unreadable
                .iter()
                .map(|d| {
                    format!("Inspect by hand: `ethtool -k {d} | grep -E 'scatter-gather|checksum'`")
                })
                .collect(),
        );
    }
}

/// Whether the traffic is transmitted through the hop's devices. A veth's peer (and the bridge
/// it is a port of) only receives it: their TX offloads play no part (measured: scatter-gather
/// or TX checksum off on the peer of a forwarding veth, 0 of 111,824 sends copied).
fn transmits(hop: &Hop) -> bool {
    !hop.role.is_some_and(HopRole::receives)
}

/// A feature group the kernel needs on every device of the path.
struct Offload {
    code: Code,
    label: &'static str,
    /// Any of these active satisfies the requirement.
    features: &'static [&'static str],
    /// The `ethtool -K` word that turns it on.
    ethtool_word: &'static str,
}

const SG: Offload = Offload {
    code: Code::NoScatterGather,
    label: "scatter-gather",
    features: &["tx-scatter-gather"],
    ethtool_word: "sg",
};

const CSUM_V4: Offload = Offload {
    code: Code::NoTxChecksum,
    label: "TX checksum offload (IPv4)",
    features: &["tx-checksum-ip-generic", "tx-checksum-ipv4"],
    ethtool_word: "tx",
};

const CSUM_V6: Offload = Offload {
    code: Code::NoTxChecksum,
    label: "TX checksum offload (IPv6)",
    features: &["tx-checksum-ip-generic", "tx-checksum-ipv6"],
    ethtool_word: "tx",
};

pub fn check(ev: &Evidence, protocol: Protocol, out: &mut Findings) {
    features_unreadable(ev, out);
    // Loopback and tun copy anyway: the offloads of a way that starts there are beside the
    // point.
    let delivers_locally: Vec<Option<Toward>> = ways(ev)
        .iter()
        .filter(|w| {
            w.stack
                .first()
                .is_some_and(|d| matches!(d.kind, DeviceKind::Loopback | DeviceKind::Tun))
        })
        .map(|w| w.toward)
        .collect();
    let v6_main = ev.live.as_ref().is_some_and(|l| l.target.starts_with('['))
        || ev
            .path
            .as_ref()
            .and_then(|p| p.target)
            .or(ev.serving.as_ref().map(|s| s.peer))
            .is_some_and(|t| t.is_ipv6());
    // Which checksum a device needs follows the families of the destinations whose ways cross
    // it (a device two ways share may carry both).
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
    let all: Vec<Hop> = hops(ev)
        .into_iter()
        .filter(|h| !delivers_locally.contains(&h.toward) && transmits(h))
        .collect();
    if all.is_empty() {
        return;
    }
    // The hops with only the devices whose families pass `carries`.
    let only = |carries: &dyn Fn((bool, bool)) -> bool| -> Vec<Hop> {
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
    let v6 = only(&|(_, v6)| v6);
    let v4 = only(&|(v4, _)| v4);
    offload(&all, protocol, &SG, Severity::Blocker, out);
    if !v6.is_empty() {
        offload(&v6, protocol, &CSUM_V6, Severity::Blocker, out);
    }
    if !v4.is_empty() {
        offload(&v4, protocol, &CSUM_V4, Severity::Blocker, out);
        // IPv6 matters too unless the probe showed the traffic is IPv4; a gap there is lesser.
        let v4_only = only(&|(v4, v6)| v4 && !v6);
        if !out.has(Code::NoTxChecksum) && !v4_only.is_empty() {
            offload(&v4_only, protocol, &CSUM_V6, Severity::Warning, out);
        }
    }
}

/// Raises `offload.code` on the lowest devices that lack it: an upper device that lacks it only
/// because a lower one does (bond, macvlan, vlan inherit) is listed in `affects`, not repeated.
fn offload(
    hops: &[Hop],
    protocol: Protocol,
    offload: &Offload,
    severity: Severity,
    out: &mut Findings,
) {
    let lacks = |d: &Device| {
        d.features
            .as_ref()
            .is_some_and(|f| !offload.features.iter().any(|name| f.is_active(name)))
    };
    let any_lacking = hops.iter().any(|h| h.stack.iter().any(|d| lacks(d)));
    if !any_lacking {
        let checked: Vec<&str> = hops
            .iter()
            .flat_map(|h| h.stack.iter())
            .filter(|d| d.features.is_some())
            .map(|d| d.name.as_str())
            .collect();
        if !checked.is_empty() {
            out.pass(
                offload.code.as_str(),
                format!("{} on: {}", offload.label, name_list(&checked)),
            );
        }
        return;
    }
    for hop in hops {
        offload_in(hop, protocol, offload, severity, &lacks, out);
    }
}

/// One hop's devices that lack `offload`.
fn offload_in(
    hop: &Hop,
    protocol: Protocol,
    offload: &Offload,
    severity: Severity,
    lacks: &dyn Fn(&Device) -> bool,
    out: &mut Findings,
) {
    let stack = &hop.stack;
    let lacking: Vec<&Device> = stack.iter().copied().filter(|d| lacks(d)).collect();
    for dev in &lacking {
        let lower_lacks = dev
            .lowers
            .iter()
            .filter_map(|n| hop.recorded.iter().find(|d| &d.name == n))
            .any(|d| lacks(d));
        if lower_lacks {
            continue; // reported at the lower device, with this one in `affects`
        }
        let affects = uppers_of(stack, &dev.name)
            .into_iter()
            .filter(|u| lacking.iter().any(|l| &l.name == u))
            .collect::<Vec<_>>();
        let states: Map<String, Value> = offload
            .features
            .iter()
            .filter_map(|name| {
                let st = dev.features.as_ref()?.get(name)?;
                Some((name.to_string(), json!(st)))
            })
            .collect();
        let primary = dev
            .features
            .as_ref()
            .and_then(|f| f.get(offload.features[0]));
        let requested = primary.is_some_and(|s| s.wanted);
        let fixed = offload.features.iter().all(|name| {
            dev.features
                .as_ref()
                .and_then(|f| f.get(name))
                .is_none_or(|s| s.fixed)
        });
        let aggregate = matches!(
            dev.kind,
            DeviceKind::Bond | DeviceKind::Team | DeviceKind::Bridge
        );

        let state_word = if requested {
            "off [requested on]"
        } else if fixed {
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
        let whereabouts = hop.whereabouts();
        let when = match protocol {
            Protocol::Udp => "UDP sends are copied at send time",
            _ => "TCP sends are linearised (copied) at transmit",
        };
        let mut summary = format!(
            "{}: {} is {state_word}{role}{whereabouts}; {when}",
            dev.name, offload.label
        );
        // A hashing bond's slave carries only some flows: a possibility, not a certainty.
        let hashed = hop.partial_clause(&dev.name);
        summary.push_str(hashed.as_deref().unwrap_or_default());
        let severity = if hashed.is_some() {
            severity.min(Severity::Warning)
        } else {
            severity
        };
        if !affects.is_empty() {
            summary.push_str(&format!(" (also makes {} lack it)", affects.join(", ")));
        }

        let mut fix = Vec::new();
        if aggregate && requested {
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
        } else if fixed && !requested {
            fix.push(format!(
                "{}'s driver does not let {} change ([fixed]): zerocopy cannot work through this device. Send through a device whose driver supports it.",
                dev.name, offload.label
            ));
        } else {
            fix.push(hop.command(&format!(
                "ethtool -K {} {} on",
                dev.name, offload.ethtool_word
            )));
            fix.push(format!(
                "Persist it in the interface's configuration (systemd .link `{}=true`, NetworkManager `ethtool.feature-{}`).",
                link_file_key(offload.ethtool_word),
                offload.features[0]
            ));
        }
        if !affects.is_empty() {
            let one = affects.len() == 1;
            fix.push(format!(
                "{} {} {} and {} once it is fixed.",
                affects.join(", "),
                if one { "follows" } else { "follow" },
                dev.name,
                if one { "recovers" } else { "recover" }
            ));
        }
        let mut evidence = json!({
            "device": dev.name,
            "kind": dev.kind.as_str(),
            "depth": dev.depth,
            "upper": dev.upper,
            "affects": affects,
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
        out.raise_as(offload.code, severity, summary, evidence, fix);
    }
}

/// At most this many device names in one line; the rest are counted.
const NAMES_LISTED: usize = 8;

/// `a, b, c`, or for a bridge with hundreds of ports `a, b, …, g and 193 more`.
fn name_list(names: &[&str]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::fixture;
    use crate::evidence::FeatureState;

    /// Checksum offload for IPv4 only, as some NICs have it.
    fn ipv4_checksum_only(d: &mut Device) {
        let f = d.features.as_mut().expect("features");
        for (name, active) in [
            ("tx-checksum-ip-generic", false),
            ("tx-checksum-ipv4", true),
            ("tx-checksum-ipv6", false),
        ] {
            f.0.insert(
                name.to_string(),
                FeatureState {
                    active,
                    wanted: active,
                    fixed: false,
                },
            );
        }
    }

    /// The process's main way is IPv4; another way, to an IPv6 peer, crosses the same veth.
    /// The veth's missing IPv6 checksum copies that way's sends: a blocker on it, although the
    /// device was first crossed by the IPv4 way.
    #[test]
    fn a_device_two_families_cross_needs_both_checksums() {
        let mut ev = fixture("process-pid-many-ways");
        ipv4_checksum_only(&mut ev.stack[0]);
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, Protocol::Udp, &mut out);
        let warned = out.findings.iter().find(|f| f.code == Code::NoTxChecksum);
        assert_eq!(
            warned.map(|f| f.severity),
            Some(Severity::Warning),
            "IPv4 only: IPv6 is a lesser gap"
        );

        let serving = ev.serving.as_mut().expect("serving");
        serving.routes[1].peer = "2001:db8::2".parse().expect("address");
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, Protocol::Udp, &mut out);
        let f = out
            .findings
            .iter()
            .find(|f| f.code == Code::NoTxChecksum)
            .expect("no-tx-checksum");
        assert_eq!(f.severity, Severity::Blocker, "{}", f.summary);
        assert_eq!(f.evidence["device"], "va");
        assert!(f.summary.contains("IPv6"), "{}", f.summary);
    }
}
