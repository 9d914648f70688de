//! Inside a veth's peer namespace: the peer's stack, whether the target is an address there,
//! and if not where that namespace forwards it. Runs on a thread that entered the namespace.

use std::net::IpAddr;

use super::incomplete;
use crate::evidence::{Device, DeviceKind, PathEnd, RouteInfo, RouteType};
use crate::probe::GatherOptions;
use crate::probe::netlink::{self, RouteQuery};
use crate::probe::stack;

/// What a veth's peer namespace does with traffic to the target, read inside it.
pub(super) struct PeerView {
    /// The peer device and what is below it.
    pub(super) peer_stack: Vec<Device>,
    pub(super) forwarding: Option<bool>,
    pub(super) next: PeerNext,
}

pub(super) enum PeerNext {
    /// The target is an address of this namespace.
    Local(IpAddr),
    /// Forwarding is off: the traffic goes no further.
    NotForwarded(String),
    /// Forwarded out of this device (its stack).
    Egress(Vec<Device>, String),
    /// The route lookup failed.
    Failed(PathEnd),
}

fn sysctl_flag(path: &str) -> Option<bool> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse::<u8>().ok().map(|v| v != 0)
}

/// Inside the peer namespace: the peer's stack, whether the target is local here, and if not,
/// where this namespace forwards it (looked up as if received on the peer, or on the bridge the
/// peer is a port of).
pub(super) fn veth_peer_view(
    peer_index: u32,
    target: Option<IpAddr>,
    source: Option<IpAddr>,
) -> Result<PeerView, PathEnd> {
    let links = netlink::dump_links()
        .map_err(|e| incomplete(format!("cannot read the link table: {e}"), e.to_os_error()))?;
    let Some(peer) = links.iter().find(|l| l.ifindex == peer_index) else {
        return Err(incomplete(
            format!("the veth peer (ifindex {peer_index}) is not in the namespace its id names"),
            None,
        ));
    };
    // A port's packets are handled by its bridge: received on the bridge, routed from there.
    let l3 = peer
        .master
        .and_then(|m| links.iter().find(|l| l.ifindex == m))
        .unwrap_or(peer);
    let mut peer_stack =
        stack::stack_from_links(&links, &peer.name).map_err(|e| incomplete(e.to_string(), None))?;
    if l3.ifindex != peer.ifindex
        && let Ok(bridge) = stack::stack_from_links(&links, &l3.name)
        && let Some(br) = bridge.into_iter().next()
    {
        peer_stack.push(br);
    }
    for dev in &mut peer_stack {
        dev.features = netlink::features(&dev.name).ok();
    }
    let v6 = target.is_some_and(|t| t.is_ipv6());
    let forwarding = if v6 {
        sysctl_flag("/proc/sys/net/ipv6/conf/all/forwarding")
    } else {
        sysctl_flag("/proc/sys/net/ipv4/ip_forward")
    };
    if let Some(t) = target {
        let local = netlink::addresses()
            .map(|all| all.iter().any(|a| a.local && a.addr == t))
            .unwrap_or(false);
        if local {
            return Ok(PeerView {
                peer_stack,
                forwarding,
                next: PeerNext::Local(t),
            });
        }
    }
    // A destination on the bridge the peer is a port of is bridged there, not routed: the
    // forwarding setting plays no part.
    let bridged = match (target, l3.ifindex != peer.ifindex) {
        (Some(t), true) => netlink::route_get(t)
            .ok()
            .filter(|r| r.ifindex == Some(l3.ifindex) && r.route_type == RouteType::Unicast),
        _ => None,
    };
    if let (Some(r), Some(t)) = (bridged, target) {
        let mut egress = stack::stack_from_links(&links, &l3.name)
            .map_err(|e| incomplete(e.to_string(), None))?;
        for dev in &mut egress {
            dev.features = netlink::features(&dev.name).ok();
            if dev.kind == DeviceKind::Bridge {
                dev.forwards_to = stack::bridge_choice(&GatherOptions::default(), &links, dev, t);
            }
        }
        let why = format!(
            "{t} is on {}'s network (the route leaves through {} itself, ifindex {}): bridged there, not routed",
            l3.name,
            l3.name,
            r.ifindex.unwrap_or_default()
        );
        return Ok(PeerView {
            peer_stack,
            forwarding,
            next: PeerNext::Egress(egress, why),
        });
    }
    if forwarding == Some(false) {
        let knob = if v6 {
            "net.ipv6.conf.all.forwarding"
        } else {
            "net.ipv4.ip_forward"
        };
        return Ok(PeerView {
            peer_stack,
            forwarding,
            next: PeerNext::NotForwarded(format!("{knob} is 0 there: the traffic goes no further")),
        });
    }
    let route = match target {
        Some(t) => netlink::route_lookup(&RouteQuery {
            iif: Some(l3.ifindex),
            src: source,
            ..RouteQuery::to(t)
        })
        .map(|r| (r, format!("the route to {t}, received on {}", l3.name))),
        None => netlink::default_routes(v6)
            .map(|routes| routes.into_iter().next())
            .map(|r| match r {
                Some(r) => (
                    RouteInfo {
                        device: links
                            .iter()
                            .find(|l| l.ifindex == r.ifindex)
                            .map(|l| l.name.clone()),
                        ifindex: Some(r.ifindex),
                        gateway: r.gateway.map(|g| g.to_string()),
                        source: None,
                        route_type: RouteType::Unicast,
                        mtu: None,
                    },
                    "the default route (no --target)".to_string(),
                ),
                None => (
                    RouteInfo {
                        device: None,
                        ifindex: None,
                        gateway: None,
                        source: None,
                        route_type: RouteType::Unreachable,
                        mtu: None,
                    },
                    "no default route".to_string(),
                ),
            }),
    };
    let next = match route {
        Err(e) => PeerNext::Failed(incomplete(
            format!("the route lookup in the peer namespace failed: {e}"),
            e.to_os_error(),
        )),
        Ok((r, _)) if r.route_type == RouteType::Local => {
            PeerNext::Local(target.unwrap_or(IpAddr::from([0, 0, 0, 0])))
        }
        Ok((r, why)) => match r.ifindex {
            Some(out) if r.route_type == RouteType::Unicast => {
                match stack::stack_from_links(&links, r.device.as_deref().unwrap_or("")) {
                    Ok(mut egress) => {
                        for dev in &mut egress {
                            dev.features = netlink::features(&dev.name).ok();
                            if let (DeviceKind::Bridge, Some(t)) = (dev.kind, target) {
                                dev.forwards_to =
                                    stack::bridge_choice(&GatherOptions::default(), &links, dev, t);
                            }
                        }
                        let name = egress.first().map_or(String::new(), |d| d.name.clone());
                        PeerNext::Egress(
                            egress,
                            format!("{why} leaves through {name} (ifindex {out})"),
                        )
                    }
                    Err(e) => PeerNext::Failed(incomplete(e.to_string(), None)),
                }
            }
            _ => PeerNext::Failed(incomplete(
                format!("{why}: route type {} leads nowhere", r.route_type),
                None,
            )),
        },
    };
    Ok(PeerView {
        peer_stack,
        forwarding,
        next,
    })
}
