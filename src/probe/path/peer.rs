//! Inside a veth's peer namespace: the peer's stack, whether the target is an address there,
//! and if not where that namespace forwards it. Runs on a thread that entered the namespace.

use std::net::IpAddr;

use super::{incomplete, links_here};
use crate::evidence::{Device, DeviceKind, PathEnd, PathStop, RouteInfo, RouteType};
use crate::probe::GatherOptions;
use crate::probe::netlink::{self, Link, NetlinkError, RouteQuery};
use crate::probe::stack::{self, UnknownInterface};

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
    let links = links_here()?;
    let Some(peer) = links.iter().find(|l| l.ifindex == peer_index) else {
        return Err(incomplete(
            PathStop::DeviceMissing,
            format!("the veth peer (ifindex {peer_index}) is not in the namespace its id names"),
            None,
        ));
    };
    // A port's packets are handled by its bridge: received on the bridge, routed from there.
    let l3 = peer
        .master
        .and_then(|m| links.iter().find(|l| l.ifindex == m))
        .unwrap_or(peer);
    let ns = PeerNamespace {
        links: &links,
        peer,
        l3,
        target,
        source,
        v6: target.is_some_and(|t| t.is_ipv6()),
    };
    let peer_stack = ns.peer_stack()?;
    let forwarding = ns.forwarding();
    let next = ns.next(forwarding)?;
    Ok(PeerView {
        peer_stack,
        forwarding,
        next,
    })
}

/// The peer namespace as read from inside: its links, the peer, the device its packets are
/// received on (the peer, or the bridge it is a port of), and what is sent through it.
struct PeerNamespace<'a> {
    links: &'a [Link],
    peer: &'a Link,
    /// Where the peer's packets are routed from: its bridge when it is a port, else itself.
    l3: &'a Link,
    target: Option<IpAddr>,
    source: Option<IpAddr>,
    v6: bool,
}

impl PeerNamespace<'_> {
    /// The peer device and what is below it, then its bridge when it is a port, with offloads.
    fn peer_stack(&self) -> Result<Vec<Device>, PathEnd> {
        let mut peer_stack = stack::stack_from_links(self.links, &self.peer.name)
            .map_err(|e| incomplete(PathStop::DeviceStack, e.to_string(), None))?;
        if self.l3.ifindex != self.peer.ifindex
            && let Ok(bridge) = stack::stack_from_links(self.links, &self.l3.name)
            && let Some(br) = bridge.into_iter().next()
        {
            peer_stack.push(br);
        }
        for dev in &mut peer_stack {
            dev.features = netlink::features(&dev.name).ok();
        }
        Ok(peer_stack)
    }

    /// Whether this namespace forwards the target's family.
    fn forwarding(&self) -> Option<bool> {
        if self.v6 {
            sysctl_flag("/proc/sys/net/ipv6/conf/all/forwarding")
        } else {
            sysctl_flag("/proc/sys/net/ipv4/ip_forward")
        }
    }

    /// What happens to the traffic here: delivered (the target is an address of this
    /// namespace), bridged on the peer's bridge, dropped (no forwarding), or routed on.
    fn next(&self, forwarding: Option<bool>) -> Result<PeerNext, PathEnd> {
        if let Some(t) = self.target
            && is_local_address(t)
        {
            return Ok(PeerNext::Local(t));
        }
        if let Some(bridged) = self.bridged()? {
            return Ok(bridged);
        }
        if forwarding == Some(false) {
            let knob = if self.v6 {
                "net.ipv6.conf.all.forwarding"
            } else {
                "net.ipv4.ip_forward"
            };
            return Ok(PeerNext::NotForwarded(format!(
                "{knob} is 0 there: the traffic goes no further"
            )));
        }
        Ok(self.routed())
    }

    /// A destination on the bridge the peer is a port of is bridged there, not routed: the
    /// forwarding setting plays no part. `None` when the target is not on that bridge.
    fn bridged(&self) -> Result<Option<PeerNext>, PathEnd> {
        let (Some(t), true) = (self.target, self.l3.ifindex != self.peer.ifindex) else {
            return Ok(None);
        };
        let Some(r) = netlink::route_get(t)
            .ok()
            .filter(|r| r.ifindex == Some(self.l3.ifindex) && r.route_type == RouteType::Unicast)
        else {
            return Ok(None);
        };
        let egress = self
            .egress_stack(&self.l3.name)
            .map_err(|e| incomplete(PathStop::DeviceStack, e.to_string(), None))?;
        let why = format!(
            "{t} is on {}'s network (the route leaves through {} itself, ifindex {}): bridged there, not routed",
            self.l3.name,
            self.l3.name,
            r.ifindex.unwrap_or_default()
        );
        Ok(Some(PeerNext::Egress(egress, why)))
    }

    /// Where this namespace routes the traffic: the route to the target as if received on the
    /// peer's device (or its bridge), or without a target the default route.
    fn routed(&self) -> PeerNext {
        let route = match self.target {
            Some(t) => netlink::route_lookup(&RouteQuery {
                iif: Some(self.l3.ifindex),
                src: self.source,
                ..RouteQuery::to(t)
            })
            .map(|r| (r, format!("the route to {t}, received on {}", self.l3.name))),
            None => self.default_route(),
        };
        match route {
            Err(e) => PeerNext::Failed(incomplete(
                PathStop::RouteLookup,
                format!("the route lookup in the peer namespace failed: {e}"),
                e.to_os_error(),
            )),
            Ok((r, _)) if r.route_type == RouteType::Local => {
                PeerNext::Local(self.target.unwrap_or(IpAddr::from([0, 0, 0, 0])))
            }
            Ok((r, why)) => self.leaving(&r, &why),
        }
    }

    /// The first default route of this namespace (no `--target`), or an unreachable route
    /// when it has none, with what it is.
    fn default_route(&self) -> Result<(RouteInfo, String), NetlinkError> {
        netlink::default_routes(self.v6)
            .map(|routes| routes.into_iter().next())
            .map(|r| match r {
                Some(r) => (
                    RouteInfo {
                        device: self
                            .links
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
            })
    }

    /// The device stack route `r` (found as `why` says) leaves through, or why it leads
    /// nowhere.
    fn leaving(&self, r: &RouteInfo, why: &str) -> PeerNext {
        match r.ifindex {
            Some(out) if r.route_type == RouteType::Unicast => {
                match self.egress_stack(r.device.as_deref().unwrap_or("")) {
                    Ok(egress) => {
                        let name = egress.first().map_or(String::new(), |d| d.name.clone());
                        PeerNext::Egress(
                            egress,
                            format!("{why} leaves through {name} (ifindex {out})"),
                        )
                    }
                    Err(e) => {
                        PeerNext::Failed(incomplete(PathStop::DeviceStack, e.to_string(), None))
                    }
                }
            }
            _ => PeerNext::Failed(incomplete(
                PathStop::RouteNowhere,
                format!("{why}: route type {} leads nowhere", r.route_type),
                None,
            )),
        }
    }

    /// The stack of device `name` here, with offloads, and each bridge's choice of port for
    /// the target.
    fn egress_stack(&self, name: &str) -> Result<Vec<Device>, UnknownInterface> {
        let mut egress = stack::stack_from_links(self.links, name)?;
        for dev in &mut egress {
            dev.features = netlink::features(&dev.name).ok();
            if let (DeviceKind::Bridge, Some(t)) = (dev.kind, self.target) {
                dev.forwards_to =
                    stack::bridge_choice(&GatherOptions::default(), self.links, dev, t);
            }
        }
        Ok(egress)
    }
}

/// Whether `t` is an address of this namespace.
fn is_local_address(t: IpAddr) -> bool {
    netlink::addresses()
        .map(|all| all.iter().any(|a| a.local && a.addr == t))
        .unwrap_or(false)
}
