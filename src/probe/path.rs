//! The `path` probe: follows the traffic beyond the diagnosed device's stack, hop by hop, from
//! the kernel's own answers: a lower device in another namespace (`IFLA_LINK_NETNSID`), the
//! peer of a veth and what its namespace does with the packet (an address there: local
//! delivery; otherwise the route it forwards along, looked up as if received on the peer), a
//! tunnel's underlay (the route to its remote in its link namespace). Each namespace is entered
//! on a short-lived thread (`setns`); the calling thread never moves.
//!
//! Namespace ids are per namespace: a link's `IFLA_LINK_NETNSID` is mapped to a namespace file
//! by asking, from the link's namespace, which id each known namespace has (`RTM_GETNSID`).
//! Known namespaces are the named ones (`/run/netns`) and those of running processes.

use std::collections::HashSet;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use super::netlink::{self, RouteQuery};
use super::netns::{self, NetnsHandle};
use super::{Context, GatherError, Outcome, Probe, TargetSpec, stack};
use crate::evidence::{
    Device, DeviceKind, Entered, Evidence, HopRole, NetnsRef, OsError, PathEnd, PathEvidence,
    ProbeName, RouteType, Segment,
};

/// A path longer than this is reported incomplete (a routing loop through veths, say).
const MAX_HOPS: usize = 8;
/// At most this many processes are looked at to find namespaces without a name.
const MAX_PROCESSES: usize = 65_536;

pub struct PathProbe;

impl Probe for PathProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Path
    }
    fn reads(&self) -> &'static str {
        "beyond the stack: lower devices in other namespaces, veth peers, forwarding routes, tunnel underlays (links, addresses, routes, namespace ids)"
    }
    fn privileges(&self) -> &'static str {
        "CAP_SYS_ADMIN to enter other namespaces (root); without it the path ends where the namespace changes"
    }
    fn gather(&self, cx: &mut Context, ev: &mut Evidence) -> Result<Outcome, GatherError> {
        let target = match cx.opts.live.as_ref().map(|l| &l.target) {
            Some(TargetSpec::Addr(a)) => Some(a.ip()),
            _ => None,
        };
        let Some(path) = walk(&ev.stack, target) else {
            return Ok(Outcome::ok(format!(
                "{} transmits from this namespace: nothing beyond its stack to follow",
                ev.interface
            )));
        };
        let detail = format!(
            "{} hop(s) beyond {}'s stack{}; {}",
            path.segments.len(),
            ev.interface,
            if path.assumed_default_route {
                " (no --target: default routes followed)"
            } else {
                ""
            },
            match &path.end {
                PathEnd::Wire => "leaves the host".to_string(),
                PathEnd::LocalDelivery { address, .. } => format!("{address} is local there"),
                PathEnd::Incomplete { reason, .. } => format!("incomplete: {reason}"),
            }
        );
        ev.path = Some(path);
        Ok(Outcome::ok(detail))
    }
}

/// Where the walk is: a device stack in a namespace (`ns` `None`: the probe's own).
struct Position {
    ns: Option<Known>,
    stack: Vec<Device>,
}

/// A namespace zcdoctor can enter.
#[derive(Clone)]
struct Known {
    handle: NetnsHandle,
    entered: Entered,
}

impl Known {
    fn netns_ref(&self) -> NetnsRef {
        NetnsRef {
            inode: self.handle.inode,
            name: self.handle.name.clone(),
        }
    }
}

/// What one step of the walk found: the segments it crossed, and where it goes on.
struct Step {
    segments: Vec<Segment>,
    next: Next,
}

enum Next {
    Continue(Position),
    End(PathEnd),
}

/// Follows the path from `stack` (in the probe's namespace). `None` when the stack transmits
/// from here (nothing to follow).
fn walk(stack: &[Device], target: Option<IpAddr>) -> Option<PathEvidence> {
    let top = stack.first()?;
    let follows = top.kind == DeviceKind::Veth
        || is_tunnel(top)
        || stack.iter().any(|d| !d.lowers_elsewhere.is_empty());
    if !follows {
        return None;
    }
    let origin_inode = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0);
    // Forwarding decisions are looked up as the receiving namespace sees the packet: from the
    // sender's source address (an input route lookup without one is refused, EINVAL).
    let source = target.and_then(|t| {
        netlink::route_get(t)
            .ok()
            .and_then(|r| r.source)
            .and_then(|s| s.parse::<IpAddr>().ok())
    });
    let mut walker = Walker {
        target,
        source,
        known: None,
    };
    let mut segments = Vec::new();
    let mut position = Position {
        ns: None,
        stack: stack.to_vec(),
    };
    let end = loop {
        if segments.len() >= MAX_HOPS {
            break incomplete(format!("more than {MAX_HOPS} hops (a routing loop?)"), None);
        }
        match walker.step(&position) {
            Ok(None) => break PathEnd::Wire,
            Ok(Some(step)) => {
                segments.extend(step.segments);
                match step.next {
                    Next::Continue(next) => position = next,
                    Next::End(end) => break end,
                }
            }
            Err(end) => break end,
        }
    };
    Some(PathEvidence {
        origin: NetnsRef {
            inode: origin_inode,
            name: None,
        },
        target,
        assumed_default_route: target.is_none(),
        segments,
        end,
    })
}

fn is_tunnel(dev: &Device) -> bool {
    matches!(
        dev.link_kind.as_deref(),
        Some(
            "vxlan"
                | "geneve"
                | "gre"
                | "gretap"
                | "ip6gre"
                | "ip6gretap"
                | "ipip"
                | "sit"
                | "ip6tnl"
        )
    )
}

fn incomplete(reason: String, error: Option<OsError>) -> PathEnd {
    PathEnd::Incomplete { reason, error }
}

fn label(ns: &NetnsRef) -> String {
    match &ns.name {
        Some(n) => n.clone(),
        None => format!("net:[{}]", ns.inode),
    }
}

fn segment(
    ns: &Known,
    role: HopRole,
    why: String,
    stack: Vec<Device>,
    forwarding: Option<bool>,
) -> Segment {
    Segment {
        netns: ns.netns_ref(),
        entered: ns.entered.clone(),
        role,
        why,
        stack,
        forwarding,
    }
}

/// Runs `f` in `ns` (on a short-lived thread), or here when `ns` is `None`.
fn in_ns<T: Send>(ns: Option<&Known>, f: impl FnOnce() -> T + Send) -> Result<T, PathEnd> {
    let Some(ns) = ns else {
        return Ok(f());
    };
    let file = File::open(&ns.handle.path).map_err(|e| {
        incomplete(
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
    let links = netlink::dump_links()
        .map_err(|e| incomplete(format!("cannot read the link table: {e}"), e.to_os_error()))?;
    let Some(link) = links.iter().find(|l| l.ifindex == ifindex) else {
        return Err(incomplete(
            format!("no device with ifindex {ifindex}"),
            None,
        ));
    };
    let name = link.name.clone();
    let mut devices =
        stack::stack_from_links(&links, &name).map_err(|e| incomplete(e.to_string(), None))?;
    for dev in &mut devices {
        dev.features = netlink::features(&dev.name).ok();
    }
    Ok(devices)
}

/// What a veth's peer namespace does with traffic to the target, read inside it.
struct PeerView {
    /// The peer device and what is below it.
    peer_stack: Vec<Device>,
    forwarding: Option<bool>,
    next: PeerNext,
}

enum PeerNext {
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
fn veth_peer_view(
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
                    crate::evidence::RouteInfo {
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
                    crate::evidence::RouteInfo {
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

struct Walker {
    target: Option<IpAddr>,
    /// The sender's source address toward `target`.
    source: Option<IpAddr>,
    /// Namespaces that can be entered, found on first need.
    known: Option<Vec<Known>>,
}

impl Walker {
    /// The next hop from `at`; `Ok(None)` when `at` transmits off the host.
    fn step(&mut self, at: &Position) -> Result<Option<Step>, PathEnd> {
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
        Ok(None)
    }

    /// Into the peer namespace of a veth: local delivery there, or the route it forwards along.
    fn through_veth(&mut self, at: &Position, veth: &Device) -> Result<Step, PathEnd> {
        let Some(peer_index) = veth.link_ifindex else {
            return Err(incomplete(format!("{} names no peer", veth.name), None));
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
        let netns = ns.netns_ref();
        let why = format!(
            "{} is a veth whose peer {} is in namespace {}",
            veth.name,
            view.peer_stack.first().map_or("?", |d| d.name.as_str()),
            label(&netns)
        );
        let mut segments = vec![segment(
            &ns,
            HopRole::VethPeer,
            why,
            view.peer_stack,
            view.forwarding,
        )];
        let next = match view.next {
            PeerNext::Local(address) => Next::End(PathEnd::LocalDelivery { netns, address }),
            PeerNext::NotForwarded(reason) => Next::End(incomplete(
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
        Ok(Step { segments, next })
    }

    /// Under a tunnel: the route to its remote, in its link namespace.
    fn under_tunnel(&mut self, at: &Position, dev: &Device) -> Result<Step, PathEnd> {
        let ifindex = dev.ifindex;
        let tunnel = in_ns(at.ns.as_ref(), move || netlink::tunnel(ifindex))?.map_err(|e| {
            incomplete(
                format!("cannot read {}'s tunnel: {e}", dev.name),
                e.to_os_error(),
            )
        })?;
        let Some(tunnel) = tunnel else {
            return Err(incomplete(
                format!("{} reports no tunnel parameters", dev.name),
                None,
            ));
        };
        let Some(remote) = tunnel.remote.or(tunnel.group) else {
            return Err(incomplete(
                format!(
                    "{} has no fixed remote (external or learning): its underlay depends on each destination",
                    dev.name
                ),
                None,
            ));
        };
        let ns = match (tunnel.link_netnsid, &at.ns) {
            (Some(id), _) => Some(self.namespace_of(at, id)?),
            (None, ns) => ns.clone(),
        };
        let oif = tunnel.link;
        let name = dev.name.clone();
        let egress = in_ns(
            ns.as_ref(),
            move || -> Result<(Vec<Device>, String), PathEnd> {
                let route = netlink::route_lookup(&RouteQuery {
                    oif,
                    ..RouteQuery::to(remote)
                })
                .map_err(|e| {
                    incomplete(
                        format!("no route to {name}'s remote {remote}: {e}"),
                        e.to_os_error(),
                    )
                })?;
                let Some(out) = route
                    .ifindex
                    .filter(|_| route.route_type == RouteType::Unicast)
                else {
                    return Err(incomplete(
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
            },
        )??;
        let (stack, why) = egress;
        let here = match &ns {
            Some(k) => k.clone(),
            None => current()?,
        };
        Ok(Step {
            segments: vec![segment(
                &here,
                HopRole::TunnelUnderlay,
                why,
                stack.clone(),
                None,
            )],
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

/// The probe's own namespace as a [`Known`] (for a veth whose peer shares it).
fn current() -> Result<Known, PathEnd> {
    let handle = netns::netns_of_pid(std::process::id())
        .map_err(|e| incomplete(format!("cannot read this process's namespace: {e}"), None))?;
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
