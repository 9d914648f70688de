//! The path itself: local delivery (loopback, tun, a local target), veth, devices that are
//! down, and lower devices that live in another namespace.

use serde_json::json;

use super::findings::{Code, Findings};
use std::net::IpAddr;

use super::hops::{Toward, Way, hops, netns_label, ways, with_toward};
use crate::evidence::{Device, DeviceKind, Evidence, HopRole, LiveProbe, NetnsRef, PathEnd};
use crate::kernel::{self, FORWARDING_KEEPS_ZEROCOPY};
use crate::vocab::Severity;

pub fn check(ev: &Evidence, out: &mut Findings) {
    // A device two ways start at is one finding (the first way's); so is a lower device in
    // another namespace below a device two ways cross.
    let mut tops: Vec<u32> = Vec::new();
    let mut crossed: Vec<u32> = Vec::new();
    for way in ways(ev) {
        let Some(top) = way.stack.first() else {
            continue;
        };
        if !tops.contains(&top.ifindex) {
            delivery(ev, &way, top, out);
            device_down(&way, top, out);
            tops.push(top.ifindex);
        }
        lowers_elsewhere(&way, &crossed, out);
        crossed.extend(way.stack.iter().map(|d| d.ifindex));
    }
    encrypting_tunnels(ev, out);
    veths_further_on(ev, out);
    for way in ways(ev) {
        path_end(ev, &way, out);
    }
}

/// A WireGuard device on the path encrypts every packet in place, after making its data
/// private: the user's pages are copied before any zerocopy could reach the wire.
fn encrypting_tunnels(ev: &Evidence, out: &mut Findings) {
    for hop in hops(ev) {
        for dev in hop.stack.iter().filter(|d| d.kind == DeviceKind::Wireguard) {
            out.raise(
                Code::TunnelEncrypts,
                format!(
                    "{} is a WireGuard device{}: it encrypts each packet in place after skb_cow_data() has made the data its own, so every zerocopy send is copied",
                    dev.name,
                    hop.whereabouts()
                ),
                {
                    let mut evidence =
                        json!({"device": dev.name, "kind": dev.kind.as_str(), "hop": hop.index + 1});
                    with_toward(&mut evidence, hop.toward);
                    evidence
                },
                vec![
                    format!(
                        "Do not use MSG_ZEROCOPY for traffic through {}: encryption copies it anyway, and the notifications only add cost.",
                        dev.name
                    ),
                    "Where the data must be encrypted and zerocopy matters, use a NIC with inline IPsec or TLS offload (ESP or kTLS device offload) instead of a software tunnel.".to_string(),
                ],
            );
        }
    }
}

/// How the walk beyond the diagnosed stack ended: local delivery in another namespace, or a hop
/// that could not be followed.
fn path_end(ev: &Evidence, way: &Way, out: &mut Findings) {
    let Some(path) = way.path else {
        return;
    };
    match &path.end {
        PathEnd::Wire => {}
        PathEnd::LocalDelivery { netns, address } => raise_local_delivery(
            ev,
            LocalDelivery::Namespace {
                netns,
                address: *address,
                from: way.interface,
                toward: way.toward,
            },
            out,
        ),
        PathEnd::Incomplete { reason, error } => {
            let hops = path.segments.len();
            let mut evidence = json!({"interface": way.interface, "segments": hops, "reason": reason, "error": error});
            with_toward(&mut evidence, way.toward);
            out.raise(
                Code::PathIncomplete,
                format!(
                    "the path from {}{} could not be followed after {} hop{}: {reason}",
                    way.interface,
                    way.label(),
                    hops + 1,
                    if hops == 0 { "" } else { "s" }
                ),
                evidence,
                vec![
                    "Run zcdoctor as root from the host namespace (it enters other namespaces with setns), or inside the namespace the path continues in.".to_string(),
                ],
            );
        }
    }
}

/// Where traffic is delivered on this host instead of leaving it.
pub enum LocalDelivery<'a> {
    /// A way's first device delivers locally (loopback, tun/tap).
    Device(&'a Device, &'a Way<'a>),
    /// The live probe's target is an address of this host or namespace.
    Target(&'a LiveProbe),
    /// The path reaches a namespace that owns the destination (a veth peer's address).
    Namespace {
        netns: &'a NetnsRef,
        address: IpAddr,
        /// The device the way starts at.
        from: &'a str,
        /// The other destination of a process diagnosed by pid, when it is that way.
        toward: Option<Toward<'a>>,
    },
}

/// Raises `local-delivery`: the one place it is worded.
pub fn raise_local_delivery(ev: &Evidence, at: LocalDelivery, out: &mut Findings) {
    match at {
        LocalDelivery::Device(dev, way) => {
            let how = if dev.kind == DeviceKind::Loopback {
                "is the loopback device: every packet is delivered to a local socket"
            } else {
                "is a tun/tap device: packets are handed to a user-space reader"
            };
            let mut evidence = json!({"device": dev.name, "kind": dev.kind.as_str()});
            with_toward(&mut evidence, way.toward);
            let fix = match way.toward {
                Some(t) => vec![format!(
                    "Do not use MSG_ZEROCOPY on the sockets to {t}: the route to it is {}, so every send to it is copied and the notifications only add cost.",
                    dev.name
                )],
                None => vec![
                    format!(
                        "Do not enable MSG_ZEROCOPY for traffic through {}: it is always copied and only adds notification overhead.",
                        dev.name
                    ),
                    "Diagnose the interface that really leaves the host instead (`zcdoctor check` with no argument uses the default route's device).".to_string(),
                ],
            };
            out.raise(
                Code::LocalDelivery,
                format!("{} {how}, which always copies{}", dev.name, way.label()),
                evidence,
                fix,
            );
        }
        LocalDelivery::Namespace {
            netns,
            address,
            from,
            toward,
        } => {
            let mut evidence = json!({"device": from, "address": address, "netns": netns});
            with_toward(&mut evidence, toward);
            out.raise(
                Code::LocalDelivery,
                format!(
                    "{address} is an address of namespace {}, which {from} reaches: delivered locally there, which always copies",
                    netns_label(netns),
                ),
                evidence,
                vec![format!(
                    "Do not use MSG_ZEROCOPY towards {address}: delivery into namespace {} is local and always copies; zerocopy pays only for traffic that leaves the host through a NIC.",
                    netns_label(netns)
                )],
            );
        }
        LocalDelivery::Target(live) => {
            out.raise(
                Code::LocalDelivery,
                format!(
                    "{} is an address of this host: traffic to it is delivered locally, which always copies",
                    live.target
                ),
                json!({"target": live.target, "route": live.route}),
                vec![format!(
                    "Do not use MSG_ZEROCOPY towards {}: local delivery always copies. Probe a destination that leaves through {}.",
                    live.target, ev.interface
                )],
            );
        }
    }
}

fn delivery(ev: &Evidence, way: &Way, top: &Device, out: &mut Findings) {
    match top.kind {
        DeviceKind::Loopback | DeviceKind::Tun => {
            raise_local_delivery(ev, LocalDelivery::Device(top, way), out)
        }
        DeviceKind::Veth => veth(ev, way, top, out),
        _ => out.pass(
            "delivery",
            format!(
                "{} ({}) transmits off the host: no local delivery on the device itself{}",
                top.name,
                top.kind.as_str(),
                way.label()
            ),
        ),
    }
}

fn veth(ev: &Evidence, way: &Way, top: &Device, out: &mut Findings) {
    let forwarding_ok = kernel::has(ev.kernel.version, FORWARDING_KEEPS_ZEROCOPY);
    let (severity, summary, fix) = if forwarding_ok {
        (
            Severity::Warning,
            format!(
                "{} is a veth: sends to an address of the peer namespace are delivered locally and copied; forwarded traffic keeps zerocopy on this kernel",
                top.name
            ),
            format!(
                "Prove the real path with a live probe to the final destination: `zcdoctor check {} --target ADDR`.",
                top.name
            ),
        )
    } else {
        (
            Severity::Blocker,
            format!(
                "{} is a veth and Linux {} copies all traffic arriving through veth, even when forwarded (fixed in 6.17)",
                top.name,
                ev.kernel.version.map(|v| v.to_string()).unwrap_or_default()
            ),
            format!(
                "Turn MSG_ZEROCOPY off for senders behind {} until the host runs Linux 6.17 or newer.",
                top.name
            ),
        )
    };
    let mut evidence = json!({"device": top.name, "kernel": ev.kernel.release, "forwarding_keeps_zerocopy": forwarding_ok});
    with_toward(&mut evidence, way.toward);
    out.raise_as(
        Code::VethPath,
        severity,
        format!("{summary}{}", way.label()),
        evidence,
        vec![fix],
    );
}

/// Before 6.17 the kernel copies everything arriving through a veth, forwarded or not: a veth
/// crossed further along a way (a tunnel's underlay, a lower device's namespace) copies as
/// surely as one the way starts at (that one is [`veth`]'s).
fn veths_further_on(ev: &Evidence, out: &mut Findings) {
    if kernel::has(ev.kernel.version, FORWARDING_KEEPS_ZEROCOPY) {
        return;
    }
    let mut seen: Vec<(u64, u32)> = Vec::new();
    for way in ways(ev) {
        if way
            .stack
            .first()
            .is_some_and(|d| d.kind == DeviceKind::Veth)
        {
            continue;
        }
        let segments = way.path.iter().flat_map(|p| &p.segments).enumerate();
        for (i, seg) in segments.filter(|(_, s)| s.role == HopRole::VethPeer) {
            let Some(peer) = seg.stack.first() else {
                continue;
            };
            if seen.contains(&(seg.netns.inode, peer.ifindex)) {
                continue;
            }
            seen.push((seg.netns.inode, peer.ifindex));
            let mut evidence = json!({
                "device": peer.name,
                "netns": seg.netns,
                "hop": i + 2,
                "kernel": ev.kernel.release,
                "forwarding_keeps_zerocopy": false,
            });
            with_toward(&mut evidence, way.toward);
            out.raise_as(
                Code::VethPath,
                Severity::Blocker,
                format!(
                    "the traffic arrives through the veth {} in namespace {} (hop {}), and Linux {} copies all traffic arriving through veth, even when forwarded (fixed in 6.17){}",
                    peer.name,
                    netns_label(&seg.netns),
                    i + 2,
                    ev.kernel.version.map(|v| v.to_string()).unwrap_or_default(),
                    way.label()
                ),
                evidence,
                vec![format!(
                    "Turn MSG_ZEROCOPY off for senders whose traffic crosses {} until the host runs Linux 6.17 or newer.",
                    peer.name
                )],
            );
        }
    }
}

fn device_down(way: &Way, top: &Device, out: &mut Findings) {
    let down = !top.admin_up
        || matches!(
            top.oper_state.as_str(),
            "down" | "lowerlayerdown" | "notpresent"
        );
    if !down {
        return;
    }
    let mut evidence =
        json!({"device": top.name, "admin_up": top.admin_up, "oper_state": top.oper_state});
    with_toward(&mut evidence, way.toward);
    out.raise(
        Code::DeviceDown,
        format!(
            "{} is {} (operational state {}){}",
            top.name,
            if top.admin_up {
                "up but not running"
            } else {
                "administratively down"
            },
            top.oper_state,
            way.label()
        ),
        evidence,
        vec![if top.admin_up {
            format!(
                "{} has no carrier: check its cable or lower devices (`ip link show {}`), then diagnose it again.",
                top.name, top.name
            )
        } else {
            format!("ip link set {} up", top.name)
        }],
    );
}

/// Devices of the way's stack (not already seen on an earlier way) whose lower device lives in
/// another namespace.
fn lowers_elsewhere(way: &Way, seen: &[u32], out: &mut Findings) {
    for dev in way
        .stack
        .iter()
        .filter(|d| !d.lowers_elsewhere.is_empty() && !seen.contains(&d.ifindex))
    {
        let ifindexes: Vec<String> = dev.lowers_elsewhere.iter().map(u32::to_string).collect();
        let mut evidence = json!({"device": dev.name, "lower_ifindexes": dev.lowers_elsewhere});
        with_toward(&mut evidence, way.toward);
        out.raise(
            Code::LowerDeviceElsewhere,
            format!(
                "{} sits on a device of another network namespace (ifindex {}), which was not inspected{}",
                dev.name,
                ifindexes.join(", "),
                way.label()
            ),
            evidence,
            vec![format!(
                "Run `zcdoctor check` on {}'s lower device inside the namespace that owns it (`ip netns exec NS zcdoctor check DEV`).",
                dev.name
            )],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{evidence_with_kernel, fixture};

    #[test]
    fn loopback_is_local_delivery() {
        let ev = fixture("loopback");
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, &mut out);
        assert!(out.has(Code::LocalDelivery));
        assert!(
            out.findings[0]
                .summary
                .starts_with("lo is the loopback device")
        );
    }

    #[test]
    fn veth_is_a_blocker_only_before_6_17() {
        for (release, severity) in [
            ("6.16.3", Severity::Blocker),
            ("6.18.44", Severity::Warning),
        ] {
            let mut ev = evidence_with_kernel(release);
            ev.stack[0].kind = DeviceKind::Veth;
            let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
            check(&ev, &mut out);
            assert_eq!(out.findings[0].code, Code::VethPath);
            assert_eq!(out.findings[0].severity, severity, "{release}");
        }
    }

    /// A veth crossed further along the way (here the way starts at a macvlan whose traffic
    /// reaches a veth peer) copies before 6.17 as surely as one the way starts at.
    #[test]
    fn a_veth_further_on_is_a_blocker_before_6_17() {
        let mut ev = fixture("process-pid-many-ways");
        ev.stack[0].kind = DeviceKind::Macvlan;
        for (release, raised) in [("6.16.3", true), ("6.18.44", false)] {
            ev.kernel.release = release.to_string();
            ev.kernel.version = crate::evidence::KernelVersion::parse(release);
            let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
            check(&ev, &mut out);
            let veth = out.findings.iter().find(|f| f.code == Code::VethPath);
            assert_eq!(veth.is_some(), raised, "{release}");
            if let Some(f) = veth {
                assert_eq!(f.severity, Severity::Blocker);
                assert_eq!(f.evidence["device"], "vb");
                assert!(f.summary.contains("(hop 2)"), "{}", f.summary);
            }
        }
    }

    #[test]
    fn down_and_no_carrier_are_told_apart() {
        let mut ev = fixture("clean-nic");
        ev.stack[0].admin_up = false;
        ev.stack[0].oper_state = "down".into();
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, &mut out);
        let f = &out.findings[0];
        assert_eq!(f.code, Code::DeviceDown);
        assert!(f.summary.contains("administratively down"), "{}", f.summary);
        assert!(f.remediation[0].starts_with("ip link set "));

        ev.stack[0].admin_up = true;
        ev.stack[0].oper_state = "lowerlayerdown".into();
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, &mut out);
        assert!(out.findings[0].summary.contains("up but not running"));
    }

    #[test]
    fn lower_in_another_namespace_is_named() {
        let mut ev = fixture("clean-nic");
        ev.stack[0].lowers_elsewhere = vec![5, 7];
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, &mut out);
        let f = &out.findings[0];
        assert_eq!(f.code, Code::LowerDeviceElsewhere);
        assert!(f.summary.contains("ifindex 5, 7"), "{}", f.summary);
    }
}
