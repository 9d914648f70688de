//! `RTM_GETLINK`: the link table of the calling thread's network namespace.

use neli::{
    attr::Attribute,
    consts::{
        nl::NlmF,
        rtnl::{Arphrd, Iff, Ifla, IflaInfo, RtAddrFamily, Rtm},
        socket::NlFamily,
    },
    rtnl::{Ifinfomsg, IfinfomsgBuilder, Rtattr, RtattrBuilder},
    types::{Buffer, RtBuffer},
};

use super::{Conn, NetlinkError, attr_string};

/// One network device as `RTM_GETLINK` reports it.
#[derive(Debug, Clone)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` (`bond`, `vlan`, `macvlan`, `veth`, …); `None` for real NICs.
    pub link_kind: Option<String>,
    pub mtu: u32,
    /// `IFLA_OPERSTATE` as a lowercase word: `up`, `down`, `unknown`, `lowerlayerdown`, …
    pub oper_state: String,
    /// `ifi_flags` (`IFF_UP`, `IFF_LOOPBACK`, …).
    pub flags: u32,
    /// `IFLA_MASTER`.
    pub master: Option<u32>,
    /// `IFLA_LINK`: the parent of a vlan/macvlan/ipvlan; for a veth it is the peer.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: `link` is an ifindex in another network namespace.
    pub link_netnsid: Option<i32>,
    /// `IFLA_ADDRESS`: the link-layer address.
    pub address: Option<Vec<u8>>,
    /// `IFLA_MACVLAN_MODE` of a macvlan or macvtap (`MACVLAN_MODE_BRIDGE` is 4).
    pub macvlan_mode: Option<u32>,
    /// A bond's `IFLA_BOND_MODE` and `IFLA_BOND_ACTIVE_SLAVE` (an ifindex, 0: none).
    pub bond: Option<BondAttrs>,
    /// A bridge's `IFLA_BR_VLAN_FILTERING`.
    pub vlan_filtering: bool,
}

/// What a bond's `IFLA_INFO_DATA` says about which slave transmits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BondAttrs {
    /// `BOND_MODE_*` (include/uapi/linux/if_bonding.h): 0 balance-rr, 1 active-backup, 2
    /// balance-xor, 3 broadcast, 4 802.3ad, 5 balance-tlb, 6 balance-alb.
    pub mode: u8,
    /// The slave an active-backup (or tlb/alb) bond transmits by; `None` when it has none.
    pub active_slave: Option<u32>,
}

/// `MACVLAN_MODE_BRIDGE`: frames to a sibling on the same lower device are handed to it
/// (`dev_forward_skb`), never reaching the wire.
pub const MACVLAN_MODE_BRIDGE: u32 = 4;

/// `IFLA_MACVLAN_*` read here.
#[neli::neli_enum(serialized_type = "u16")]
enum IflaMacvlan {
    Mode = 1,
}
impl neli::consts::rtnl::RtaType for IflaMacvlan {}

/// `IFLA_BOND_*` read here (include/uapi/linux/if_link.h).
#[neli::neli_enum(serialized_type = "u16")]
enum IflaBond {
    Mode = 1,
    ActiveSlave = 2,
}
impl neli::consts::rtnl::RtaType for IflaBond {}

/// `IFLA_BR_*` read here.
#[neli::neli_enum(serialized_type = "u16")]
enum IflaBr {
    VlanFiltering = 7,
}
impl neli::consts::rtnl::RtaType for IflaBr {}

/// Every link of the calling thread's network namespace (`RTM_GETLINK` dump).
pub fn dump_links() -> Result<Vec<Link>, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Route, "rtnetlink link dump")?;
    let request = link_request(0, true).map_err(|e| conn.build_error(e))?;
    let messages = conn.dump(Rtm::Getlink, request, "link table")?;
    messages
        .iter()
        .filter(|(t, _)| *t == Rtm::Newlink)
        .map(|(_, msg)| parse_link(msg).map_err(|e| conn.malformed(e)))
        .collect()
}

/// A device's kind and counters, as `RTM_GETLINK` of one ifindex reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// `IFLA_INFO_KIND`; `None` for real NICs.
    pub kind: Option<String>,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

/// The counters (`IFLA_STATS64`) of `ifindex` in the calling thread's namespace.
pub fn link_stats(ifindex: u32) -> Result<LinkStats, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Route, format!("rtnetlink link {ifindex} stats"))?;
    let index = i32::try_from(ifindex).map_err(|_| conn.build_error("ifindex out of range"))?;
    let request = link_request(index, false).map_err(|e| conn.build_error(e))?;
    let reply = conn.request::<_, _, Ifinfomsg>(Rtm::Getlink, NlmF::empty(), request)?;
    let (_, msg) = reply
        .messages
        .iter()
        .find(|(t, _)| *t == Rtm::Newlink)
        .ok_or_else(|| conn.malformed("no RTM_NEWLINK in the reply"))?;
    let mut stats = None;
    let mut kind = None;
    for attr in msg.rtattrs().iter() {
        match attr.rta_type() {
            Ifla::Stats64 => stats = Some(parse_stats64(attr.rta_payload().as_ref())),
            Ifla::Linkinfo => kind = link_kind(attr),
            _ => {}
        }
    }
    let mut stats = stats
        .flatten()
        .ok_or_else(|| conn.malformed("no IFLA_STATS64 in the reply"))?;
    stats.kind = kind;
    Ok(stats)
}

/// The first fields of `struct rtnl_link_stats64` (include/uapi/linux/if_link.h): `rx_packets`,
/// `tx_packets`, `rx_bytes`, `tx_bytes`, `rx_errors`, `tx_errors`, `rx_dropped`, `tx_dropped`,
/// each a native-endian u64. `None` when the payload is shorter.
fn parse_stats64(payload: &[u8]) -> Option<LinkStats> {
    let field = |i: usize| -> Option<u64> {
        let bytes = payload.get(i * 8..i * 8 + 8)?;
        Some(u64::from_ne_bytes(bytes.try_into().ok()?))
    };
    Some(LinkStats {
        kind: None,
        rx_packets: field(0)?,
        tx_packets: field(1)?,
        rx_bytes: field(2)?,
        tx_bytes: field(3)?,
        tx_dropped: field(7)?,
    })
}

/// The name of `ifindex`, asked on `conn` (so in the same namespace); `None` when unknown.
pub(super) fn link_name(conn: &mut Conn, ifindex: u32) -> Option<String> {
    let request = link_request(i32::try_from(ifindex).ok()?, false).ok()?;
    let reply = conn
        .request::<_, _, Ifinfomsg>(Rtm::Getlink, NlmF::empty(), request)
        .ok()?;
    let (_, msg) = reply.messages.iter().find(|(t, _)| *t == Rtm::Newlink)?;
    parse_link(msg).ok().map(|l| l.name)
}

/// A dump (`ifindex` 0, stats skipped) or a get of one `ifindex`.
pub(super) fn link_request(ifindex: i32, dump: bool) -> Result<Ifinfomsg, String> {
    let mut attrs = RtBuffer::new();
    if dump {
        attrs.push(
            RtattrBuilder::default()
                .rta_type(Ifla::ExtMask)
                .rta_payload(libc::RTEXT_FILTER_SKIP_STATS as u32)
                .build()
                .map_err(|e| format!("IFLA_EXT_MASK: {e}"))?,
        );
    }
    IfinfomsgBuilder::default()
        .ifi_family(RtAddrFamily::Unspecified)
        .ifi_type(Arphrd::from(0))
        .ifi_index(ifindex)
        .ifi_flags(Iff::empty())
        .ifi_change(Iff::empty())
        .rtattrs(attrs)
        .build()
        .map_err(|e| format!("ifinfomsg: {e}"))
}

fn parse_link(msg: &Ifinfomsg) -> Result<Link, String> {
    let ifindex = u32::try_from(*msg.ifi_index())
        .map_err(|_| format!("RTM_NEWLINK with ifindex {}", msg.ifi_index()))?;
    let mut link = Link {
        ifindex,
        name: String::new(),
        link_kind: None,
        mtu: 0,
        oper_state: "unknown".to_string(),
        flags: msg.ifi_flags().bits(),
        master: None,
        link: None,
        link_netnsid: None,
        address: None,
        macvlan_mode: None,
        bond: None,
        vlan_filtering: false,
    };
    for attr in msg.rtattrs().iter() {
        let u32_value = || attr.get_payload_as::<u32>().ok();
        match attr.rta_type() {
            Ifla::Ifname => link.name = attr_string(attr.rta_payload().as_ref()),
            Ifla::Mtu => link.mtu = u32_value().unwrap_or(0),
            Ifla::Operstate => {
                if let Ok(state) = attr.get_payload_as::<u8>() {
                    link.oper_state = oper_state_name(state);
                }
            }
            Ifla::Master => link.master = u32_value().filter(|&i| i != 0),
            Ifla::Link => link.link = u32_value().filter(|&i| i != 0),
            Ifla::LinkNetnsid => link.link_netnsid = attr.get_payload_as::<i32>().ok(),
            Ifla::Linkinfo => {
                link.link_kind = link_kind(attr);
                link.macvlan_mode = macvlan_mode(attr);
                match link.link_kind.as_deref() {
                    Some("bond") => link.bond = bond_attrs(attr),
                    Some("bridge") => link.vlan_filtering = vlan_filtering(attr),
                    _ => {}
                }
            }
            Ifla::Address => link.address = Some(attr.rta_payload().as_ref().to_vec()),
            _ => {}
        }
    }
    if link.name.is_empty() {
        return Err(format!("RTM_NEWLINK for ifindex {ifindex} without a name"));
    }
    Ok(link)
}

/// `IFLA_INFO_KIND` inside the `IFLA_LINKINFO` nest.
fn link_kind(linkinfo: &Rtattr<Ifla, Buffer>) -> Option<String> {
    let nested = linkinfo.get_attr_handle::<IflaInfo>().ok()?;
    nested
        .get_attribute(IflaInfo::Kind)
        .map(|a| attr_string(a.rta_payload().as_ref()))
        .filter(|k| !k.is_empty())
}

/// `IFLA_MACVLAN_MODE` inside the `IFLA_INFO_DATA` of a macvlan or macvtap.
fn macvlan_mode(linkinfo: &Rtattr<Ifla, Buffer>) -> Option<u32> {
    let nested = linkinfo.get_attr_handle::<IflaInfo>().ok()?;
    let data = nested.get_attribute(IflaInfo::Data)?;
    let attrs = data.get_attr_handle::<IflaMacvlan>().ok()?;
    attrs
        .get_attribute(IflaMacvlan::Mode)
        .and_then(|a| a.get_payload_as::<u32>().ok())
}

/// `IFLA_BOND_MODE` and `IFLA_BOND_ACTIVE_SLAVE` inside a bond's `IFLA_INFO_DATA`.
fn bond_attrs(linkinfo: &Rtattr<Ifla, Buffer>) -> Option<BondAttrs> {
    let nested = linkinfo.get_attr_handle::<IflaInfo>().ok()?;
    let data = nested.get_attribute(IflaInfo::Data)?;
    let attrs = data.get_attr_handle::<IflaBond>().ok()?;
    let mode = attrs
        .get_attribute(IflaBond::Mode)
        .and_then(|a| a.get_payload_as::<u8>().ok())?;
    let active_slave = attrs
        .get_attribute(IflaBond::ActiveSlave)
        .and_then(|a| a.get_payload_as::<u32>().ok())
        .filter(|&i| i != 0);
    Some(BondAttrs { mode, active_slave })
}

/// `IFLA_BR_VLAN_FILTERING` inside a bridge's `IFLA_INFO_DATA`.
fn vlan_filtering(linkinfo: &Rtattr<Ifla, Buffer>) -> bool {
    let Some(data) = linkinfo
        .get_attr_handle::<IflaInfo>()
        .ok()
        .and_then(|n| n.get_attribute(IflaInfo::Data).cloned())
    else {
        return false;
    };
    data.get_attr_handle::<IflaBr>()
        .ok()
        .and_then(|a| a.get_attribute(IflaBr::VlanFiltering).cloned())
        .and_then(|a| a.get_payload_as::<u8>().ok())
        .is_some_and(|v| v != 0)
}

/// `IF_OPER_*` (include/uapi/linux/if.h) as `ip link` prints it, lowercased.
fn oper_state_name(state: u8) -> String {
    let name = match libc::c_int::from(state) {
        libc::IF_OPER_UNKNOWN => "unknown",
        libc::IF_OPER_NOTPRESENT => "notpresent",
        libc::IF_OPER_DOWN => "down",
        libc::IF_OPER_LOWERLAYERDOWN => "lowerlayerdown",
        libc::IF_OPER_TESTING => "testing",
        libc::IF_OPER_DORMANT => "dormant",
        libc::IF_OPER_UP => "up",
        other => return format!("state-{other}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Cursor;

    use neli::{Size, ToBytes};

    use super::super::decode_with_len;
    use super::*;

    #[test]
    fn stats64_fields_are_read_in_kernel_order() {
        let payload: Vec<u8> = (1..=24u64).flat_map(u64::to_ne_bytes).collect();
        let s = parse_stats64(&payload).expect("stats");
        assert_eq!(
            (
                s.rx_packets,
                s.tx_packets,
                s.rx_bytes,
                s.tx_bytes,
                s.tx_dropped
            ),
            (1, 2, 3, 4, 8)
        );
        assert_eq!(parse_stats64(&payload[..63]), None);
    }

    #[test]
    fn loopback_has_counters() {
        let s = link_stats(1).expect("lo stats");
        assert_eq!(s.kind, None);
    }

    #[test]
    fn dump_links_finds_loopback() {
        let links = dump_links().expect("link dump");
        let lo = links
            .iter()
            .find(|l| l.name == "lo")
            .expect("lo in the dump");
        assert_eq!(lo.ifindex, 1);
        assert_ne!(lo.flags & libc::IFF_LOOPBACK as u32, 0);
        assert_eq!(lo.link_kind, None);
        assert!(lo.mtu > 0);
        assert_eq!(lo.master, None);
        // Every ifindex is unique and named.
        let mut seen = BTreeSet::new();
        for l in &links {
            assert!(seen.insert(l.ifindex), "duplicate ifindex {}", l.ifindex);
            assert!(!l.name.is_empty());
        }
    }

    fn rta<P: Size + ToBytes>(kind: Ifla, payload: P) -> Rtattr<Ifla, Buffer> {
        RtattrBuilder::default()
            .rta_type(kind)
            .rta_payload(payload)
            .build()
            .expect("attr")
    }

    /// A macvlan whose lower device lives in another namespace, serialized and re-parsed as
    /// the kernel's bytes would arrive.
    #[test]
    fn parses_a_macvlan_with_a_lower_device_elsewhere() {
        let kind = RtattrBuilder::default()
            .rta_type(IflaInfo::Kind)
            .rta_payload("macvlan")
            .build()
            .expect("kind");
        let linkinfo = RtattrBuilder::default()
            .rta_type(Ifla::Linkinfo)
            .rta_payload(Buffer::new())
            .build()
            .expect("linkinfo")
            .nest(&kind)
            .expect("nest");
        let attrs: RtBuffer<Ifla, Buffer> = [
            rta(Ifla::Ifname, "mv0"),
            rta(Ifla::Mtu, 1500u32),
            rta(Ifla::Operstate, libc::IF_OPER_LOWERLAYERDOWN as u8),
            rta(Ifla::Link, 7u32),
            rta(Ifla::LinkNetnsid, 0i32),
            rta(Ifla::Master, 0u32),
            linkinfo,
        ]
        .into_iter()
        .collect();
        let msg = IfinfomsgBuilder::default()
            .ifi_family(RtAddrFamily::Unspecified)
            .ifi_index(12)
            .ifi_flags(Iff::UP)
            .rtattrs(attrs)
            .build()
            .expect("ifinfomsg");
        let mut bytes = Cursor::new(Vec::new());
        msg.to_bytes(&mut bytes).expect("serialize");
        let parsed: Ifinfomsg = decode_with_len(bytes.get_ref()).expect("parse");
        let link = parse_link(&parsed).expect("link");
        assert_eq!(link.ifindex, 12);
        assert_eq!(link.name, "mv0");
        assert_eq!(link.mtu, 1500);
        assert_eq!(link.oper_state, "lowerlayerdown");
        assert_eq!(link.link, Some(7));
        assert_eq!(link.link_netnsid, Some(0));
        assert_eq!(link.master, None, "IFLA_MASTER 0 is no master");
        assert_eq!(link.link_kind.as_deref(), Some("macvlan"));
        assert_ne!(link.flags & libc::IFF_UP as u32, 0);
    }

    #[test]
    fn a_link_without_a_name_is_malformed() {
        let msg = IfinfomsgBuilder::default()
            .ifi_family(RtAddrFamily::Unspecified)
            .ifi_index(3)
            .build()
            .expect("ifinfomsg");
        assert!(parse_link(&msg).is_err());
    }

    #[test]
    fn oper_states_read_like_ip_link() {
        assert_eq!(oper_state_name(libc::IF_OPER_UP as u8), "up");
        assert_eq!(oper_state_name(libc::IF_OPER_DOWN as u8), "down");
        assert_eq!(oper_state_name(0), "unknown");
        assert_eq!(oper_state_name(5), "dormant");
        assert_eq!(oper_state_name(42), "state-42");
    }
}
