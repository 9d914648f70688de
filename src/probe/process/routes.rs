//! `check --pid` without an interface: where the process's zerocopy sockets send, and the way
//! out toward each destination. The largest group of sockets gives the diagnosed path (the
//! whole gather runs toward its peer); every other destination in the same namespace is read
//! with [`probe::gather_route`](crate::probe::gather_route), and destinations whose way out is
//! the same share one entry. Runs in the namespace the main gather ran in.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{SocketDestination, exists, read_process, zerocopy_destinations};
use crate::evidence::{Device, Evidence, MAX_ROUTES, PathEnd, PathEvidence, Route, Serving};
use crate::probe::{GatherOptions, gather_route, netlink};

/// What a diagnosis by pid follows: the process's zerocopy destinations, largest group first,
/// and the namespace (inode) their sockets live in.
#[derive(Debug, Clone)]
pub struct PidPlan {
    pub pid: u32,
    pub netns: u64,
    /// The sockets live in the process's own namespace (entered through `/proc/PID/ns/net`).
    pub in_own_netns: bool,
    pub destinations: Vec<SocketDestination>,
}

impl PidPlan {
    /// The destinations of `pid`'s connected zerocopy sockets; `None` when it has none (or is
    /// gone).
    pub fn read(pid: u32) -> Option<PidPlan> {
        if !exists(pid) {
            return None;
        }
        let process = read_process(pid);
        let destinations = zerocopy_destinations(&process);
        let netns = destinations.first()?.netns;
        Some(PidPlan {
            pid,
            netns,
            in_own_netns: process.netns.value().map(|n| n.inode) == Some(netns),
            destinations,
        })
    }

    /// The peer the diagnosed path is followed toward.
    pub fn first_peer(&self) -> Option<IpAddr> {
        self.destinations.first().map(|d| d.peer)
    }
}

/// The way out toward one destination, as far as grouping is concerned: every device crossed
/// (namespace inode, ifindex, the bridge port chosen) and how the path ends.
#[derive(Debug, PartialEq, Eq)]
struct WayOut(Vec<(u64, u32, Option<String>)>, String);

fn way_out(stack: &[Device], path: Option<&PathEvidence>) -> WayOut {
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
    WayOut(all, end)
}

/// The sockets of the diagnosed path and the routes of the process's other destinations.
/// `main` is the evidence gathered toward the first destination; `opts` its options.
pub fn serving(
    plan: &PidPlan,
    opts: &GatherOptions,
    stop: &AtomicBool,
    main: &Evidence,
) -> Serving {
    let mut serving = Serving {
        pid: plan.pid,
        peer: plan.destinations[0].peer,
        sockets: plan.destinations[0].sockets.clone(),
        routes: Vec::new(),
        others: Vec::new(),
    };
    let main_way = way_out(&main.stack, main.path.as_ref());
    let mut ways: Vec<WayOut> = Vec::new();
    for d in &plan.destinations[1..] {
        let listed = || format!("{}: {}", d.peer, d.sockets.join(", "));
        if d.netns != plan.netns {
            serving.others.push(format!(
                "{} (in another network namespace, net:[{}]: diagnose it with --netns and --target)",
                listed(),
                d.netns
            ));
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            serving
                .others
                .push(format!("{} (not read: interrupted)", listed()));
            continue;
        }
        if let Err(e) = netlink::route_get(d.peer) {
            serving
                .others
                .push(format!("{} (no route to it here: {e})", listed()));
            continue;
        }
        let route_opts = GatherOptions {
            path_target: Some(d.peer),
            iface: None,
            selection: opts.selection.clone(),
            live: None,
            pids: Vec::new(),
        };
        let ev = match gather_route(&route_opts, stop) {
            Ok(ev) => ev,
            Err(e) => {
                serving
                    .others
                    .push(format!("{} (its way out could not be read: {e})", listed()));
                continue;
            }
        };
        let way = way_out(&ev.stack, ev.path.as_ref());
        if way == main_way {
            serving.sockets.extend(d.sockets.iter().cloned());
        } else if let Some(i) = ways.iter().position(|w| *w == way) {
            serving.routes[i].sockets.extend(d.sockets.iter().cloned());
        } else if serving.routes.len() < MAX_ROUTES {
            ways.push(way);
            serving.routes.push(Route {
                peer: d.peer,
                sockets: d.sockets.clone(),
                interface: ev.interface,
                stack: ev.stack,
                path: ev.path,
            });
        } else {
            serving.others.push(format!(
                "{} (not diagnosed: a report follows at most {} ways out; diagnose it with --target)",
                listed(),
                MAX_ROUTES + 1
            ));
        }
    }
    serving
}
