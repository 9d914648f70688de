//! `check --pid` without an interface: where the process's zerocopy sockets send, and the way
//! out toward each destination. The largest group of sockets gives the diagnosed path (the
//! whole gather runs toward its peer); every other destination in the same namespace is read
//! with [`probe::gather_route`](crate::probe::gather_route), and destinations whose way out is
//! the same share one entry. Runs in the namespace the main gather ran in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{exists, read_process};
use crate::evidence::Fact;
use crate::evidence::{
    Device, Evidence, MAX_ROUTES, NotDiagnosed, PathEnd, PathEvidence, ProcessEvidence, Route,
    Serving, SocketRouting,
};
use crate::probe::{GatherOptions, gather_route};

/// One destination of the diagnosed processes' connected zerocopy sockets: its namespace and
/// peer, and every such socket going there.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketDestination {
    /// The namespace the sockets live in (inode).
    pub netns: u64,
    pub peer: IpAddr,
    /// How the kernel routes them: sockets to one peer with another source, mark or bound
    /// device may leave another way, so they are another destination.
    pub routing: SocketRouting,
    /// The sockets going to `peer`, as `fd N (proto local → peer)`, with `pid P ` first when
    /// more than one process is diagnosed.
    pub sockets: Vec<String>,
}

/// The destinations of the processes' connected zerocopy sockets, most sockets first. Pure:
/// reads only what the process probe recorded. IPv4-mapped IPv6 addresses (a dual-stack socket
/// talking to an IPv4 peer) are the IPv4 addresses the kernel routes.
pub fn zerocopy_destinations(processes: &[ProcessEvidence]) -> Vec<SocketDestination> {
    let mut out: Vec<SocketDestination> = Vec::new();
    let mut index: HashMap<(u64, IpAddr, SocketRouting), usize> = HashMap::new();
    for p in processes {
        for s in &p.sockets {
            if s.zerocopy.value() != Some(&true) {
                continue;
            }
            let (Some(Some(peer)), Some(netns)) = (s.peer.value(), s.netns.value()) else {
                continue;
            };
            let Ok(addr) = peer.parse::<std::net::SocketAddr>() else {
                continue;
            };
            let whose = if processes.len() > 1 {
                format!("pid {} ", p.pid)
            } else {
                String::new()
            };
            let label = format!(
                "{whose}fd {} ({} {} → {peer})",
                s.fd,
                s.protocol,
                s.local.value().map_or("?", String::as_str)
            );
            let routing = SocketRouting {
                source: s
                    .local
                    .value()
                    .and_then(|l| l.parse::<std::net::SocketAddr>().ok())
                    .map(|l| l.ip().to_canonical())
                    .filter(|ip| !ip.is_unspecified()),
                mark: s.mark.filter(|m| *m != 0),
                bound_ifindex: s.bound_ifindex.filter(|i| *i != 0),
                bound_device: s.bound_device.clone(),
                uid: s.uid,
            };
            let peer = addr.ip().to_canonical();
            let key = (*netns, peer, routing.clone());
            match index.get(&key) {
                Some(&i) => out[i].sockets.push(label),
                None => {
                    index.insert(key, out.len());
                    out.push(SocketDestination {
                        netns: *netns,
                        peer,
                        routing,
                        sockets: vec![label],
                    });
                }
            }
        }
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.sockets.len()));
    out
}

/// The processes' zerocopy sockets that have no peer (unconnected UDP, listening TCP): each send
/// picks its destination, so no path can be followed for them. As `fd N (proto local, state)`.
pub fn unpeered_zerocopy(processes: &[ProcessEvidence]) -> Vec<String> {
    let mut out = Vec::new();
    for p in processes {
        for s in p
            .sockets
            .iter()
            .filter(|s| s.zerocopy.value() == Some(&true))
        {
            if let Fact::Read(None) = s.peer {
                let whose = if processes.len() > 1 {
                    format!("pid {} ", p.pid)
                } else {
                    String::new()
                };
                let state = s
                    .tcp_state
                    .as_ref()
                    .and_then(Fact::value)
                    .map_or("unconnected", String::as_str);
                out.push(format!(
                    "{whose}fd {} ({} {}, {state})",
                    s.fd,
                    s.protocol,
                    s.local.value().map_or("?", String::as_str)
                ));
            }
        }
    }
    out
}

/// What a diagnosis by pid follows: the processes' zerocopy destinations, largest group first,
/// and the namespace (inode) their sockets live in.
#[derive(Debug, Clone)]
pub struct PidPlan {
    /// The processes diagnosed (`--pid`, in order).
    pub pids: Vec<u32>,
    /// The namespace of the first destination's sockets (or, with none, of the first zerocopy
    /// socket).
    pub netns: Option<u64>,
    /// A diagnosed process living in `netns`, to enter it through (`/proc/PID/ns/net`).
    pub enter_through: Option<u32>,
    pub destinations: Vec<SocketDestination>,
    /// Zerocopy sockets without a peer ([`unpeered_zerocopy`]).
    pub unpeered: Vec<String>,
    /// The processes as read (the process probe reuses them: `GatherOptions::prefetched`).
    pub processes: Vec<ProcessEvidence>,
}

impl PidPlan {
    /// The zerocopy sockets of `pids` (those still running), connected ones grouped by
    /// destination.
    pub fn read(pids: &[u32]) -> PidPlan {
        let processes: Vec<ProcessEvidence> = pids
            .iter()
            .filter(|p| exists(**p))
            .map(|p| read_process(*p))
            .collect();
        let destinations = zerocopy_destinations(&processes);
        let netns = destinations.first().map(|d| d.netns).or_else(|| {
            processes
                .iter()
                .flat_map(|p| &p.sockets)
                .filter(|s| s.zerocopy.value() == Some(&true))
                .find_map(|s| s.netns.value().copied())
        });
        PidPlan {
            pids: processes.iter().map(|p| p.pid).collect(),
            netns,
            enter_through: processes
                .iter()
                .find(|p| netns.is_some() && p.netns.value().map(|n| n.inode) == netns)
                .map(|p| p.pid),
            unpeered: unpeered_zerocopy(&processes),
            destinations,
            processes,
        }
    }

    /// Whether the calling thread is in the namespace of the first destination's sockets: only
    /// then are its routes the ones these sockets take (the diagnosis may run in the user's
    /// `--netns`, or in zcdoctor's own when no diagnosed process lives where the sockets do).
    pub fn is_here(&self) -> bool {
        let here = std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino());
        self.destinations
            .first()
            .is_some_and(|d| here.is_ok_and(|h| h == d.netns))
    }

    /// The peer the diagnosed path is followed toward, and how its sockets are routed.
    pub fn first(&self) -> Option<(IpAddr, SocketRouting)> {
        self.destinations
            .first()
            .map(|d| (d.peer, d.routing.clone()))
    }
}

/// Adds `peer` to the other peers of a way whose first is `first`, once.
fn add_peer(also: &mut Vec<IpAddr>, first: IpAddr, peer: IpAddr) {
    if peer != first && !also.contains(&peer) {
        also.push(peer);
    }
}

/// At most this many destinations besides the first are read (each costs a route lookup and a
/// read of its stack and path, about 2.5 ms): a server with thousands of peers is summed up.
pub const MAX_DESTINATIONS_READ: usize = 32;

/// The way out toward one destination, as far as grouping is concerned: every device crossed
/// (namespace inode, ifindex, the bridge port chosen) and how the path ends.
/// The family is part of it: an IPv6 destination needs other offloads (checksum) than an IPv4
/// one through the same devices.
#[derive(Debug, PartialEq, Eq)]
struct WayOut(bool, Vec<(u64, u32, Option<String>)>, String);

fn way_out(peer: IpAddr, stack: &[Device], path: Option<&PathEvidence>) -> WayOut {
    let devices = |inode: u64, stack: &[Device]| -> Vec<(u64, u32, Option<String>)> {
        stack
            .iter()
            .map(|d| {
                let port = d.forwards_to.as_ref().and_then(|c| c.port.clone());
                (inode, d.ifindex, port)
            })
            .collect()
    };
    let mut all = devices(0, stack);
    let end = match path {
        None => "wire".to_string(),
        Some(p) => {
            for seg in &p.segments {
                all.extend(devices(seg.netns.inode, &seg.stack));
            }
            match &p.end {
                PathEnd::Wire => "wire".to_string(),
                PathEnd::LocalDelivery { netns, address } => {
                    format!("local {address} in {}", netns.inode)
                }
                PathEnd::Incomplete { reason, .. } => format!("incomplete: {reason}"),
            }
        }
    };
    WayOut(peer.is_ipv6(), all, end)
}

/// The sockets of the diagnosed path and the routes of the process's other destinations.
/// `main` is the evidence gathered toward the first destination; `opts` its options. `None`
/// when no socket is connected.
pub fn serving(
    plan: &PidPlan,
    opts: &GatherOptions,
    stop: &AtomicBool,
    main: &Evidence,
) -> Option<Serving> {
    let first = plan.destinations.first()?;
    if !plan.is_here() {
        return None;
    }
    let mut ways = WaysOut {
        serving: Serving {
            also_peers: Vec::new(),
            pid: *plan.pids.first()?,
            also_pids: plan.pids[1..].to_vec(),
            peer: first.peer,
            sockets: first.sockets.clone(),
            routing: Some(first.routing.clone()),
            routes: Vec::new(),
            others: Vec::new(),
        },
        main: way_out(first.peer, &main.stack, main.path.as_ref()),
        routes: Vec::new(),
    };
    let (read, unread) = plan.destinations[1..].split_at(
        plan.destinations
            .len()
            .saturating_sub(1)
            .min(MAX_DESTINATIONS_READ),
    );
    if !unread.is_empty() {
        let sockets: usize = unread.iter().map(|d| d.sockets.len()).sum();
        ways.serving.others.push(NotDiagnosed::PastReadLimit {
            destinations: unread.len(),
            sockets,
            limit: MAX_DESTINATIONS_READ + 1,
        });
    }
    for d in read {
        match read_way_out(d, first.netns, opts, stop) {
            Ok(ev) => ways.add(d, ev),
            Err(why) => ways.serving.others.push(why),
        }
    }
    Some(ways.serving)
}

/// The evidence gathered toward destination `d` (its stack and path), or why it is not read:
/// it is in another namespace than `netns` (the diagnosed one), the run was stopped, or its
/// route or way out could not be read.
fn read_way_out(
    d: &SocketDestination,
    netns: u64,
    opts: &GatherOptions,
    stop: &AtomicBool,
) -> Result<Evidence, NotDiagnosed> {
    let (peer, sockets) = (d.peer, d.sockets.clone());
    if d.netns != netns {
        return Err(NotDiagnosed::OtherNamespace {
            peer,
            sockets,
            netns: d.netns,
        });
    }
    if stop.load(Ordering::Relaxed) {
        return Err(NotDiagnosed::Interrupted { peer, sockets });
    }
    let route_opts = GatherOptions {
        path_target: Some(d.peer),
        path_routing: d.routing.clone(),
        iface: None,
        selection: opts.selection.clone(),
        live: None,
        pids: Vec::new(),
        prefetched: Vec::new(),
        known_tap_daemons: opts.known_tap_daemons.clone(),
    };
    if let Err(e) = route_opts.route(d.peer) {
        return Err(NotDiagnosed::NoRoute {
            peer,
            sockets,
            error: e.to_string(),
        });
    }
    gather_route(&route_opts, stop).map_err(|e| NotDiagnosed::Unreadable {
        peer,
        sockets,
        error: e.to_string(),
    })
}

/// The destinations sorted by their way out: those that leave like the diagnosed path join it,
/// each other way out is one route of the report (at most [`MAX_ROUTES`]).
struct WaysOut {
    serving: Serving,
    /// The diagnosed path's way out.
    main: WayOut,
    /// The way out of each of `serving.routes`, in the same order.
    routes: Vec<WayOut>,
}

impl WaysOut {
    /// Destination `d`, whose way out `ev` was gathered: onto the diagnosed path, onto a route
    /// with the same way out, as a new route, or (past [`MAX_ROUTES`]) among the others.
    fn add(&mut self, d: &SocketDestination, ev: Evidence) {
        let serving = &mut self.serving;
        let way = way_out(d.peer, &ev.stack, ev.path.as_ref());
        if way == self.main {
            serving.sockets.extend(d.sockets.iter().cloned());
            add_peer(&mut serving.also_peers, serving.peer, d.peer);
        } else if let Some(i) = self.routes.iter().position(|w| *w == way) {
            let r = &mut serving.routes[i];
            r.sockets.extend(d.sockets.iter().cloned());
            add_peer(&mut r.also_peers, r.peer, d.peer);
        } else if serving.routes.len() < MAX_ROUTES {
            self.routes.push(way);
            serving.routes.push(Route {
                also_peers: Vec::new(),
                peer: d.peer,
                sockets: d.sockets.clone(),
                routing: Some(d.routing.clone()),
                interface: ev.interface,
                stack: ev.stack,
                path: ev.path,
            });
        } else {
            serving.others.push(NotDiagnosed::PastWayLimit {
                peer: d.peer,
                sockets: d.sockets.clone(),
                limit: MAX_ROUTES + 1,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU's main migration channel and its multifd channels all go to one peer: one group.
    #[test]
    fn zerocopy_sockets_are_grouped_by_peer() {
        let ev: crate::evidence::Evidence = serde_json::from_str(include_str!(
            "../../../fixtures/process/process-qemu-multifd-optmem/evidence.json"
        ))
        .expect("fixture parses");
        let dests = zerocopy_destinations(&ev.processes);
        assert_eq!(dests.len(), 1, "{dests:?}");
        assert!(dests[0].sockets.len() >= 2, "{dests:?}");
        assert!(dests[0].sockets.iter().all(|s| s.starts_with("fd ")));

        // Two processes: one group per peer still, each socket saying whose it is.
        let mut two = ev.processes.clone();
        let mut other = two[0].clone();
        other.pid += 1;
        two.push(other);
        let dests = zerocopy_destinations(&two);
        assert_eq!(dests.len(), 1, "{dests:?}");
        let pid = ev.processes[0].pid;
        assert!(dests[0].sockets[0].starts_with(&format!("pid {pid} fd ")));
        assert!(
            dests[0]
                .sockets
                .iter()
                .any(|s| s.starts_with(&format!("pid {} fd ", pid + 1)))
        );
    }

    /// One peer, two destinations: the socket with SO_MARK 0x2a is routed apart from the plain
    /// one, and the socket bound to a device is its own too.
    #[test]
    fn mark_and_bound_device_set_sockets_apart() {
        let ev: crate::evidence::Evidence = serde_json::from_str(include_str!(
            "../../../fixtures/process/process-pid-mark-bound/evidence.json"
        ))
        .expect("fixture parses");
        let dests = zerocopy_destinations(&ev.processes);
        let seen: Vec<(String, Option<u32>, Option<&str>)> = dests
            .iter()
            .map(|d| {
                (
                    d.peer.to_string(),
                    d.routing.mark,
                    d.routing.bound_device.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("198.18.2.2".to_string(), None, None),
                ("198.18.2.2".to_string(), Some(0x2a), None),
                ("198.18.2.4".to_string(), None, Some("ifbq")),
            ]
        );
        let q = crate::probe::netlink::RouteQuery::for_socket(dests[1].peer, &dests[1].routing);
        assert_eq!((q.mark, q.oif), (Some(0x2a), None));
        assert_eq!(q.src, dests[1].routing.source);
        let v6 = "2001:db8::2".parse().expect("address");
        let q = crate::probe::netlink::RouteQuery::for_socket(v6, &dests[1].routing);
        assert_eq!(q.src, None, "a source of the other family is left out");
    }
}
