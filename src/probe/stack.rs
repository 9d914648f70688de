//! The device stack of the diagnosed interface: the device and everything below it, found from
//! the rtnetlink link table (masters, IFLA_LINK parents), with offload features per device.

use std::collections::{BTreeSet, VecDeque};

use std::net::IpAddr;

use super::netlink::{self, Link};
use super::{Context, GatherError, GatherOptions, Outcome, Probe};
use crate::evidence::{
    Bond, BondMode, BridgeChoice, Device, DeviceKind, Evidence, ProbeName, RouteInfo, Vlans,
};

/// The `links` probe: the diagnosed interface (or the default route's) and every device below.
pub struct LinksProbe;

impl Probe for LinksProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Links
    }
    fn reads(&self) -> &'static str {
        "rtnetlink link dump and default routes: the interface and every device below it"
    }
    fn privileges(&self) -> &'static str {
        "none"
    }
    fn required(&self) -> bool {
        true
    }
    fn gather(&self, cx: &mut Context, ev: &mut Evidence) -> Result<Outcome, GatherError> {
        let links = netlink::dump_links().map_err(GatherError::Netlink)?;
        // Without a name: the device the path to the destination (--pid) leaves by, else the
        // default route's.
        let toward = match cx.opts.path_target.filter(|_| cx.opts.live.is_none()) {
            None => None,
            Some(t) => match cx.opts.route(t) {
                Ok(r) => r.device,
                Err(error) => return Err(GatherError::NoRouteToPeer { peer: t, error }),
            },
        };
        let iface = match cx.opts.iface.clone().or(toward) {
            Some(name) => name,
            None => match default_interface(&links) {
                Some((name, _)) => name,
                None => {
                    let mut existing: Vec<String> = links.iter().map(|l| l.name.clone()).collect();
                    existing.sort();
                    return Err(GatherError::NoDefaultRoute { existing });
                }
            },
        };
        ev.stack = stack_from_links(&links, &iface).map_err(GatherError::UnknownInterface)?;
        with_l3_master(&links, &mut ev.stack);
        with_bridge_vlans(&links, &mut ev.stack);
        if let Some(target) = cx.opts.destination() {
            for dev in ev.stack.iter_mut() {
                dev.forwards_to = match dev.kind {
                    DeviceKind::Bridge => bridge_choice(cx.opts, &links, dev, target),
                    DeviceKind::Vrf if dev.depth == 0 && dev.upper.is_none() => {
                        vrf_choice(cx.opts, &links, dev, target)
                    }
                    _ => None,
                };
            }
        }
        let detail = format!("{} device(s) in the stack of {iface}", ev.stack.len());
        ev.interface = iface;
        Ok(Outcome::ok(detail))
    }
}

/// The port `bridge` sends `target`'s frames to: the next hop's MAC from the neighbour table,
/// then that MAC's port from the bridge's FDB. `None` when the target is not reached through
/// this bridge at all.
/// The next hop of `route` toward `target` (its gateway, or the target itself) and its MAC
/// on device `ifindex` from the neighbour table (`None` when unresolved).
pub(crate) fn next_hop_mac(
    route: &RouteInfo,
    ifindex: u32,
    target: IpAddr,
) -> (IpAddr, Option<[u8; 6]>) {
    let next_hop = route
        .gateway
        .as_deref()
        .and_then(|g| g.parse::<IpAddr>().ok())
        .unwrap_or(target);
    let mac = netlink::neighbours().ok().and_then(|all| {
        all.into_iter()
            .find(|n| n.ifindex == ifindex && n.addr == next_hop)
            .and_then(|n| n.lladdr)
    });
    (next_hop, mac)
}

pub(crate) fn bridge_choice(
    opts: &GatherOptions,
    links: &[Link],
    bridge: &Device,
    target: IpAddr,
) -> Option<BridgeChoice> {
    let route = opts.route(target).ok()?;
    if route.ifindex != Some(bridge.ifindex) {
        return None;
    }
    let (next_hop, mac) = next_hop_mac(&route, bridge.ifindex, target);
    let Some(mac) = mac else {
        return Some(BridgeChoice {
            next_hop,
            mac: None,
            port: None,
            why: format!(
                "{next_hop} has no resolved neighbour entry on {}: frames to it are flooded to every port",
                bridge.name
            ),
        });
    };
    let text = mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let entry = netlink::bridge_fdb(bridge.ifindex).ok().and_then(|fdb| {
        fdb.into_iter()
            .find(|e| e.mac == mac && !e.local && e.port_ifindex != bridge.ifindex)
    });
    let port = entry.and_then(|e| {
        links
            .iter()
            .find(|l| l.ifindex == e.port_ifindex)
            .map(|l| l.name.clone())
    });
    let why = match &port {
        Some(p) => format!(
            "{next_hop} is {text} (neighbour table); {}'s FDB has {text} on port {p}",
            bridge.name
        ),
        None => format!(
            "{next_hop} is {text} (neighbour table), which {}'s FDB has on no port: frames to it are flooded to every port",
            bridge.name
        ),
    };
    Some(BridgeChoice {
        next_hop,
        mac: Some(text),
        port,
        why,
    })
}

/// The VLANs of each VLAN-filtering bridge of the stack and of its ports (left unset when they
/// cannot be read: the ports are then all taken as carrying the traffic).
fn with_bridge_vlans(links: &[Link], stack: &mut [Device]) {
    let filtering: Vec<u32> = stack
        .iter()
        .filter(|d| {
            d.kind == DeviceKind::Bridge
                && links
                    .iter()
                    .any(|l| l.ifindex == d.ifindex && l.vlan_filtering)
        })
        .map(|d| d.ifindex)
        .collect();
    if filtering.is_empty() {
        return;
    }
    let Ok(ports) = netlink::bridge_vlans() else {
        return;
    };
    let of = |ifindex: u32| ports.iter().find(|p| p.ifindex == ifindex);
    let names: Vec<(String, Vec<String>)> = stack
        .iter()
        .filter(|d| filtering.contains(&d.ifindex))
        .map(|d| (d.name.clone(), d.lowers.clone()))
        .collect();
    for dev in stack.iter_mut() {
        let is_bridge = filtering.contains(&dev.ifindex);
        let is_port = names.iter().any(|(_, lowers)| lowers.contains(&dev.name));
        if is_bridge || is_port {
            dev.vlans = of(dev.ifindex).map(|p| Vlans {
                vids: p.vids.clone(),
                pvid: p.pvid,
            });
        }
    }
}

/// A device enslaved to a VRF sends through it (`vrf_l3_out`: the VRF's taps see the packets):
/// the VRF joins the stack, after the diagnosed device's own tree, with that device as its
/// only lower.
fn with_l3_master(links: &[Link], stack: &mut Vec<Device>) {
    let Some(top) = stack.first() else {
        return;
    };
    let Some(vrf) = links
        .iter()
        .find(|l| l.name == top.name)
        .and_then(|l| l.master)
        .and_then(|m| links.iter().find(|l| l.ifindex == m))
        .filter(|l| l.link_kind.as_deref() == Some("vrf"))
    else {
        return;
    };
    if stack.iter().any(|d| d.ifindex == vrf.ifindex) {
        return;
    }
    let Ok(mut tree) = stack_from_links(links, &vrf.name) else {
        return;
    };
    let mut master = tree.swap_remove(0);
    master.lowers = vec![top.name.clone()];
    stack.push(master);
}

/// The slave a VRF diagnosed by name sends `target`'s traffic by: the device of the route in
/// its table (a lookup with the VRF as output device). `None` when it is not known.
fn vrf_choice(
    opts: &GatherOptions,
    links: &[Link],
    vrf: &Device,
    target: IpAddr,
) -> Option<BridgeChoice> {
    let route = opts.route(target).ok()?;
    let slave = links
        .iter()
        .find(|l| Some(l.ifindex) == route.ifindex && l.master == Some(vrf.ifindex))?;
    Some(BridgeChoice {
        next_hop: target,
        mac: None,
        port: Some(slave.name.clone()),
        why: format!(
            "the route to {target} in {}'s table leaves by {}",
            vrf.name, slave.name
        ),
    })
}

/// The device of the lowest-metric default route (IPv4 first, then IPv6).
fn default_interface(links: &[Link]) -> Option<(String, Option<IpAddr>)> {
    for v6 in [false, true] {
        if let Ok(routes) = netlink::default_routes(v6) {
            for r in routes {
                if let Some(l) = links.iter().find(|l| l.ifindex == r.ifindex) {
                    return Some((l.name.clone(), r.gateway));
                }
            }
        }
    }
    None
}

/// The interface does not exist in this namespace; carries the ones that do.
#[derive(Debug)]
pub struct UnknownInterface {
    pub name: String,
    pub existing: Vec<String>,
}

impl std::fmt::Display for UnknownInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no interface named {:?} in this network namespace; interfaces here: {}",
            self.name,
            self.existing.join(", ")
        )
    }
}

impl std::error::Error for UnknownInterface {}

const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;

/// Kinds whose IFLA_LINK names the device they transmit through (for veth it is the peer, and
/// tunnels route through whatever the underlay route says, so neither counts).
fn link_is_lower(kind: Option<&str>) -> bool {
    matches!(
        kind,
        Some("vlan" | "macvlan" | "macvtap" | "ipvlan" | "ipvtap" | "macsec")
    )
}

/// Builds the stack of `iface` from a link dump: `iface` first, then its lower devices breadth
/// first. Features are left `None` for the caller to fill.
pub fn stack_from_links(links: &[Link], iface: &str) -> Result<Vec<Device>, UnknownInterface> {
    let Some(top) = links.iter().find(|l| l.name == iface) else {
        let mut existing: Vec<String> = links.iter().map(|l| l.name.clone()).collect();
        existing.sort();
        return Err(UnknownInterface {
            name: iface.to_string(),
            existing,
        });
    };
    let mut stack: Vec<Device> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([(top, 0u32, None::<String>)]);
    seen.insert(top.ifindex);
    while let Some((link, depth, upper)) = queue.pop_front() {
        let mut lowers: Vec<&Link> = links
            .iter()
            .filter(|l| l.master == Some(link.ifindex) && l.ifindex != link.ifindex)
            .collect();
        let mut lowers_elsewhere = Vec::new();
        if link_is_lower(link.link_kind.as_deref()) {
            if let Some(parent) = link.link.filter(|&p| p != 0 && p != link.ifindex) {
                if link.link_netnsid.is_some() {
                    lowers_elsewhere.push(parent);
                } else if let Some(l) = links.iter().find(|l| l.ifindex == parent) {
                    lowers.push(l);
                } else {
                    lowers_elsewhere.push(parent);
                }
            }
        }
        lowers.sort_by_key(|l| l.ifindex);
        for l in &lowers {
            if seen.insert(l.ifindex) {
                queue.push_back((l, depth + 1, Some(link.name.clone())));
            }
        }
        stack.push(Device {
            name: link.name.clone(),
            ifindex: link.ifindex,
            kind: DeviceKind::from_link_kind(
                link.link_kind.as_deref(),
                link.flags & IFF_LOOPBACK != 0,
            ),
            link_kind: link.link_kind.clone(),
            mtu: link.mtu,
            oper_state: link.oper_state.clone(),
            admin_up: link.flags & IFF_UP != 0,
            depth,
            upper,
            lowers: lowers.iter().map(|l| l.name.clone()).collect(),
            lowers_elsewhere,
            // Another namespace may well reuse this device's own index for the peer or parent.
            link_ifindex: link
                .link
                .filter(|&p| p != 0 && (p != link.ifindex || link.link_netnsid.is_some())),
            link_netnsid: link.link_netnsid,
            features: None,
            forwards_to: None,
            bond: link.bond.map(|b| Bond {
                mode: BondMode::from_kernel(b.mode),
                active_slave: b
                    .active_slave
                    .and_then(|i| links.iter().find(|l| l.ifindex == i))
                    .map(|l| l.name.clone()),
            }),
            vlans: None,
            tc: None,
        });
    }
    Ok(stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ifindex: u32, name: &str, kind: Option<&str>) -> Link {
        Link {
            address: None,
            macvlan_mode: None,
            bond: None,
            vlan_filtering: false,
            ifindex,
            name: name.to_string(),
            link_kind: kind.map(str::to_string),
            mtu: 1500,
            oper_state: "up".to_string(),
            flags: IFF_UP,
            master: None,
            link: None,
            link_netnsid: None,
        }
    }

    #[test]
    fn vlan_over_bond_over_two_nics() {
        let mut eth0 = link(2, "eth0", None);
        eth0.master = Some(4);
        let mut eth1 = link(3, "eth1", None);
        eth1.master = Some(4);
        let bond = link(4, "bond1", Some("bond"));
        let mut vlan = link(5, "bond1.100", Some("vlan"));
        vlan.link = Some(4);
        let links = vec![link(1, "lo", None), eth0, eth1, bond, vlan];
        let stack = stack_from_links(&links, "bond1.100").unwrap();
        let names: Vec<(&str, u32)> = stack.iter().map(|d| (d.name.as_str(), d.depth)).collect();
        assert_eq!(
            names,
            [("bond1.100", 0), ("bond1", 1), ("eth0", 2), ("eth1", 2)]
        );
        assert_eq!(stack[1].kind, DeviceKind::Bond);
        assert_eq!(stack[1].lowers, ["eth0", "eth1"]);
        assert_eq!(stack[2].upper.as_deref(), Some("bond1"));
    }

    /// An active-backup bond transmits by its active slave only: the backup is off the path.
    /// A hashing bond's slaves each carry some flows.
    #[test]
    fn bond_modes_decide_which_slaves_are_on_the_path() {
        use crate::evidence::{Partial, off_path, partial_carriers};
        let mut d0 = link(2, "d0", Some("dummy"));
        d0.master = Some(4);
        let mut d1 = link(3, "d1", Some("dummy"));
        d1.master = Some(4);
        let mut bond = link(4, "bond0", Some("bond"));
        bond.bond = Some(super::netlink::BondAttrs {
            mode: 1,
            active_slave: Some(3),
        });
        let links = vec![d0.clone(), d1.clone(), bond.clone()];
        let stack = stack_from_links(&links, "bond0").unwrap();
        let info = stack[0].bond.as_ref().unwrap();
        assert_eq!(info.mode, BondMode::ActiveBackup);
        assert_eq!(info.active_slave.as_deref(), Some("d1"));
        assert_eq!(off_path(&stack).into_iter().collect::<Vec<_>>(), ["d0"]);
        assert!(partial_carriers(&stack, true).is_empty());

        bond.bond = Some(super::netlink::BondAttrs {
            mode: 2,
            active_slave: None,
        });
        let stack = stack_from_links(&[d0, d1, bond], "bond0").unwrap();
        assert_eq!(stack[0].bond.as_ref().unwrap().mode, BondMode::BalanceXor);
        assert!(off_path(&stack).is_empty());
        let hashed = partial_carriers(&stack, true);
        let xor = ("bond0".to_string(), Partial::Hashed(BondMode::BalanceXor));
        assert_eq!(hashed.get("d0"), Some(&xor));
        assert_eq!(hashed.get("d1"), Some(&xor));
    }

    #[test]
    fn veth_peer_is_not_a_lower_device() {
        let mut veth = link(7, "veth0", Some("veth"));
        veth.link = Some(8);
        let peer = link(8, "veth1", Some("veth"));
        let stack = stack_from_links(&[veth, peer], "veth0").unwrap();
        assert_eq!(stack.len(), 1);
        assert_eq!(stack[0].kind, DeviceKind::Veth);
    }

    #[test]
    fn lower_in_another_namespace_is_recorded() {
        let mut mv = link(3, "mv0", Some("macvlan"));
        mv.link = Some(9);
        mv.link_netnsid = Some(0);
        let stack = stack_from_links(&[mv], "mv0").unwrap();
        assert_eq!(stack[0].lowers_elsewhere, [9]);
    }

    #[test]
    fn unknown_interface_lists_existing_ones() {
        let err =
            stack_from_links(&[link(1, "lo", None), link(2, "eth0", None)], "bond9").unwrap_err();
        assert_eq!(err.existing, ["eth0", "lo"]);
        assert!(err.to_string().contains("eth0, lo"));
    }

    #[test]
    fn loopback_flag_wins() {
        let mut lo = link(1, "lo", None);
        lo.flags |= IFF_LOOPBACK;
        assert_eq!(
            stack_from_links(&[lo], "lo").unwrap()[0].kind,
            DeviceKind::Loopback
        );
    }
}
