//! The device stacks the traffic crosses, as the checks walk them: the diagnosed stack first,
//! then each segment of the path the path probe followed (another namespace's lower device, a
//! veth peer, the device a namespace forwards out of, a tunnel's underlay).

use crate::evidence::{Device, Entered, Evidence, HopRole, NetnsRef, off_path};

/// One device stack on the path, in one namespace.
pub struct Hop<'a> {
    /// 0 for the diagnosed stack, then 1, 2, … along the path.
    pub index: usize,
    /// The devices on the path: a bridge's ports its FDB does not send the traffic to are left
    /// out (see `BridgeChoice`).
    pub stack: Vec<&'a Device>,
    /// The namespace, for hops after the first (the diagnosed one is the probe's own).
    pub netns: Option<&'a NetnsRef>,
    pub role: Option<HopRole>,
    /// How zcdoctor entered the namespace (for commands that must run there).
    pub entered: Option<&'a Entered>,
}

impl<'a> Hop<'a> {
    /// The name a device's "below X" refers to when it has no upper.
    pub fn top(&self) -> &'a str {
        self.stack.first().map_or("", |d| d.name.as_str())
    }

    /// Where this hop is, for sentences: empty for the diagnosed stack, else
    /// ` in namespace NAME (hop 2, veth peer)`.
    pub fn whereabouts(&self) -> String {
        match (self.netns, self.role) {
            (Some(ns), Some(role)) => format!(
                " in namespace {} (hop {}, {})",
                netns_label(ns),
                self.index + 1,
                role_label(role)
            ),
            _ => String::new(),
        }
    }

    /// `cmd` as the operator runs it in this hop's namespace.
    pub fn command(&self, cmd: &str) -> String {
        match (self.netns, self.entered) {
            (None, _) | (_, Some(Entered::Current)) => cmd.to_string(),
            (
                Some(NetnsRef {
                    name: Some(name), ..
                }),
                _,
            ) => format!("ip netns exec {name} {cmd}"),
            (_, Some(Entered::Path { path })) => format!("nsenter --net={path} {cmd}"),
            (_, Some(Entered::Process { pid })) => {
                format!("nsenter --net=/proc/{pid}/ns/net {cmd}")
            }
            (Some(ns), None) => format!("nsenter --net=<net:[{}]> {cmd}", ns.inode),
        }
    }

    /// The inode of this hop's namespace, with the diagnosed namespace's given.
    pub fn netns_inode(&self, diagnosed: u64) -> u64 {
        self.netns.map_or(diagnosed, |n| n.inode)
    }
}

/// Every stack on the path, diagnosed first.
pub fn hops(ev: &Evidence) -> Vec<Hop<'_>> {
    let mut hops = vec![Hop {
        index: 0,
        stack: on_path(&ev.stack),
        netns: None,
        role: None,
        entered: None,
    }];
    if let Some(path) = &ev.path {
        for seg in &path.segments {
            hops.push(Hop {
                index: hops.len(),
                stack: on_path(&seg.stack),
                netns: Some(&seg.netns),
                role: Some(seg.role),
                entered: Some(&seg.entered),
            });
        }
    }
    hops
}

fn on_path(stack: &[Device]) -> Vec<&Device> {
    let off = off_path(stack);
    stack.iter().filter(|d| !off.contains(&d.name)).collect()
}

pub fn netns_label(ns: &NetnsRef) -> String {
    match &ns.name {
        Some(n) => format!("{n} (net:[{}])", ns.inode),
        None => format!("net:[{}]", ns.inode),
    }
}

pub fn role_label(role: HopRole) -> &'static str {
    match role {
        HopRole::StackedLower => "lower device",
        HopRole::VethPeer => "veth peer",
        HopRole::ForwardedEgress => "forwarded out",
        HopRole::TunnelUnderlay => "tunnel underlay",
    }
}
