//! Devices of the stack and their offload features.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Device {
    pub name: String,
    pub ifindex: u32,
    pub kind: DeviceKind,
    /// `IFLA_INFO_KIND` verbatim when the kernel gave one (`bond`, `vlan`, …).
    #[serde(default)]
    pub link_kind: Option<String>,
    pub mtu: u32,
    /// Operational state as rtnetlink reports it (`up`, `down`, `unknown`, …).
    pub oper_state: String,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// 0 for the diagnosed device, 1 for its lower devices, and so on.
    pub depth: u32,
    /// The device this one was found below (`None` for the diagnosed device).
    #[serde(default)]
    pub upper: Option<String>,
    /// Names of the devices directly below this one.
    #[serde(default)]
    pub lowers: Vec<String>,
    /// Lower devices that live in another network namespace, by ifindex there.
    #[serde(default)]
    pub lowers_elsewhere: Vec<u32>,
    /// `IFLA_LINK`: a veth's peer, a vlan/macvlan/ipvlan's parent, by ifindex in the namespace
    /// `link_netnsid` names (this one when `None`). Absent in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_ifindex: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the id this namespace gives the namespace `link_ifindex` lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_netnsid: Option<i32>,
    /// Offload features; `None` when ethtool netlink could not be read (reason in `probes`),
    /// or when the device is off the path (a bridge port the FDB does not send the target to).
    pub features: Option<Features>,
    /// A bridge: the port its forwarding database sends the target's frames to, or flooding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwards_to: Option<BridgeChoice>,
    /// A bond: its mode and the slave it transmits by. Absent in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bond: Option<Bond>,
    /// A VLAN-filtering bridge (its own `self` VLANs) or one of its ports: the VLANs it
    /// carries. Absent when the bridge does not filter, and in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlans: Option<Vlans>,
    /// The filters and actions on its tc ingress and egress hooks (the `tc` probe); `None`
    /// when not read, and in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tc: Option<super::TcFilters>,
}

/// The VLANs a port of a VLAN-filtering bridge carries (`bridge vlan show`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Vlans {
    pub vids: Vec<u16>,
    /// The VLAN untagged frames take; for the bridge itself, the VLAN of what the host sends
    /// through it.
    #[serde(default)]
    pub pvid: Option<u16>,
}

/// How a bond spreads what it transmits over its slaves (`IFLA_BOND_MODE`,
/// `IFLA_BOND_ACTIVE_SLAVE`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Bond {
    pub mode: BondMode,
    /// The slave an active-backup bond transmits by (`None`: no slave is active).
    #[serde(default)]
    pub active_slave: Option<String>,
}

/// `BOND_MODE_*`, with the names `ip -d link` prints.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub enum BondMode {
    #[serde(rename = "balance-rr")]
    BalanceRr,
    #[serde(rename = "active-backup")]
    ActiveBackup,
    #[serde(rename = "balance-xor")]
    BalanceXor,
    #[serde(rename = "broadcast")]
    Broadcast,
    #[serde(rename = "802.3ad")]
    Lacp,
    #[serde(rename = "balance-tlb")]
    BalanceTlb,
    #[serde(rename = "balance-alb")]
    BalanceAlb,
    #[serde(rename = "unknown")]
    Unknown,
}

impl BondMode {
    pub fn from_kernel(mode: u8) -> BondMode {
        match mode {
            0 => BondMode::BalanceRr,
            1 => BondMode::ActiveBackup,
            2 => BondMode::BalanceXor,
            3 => BondMode::Broadcast,
            4 => BondMode::Lacp,
            5 => BondMode::BalanceTlb,
            6 => BondMode::BalanceAlb,
            _ => BondMode::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Lacp => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
            BondMode::Unknown => "unknown",
        }
    }

    /// Each flow leaves by one slave that a hash of its headers picks (`bond_xmit_hash`):
    /// balance-xor and 802.3ad; balance-tlb and -alb transmit by hash too
    /// (`bond_xmit_tlb_slave_get`).
    pub fn hashes_flows(self) -> bool {
        matches!(
            self,
            BondMode::BalanceXor | BondMode::Lacp | BondMode::BalanceTlb | BondMode::BalanceAlb
        )
    }
}

/// Which port a bridge sends the traffic out of, from the kernel's neighbour table and FDB.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct BridgeChoice {
    /// The next hop on the bridge (the target, or its gateway).
    pub next_hop: std::net::IpAddr,
    /// Its MAC, from the neighbour table; `None` when not resolved.
    #[serde(default)]
    pub mac: Option<String>,
    /// The port the FDB has the MAC on; `None`: no entry, so the bridge floods every port.
    #[serde(default)]
    pub port: Option<String>,
    /// How the choice was made, as the kernel answered.
    pub why: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    Physical,
    Loopback,
    Bond,
    Team,
    Vlan,
    Macvlan,
    Macvtap,
    Ipvlan,
    Bridge,
    Veth,
    Tun,
    Ifb,
    Vxlan,
    Geneve,
    Dummy,
    Wireguard,
    /// An L3 master device (VRF): its slaves' routes come from its table, and what it sends
    /// passes through it (`vrf_l3_out`), taps included.
    Vrf,
    Other,
}

impl DeviceKind {
    /// Maps `IFLA_INFO_KIND` (absent for real NICs) to a kind.
    pub fn from_link_kind(kind: Option<&str>, is_loopback: bool) -> Self {
        if is_loopback {
            return DeviceKind::Loopback;
        }
        match kind {
            None => DeviceKind::Physical,
            Some("bond") => DeviceKind::Bond,
            Some("team") => DeviceKind::Team,
            Some("vlan") => DeviceKind::Vlan,
            Some("macvlan") => DeviceKind::Macvlan,
            Some("macvtap") => DeviceKind::Macvtap,
            Some("ipvlan") | Some("ipvtap") => DeviceKind::Ipvlan,
            Some("bridge") => DeviceKind::Bridge,
            Some("veth") => DeviceKind::Veth,
            Some("tun") => DeviceKind::Tun,
            Some("ifb") => DeviceKind::Ifb,
            Some("vxlan") => DeviceKind::Vxlan,
            Some("geneve") => DeviceKind::Geneve,
            Some("dummy") => DeviceKind::Dummy,
            Some("wireguard") => DeviceKind::Wireguard,
            Some("vrf") => DeviceKind::Vrf,
            Some(_) => DeviceKind::Other,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            DeviceKind::Physical => "physical",
            DeviceKind::Loopback => "loopback",
            DeviceKind::Bond => "bond",
            DeviceKind::Team => "team",
            DeviceKind::Vlan => "vlan",
            DeviceKind::Macvlan => "macvlan",
            DeviceKind::Macvtap => "macvtap",
            DeviceKind::Ipvlan => "ipvlan",
            DeviceKind::Bridge => "bridge",
            DeviceKind::Veth => "veth",
            DeviceKind::Tun => "tun",
            DeviceKind::Ifb => "ifb",
            DeviceKind::Vxlan => "vxlan",
            DeviceKind::Geneve => "geneve",
            DeviceKind::Dummy => "dummy",
            DeviceKind::Wireguard => "wireguard",
            DeviceKind::Vrf => "vrf",
            DeviceKind::Other => "other",
        }
    }
}

/// Offload features by their ethtool names (`tx-scatter-gather`, `tx-checksum-ipv4`, …).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Features(pub BTreeMap<String, FeatureState>);

impl Features {
    pub fn get(&self, name: &str) -> Option<&FeatureState> {
        self.0.get(name)
    }

    pub fn is_active(&self, name: &str) -> bool {
        self.get(name).is_some_and(|f| f.active)
    }
}

/// One feature as `ethtool -k` shows it: `off [requested on]` is `active: false, wanted: true`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct FeatureState {
    pub active: bool,
    pub wanted: bool,
    /// The driver does not let it change (`[fixed]`).
    pub fixed: bool,
}

/// The lower device that carries all of `dev`'s traffic, where the kernel says so: the port a
/// bridge's FDB sends the target's frames to, the active slave of an active-backup bond.
fn only_lower(dev: &Device) -> Option<&String> {
    if let Some(port) = dev.forwards_to.as_ref().and_then(|c| c.port.as_ref()) {
        return Some(port);
    }
    dev.bond
        .as_ref()
        .filter(|b| b.mode == BondMode::ActiveBackup)
        .and_then(|b| b.active_slave.as_ref())
}

/// The devices of `stack` off the path: below a bridge whose FDB sends the traffic to another
/// port, and the backup slaves of an active-backup bond (the chosen port or active slave and
/// everything below it stay).
pub fn off_path(stack: &[Device]) -> BTreeSet<String> {
    let mut roots: Vec<&str> = Vec::new();
    for upper in stack {
        if let Some(only) = only_lower(upper) {
            roots.extend(
                upper
                    .lowers
                    .iter()
                    .filter(|l| *l != only)
                    .map(String::as_str),
            );
        }
        // A VLAN-filtering bridge sends the host's frames (its own pvid) only to the ports
        // that carry that VLAN, whatever its FDB says.
        if let Some(pvid) = upper.vlans.as_ref().and_then(|v| v.pvid)
            && upper.kind == DeviceKind::Bridge
        {
            roots.extend(upper.lowers.iter().map(String::as_str).filter(|port| {
                !stack
                    .iter()
                    .find(|d| d.name == *port)
                    .and_then(|d| d.vlans.as_ref())
                    .is_some_and(|v| v.vids.contains(&pvid))
            }));
        }
    }
    let mut off = BTreeSet::new();
    let mut queue: VecDeque<&str> = roots.into_iter().collect();
    while let Some(name) = queue.pop_front() {
        if off.insert(name.to_string())
            && let Some(dev) = stack.iter().find(|d| d.name == name)
        {
            queue.extend(dev.lowers.iter().map(String::as_str));
        }
    }
    off
}

/// Why a device may carry only some of its upper's traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Partial {
    /// A slave of a bond that hashes each flow to one of its slaves.
    Hashed(BondMode),
    /// A port of a bridge, with no destination given to tell which port the FDB picks.
    PortUndecided,
}

/// The devices of `stack` that carry only some of the traffic, each with its upper and why:
/// the slaves of a bond that hashes each flow to one of two or more slaves, and, when no
/// destination is known (`destination_known` false), the ports of a bridge with two or more
/// (what is below them too).
pub fn partial_carriers(
    stack: &[Device],
    destination_known: bool,
) -> BTreeMap<String, (String, Partial)> {
    let mut partial = BTreeMap::new();
    for upper in stack.iter().filter(|d| d.lowers.len() >= 2) {
        let why = match (&upper.bond, upper.kind) {
            (Some(b), _) if b.mode.hashes_flows() => Partial::Hashed(b.mode),
            (_, DeviceKind::Bridge) if !destination_known && upper.forwards_to.is_none() => {
                Partial::PortUndecided
            }
            _ => continue,
        };
        let mut queue: VecDeque<&str> = upper.lowers.iter().map(String::as_str).collect();
        while let Some(name) = queue.pop_front() {
            if partial
                .insert(name.to_string(), (upper.name.clone(), why))
                .is_none()
                && let Some(dev) = stack.iter().find(|d| d.name == name)
            {
                queue.extend(dev.lowers.iter().map(String::as_str));
            }
        }
    }
    partial
}
