//! Tunnel endpoints: the parameters of one tunnel link (`IFLA_LINKINFO` / `IFLA_INFO_DATA` of an
//! `RTM_GETLINK` answer, [`tunnel`]). A WireGuard device has none there: its peers' endpoints
//! are read with [`super::wireguard_endpoints`].
//!
//! [`tunnel`] asks for one link (not a dump): a path model reaches a tunnel through a route's
//! output device, so it has the ifindex, and the link dump ([`super::dump_links`]) stays as
//! small as it is.
//!
//! Attribute numbers: include/uapi/linux/if_link.h (`IFLA_VXLAN_*`, `IFLA_GENEVE_*`),
//! if_tunnel.h (`IFLA_GRE_*`, `IFLA_IPTUN_*`). Ports (`IFLA_VXLAN_PORT`, `IFLA_GENEVE_PORT`) are
//! big-endian; ifindexes are native `u32`.

use std::net::IpAddr;

use neli::{
    consts::{
        nl::NlmF,
        rtnl::{Ifla, IflaInfo, RtaType, Rtm},
        socket::NlFamily,
    },
    rtnl::{Ifinfomsg, Rtattr},
    types::Buffer,
};

use super::{Conn, NetlinkError, attr_string, decode, ip_from_bytes};

/// The parameters of one tunnel device: where its packets go and what carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// `IFLA_INFO_KIND`: `vxlan`, `geneve`, `gre`, `gretap`, `ip6gre`, `ip6gretap`, `ipip`,
    /// `sit`, `ip6tnl` or `wireguard`.
    pub kind: String,
    /// The unicast remote endpoint (a vxlan's `IFLA_VXLAN_GROUP`/`GROUP6` when unicast).
    /// `None` when unset (`remote any`, an external/metadata tunnel, or wireguard, whose peers
    /// are read with [`super::wireguard_endpoints`]).
    pub remote: Option<IpAddr>,
    /// The configured source address, when set.
    pub local: Option<IpAddr>,
    /// A vxlan's multicast group (`IFLA_VXLAN_GROUP`/`GROUP6` when multicast).
    pub group: Option<IpAddr>,
    /// The underlay device (`IFLA_VXLAN_LINK`, `IFLA_GRE_LINK`, `IFLA_IPTUN_LINK`): an
    /// ifindex in the tunnel's link namespace (see `link_netnsid`); `None` when unbound.
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID` of the tunnel: its underlay (the namespace its packets are sent in)
    /// is the namespace with this nsid (see [`super::nsid_of`]); `None`: this namespace.
    pub link_netnsid: Option<i32>,
    /// The UDP destination port (vxlan, geneve).
    pub port: Option<u16>,
}

/// The tunnel parameters of link `ifindex` in the calling thread's namespace; `None` when the
/// link is no tunnel of a kind listed in [`Tunnel::kind`]. A missing link is
/// [`NetlinkError::Kernel`] with `ENODEV`.
pub fn tunnel(ifindex: u32) -> Result<Option<Tunnel>, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Route, format!("tunnel of ifindex {ifindex}"))?;
    let index = i32::try_from(ifindex).map_err(|_| conn.build_error("ifindex out of range"))?;
    let request = super::link::link_request(index, false).map_err(|e| conn.build_error(e))?;
    let reply = conn.request::<_, _, Ifinfomsg>(Rtm::Getlink, NlmF::empty(), request)?;
    let (_, msg) = reply
        .messages
        .iter()
        .find(|(t, _)| *t == Rtm::Newlink)
        .ok_or_else(|| conn.malformed("no RTM_NEWLINK in the reply"))?;
    Ok(parse_tunnel(msg))
}

// ---------------------------------------------------------------------------------------------
// IFLA_INFO_DATA

/// `IFLA_VXLAN_*` read here.
#[neli::neli_enum(serialized_type = "u16")]
enum IflaVxlan {
    Id = 1,
    Group = 2,
    Link = 3,
    Local = 4,
    Port = 15,
    Group6 = 16,
    Local6 = 17,
}
impl RtaType for IflaVxlan {}

/// `IFLA_GENEVE_*` read here.
#[neli::neli_enum(serialized_type = "u16")]
enum IflaGeneve {
    Id = 1,
    Remote = 2,
    Port = 5,
    Remote6 = 7,
}
impl RtaType for IflaGeneve {}

/// `IFLA_GRE_*` read here (gre, gretap, ip6gre, ip6gretap).
#[neli::neli_enum(serialized_type = "u16")]
enum IflaGre {
    Link = 1,
    Local = 6,
    Remote = 7,
}
impl RtaType for IflaGre {}

/// `IFLA_IPTUN_*` read here (ipip, sit, ip6tnl).
#[neli::neli_enum(serialized_type = "u16")]
enum IflaIptun {
    Link = 1,
    Local = 2,
    Remote = 3,
}
impl RtaType for IflaIptun {}

/// The tunnel of one `RTM_NEWLINK`, if it is one.
fn parse_tunnel(msg: &Ifinfomsg) -> Option<Tunnel> {
    let mut linkinfo = None;
    let mut link_netnsid = None;
    for attr in msg.rtattrs().iter() {
        match attr.rta_type() {
            Ifla::Linkinfo => linkinfo = Some(attr),
            Ifla::LinkNetnsid => link_netnsid = decode::<i32>(attr.rta_payload().as_ref()),
            _ => {}
        }
    }
    let mut tunnel = parse_linkinfo(linkinfo?)?;
    tunnel.link_netnsid = link_netnsid;
    Some(tunnel)
}

/// Kind and `IFLA_INFO_DATA` of an `IFLA_LINKINFO` nest; `None` for kinds that are no tunnel.
fn parse_linkinfo(linkinfo: &Rtattr<Ifla, Buffer>) -> Option<Tunnel> {
    let nested = linkinfo.get_attr_handle::<IflaInfo>().ok()?;
    let kind = nested
        .get_attribute(IflaInfo::Kind)
        .map(|a| attr_string(a.rta_payload().as_ref()))?;
    let data = nested.get_attribute(IflaInfo::Data);
    let mut t = Tunnel {
        kind,
        remote: None,
        local: None,
        group: None,
        link: None,
        link_netnsid: None,
        port: None,
    };
    match t.kind.as_str() {
        "vxlan" => {
            for a in data.into_iter().flat_map(nested_attrs::<IflaVxlan>) {
                let p = a.rta_payload().as_ref();
                match a.rta_type() {
                    IflaVxlan::Group | IflaVxlan::Group6 => match ip_from_bytes(p) {
                        Some(ip) if ip.is_multicast() => t.group = Some(ip),
                        ip => t.remote = ip.filter(|ip| !ip.is_unspecified()),
                    },
                    IflaVxlan::Local | IflaVxlan::Local6 => t.local = specified(p),
                    IflaVxlan::Link => t.link = ifindex(p),
                    IflaVxlan::Port => t.port = be16(p),
                    _ => {}
                }
            }
        }
        "geneve" => {
            for a in data.into_iter().flat_map(nested_attrs::<IflaGeneve>) {
                let p = a.rta_payload().as_ref();
                match a.rta_type() {
                    IflaGeneve::Remote | IflaGeneve::Remote6 => t.remote = specified(p),
                    IflaGeneve::Port => t.port = be16(p),
                    _ => {}
                }
            }
        }
        "gre" | "gretap" | "ip6gre" | "ip6gretap" => {
            for a in data.into_iter().flat_map(nested_attrs::<IflaGre>) {
                let p = a.rta_payload().as_ref();
                match a.rta_type() {
                    IflaGre::Remote => t.remote = specified(p),
                    IflaGre::Local => t.local = specified(p),
                    IflaGre::Link => t.link = ifindex(p),
                    _ => {}
                }
            }
        }
        "ipip" | "sit" | "ip6tnl" => {
            for a in data.into_iter().flat_map(nested_attrs::<IflaIptun>) {
                let p = a.rta_payload().as_ref();
                match a.rta_type() {
                    IflaIptun::Remote => t.remote = specified(p),
                    IflaIptun::Local => t.local = specified(p),
                    IflaIptun::Link => t.link = ifindex(p),
                    _ => {}
                }
            }
        }
        // No IFLA_INFO_DATA: the endpoints are per peer (wireguard_endpoints).
        "wireguard" => {}
        _ => return None,
    }
    Some(t)
}

/// The attributes nested in `IFLA_INFO_DATA` (empty when they do not parse).
fn nested_attrs<T: RtaType>(data: &Rtattr<IflaInfo, Buffer>) -> Vec<Rtattr<T, Buffer>> {
    data.get_attr_handle::<T>()
        .map(|h| h.iter().cloned().collect())
        .unwrap_or_default()
}

/// An address that is set (the kernel reports an unset one as `0.0.0.0` / `::`).
fn specified(p: &[u8]) -> Option<IpAddr> {
    ip_from_bytes(p).filter(|ip| !ip.is_unspecified())
}

fn ifindex(p: &[u8]) -> Option<u32> {
    decode::<u32>(p).filter(|&i| i != 0)
}

pub(super) fn be16(p: &[u8]) -> Option<u16> {
    <[u8; 2]>::try_from(p).ok().map(u16::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use neli::{FromBytes, ToBytes, rtnl::RtattrBuilder};

    use super::super::{decode_with_len, tests_support::hex};
    use super::*;

    fn linkinfo(hex_attr: &str) -> Rtattr<Ifla, Buffer> {
        Rtattr::<Ifla, Buffer>::from_bytes(&mut Cursor::new(hex(hex_attr))).expect("attr")
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    // `IFLA_LINKINFO` of vxlan devices as kernel 6.18 sent them (ifbz = ifindex 2).

    /// `ip link add vxlan0 type vxlan id 42 remote 198.18.0.2 local 198.18.0.1 dev ifbz
    /// dstport 4789`.
    const VXLAN_UNICAST: &str = "f00012000a00010076786c616e000000e0000200080001002a000000080002\
        00c6120002080003000200000008000400c6120001050005000000000005001c000000000005000600000000\
        0005001d000000000008001a00000000000800200000000000050007000100000005000b0000000000050\
        00c000000000005000d000000000005000e00000000000500190000000000080008002c0100000800090000\
        00000006000f0012b500000500120001000000050013000000000005001400000000000500150000000000\
        050016000000000005001f000100000008000a00000000000c002100f7ffffff000000ff";
    /// `ip link add vxm type vxlan id 43 group 239.1.1.1 dev ifbz dstport 4789`.
    const VXLAN_GROUP: &str = "e80012000a00010076786c616e000000d8000200080001002b0000000800020\
        0ef0101010800030002000000050005000000000005001c0000000000050006000000000005001d000000\
        000008001a00000000000800200000000000050007000100000005000b000000000005000c0000000000\
        05000d000000000005000e00000000000500190000000000080008002c010000080009000000000006000f\
        0012b500000500120001000000050013000000000005001400000000000500150000000000050016000000\
        000005001f000100000008000a00000000000c002100f7ffffff000000ff";
    /// `ip link add vx6 type vxlan id 44 remote 2001:db8::2 local 2001:db8::1 dstport 4790`.
    const VXLAN_V6: &str = "000112000a00010076786c616e000000f0000200080001002c000000140010002\
        0010db80000000000000000000000021400110020010db8000000000000000000000001050005000000000\
        005001c0000000000050006000000000005001d000000000008001a00000000000800200000000000050007\
        000100000005000b000000000005000c000000000005000d000000000005000e0000000000050019000000\
        0000080008002c010000080009000000000006000f0012b60000050012000100000005001300000000000\
        5001400000000000500150000000000050016000000000005001f000100000008000a00000000000c0021\
        00f7ffffff000000ff";

    #[test]
    fn parses_kernel_vxlans() {
        let t = parse_linkinfo(&linkinfo(VXLAN_UNICAST)).expect("vxlan");
        assert_eq!(
            t,
            Tunnel {
                kind: "vxlan".to_string(),
                remote: ip("198.18.0.2"),
                local: ip("198.18.0.1"),
                group: None,
                link: Some(2),
                link_netnsid: None,
                port: Some(4789),
            }
        );
        let t = parse_linkinfo(&linkinfo(VXLAN_GROUP)).expect("vxlan");
        assert_eq!(
            (t.remote, t.group, t.local, t.link, t.port),
            (None, ip("239.1.1.1"), None, Some(2), Some(4789))
        );
        let t = parse_linkinfo(&linkinfo(VXLAN_V6)).expect("vxlan");
        assert_eq!(
            (t.remote, t.local, t.link, t.port),
            (ip("2001:db8::2"), ip("2001:db8::1"), None, Some(4790))
        );
    }

    /// An `IFLA_LINKINFO` of `kind` with `IFLA_INFO_DATA` holding `data`, built like the
    /// kernel's (uapi layout; this kernel has no gre, ipip, sit, ip6tnl or geneve module).
    fn built<T: RtaType>(kind: &str, data: &[(T, Vec<u8>)]) -> Rtattr<Ifla, Buffer> {
        let mut info = RtattrBuilder::default()
            .rta_type(IflaInfo::Data)
            .rta_payload(Buffer::new())
            .build()
            .expect("data");
        for (t, payload) in data {
            let a = RtattrBuilder::default()
                .rta_type(*t)
                .rta_payload(payload.as_slice())
                .build()
                .expect("attr");
            info = info.nest(&a).expect("nest");
        }
        let kind = RtattrBuilder::default()
            .rta_type(IflaInfo::Kind)
            .rta_payload(kind)
            .build()
            .expect("kind");
        let li = RtattrBuilder::default()
            .rta_type(Ifla::Linkinfo)
            .rta_payload(Buffer::new())
            .build()
            .expect("linkinfo")
            .nest(&kind)
            .expect("nest")
            .nest(&info)
            .expect("nest");
        // Through bytes, as it would arrive.
        let mut bytes = Cursor::new(Vec::new());
        li.to_bytes(&mut bytes).expect("bytes");
        Rtattr::from_bytes(&mut Cursor::new(bytes.into_inner())).expect("reparse")
    }

    fn v4(s: &str) -> Vec<u8> {
        s.parse::<Ipv4Addr>().expect("v4").octets().to_vec()
    }

    fn v6(s: &str) -> Vec<u8> {
        s.parse::<Ipv6Addr>().expect("v6").octets().to_vec()
    }

    #[test]
    fn parses_gre_iptun_and_geneve_from_uapi_layout() {
        let gre = built(
            "gretap",
            &[
                (IflaGre::Link, 5u32.to_ne_bytes().to_vec()),
                (IflaGre::Local, v4("198.18.0.1")),
                (IflaGre::Remote, v4("198.18.0.2")),
            ],
        );
        let t = parse_linkinfo(&gre).expect("gretap");
        assert_eq!(
            (t.kind.as_str(), t.remote, t.local, t.link, t.port),
            ("gretap", ip("198.18.0.2"), ip("198.18.0.1"), Some(5), None)
        );
        // `remote any` is reported as 0.0.0.0, `dev` unset as 0.
        let gre_any = built(
            "gre",
            &[
                (IflaGre::Link, 0u32.to_ne_bytes().to_vec()),
                (IflaGre::Local, v4("198.18.0.1")),
                (IflaGre::Remote, v4("0.0.0.0")),
            ],
        );
        let t = parse_linkinfo(&gre_any).expect("gre");
        assert_eq!((t.remote, t.link), (None, None));
        let ip6gre = built("ip6gre", &[(IflaGre::Remote, v6("2001:db8::2"))]);
        assert_eq!(
            parse_linkinfo(&ip6gre).expect("ip6gre").remote,
            ip("2001:db8::2")
        );
        for kind in ["ipip", "sit"] {
            let t = built(
                kind,
                &[
                    (IflaIptun::Link, 3u32.to_ne_bytes().to_vec()),
                    (IflaIptun::Local, v4("198.18.0.1")),
                    (IflaIptun::Remote, v4("198.18.0.2")),
                ],
            );
            let t = parse_linkinfo(&t).expect("iptun");
            assert_eq!(
                (t.remote, t.local, t.link),
                (ip("198.18.0.2"), ip("198.18.0.1"), Some(3))
            );
        }
        let t = built(
            "ip6tnl",
            &[
                (IflaIptun::Local, v6("2001:db8::1")),
                (IflaIptun::Remote, v6("2001:db8::2")),
            ],
        );
        let t = parse_linkinfo(&t).expect("ip6tnl");
        assert_eq!((t.remote, t.local), (ip("2001:db8::2"), ip("2001:db8::1")));
        let t = built(
            "geneve",
            &[
                (IflaGeneve::Id, 5u32.to_ne_bytes().to_vec()),
                (IflaGeneve::Remote6, v6("2001:db8::2")),
                (IflaGeneve::Port, 6081u16.to_be_bytes().to_vec()),
            ],
        );
        let t = parse_linkinfo(&t).expect("geneve");
        assert_eq!((t.remote, t.port), (ip("2001:db8::2"), Some(6081)));
    }

    #[test]
    fn other_kinds_are_no_tunnel_and_wireguard_has_no_data() {
        let veth = built::<IflaGre>("veth", &[]);
        assert_eq!(parse_linkinfo(&veth), None);
        let wg = built::<IflaGre>("wireguard", &[]);
        let t = parse_linkinfo(&wg).expect("wireguard");
        assert_eq!((t.remote, t.local, t.port), (None, None, None));
    }

    #[test]
    fn link_netnsid_comes_from_the_link_message() {
        let attrs = [
            linkinfo(VXLAN_UNICAST),
            RtattrBuilder::default()
                .rta_type(Ifla::LinkNetnsid)
                .rta_payload(3i32)
                .build()
                .expect("netnsid"),
        ]
        .into_iter()
        .collect();
        let msg = neli::rtnl::IfinfomsgBuilder::default()
            .ifi_family(neli::consts::rtnl::RtAddrFamily::Unspecified)
            .ifi_index(8)
            .rtattrs(attrs)
            .build()
            .expect("ifinfomsg");
        let mut bytes = Cursor::new(Vec::new());
        msg.to_bytes(&mut bytes).expect("bytes");
        let msg: Ifinfomsg = decode_with_len(bytes.get_ref()).expect("reparse");
        let t = parse_tunnel(&msg).expect("vxlan");
        assert_eq!((t.link_netnsid, t.link), (Some(3), Some(2)));
    }
}
