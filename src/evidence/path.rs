//! The path a send takes beyond the diagnosed device's own stack: into the namespace of a
//! lower device, through a veth to the peer namespace and out of the device it forwards to,
//! under a tunnel to its underlay. Built from the kernel's own answers (links, routes,
//! addresses, namespace ids), hop by hop.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Device, NetnsRef, OsError};

/// The walk from the diagnosed device to the wire, after the diagnosed stack (`Evidence::stack`,
/// in the diagnosed namespace, is the first part and is not repeated here).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct PathEvidence {
    /// The namespace the diagnosis started in.
    pub origin: NetnsRef,
    /// The destination the path was built for.
    #[serde(default)]
    pub target: Option<IpAddr>,
    /// No target was given: every route lookup followed the default route.
    #[serde(default)]
    pub assumed_default_route: bool,
    /// Each further part of the path, in order.
    pub segments: Vec<Segment>,
    /// How the walk ended.
    pub end: PathEnd,
}

/// One device stack the traffic crosses, in one namespace.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Segment {
    pub netns: NetnsRef,
    /// How zcdoctor entered the namespace.
    pub entered: Entered,
    pub role: HopRole,
    /// Why this segment follows the previous one, as the kernel answered.
    pub why: String,
    /// The device the traffic reaches here, then every device below it (as `Evidence::stack`).
    pub stack: Vec<Device>,
    /// `net.ipv4.ip_forward` (or `net.ipv6.conf.all.forwarding`) there, where it matters.
    #[serde(default)]
    pub forwarding: Option<bool>,
    /// A tunnel underlay: the tunnel whose encapsulated packets this segment carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encapsulates: Option<Encapsulation>,
    /// Netfilter queue rules of this segment's namespace (the `nfqueue` probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfqueue: Option<super::NfQueueScan>,
}

/// The tunnel an underlay segment carries packets of, as its link attributes say.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Encapsulation {
    /// The tunnel device.
    pub tunnel: String,
    /// Its `IFLA_INFO_KIND` (`vxlan`, `geneve`, `gre`, `gretap`, `ipip`, `wireguard`, …).
    pub kind: String,
    /// Its MTU: the largest inner packet it accepts unfragmented.
    pub mtu: u32,
    /// The outer destination: its family decides the outer header's size.
    pub remote: IpAddr,
}

/// How a namespace was reached.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(tag = "via", rename_all = "kebab-case")]
pub enum Entered {
    /// It is the namespace zcdoctor runs in.
    Current,
    /// Through `/run/netns/NAME` or another nsfs mount.
    Path { path: String },
    /// Through `/proc/PID/ns/net` of a process living there.
    Process { pid: u32 },
}

/// What a segment's first device is to the traffic.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum HopRole {
    /// A device the diagnosed device transmits through, in another namespace (the lower
    /// device of a macvlan, ipvlan or vlan).
    StackedLower,
    /// The other end of a veth: packets are received here.
    VethPeer,
    /// The device a namespace forwards the traffic out of.
    ForwardedEgress,
    /// The device a tunnel's encapsulated packets leave through.
    TunnelUnderlay,
    /// A macvlan in bridge mode on the same lower device as the sender's, owning the next hop's
    /// MAC: the frames are handed to it (`dev_forward_skb`), received here, never on the wire.
    MacvlanSibling,
    /// An ipvlan on the same lower device as the sender's, holding the next hop's address:
    /// ipvlan hands the packet to it (`ipvlan_rcv_frame`), received here, never on the wire.
    IpvlanSibling,
}

impl HopRole {
    /// The traffic is received on this segment's devices, not transmitted (a veth's peer, a
    /// macvlan or ipvlan sibling, and what they are ports of).
    pub fn receives(self) -> bool {
        matches!(
            self,
            HopRole::VethPeer | HopRole::MacvlanSibling | HopRole::IpvlanSibling
        )
    }
}

/// How the walk ended.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PathEnd {
    /// The last segment's devices transmit off the host.
    Wire,
    /// The target is an address of this namespace: delivered locally.
    LocalDelivery { netns: NetnsRef, address: IpAddr },
    /// A hop could not be followed.
    Incomplete {
        /// Where the walk stopped, as data (absent in recordings made before it existed).
        #[serde(default, skip_serializing_if = "PathStop::is_unknown")]
        stop: PathStop,
        /// The same in a line of fact, with its particulars.
        reason: String,
        #[serde(default)]
        error: Option<OsError>,
    },
}

/// Where a path walk stopped.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "kebab-case")]
pub enum PathStop {
    /// More hops than a walk follows (a routing loop?).
    HopLimit,
    /// A namespace's link table could not be read.
    LinkTable,
    /// A device the walk needed (a veth's peer, a route's device) is not there.
    DeviceMissing,
    /// A device's stack (what is below it) could not be read.
    DeviceStack,
    /// No namespace zcdoctor can open has the id a device names.
    NamespaceUnknown,
    /// A namespace could not be opened or entered.
    NamespaceUnenterable,
    /// zcdoctor's own namespace could not be read.
    OwnNamespace,
    /// A route lookup failed.
    RouteLookup,
    /// The route leads nowhere the walk can follow (not unicast, or no device).
    RouteNowhere,
    /// The namespace the traffic reaches does not forward it.
    NotForwarded,
    /// A tunnel's parameters could not be read.
    Tunnel,
    /// A tunnel has no fixed remote (external or learning): its underlay depends on each
    /// destination.
    TunnelRemote,
    /// Not recorded (an older recording).
    #[default]
    Unknown,
}

impl PathStop {
    pub fn is_unknown(&self) -> bool {
        *self == PathStop::Unknown
    }
}
