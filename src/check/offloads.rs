//! Offloads: scatter-gather and TX checksum on every device of the stack. UDP decides at send
//! time and copies at once without them; TCP linearises (copies) at transmit.

use serde_json::{Map, Value, json};

use super::findings::{Code, Findings};
use super::hops::{Hop, Toward, hops, ways, with_toward};
use crate::evidence::{Device, DeviceKind, Evidence, ProbeName, ProbeState, Protocol};
use crate::report::Severity;

fn features_unreadable(ev: &Evidence, out: &mut Findings) {
    let unreadable: Vec<&str> = hops(ev)
        .iter()
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
            .is_some_and(|t| t.is_ipv6());
    // Which checksum a hop needs follows the family of its destination.
    let (v6, v4): (Vec<Hop>, Vec<Hop>) = hops(ev)
        .into_iter()
        .filter(|h| !delivers_locally.contains(&h.toward))
        .partition(|h| h.toward.map_or(v6_main, |t| t.peer.is_ipv6()));
    let all: Vec<&Hop> = v6.iter().chain(&v4).collect();
    if all.is_empty() {
        return;
    }
    offload(&all, protocol, &SG, Severity::Blocker, out);
    let v6: Vec<&Hop> = v6.iter().collect();
    let v4: Vec<&Hop> = v4.iter().collect();
    if !v6.is_empty() {
        offload(&v6, protocol, &CSUM_V6, Severity::Blocker, out);
    }
    if !v4.is_empty() {
        offload(&v4, protocol, &CSUM_V4, Severity::Blocker, out);
        // IPv6 matters too unless the probe showed the traffic is IPv4; a gap there is lesser.
        if !out.has(Code::NoTxChecksum) {
            offload(&v4, protocol, &CSUM_V6, Severity::Warning, out);
        }
    }
}

/// Raises `offload.code` on the lowest devices that lack it: an upper device that lacks it only
/// because a lower one does (bond, macvlan, vlan inherit) is listed in `affects`, not repeated.
fn offload(
    hops: &[&Hop],
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
            .any(lacks);
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
