//! `RTM_GETNEIGH`: the IPv4/IPv6 neighbour tables ([`neighbours`], like `ip neigh show nud all`)
//! and one bridge's forwarding database ([`bridge_fdb`], like `bridge fdb show br BR`), in the
//! calling thread's network namespace.
//!
//! Message layout and constants: include/uapi/linux/neighbour.h. neli types the header
//! (`Ndmsg`) and names the attributes (`Nda`), but `Nda::Master` exists only on glibc targets
//! and `Ndmsg` is not `Clone` (which `Conn::dump` needs): attributes are matched through the
//! local `NdaAttr`, and the request is sent as serialized bytes (`to_buffer`).

use std::net::IpAddr;

use neli::{
    consts::{
        rtnl::{Arphrd, Iff, Ifla, Ntf, Nud, RtAddrFamily, Rtm, Rtn},
        socket::NlFamily,
    },
    rtnl::{Ifinfomsg, IfinfomsgBuilder, Ndmsg, NdmsgBuilder, RtattrBuilder},
    types::{Buffer, RtBuffer},
};

use super::{Conn, NetlinkError, decode, ip_from_bytes, to_buffer};

/// `NDA_*` attributes read here (include/uapi/linux/neighbour.h).
#[neli::neli_enum(serialized_type = "u16")]
enum NdaAttr {
    Dst = 1,
    Lladdr = 2,
    Vlan = 5,
    Master = 9,
}

/// `AF_BRIDGE`: the family of bridge FDB messages.
const AF_BRIDGE: u8 = libc::AF_BRIDGE as u8;

/// One entry of the IPv4 (ARP) or IPv6 (NDP) neighbour table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    /// `NDA_DST`.
    pub addr: IpAddr,
    /// `NDA_LLADDR` when it is a 6-byte (Ethernet) address; `None` for an unresolved entry
    /// (`INCOMPLETE`, `FAILED`) and for other link-layer address lengths.
    pub lladdr: Option<[u8; 6]>,
    /// `ndm_state`: `NUD_*` bits (`libc::NUD_REACHABLE`, `NUD_PERMANENT`, …).
    pub state: u16,
}

/// One entry of a bridge's forwarding database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    /// The port the MAC is behind; the bridge's own ifindex for an entry of the bridge device
    /// itself (its own MAC when it differs from every port's).
    pub port_ifindex: u32,
    pub mac: [u8; 6],
    /// `NDA_VLAN` (with VLAN filtering).
    pub vlan: Option<u16>,
    /// `NUD_PERMANENT`: a MAC of the bridge or of one of its ports; frames to it are delivered
    /// to the host, not forwarded (`bridge fdb` prints `permanent`).
    pub local: bool,
    /// `NUD_NOARP`: added by hand (`bridge fdb add … master static`), never aged out.
    pub is_static: bool,
}

/// The IPv4 and IPv6 neighbour entries of the calling thread's namespace, every state
/// included (`NOARP` multicast entries too, which `ip neigh show` hides without `nud all`).
/// Proxy entries (`ip neigh show proxy`) are not listed.
pub fn neighbours() -> Result<Vec<Neighbour>, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Route, "rtnetlink neighbour dump")?;
    let request = neigh_request().map_err(|e| conn.build_error(e))?;
    let messages = conn.dump::<_, _, Ndmsg>(Rtm::Getneigh, request, "neighbour table")?;
    let mut out = Vec::new();
    for (_, msg) in messages.iter().filter(|(t, _)| *t == Rtm::Newneigh) {
        if let Some(n) = parse_neighbour(msg).map_err(|e| conn.malformed(e))? {
            out.push(n);
        }
    }
    Ok(out)
}

/// The forwarding database of bridge `bridge_ifindex`: the entries whose `NDA_MASTER` is that
/// bridge (what it forwards by), on its ports and on the bridge device itself.
///
/// Not listed: the `self` entries of `bridge fdb show` (`NTF_SELF`, no `NDA_MASTER`), which are
/// the unicast/multicast address lists of each device, not the bridge's table. An ifindex that
/// is no bridge gives an empty list.
pub fn bridge_fdb(bridge_ifindex: u32) -> Result<Vec<FdbEntry>, NetlinkError> {
    let mut conn = Conn::open(
        NlFamily::Route,
        format!("bridge fdb dump of ifindex {bridge_ifindex}"),
    )?;
    let request = fdb_request(bridge_ifindex).map_err(|e| conn.build_error(e))?;
    let messages =
        conn.dump::<_, _, Ndmsg>(Rtm::Getneigh, request, "bridge forwarding database")?;
    let mut out = Vec::new();
    for (_, msg) in messages.iter().filter(|(t, _)| *t == Rtm::Newneigh) {
        if let Some(e) = parse_fdb_entry(msg, bridge_ifindex).map_err(|e| conn.malformed(e))? {
            out.push(e);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Requests

/// A dump of every neighbour table (`AF_UNSPEC`: ARP and NDP), no filter.
fn neigh_request() -> Result<Buffer, String> {
    let msg = NdmsgBuilder::default()
        .ndm_family(RtAddrFamily::Unspecified)
        .ndm_index(0)
        .ndm_state(Nud::empty())
        .ndm_flags(Ntf::empty())
        .ndm_type(Rtn::Unspec)
        .build()
        .map_err(|e| format!("ndmsg: {e}"))?;
    to_buffer(&msg)
}

/// An `AF_BRIDGE` dump filtered by the kernel to one bridge: an `ifinfomsg` with `IFLA_MASTER`,
/// as `bridge fdb show br BR` sends it (`rtnl_fdb_dump` reads this form on sockets without
/// `NETLINK_GET_STRICT_CHK`; the entries are filtered again by `NDA_MASTER` on receipt).
fn fdb_request(bridge_ifindex: u32) -> Result<Ifinfomsg, String> {
    let mut attrs = RtBuffer::new();
    attrs.push(
        RtattrBuilder::default()
            .rta_type(Ifla::Master)
            .rta_payload(bridge_ifindex)
            .build()
            .map_err(|e| format!("IFLA_MASTER: {e}"))?,
    );
    IfinfomsgBuilder::default()
        .ifi_family(RtAddrFamily::from(AF_BRIDGE))
        .ifi_type(Arphrd::from(0))
        .ifi_index(0)
        .ifi_flags(Iff::empty())
        .ifi_change(Iff::empty())
        .rtattrs(attrs)
        .build()
        .map_err(|e| format!("ifinfomsg: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Replies

/// What one `RTM_NEWNEIGH` carries that is read here.
#[derive(Debug, Default)]
struct NeighAttrs {
    dst: Option<IpAddr>,
    lladdr: Option<Vec<u8>>,
    vlan: Option<u16>,
    master: Option<u32>,
}

fn neigh_attrs(msg: &Ndmsg) -> NeighAttrs {
    let mut a = NeighAttrs::default();
    for attr in msg.rtattrs().iter() {
        let payload = attr.rta_payload().as_ref();
        match NdaAttr::from(u16::from(*attr.rta_type())) {
            NdaAttr::Dst => a.dst = ip_from_bytes(payload),
            NdaAttr::Lladdr => a.lladdr = Some(payload.to_vec()),
            NdaAttr::Vlan => a.vlan = decode::<u16>(payload),
            NdaAttr::Master => a.master = decode::<u32>(payload),
            _ => {}
        }
    }
    a
}

fn ifindex_of(msg: &Ndmsg) -> Result<u32, String> {
    u32::try_from(*msg.ndm_index())
        .map_err(|_| format!("RTM_NEWNEIGH with ifindex {}", msg.ndm_index()))
}

/// An IPv4/IPv6 neighbour; `None` for other families.
fn parse_neighbour(msg: &Ndmsg) -> Result<Option<Neighbour>, String> {
    if !matches!(msg.ndm_family(), RtAddrFamily::Inet | RtAddrFamily::Inet6) {
        return Ok(None);
    }
    let ifindex = ifindex_of(msg)?;
    let a = neigh_attrs(msg);
    let addr = a
        .dst
        .ok_or_else(|| format!("neighbour on ifindex {ifindex} without an NDA_DST address"))?;
    Ok(Some(Neighbour {
        ifindex,
        addr,
        lladdr: a.lladdr.as_deref().and_then(mac),
        state: msg.ndm_state().bits(),
    }))
}

/// A bridge FDB entry of `bridge`; `None` for entries of other bridges, `self` entries and
/// other families.
fn parse_fdb_entry(msg: &Ndmsg, bridge: u32) -> Result<Option<FdbEntry>, String> {
    if u8::from(*msg.ndm_family()) != AF_BRIDGE {
        return Ok(None);
    }
    let a = neigh_attrs(msg);
    if a.master != Some(bridge) {
        return Ok(None);
    }
    let port_ifindex = ifindex_of(msg)?;
    let mac = a.lladdr.as_deref().and_then(mac).ok_or_else(|| {
        format!("bridge fdb entry on ifindex {port_ifindex} without a 6-byte NDA_LLADDR")
    })?;
    let state = msg.ndm_state().bits();
    Ok(Some(FdbEntry {
        port_ifindex,
        mac,
        vlan: a.vlan,
        local: state & libc::NUD_PERMANENT != 0,
        is_static: state & libc::NUD_NOARP != 0,
    }))
}

fn mac(b: &[u8]) -> Option<[u8; 6]> {
    <[u8; 6]>::try_from(b).ok()
}

#[cfg(test)]
mod tests {
    use super::super::{decode_with_len, tests_support::hex};
    use super::*;

    fn ndmsg(msg_hex: &str) -> Ndmsg {
        let bytes = hex(msg_hex);
        decode_with_len(&bytes[16..]).expect("ndmsg")
    }

    // `RTM_NEWNEIGH` messages as kernel 6.18 dumped them (netlink header included), in a
    // namespace with ifb `ifbz` (ifindex 2).

    /// `ip neigh add 198.18.0.2 lladdr 02:00:00:00:00:02 dev ifbz nud permanent`.
    const V4_PERMANENT: &str = "4c0000001c000200070000001818000002000000020000008000000108000100\
        c61200020a000200020000000002000008000400000000001400030014000000140000001400000000000000";
    /// `ip neigh add 198.18.0.3 dev ifbz nud incomplete`: no `NDA_LLADDR`.
    const V4_INCOMPLETE: &str = "400000001c000200070000001818000002000000020000000100000108000100\
        c612000308000400000000001400030083170000130000001300000000000000";
    /// `ip neigh add 2001:db8::2 lladdr 02:00:00:00:00:03 dev ifbz nud reachable`.
    const V6_REACHABLE: &str = "580000001c00020007000000181800000a000000020000000200000114000100\
        20010db80000000000000000000000020a000200020000000003000008000400000000001400030013000000\
        130000001300000001000000";

    #[test]
    fn parses_kernel_neighbours() {
        let n = parse_neighbour(&ndmsg(V4_PERMANENT))
            .expect("parses")
            .expect("inet");
        assert_eq!(
            n,
            Neighbour {
                ifindex: 2,
                addr: "198.18.0.2".parse().expect("ip"),
                lladdr: Some([2, 0, 0, 0, 0, 2]),
                state: libc::NUD_PERMANENT,
            }
        );
        let n = parse_neighbour(&ndmsg(V4_INCOMPLETE))
            .expect("parses")
            .expect("inet");
        assert_eq!((n.lladdr, n.state), (None, libc::NUD_INCOMPLETE));
        let n = parse_neighbour(&ndmsg(V6_REACHABLE))
            .expect("parses")
            .expect("inet6");
        assert_eq!(n.addr, "2001:db8::2".parse::<IpAddr>().expect("ip"));
        assert_eq!(
            (n.lladdr, n.state),
            (Some([2, 0, 0, 0, 0, 3]), libc::NUD_REACHABLE)
        );
    }

    // `bridge fdb show br br0` (br0 = 3, port ifb1 = 4) as kernel 6.18 dumped it.

    /// `bridge fdb add 02:00:00:00:00:12 dev ifb1 master static`: `NUD_NOARP`, `NDA_MASTER` 3.
    const FDB_STATIC: &str = "4c0000001c000200070000000e19000007000000040000004000000\
        00a0002000200000000120000080009000300000008000f000000000014000300000000\
        00b3030000b303000000000000";
    /// ifb1's own MAC: `master br0 permanent`.
    const FDB_LOCAL: &str = "4c0000001c000200070000000e19000007000000040000008000000\
        00a000200ae659fdb7a5b0000080009000300000008000f000000000014000300000000\
        00b4030000b403000000000000";
    /// `33:33:00:00:00:01 dev ifb1 self permanent`: `NTF_SELF`, no `NDA_MASTER`.
    const FDB_SELF: &str =
        "280000001c000200070000000e1900000700000004000000800002000a0002003333000000010000";

    #[test]
    fn parses_kernel_fdb_entries() {
        let e = parse_fdb_entry(&ndmsg(FDB_STATIC), 3)
            .expect("parses")
            .expect("of br0");
        assert_eq!(
            e,
            FdbEntry {
                port_ifindex: 4,
                mac: [2, 0, 0, 0, 0, 0x12],
                vlan: None,
                local: false,
                is_static: true,
            }
        );
        let e = parse_fdb_entry(&ndmsg(FDB_LOCAL), 3)
            .expect("parses")
            .expect("of br0");
        assert_eq!(
            (e.mac, e.local, e.is_static),
            ([0xae, 0x65, 0x9f, 0xdb, 0x7a, 0x5b], true, false)
        );
        // Another bridge's entry, and a device's own address list entry, are not listed.
        assert_eq!(parse_fdb_entry(&ndmsg(FDB_STATIC), 5), Ok(None));
        assert_eq!(parse_fdb_entry(&ndmsg(FDB_SELF), 3), Ok(None));
        // Neither is an inet neighbour.
        assert_eq!(parse_neighbour(&ndmsg(FDB_STATIC)), Ok(None));
        assert_eq!(parse_fdb_entry(&ndmsg(V4_PERMANENT), 3), Ok(None));
    }

    /// `NDA_VLAN` (this kernel has no `CONFIG_BRIDGE_VLAN_FILTERING`, so none was captured): the
    /// static entry above with `NDA_VLAN` 7 (a native-endian `u16`, neighbour.h) appended.
    #[test]
    fn reads_the_fdb_vlan() {
        let mut bytes = hex(FDB_STATIC);
        bytes.extend_from_slice(&6u16.to_ne_bytes());
        bytes.extend_from_slice(&libc::NDA_VLAN.to_ne_bytes());
        bytes.extend_from_slice(&7u16.to_ne_bytes());
        bytes.extend_from_slice(&[0, 0]);
        let len = u32::try_from(bytes.len()).expect("len");
        bytes[..4].copy_from_slice(&len.to_ne_bytes());
        let msg: Ndmsg = decode_with_len(&bytes[16..]).expect("ndmsg");
        let e = parse_fdb_entry(&msg, 3).expect("parses").expect("of br0");
        assert_eq!((e.vlan, e.is_static), (Some(7), true));
    }

    #[test]
    fn the_fdb_request_is_what_bridge_sends() {
        let bytes = to_buffer(&fdb_request(3).expect("request")).expect("bytes");
        // ifinfomsg { AF_BRIDGE, 0…} + IFLA_MASTER (10) = 3, as `bridge fdb show br br0`.
        assert_eq!(
            bytes.as_ref(),
            hex("0700000000000000000000000000000008000a0003000000").as_slice()
        );
        let bytes = neigh_request().expect("request");
        assert_eq!(bytes.as_ref(), [0u8; 12].as_slice());
    }

    #[test]
    fn neighbour_dump_runs() {
        let all = neighbours().expect("neighbour dump");
        assert!(all.iter().all(|n| n.ifindex > 0), "{all:?}");
    }
}
