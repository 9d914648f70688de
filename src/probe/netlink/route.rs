//! `RTM_GETROUTE`: one route lookup ([`route_lookup`], like `ip route get`) and the default
//! routes of the main table (a dump).
//!
//! Like every call in this module, the socket is opened in the calling thread's network
//! namespace: to look up a route in another namespace, call from a thread that `setns()`ed.

use std::{
    io::Cursor,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use neli::{
    FromBytes, FromBytesWithInput, Size, ToBytes,
    consts::{
        nl::NlmF,
        rtnl::{RtAddrFamily, RtScope, RtTable, Rta, RtaType, Rtm, Rtn, Rtprot},
        socket::NlFamily,
    },
    err::DeError,
    rtnl::{Rtattr, RtattrBuilder, Rtmsg, RtmsgBuilder},
    types::{Buffer, RtBuffer},
};

use super::{Conn, NetlinkError, decode, decode_with_len, link::link_name};
use crate::evidence::{RouteInfo, RouteType, SocketRouting};

/// A default route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
    pub metric: u32,
}

/// What to look up: `ip route get DST [from SRC] [mark MARK] [iif DEV] [oif DEV]`
/// (devices by ifindex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteQuery {
    pub dst: IpAddr,
    /// `RTA_SRC`: a source address of the same family as `dst`.
    pub src: Option<IpAddr>,
    /// `RTA_MARK`: the fwmark policy routing sees.
    pub mark: Option<u32>,
    /// `RTA_IIF`: look up as if received on this device (a forwarding decision).
    pub iif: Option<u32>,
    /// `RTA_OIF`: bind the lookup to this output device.
    pub oif: Option<u32>,
    /// `RTA_UID`: the socket owner `ip rule uidrange` sees (without it, the kernel uses the
    /// asking process's uid).
    pub uid: Option<u32>,
}

impl RouteQuery {
    /// The output lookup of `dst` the kernel makes for a connected socket routed as `r` (its
    /// source address, `SO_MARK`, bound device).
    pub fn for_socket(dst: IpAddr, r: &SocketRouting) -> RouteQuery {
        RouteQuery {
            src: r.source.filter(|s| s.is_ipv4() == dst.is_ipv4()),
            mark: r.mark,
            oif: r.bound_ifindex,
            uid: r.uid,
            ..RouteQuery::to(dst)
        }
    }

    /// The lookup the kernel makes for a socket bound to `iface`, as far as it changes the
    /// route: inside a VRF (`iface` the VRF or one of its slaves, `links` the namespace's link
    /// table) the output device selects the VRF's table (`l3mdev_update_flow`); elsewhere a
    /// lookup of `dst` alone, so a route by another device is seen as such.
    pub fn bound_to(dst: IpAddr, iface: &str, links: &[super::Link]) -> RouteQuery {
        let Some(dev) = links.iter().find(|l| l.name == iface) else {
            return RouteQuery::to(dst);
        };
        let is_vrf = |l: &super::Link| l.link_kind.as_deref() == Some("vrf");
        let in_vrf = is_vrf(dev)
            || dev
                .master
                .and_then(|m| links.iter().find(|l| l.ifindex == m))
                .is_some_and(is_vrf);
        RouteQuery {
            oif: in_vrf.then_some(dev.ifindex),
            ..RouteQuery::to(dst)
        }
    }

    /// A lookup of `dst` alone.
    pub fn to(dst: IpAddr) -> RouteQuery {
        RouteQuery {
            dst,
            src: None,
            mark: None,
            iif: None,
            oif: None,
            uid: None,
        }
    }
}

/// The route the kernel picks for `dst`, like `ip route get` (`RTM_GETROUTE`, not a dump).
pub fn route_get(dst: IpAddr) -> Result<RouteInfo, NetlinkError> {
    route_lookup(&RouteQuery::to(dst))
}

/// The route the kernel picks for `query`. A refused lookup (`ENETUNREACH`, …) is
/// [`NetlinkError::NoRoute`].
pub fn route_lookup(query: &RouteQuery) -> Result<RouteInfo, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Route, "route get")?;
    let request = lookup_request(query).map_err(|e| conn.build_error(e))?;
    let reply = conn
        .request::<_, _, Rtmsg>(Rtm::Getroute, NlmF::empty(), request)
        .map_err(|e| no_route(query.dst, e))?;
    let (_, msg) = reply
        .messages
        .iter()
        .find(|(t, _)| *t == Rtm::Newroute)
        .ok_or_else(|| conn.malformed(format!("{}: the kernel sent no route", query.dst)))?;
    let route = parse_route(msg).map_err(|e| conn.malformed(e))?;
    let device = route.oif.and_then(|index| link_name(&mut conn, index));
    Ok(RouteInfo {
        device,
        ifindex: route.oif,
        gateway: route
            .nexthops
            .first()
            .and_then(|n| n.gateway)
            .map(|g| g.to_string()),
        source: route.prefsrc.map(|s| s.to_string()),
        route_type: RouteType::from_rtn(route.rtm_type),
        mtu: route.mtu,
    })
}

/// A kernel refusal of a lookup reads as "no route to DST: Network is unreachable".
fn no_route(dst: IpAddr, e: NetlinkError) -> NetlinkError {
    match e {
        NetlinkError::Kernel { op, errno, ext_ack } => NetlinkError::NoRoute {
            op,
            dst,
            errno,
            ext_ack,
        },
        e => e,
    }
}

/// Default routes (`dst_len` 0) of the main table, IPv4 or IPv6, lowest metric first.
///
/// Only `unicast` routes with an output device are listed; a multipath route gives one entry
/// per next hop.
pub fn default_routes(v6: bool) -> Result<Vec<DefaultRoute>, NetlinkError> {
    let op = format!("{} default routes", if v6 { "IPv6" } else { "IPv4" });
    let mut conn = Conn::open(NlFamily::Route, op)?;
    let family = if v6 {
        RtAddrFamily::Inet6
    } else {
        RtAddrFamily::Inet
    };
    let request = rtmsg(family, 0, 0, RtBuffer::new()).map_err(|e| conn.build_error(e))?;
    let messages = conn.dump::<_, _, Rtmsg>(Rtm::Getroute, request, "routing table")?;
    let mut routes = Vec::new();
    for (_, msg) in messages.iter().filter(|(t, _)| *t == Rtm::Newroute) {
        let route = parse_route(msg).map_err(|e| conn.malformed(e))?;
        if route.family != family
            || route.dst_len != 0
            || route.table != u32::from(libc::RT_TABLE_MAIN)
            || route.rtm_type != libc::RTN_UNICAST
        {
            continue;
        }
        for hop in &route.nexthops {
            if let Some(ifindex) = hop.oif {
                routes.push(DefaultRoute {
                    ifindex,
                    gateway: hop.gateway,
                    metric: route.priority,
                });
            }
        }
    }
    routes.sort_by_key(|r| r.metric);
    Ok(routes)
}

// ---------------------------------------------------------------------------------------------
// Requests

fn lookup_request(q: &RouteQuery) -> Result<Rtmsg, String> {
    let (family, len) = family_of(q.dst);
    let mut attrs = RtBuffer::new();
    attrs.push(rta(Rta::Dst, ip_octets(q.dst).as_slice())?);
    let mut src_len = 0;
    if let Some(src) = q.src {
        if family_of(src).0 != family {
            return Err(format!(
                "source {src} and destination {} differ in family",
                q.dst
            ));
        }
        attrs.push(rta(Rta::Src, ip_octets(src).as_slice())?);
        src_len = len;
    }
    for (kind, value) in [
        (Rta::Mark, q.mark),
        (Rta::Iif, q.iif),
        (Rta::Oif, q.oif),
        (Rta::Uid, q.uid),
    ] {
        if let Some(value) = value {
            attrs.push(rta(kind, value)?);
        }
    }
    rtmsg(family, len, src_len, attrs)
}

fn family_of(ip: IpAddr) -> (RtAddrFamily, u8) {
    match ip {
        IpAddr::V4(_) => (RtAddrFamily::Inet, 32),
        IpAddr::V6(_) => (RtAddrFamily::Inet6, 128),
    }
}

fn ip_octets(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn rta<P: Size + ToBytes>(kind: Rta, payload: P) -> Result<Rtattr<Rta, Buffer>, String> {
    RtattrBuilder::default()
        .rta_type(kind)
        .rta_payload(payload)
        .build()
        .map_err(|e| format!("{kind:?}: {e}"))
}

fn rtmsg(
    family: RtAddrFamily,
    dst_len: u8,
    src_len: u8,
    attrs: RtBuffer<Rta, Buffer>,
) -> Result<Rtmsg, String> {
    RtmsgBuilder::default()
        .rtm_family(family)
        .rtm_dst_len(dst_len)
        .rtm_src_len(src_len)
        .rtm_tos(0)
        .rtm_table(RtTable::Unspec)
        .rtm_protocol(Rtprot::Unspec)
        .rtm_scope(RtScope::Universe)
        .rtm_type(Rtn::Unspec)
        .rtattrs(attrs)
        .build()
        .map_err(|e| format!("rtmsg: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Replies

/// `RTAX_*` inside `RTA_METRICS` (include/uapi/linux/rtnetlink.h); neli and libc name none.
#[neli::neli_enum(serialized_type = "u16")]
enum Rtax {
    Lock = 1,
    Mtu = 2,
}

impl RtaType for Rtax {}

/// `struct rtnexthop` (an `RTA_MULTIPATH` entry) and the attributes that follow it. neli has
/// no type for it; decoding it through neli's traits lets `Vec<Rtnexthop>` walk the list.
#[derive(Debug)]
struct Rtnexthop {
    ifindex: libc::c_int,
    attrs: RtBuffer<Rta, Buffer>,
}

impl FromBytes for Rtnexthop {
    fn from_bytes(buffer: &mut Cursor<impl AsRef<[u8]>>) -> Result<Self, DeError> {
        // rtnh_len, rtnh_flags, rtnh_hops, rtnh_ifindex: 8 bytes, then attributes.
        const RTNH_HDRLEN: usize = 8;
        let len = usize::from(u16::from_bytes(buffer)?);
        let _flags = u8::from_bytes(buffer)?;
        let _hops = u8::from_bytes(buffer)?;
        let ifindex = libc::c_int::from_bytes(buffer)?;
        let attrs_len = len
            .checked_sub(RTNH_HDRLEN)
            .ok_or(DeError::InvalidInput(len))?;
        let attrs = RtBuffer::from_bytes_with_input(buffer, attrs_len)?;
        <Self as FromBytes>::strip(buffer)?;
        Ok(Rtnexthop { ifindex, attrs })
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct NextHop {
    oif: Option<u32>,
    gateway: Option<IpAddr>,
}

#[derive(Debug)]
struct Route {
    family: RtAddrFamily,
    dst_len: u8,
    table: u32,
    rtm_type: u8,
    oif: Option<u32>,
    prefsrc: Option<IpAddr>,
    priority: u32,
    mtu: Option<u32>,
    /// The single next hop (oif/gateway), or one per `RTA_MULTIPATH` entry.
    nexthops: Vec<NextHop>,
}

fn parse_route(msg: &Rtmsg) -> Result<Route, String> {
    let mut route = Route {
        family: *msg.rtm_family(),
        dst_len: *msg.rtm_dst_len(),
        table: u32::from(u8::from(*msg.rtm_table())),
        rtm_type: u8::from(*msg.rtm_type()),
        oif: None,
        prefsrc: None,
        priority: 0,
        mtu: None,
        nexthops: Vec::new(),
    };
    let mut gateway = None;
    let mut multipath = Vec::new();
    for attr in msg.rtattrs().iter() {
        let payload = attr.rta_payload().as_ref();
        match attr.rta_type() {
            Rta::Oif => route.oif = decode::<u32>(payload).filter(|&i| i != 0),
            Rta::Gateway | Rta::Via => gateway = gateway_of(attr),
            Rta::Prefsrc => route.prefsrc = ip_from_bytes(payload),
            Rta::Priority => route.priority = decode::<u32>(payload).unwrap_or(0),
            Rta::Table => {
                if let Some(table) = decode::<u32>(payload) {
                    route.table = table;
                }
            }
            Rta::Metrics => {
                route.mtu = attr
                    .get_attr_handle::<Rtax>()
                    .ok()
                    .and_then(|m| m.get_attr_payload_as::<u32>(Rtax::Mtu).ok())
                    .filter(|&m| m != 0);
            }
            Rta::Multipath => {
                let hops = decode_with_len::<Vec<Rtnexthop>>(payload)
                    .map_err(|e| format!("malformed RTA_MULTIPATH: {e}"))?;
                multipath = hops
                    .iter()
                    .map(|hop| NextHop {
                        oif: u32::try_from(hop.ifindex).ok().filter(|&i| i != 0),
                        gateway: hop.attrs.iter().find_map(gateway_of),
                    })
                    .collect();
            }
            _ => {}
        }
    }
    route.nexthops = if multipath.is_empty() {
        vec![NextHop {
            oif: route.oif,
            gateway,
        }]
    } else {
        multipath
    };
    Ok(route)
}

/// `RTA_GATEWAY` (an address of the route's family) or `RTA_VIA` (`struct rtvia`: a family,
/// then an address of that family, e.g. an IPv6 next hop for an IPv4 route).
fn gateway_of(attr: &Rtattr<Rta, Buffer>) -> Option<IpAddr> {
    let payload = attr.rta_payload().as_ref();
    match attr.rta_type() {
        Rta::Gateway => ip_from_bytes(payload),
        Rta::Via => {
            let mut cursor = Cursor::new(payload);
            let family = libc::c_int::from(u16::from_bytes(&mut cursor).ok()?);
            match family {
                libc::AF_INET => <[u8; 4]>::from_bytes(&mut cursor)
                    .ok()
                    .map(|a| IpAddr::V4(Ipv4Addr::from(a))),
                libc::AF_INET6 => <[u8; 16]>::from_bytes(&mut cursor)
                    .ok()
                    .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
                _ => None,
            }
        }
        _ => None,
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => decode::<[u8; 4]>(b).map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        16 => decode::<[u8; 16]>(b).map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::netlink::tests_support::hex;

    #[test]
    fn route_to_loopback_is_local() {
        let r = route_get(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("route to 127.0.0.1");
        assert_eq!(r.route_type, RouteType::Local);
        assert_eq!(r.device.as_deref(), Some("lo"));
        assert_eq!(r.ifindex, Some(1));
        assert_eq!(r.source.as_deref(), Some("127.0.0.1"));
    }

    #[test]
    fn default_routes_are_sorted() {
        for v6 in [false, true] {
            let routes = default_routes(v6).expect("default routes");
            assert!(routes.windows(2).all(|w| w[0].metric <= w[1].metric));
        }
    }

    /// `ip route add default mtu 1400 nexthop via 198.18.1.254 dev ifb1 nexthop via
    /// 198.18.2.254 dev ifb2 weight 2`, as kernel 6.18 dumped it (ifb1 = 2, ifb2 = 3).
    const MULTIPATH_DEFAULT: &str = "540000001800020001000000ba40000002000000fe03000100000000\
        08000f00fe0000000c000800080002007805000024000900100000000200000008000500c61201fe1000\
        00010300000008000500c61202fe";

    #[test]
    fn parses_a_kernel_multipath_route() {
        let bytes = hex(MULTIPATH_DEFAULT);
        let msg: Rtmsg = decode_with_len(&bytes[16..]).expect("rtmsg");
        let route = parse_route(&msg).expect("route");
        assert_eq!(route.family, RtAddrFamily::Inet);
        assert_eq!(route.dst_len, 0);
        assert_eq!(route.table, u32::from(libc::RT_TABLE_MAIN));
        assert_eq!(route.rtm_type, libc::RTN_UNICAST);
        assert_eq!(route.mtu, Some(1400));
        assert_eq!(
            route.nexthops,
            [
                NextHop {
                    oif: Some(2),
                    gateway: Some("198.18.1.254".parse().expect("ip")),
                },
                NextHop {
                    oif: Some(3),
                    gateway: Some("198.18.2.254".parse().expect("ip")),
                },
            ]
        );
    }

    #[test]
    fn via_gateway_of_another_family() {
        let mut via = (libc::AF_INET6 as u16).to_ne_bytes().to_vec();
        via.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().expect("ip").octets());
        let attr = rta(Rta::Via, via.as_slice()).expect("attr");
        assert_eq!(gateway_of(&attr), Some("2001:db8::1".parse().expect("ip")));
    }

    #[test]
    fn lookup_request_carries_the_query() {
        let q = RouteQuery {
            dst: "198.18.0.9".parse().expect("ip"),
            src: Some("198.18.0.1".parse().expect("ip")),
            mark: Some(0x2a),
            iif: None,
            oif: Some(4),
            uid: Some(1000),
        };
        let msg = lookup_request(&q).expect("request");
        assert_eq!((*msg.rtm_dst_len(), *msg.rtm_src_len()), (32, 32));
        let kinds: Vec<Rta> = msg.rtattrs().iter().map(|a| *a.rta_type()).collect();
        assert_eq!(kinds, [Rta::Dst, Rta::Src, Rta::Mark, Rta::Oif, Rta::Uid]);
        let mixed = RouteQuery {
            src: Some("2001:db8::1".parse().expect("ip")),
            ..q
        };
        assert!(lookup_request(&mixed).is_err());
    }

    #[test]
    fn unreachable_route_error_is_clear() {
        let dst: IpAddr = "198.18.9.9".parse().expect("ip");
        let e = no_route(
            dst,
            NetlinkError::Kernel {
                op: "route get".to_string(),
                errno: nix::errno::Errno::ENETUNREACH,
                ext_ack: None,
            },
        );
        assert_eq!(
            e.to_string(),
            "route get: no route to 198.18.9.9: Network is unreachable"
        );
        assert_eq!(e.errno(), Some(nix::errno::Errno::ENETUNREACH));
    }
}
