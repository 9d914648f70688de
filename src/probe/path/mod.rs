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

mod peer;
mod walker;

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;

use super::netns::NetnsHandle;
use super::{Context, GatherError, GatherOptions, Outcome, Probe};
use crate::evidence::{
    Device, DeviceKind, Entered, Evidence, HopRole, NetnsRef, OsError, PathEnd, PathEvidence,
    PathStop, ProbeName, Segment,
};
use walker::Walker;

/// A path longer than this is reported incomplete (a routing loop through veths, say).
const MAX_HOPS: usize = 8;

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
        let target = cx.opts.destination();
        let Some(path) = walk(cx.opts, &ev.stack, target) else {
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
pub(super) struct Position {
    pub(super) ns: Option<Known>,
    pub(super) stack: Vec<Device>,
}

/// A namespace zcdoctor can enter.
#[derive(Clone)]
pub(super) struct Known {
    pub(super) handle: NetnsHandle,
    pub(super) entered: Entered,
}

impl Known {
    pub(super) fn netns_ref(&self) -> NetnsRef {
        NetnsRef {
            inode: self.handle.inode,
            name: self.handle.name.clone(),
        }
    }
}

/// What one step of the walk found: the segments it crossed, and where it goes on.
pub(super) struct Step {
    pub(super) segments: Vec<Segment>,
    pub(super) next: Next,
}

pub(super) enum Next {
    Continue(Position),
    End(PathEnd),
}

/// Follows the path from `stack` (in the probe's namespace). `None` when the stack transmits
/// from here (nothing to follow).
fn walk(opts: &GatherOptions, stack: &[Device], target: Option<IpAddr>) -> Option<PathEvidence> {
    let top = stack.first()?;
    let follows = top.kind == DeviceKind::Veth
        || is_tunnel(top)
        || walker::bridged_to_veth(stack).is_some()
        || top.kind == DeviceKind::Macvlan
        || stack.iter().any(|d| !d.lowers_elsewhere.is_empty());
    if !follows {
        return None;
    }
    let origin_inode = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0);
    // Forwarding decisions are looked up as the receiving namespace sees the packet: from the
    // sender's source address (an input route lookup without one is refused, EINVAL): the
    // diagnosed sockets' own, else the one the route prefers.
    let source = target.and_then(|t| {
        let own = opts
            .path_routing
            .source
            .filter(|_| opts.path_target == Some(t));
        own.or_else(|| {
            opts.route(t)
                .ok()
                .and_then(|r| r.source)
                .and_then(|s| s.parse::<IpAddr>().ok())
        })
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
            break incomplete(
                PathStop::HopLimit,
                format!("more than {MAX_HOPS} hops (a routing loop?)"),
                None,
            );
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
    // A macvlan with no sibling in the way and its lower device here: nothing beyond.
    if segments.is_empty() && end == PathEnd::Wire {
        return None;
    }
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

pub(super) fn is_tunnel(dev: &Device) -> bool {
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

pub(super) fn incomplete(stop: PathStop, reason: String, error: Option<OsError>) -> PathEnd {
    PathEnd::Incomplete {
        stop,
        reason,
        error,
    }
}

/// The calling thread's namespace's links, or where the walk stops.
pub(super) fn links_here() -> Result<Vec<crate::probe::netlink::Link>, PathEnd> {
    crate::probe::netlink::dump_links().map_err(|e| {
        incomplete(
            PathStop::LinkTable,
            format!("cannot read the link table: {e}"),
            e.to_os_error(),
        )
    })
}

pub(super) fn label(ns: &NetnsRef) -> String {
    match &ns.name {
        Some(n) => n.clone(),
        None => format!("net:[{}]", ns.inode),
    }
}

pub(super) fn segment(
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
        encapsulates: None,
        nfqueue: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(name: &str, kind: DeviceKind, link_kind: Option<&str>) -> Device {
        Device {
            name: name.to_string(),
            ifindex: 2,
            kind,
            link_kind: link_kind.map(str::to_string),
            mtu: 1500,
            oper_state: "up".to_string(),
            admin_up: true,
            depth: 0,
            upper: None,
            lowers: Vec::new(),
            lowers_elsewhere: Vec::new(),
            link_ifindex: None,
            link_netnsid: None,
            features: None,
            forwards_to: None,
            bond: None,
            vlans: None,
            tc: None,
        }
    }

    #[test]
    fn a_device_that_transmits_from_here_has_no_path_to_follow() {
        let nic = device("eth0", DeviceKind::Physical, None);
        assert!(walk(&GatherOptions::default(), &[nic], None).is_none());
        assert!(walk(&GatherOptions::default(), &[], None).is_none());
    }

    #[test]
    fn tunnels_are_recognised_by_their_link_kind() {
        for kind in ["vxlan", "geneve", "gretap", "ipip", "ip6tnl"] {
            assert!(
                is_tunnel(&device("t0", DeviceKind::Other, Some(kind))),
                "{kind}"
            );
        }
        assert!(!is_tunnel(&device(
            "m0",
            DeviceKind::Macvlan,
            Some("macvlan")
        )));
    }

    #[test]
    fn namespaces_are_labelled_by_name_or_inode() {
        let named = NetnsRef {
            inode: 7,
            name: Some("router".into()),
        };
        assert_eq!(label(&named), "router");
        assert_eq!(
            label(&NetnsRef {
                inode: 7,
                name: None
            }),
            "net:[7]"
        );
    }
}
