//! The walk itself: one step at a time from a device stack to the next (a lower device in
//! another namespace, a veth peer and the device its namespace forwards out of, a tunnel's
//! underlay), entering namespaces on short-lived threads and mapping namespace ids to files.

use std::collections::HashSet;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsFd;

use super::peer::{PeerNext, PeerView, veth_peer_view};
use super::{Known, Next, Position, Step, incomplete, is_tunnel, label, links_here, segment};
use crate::evidence::{
    Device, DeviceKind, Encapsulation, Entered, HopRole, OsError, PathEnd, PathStop, RouteType,
};
use crate::probe::netlink::{self, RouteQuery};
use crate::probe::netns;
use crate::probe::stack;

/// The veth port a bridge at the top of `stack` sends the target's frames to (its FDB's
/// choice), if any: the traffic then goes into that veth's peer namespace.
pub(super) fn bridged_to_veth(stack: &[Device]) -> Option<&Device> {
    let top = stack.first().filter(|d| d.kind == DeviceKind::Bridge)?;
    let port = top.forwards_to.as_ref()?.port.as_ref()?;
    stack
        .iter()
        .find(|d| &d.name == port && d.kind == DeviceKind::Veth)
}

/// A sibling device found by [`Walker::sibling`]: its ifindex and name there.
type Sibling = (u32, String);

/// At most this many namespaces are searched for a macvlan sibling.
const MAX_SIBLING_NAMESPACES: usize = 1024;

/// At most this many processes are looked at to find namespaces without a name.
const MAX_PROCESSES: usize = 65_536;

pub(super) struct Walker {
    pub(super) target: Option<IpAddr>,
    /// The sender's source address toward `target`.
    pub(super) source: Option<IpAddr>,
    /// Namespaces that can be entered, found on first need.
    pub(super) known: Option<Vec<Known>>,
}

impl Walker {
    /// The next hop from `at`; `Ok(None)` when `at` transmits off the host.
    pub(super) fn step(&mut self, at: &Position) -> Result<Option<Step>, PathEnd> {
        // A macvlan in bridge mode hands frames for a sibling to it, before any lower device.
        if let Some(top) = at.stack.first().filter(|d| d.kind == DeviceKind::Macvlan)
            && let Some(step) = self.macvlan_sibling(at, top)?
        {
            return Ok(Some(step));
        }
        // So does an ipvlan for a sibling's address (in every mode but VEPA and private).
        if let Some(top) = at.stack.first().filter(|d| d.kind == DeviceKind::Ipvlan)
            && let Some(step) = self.ipvlan_sibling(at, top)?
        {
            return Ok(Some(step));
        }
        // A lower device in another namespace: the traffic is transmitted there.
        if let Some(dev) = at
            .stack
            .iter()
            .find(|d| !d.lowers_elsewhere.is_empty() && d.link_netnsid.is_some())
        {
            let (Some(lower), Some(id)) = (dev.link_ifindex, dev.link_netnsid) else {
                return Ok(None);
            };
            let ns = self.namespace_of(at, id)?;
            let stack = in_ns(Some(&ns), move || stack_by_index(lower))??;
            let why = format!(
                "{}'s lower device is ifindex {lower} in namespace {} (its id {id} as seen from {})",
                dev.name,
                label(&ns.netns_ref()),
                at.ns
                    .as_ref()
                    .map_or("the diagnosed namespace".to_string(), |k| label(
                        &k.netns_ref()
                    ))
            );
            return Ok(Some(Step {
                segments: vec![segment(
                    &ns,
                    HopRole::StackedLower,
                    why,
                    stack.clone(),
                    None,
                )],
                next: Next::Continue(Position {
                    ns: Some(ns),
                    stack,
                }),
            }));
        }
        let Some(top) = at.stack.first() else {
            return Ok(None);
        };
        if top.kind == DeviceKind::Veth {
            return self.through_veth(at, top).map(Some);
        }
        if is_tunnel(top) {
            return self.under_tunnel(at, top).map(Some);
        }
        if let Some(port) = bridged_to_veth(&at.stack) {
            return self.through_veth(at, port).map(Some);
        }
        Ok(None)
    }

    /// Into the peer namespace of a veth: local delivery there, or the route it forwards along.
    fn through_veth(&mut self, at: &Position, veth: &Device) -> Result<Step, PathEnd> {
        let Some(peer_index) = veth.link_ifindex else {
            return Err(incomplete(
                PathStop::DeviceMissing,
                format!("{} names no peer", veth.name),
                None,
            ));
        };
        let ns = match (veth.link_netnsid, &at.ns) {
            (Some(id), _) => self.namespace_of(at, id)?,
            (None, Some(ns)) => ns.clone(),
            (None, None) => current()?,
        };
        let (target, source) = (self.target, self.source);
        let view = in_ns(Some(&ns), move || {
            veth_peer_view(peer_index, target, source)
        })??;
        let why = format!(
            "{} is a veth whose peer {} is in namespace {}",
            veth.name,
            view.peer_stack.first().map_or("?", |d| d.name.as_str()),
            label(&ns.netns_ref())
        );
        Ok(beyond(ns, HopRole::VethPeer, why, view))
    }

    /// A macvlan in bridge mode whose next hop's MAC is a sibling's (another macvlan in bridge
    /// mode, in any namespace zcdoctor can enter): the frames are handed to the sibling, which
    /// receives them as a veth peer would. `Ok(None)` when that is not so, or cannot be told
    /// (no target, the neighbour unresolved).
    fn macvlan_sibling(&mut self, at: &Position, top: &Device) -> Result<Option<Step>, PathEnd> {
        let Some(target) = self.target else {
            return Ok(None);
        };
        let ifindex = top.ifindex;
        let mac = in_ns(at.ns.as_ref(), move || sibling_mac(ifindex, target))?;
        let Some(mac) = mac else {
            return Ok(None);
        };
        let wanted = move || {
            let mac = mac.clone();
            netlink::dump_links().ok().and_then(|links| {
                links
                    .into_iter()
                    .find(|l| {
                        l.address.as_deref() == Some(mac.as_slice())
                            && l.macvlan_mode == Some(netlink::MACVLAN_MODE_BRIDGE)
                    })
                    .map(|l| (l.ifindex, l.name))
            })
        };
        let Some((k, sibling)) = self.sibling(at, ifindex, wanted)? else {
            return Ok(None);
        };
        let source = self.source;
        let view = in_ns(Some(&k), move || {
            veth_peer_view(sibling.0, Some(target), source)
        })??;
        let why = format!(
            "{} is a macvlan in bridge mode; the next hop's MAC is that of its sibling {} in namespace {}, which it hands the frames to",
            top.name,
            sibling.1,
            label(&k.netns_ref())
        );
        Ok(Some(beyond(k, HopRole::MacvlanSibling, why, view)))
    }

    /// An ipvlan whose next hop is an address of a sibling (another ipvlan on the same lower
    /// device, known by the lower's MAC that all of them share, in any namespace zcdoctor can
    /// enter): ipvlan looks the address up among its port's slaves (`ipvlan_addr_lookup`) and
    /// hands the packet to that slave, which receives it. `Ok(None)` when no sibling holds it.
    fn ipvlan_sibling(&mut self, at: &Position, top: &Device) -> Result<Option<Step>, PathEnd> {
        let Some(target) = self.target else {
            return Ok(None);
        };
        let ifindex = top.ifindex;
        let Some((mac, next_hop)) =
            in_ns(at.ns.as_ref(), move || ipvlan_next_hop(ifindex, target))?
        else {
            return Ok(None);
        };
        let wanted = move || ipvlan_holding(&mac, next_hop);
        let Some((k, sibling)) = self.sibling(at, ifindex, wanted)? else {
            return Ok(None);
        };
        let source = self.source;
        let view = in_ns(Some(&k), move || {
            veth_peer_view(sibling.0, Some(target), source)
        })??;
        let why = format!(
            "{} is an ipvlan; its next hop {next_hop} is an address of its sibling {} on the same lower device, in namespace {}, which ipvlan hands the packets to",
            top.name,
            sibling.1,
            label(&k.netns_ref())
        );
        Ok(Some(beyond(k, HopRole::IpvlanSibling, why, view)))
    }

    /// The first namespace zcdoctor can enter (at most [`MAX_SIBLING_NAMESPACES`], its own
    /// first) where `find` names a device (ifindex, name) other than `ifindex` of `at` itself.
    fn sibling(
        &mut self,
        at: &Position,
        ifindex: u32,
        find: impl Fn() -> Option<Sibling> + Send + Clone,
    ) -> Result<Option<(Known, Sibling)>, PathEnd> {
        let here = match &at.ns {
            Some(k) => k.handle.inode,
            None => current()?.handle.inode,
        };
        let mut candidates = vec![current()?];
        candidates.extend(self.known.get_or_insert_with(known_namespaces).clone());
        let mut seen = HashSet::new();
        for k in candidates.into_iter().take(MAX_SIBLING_NAMESPACES) {
            if !seen.insert(k.handle.inode) {
                continue;
            }
            let Ok(Some(sibling)) = in_ns(Some(&k), find.clone()) else {
                continue;
            };
            if k.handle.inode == here && sibling.0 == ifindex {
                continue;
            }
            return Ok(Some((k, sibling)));
        }
        Ok(None)
    }

    /// Under a tunnel: the route to its remote, in its link namespace.
    fn under_tunnel(&mut self, at: &Position, dev: &Device) -> Result<Step, PathEnd> {
        let tunnel = tunnel_of(at, dev)?;
        let remote = tunnel_remote(at, dev, &tunnel)?;
        let ns = match (tunnel.link_netnsid, &at.ns) {
            (Some(id), _) => Some(self.namespace_of(at, id)?),
            (None, ns) => ns.clone(),
        };
        let oif = tunnel.link;
        // The encapsulated packets leave from the tunnel's local address when it has one: a
        // source-based rule may route them differently from the tunnel's remote alone.
        let src = tunnel
            .local
            .filter(|l| !l.is_unspecified() && l.is_ipv4() == remote.is_ipv4());
        let name = dev.name.clone();
        let (stack, why) = in_ns(ns.as_ref(), move || {
            underlay_egress(&name, remote, oif, src)
        })??;
        let here = match &ns {
            Some(k) => k.clone(),
            None => current()?,
        };
        let mut underlay = segment(&here, HopRole::TunnelUnderlay, why, stack.clone(), None);
        underlay.encapsulates = Some(Encapsulation {
            tunnel: dev.name.clone(),
            kind: tunnel.kind.clone(),
            mtu: dev.mtu,
            remote,
        });
        // From here on the packets are the tunnel's: a veth or forwarding namespace further
        // along routes them to the remote, from the tunnel's local address.
        self.target = Some(remote);
        self.source = src;
        Ok(Step {
            segments: vec![underlay],
            next: Next::Continue(Position { ns, stack }),
        })
    }

    /// The namespace that namespace id `id`, as seen from `at`'s namespace, names.
    fn namespace_of(&mut self, at: &Position, id: i32) -> Result<Known, PathEnd> {
        let known = self.known.get_or_insert_with(known_namespaces).clone();
        for candidate in known {
            let Ok(file) = File::open(&candidate.handle.path) else {
                continue;
            };
            let got = in_ns(at.ns.as_ref(), move || netlink::nsid_of(file.as_fd()))?;
            if let Ok(Some(n)) = got
                && n == id
            {
                return Ok(candidate);
            }
        }
        Err(incomplete(
            PathStop::NamespaceUnknown,
            format!(
                "no namespace zcdoctor can enter has id {id} as {} sees it (a namespace without a name or a process, or one it may not open)",
                at.ns
                    .as_ref()
                    .map_or("the diagnosed namespace".to_string(), |k| label(
                        &k.netns_ref()
                    ))
            ),
            None,
        ))
    }
}

/// What follows a device that receives the traffic (a veth's peer, a macvlan sibling): local
/// delivery there, or the device its namespace forwards out of.
fn beyond(ns: Known, role: HopRole, why: String, view: PeerView) -> Step {
    let netns = ns.netns_ref();
    let mut segments = vec![segment(&ns, role, why, view.peer_stack, view.forwarding)];
    let next = match view.next {
        PeerNext::Local(address) => Next::End(PathEnd::LocalDelivery { netns, address }),
        PeerNext::NotForwarded(reason) => Next::End(incomplete(
            PathStop::NotForwarded,
            format!("namespace {}: {reason}", label(&netns)),
            None,
        )),
        PeerNext::Failed(end) => Next::End(end),
        PeerNext::Egress(stack, why) => {
            segments.push(segment(
                &ns,
                HopRole::ForwardedEgress,
                why,
                stack.clone(),
                view.forwarding,
            ));
            Next::Continue(Position {
                ns: Some(ns),
                stack,
            })
        }
    };
    Step { segments, next }
}

/// In the calling thread's namespace: the MAC of `target`'s next hop on the macvlan `ifindex`,
/// when that macvlan is in bridge mode and the neighbour is resolved.
fn sibling_mac(ifindex: u32, target: IpAddr) -> Option<Vec<u8>> {
    let links = netlink::dump_links().ok()?;
    let me = links.iter().find(|l| l.ifindex == ifindex)?;
    if me.macvlan_mode != Some(netlink::MACVLAN_MODE_BRIDGE) {
        return None;
    }
    let route = netlink::route_get(target).ok()?;
    if route.ifindex != Some(ifindex) {
        return None;
    }
    stack::next_hop_mac(&route, ifindex, target)
        .1
        .map(|mac| mac.to_vec())
}

/// In the calling thread's namespace: the MAC of the ipvlan `ifindex` (its lower device's,
/// shared by every sibling) and the next hop toward `target` when the route leaves by it.
fn ipvlan_next_hop(ifindex: u32, target: IpAddr) -> Option<(Vec<u8>, IpAddr)> {
    let links = netlink::dump_links().ok()?;
    let me = links.iter().find(|l| l.ifindex == ifindex)?;
    let route = netlink::route_get(target).ok()?;
    if route.ifindex != Some(ifindex) {
        return None;
    }
    let next_hop = route
        .gateway
        .as_deref()
        .and_then(|g| g.parse::<IpAddr>().ok())
        .unwrap_or(target);
    Some((me.address.clone()?, next_hop))
}

/// In the calling thread's namespace: the ipvlan with MAC `mac` that holds `addr`.
fn ipvlan_holding(mac: &[u8], addr: IpAddr) -> Option<(u32, String)> {
    let links = netlink::dump_links().ok()?;
    let owner = netlink::addresses()
        .ok()?
        .into_iter()
        .find(|a| a.local && a.addr == addr)?
        .ifindex;
    links
        .into_iter()
        .find(|l| {
            l.ifindex == owner
                && l.address.as_deref() == Some(mac)
                && matches!(l.link_kind.as_deref(), Some("ipvlan" | "ipvtap"))
        })
        .map(|l| (l.ifindex, l.name))
}

/// The probe's own namespace as a [`Known`] (for a veth whose peer shares it).
fn current() -> Result<Known, PathEnd> {
    let handle = netns::netns_of_pid(std::process::id()).map_err(|e| {
        incomplete(
            PathStop::OwnNamespace,
            format!("cannot read this process's namespace: {e}"),
            None,
        )
    })?;
    Ok(Known {
        handle,
        entered: Entered::Current,
    })
}

/// Named namespaces, then those of running processes, each once.
fn known_namespaces() -> Vec<Known> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for handle in netns::named_netns() {
        if seen.insert(handle.inode) {
            let path = handle.path.display().to_string();
            out.push(Known {
                handle,
                entered: Entered::Path { path },
            });
        }
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten().take(MAX_PROCESSES) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(handle) = netns::netns_of_pid(pid)
            && seen.insert(handle.inode)
        {
            out.push(Known {
                handle,
                entered: Entered::Process { pid },
            });
        }
    }
    out
}

/// The tunnel parameters of `dev` (read in `at`'s namespace).
fn tunnel_of(at: &Position, dev: &Device) -> Result<netlink::Tunnel, PathEnd> {
    let ifindex = dev.ifindex;
    let tunnel = in_ns(at.ns.as_ref(), move || netlink::tunnel(ifindex))?.map_err(|e| {
        incomplete(
            PathStop::Tunnel,
            format!("cannot read {}'s tunnel: {e}", dev.name),
            e.to_os_error(),
        )
    })?;
    tunnel.ok_or_else(|| {
        incomplete(
            PathStop::Tunnel,
            format!("{} reports no tunnel parameters", dev.name),
            None,
        )
    })
}

/// Where tunnel `dev` sends its packets: its remote, else its multicast group, else (WireGuard,
/// which has no single remote) its peers' first endpoint.
fn tunnel_remote(at: &Position, dev: &Device, tunnel: &netlink::Tunnel) -> Result<IpAddr, PathEnd> {
    let endpoint = if tunnel.kind == "wireguard" {
        let name = dev.name.clone();
        in_ns(at.ns.as_ref(), move || netlink::wireguard_endpoints(&name))?
            .ok()
            .and_then(|e| e.first().map(|a| a.ip()))
    } else {
        None
    };
    tunnel.remote.or(tunnel.group).or(endpoint).ok_or_else(|| {
        let reason = format!(
            "{} has no fixed remote (external or learning): its underlay depends on each destination",
            dev.name
        );
        incomplete(PathStop::TunnelRemote, reason, None)
    })
}

/// In the tunnel's link namespace: the stack the encapsulated packets of tunnel `name` leave
/// through toward `remote` (bound to underlay device `oif`, from `src`), and why.
fn underlay_egress(
    name: &str,
    remote: IpAddr,
    oif: Option<u32>,
    src: Option<IpAddr>,
) -> Result<(Vec<Device>, String), PathEnd> {
    let route = netlink::route_lookup(&RouteQuery {
        oif,
        src,
        ..RouteQuery::to(remote)
    })
    .map_err(|e| {
        incomplete(
            PathStop::RouteLookup,
            format!("no route to {name}'s remote {remote}: {e}"),
            e.to_os_error(),
        )
    })?;
    let Some(out) = route
        .ifindex
        .filter(|_| route.route_type == RouteType::Unicast)
    else {
        return Err(incomplete(
            PathStop::RouteNowhere,
            format!(
                "the route to {name}'s remote {remote} is {}",
                route.route_type
            ),
            None,
        ));
    };
    let stack = stack_by_index(out)?;
    let egress = stack.first().map_or(String::new(), |d| d.name.clone());
    Ok((
        stack,
        format!("{name} encapsulates to {remote}, routed out of {egress}"),
    ))
}

/// Runs `f` in `ns` (on a short-lived thread), or here when `ns` is `None`.
fn in_ns<T: Send>(ns: Option<&Known>, f: impl FnOnce() -> T + Send) -> Result<T, PathEnd> {
    let Some(ns) = ns else {
        return Ok(f());
    };
    let file = File::open(&ns.handle.path).map_err(|e| {
        incomplete(
            PathStop::NamespaceUnenterable,
            format!("cannot open {}: {e}", ns.handle.path.display()),
            e.raw_os_error().map(|n| {
                OsError::new(
                    format!("open {}", ns.handle.path.display()),
                    nix::errno::Errno::from_raw(n),
                )
            }),
        )
    })?;
    netns::in_netns(&file, f).map_err(|e| {
        incomplete(
            PathStop::NamespaceUnenterable,
            format!(
                "cannot enter namespace {}: {}",
                label(&ns.netns_ref()),
                e.desc()
            ),
            Some(OsError::new("setns(CLONE_NEWNET)", e)),
        )
    })
}

/// The device with `ifindex` in the calling thread's namespace, with its stack and features.
fn stack_by_index(ifindex: u32) -> Result<Vec<Device>, PathEnd> {
    let links = links_here()?;
    let Some(link) = links.iter().find(|l| l.ifindex == ifindex) else {
        return Err(incomplete(
            PathStop::DeviceMissing,
            format!("no device with ifindex {ifindex}"),
            None,
        ));
    };
    let name = link.name.clone();
    let mut devices = stack::stack_from_links(&links, &name)
        .map_err(|e| incomplete(PathStop::DeviceStack, e.to_string(), None))?;
    for dev in &mut devices {
        dev.features = netlink::features(&dev.name).ok();
    }
    Ok(devices)
}
