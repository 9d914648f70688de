//! WireGuard endpoints: the peers' endpoints of a WireGuard device (generic netlink family
//! `wireguard`, [`wireguard_endpoints`]). The device's own link (its kind and
//! `IFLA_LINK_NETNSID`) is read with [`super::tunnel()`].
//!
//! Attribute numbers: include/uapi/linux/wireguard.h (`WG*`). A sockaddr's port is
//! big-endian, its family native-endian.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use neli::{
    consts::{
        genl::{Cmd, Index, NlAttrType},
        socket::NlFamily,
    },
    genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder},
    types::{Buffer, GenlBuffer},
};

use super::{Conn, NetlinkError, ethtool::resolve_family, tunnel::be16};

const WG_GENL_NAME: &str = "wireguard";
const WG_GENL_VERSION: u8 = 1;

/// `enum wg_cmd`.
#[neli::neli_enum(serialized_type = "u8")]
enum WgCmd {
    GetDevice = 0,
    SetDevice = 1,
}
impl Cmd for WgCmd {}

/// `enum wgdevice_attribute` (the ones read or sent here).
#[neli::neli_enum(serialized_type = "u16")]
enum WgDeviceAttr {
    Ifindex = 1,
    Ifname = 2,
    ListenPort = 6,
    Peers = 8,
}
impl NlAttrType for WgDeviceAttr {}

/// `enum wgpeer_attribute` (the ones read here).
#[neli::neli_enum(serialized_type = "u16")]
enum WgPeerAttr {
    PublicKey = 1,
    Endpoint = 4,
}
impl NlAttrType for WgPeerAttr {}

/// The endpoints of the peers of WireGuard device `ifname` (`WG_CMD_GET_DEVICE`, a dump; peers
/// without a known endpoint are left out), in the calling thread's namespace. The UDP socket of
/// the device sends from the namespace the device was created in, which may be another one
/// (see `IFLA_LINK_NETNSID` in [`super::Tunnel::link_netnsid`]).
///
/// No such device: [`NetlinkError::NoDevice`]; no `wireguard` module: [`NetlinkError::NoFamily`].
pub fn wireguard_endpoints(ifname: &str) -> Result<Vec<SocketAddr>, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Generic, format!("wireguard peers of {ifname}"))?;
    let family = resolve_family(&mut conn, WG_GENL_NAME)?;
    let request = wg_request(ifname).map_err(|e| conn.build_error(e))?;
    let messages = conn
        .dump::<u16, _, Genlmsghdr<WgCmd, WgDeviceAttr>>(family, request, "wireguard peer list")
        .map_err(|e| e.for_device(ifname))?;
    Ok(messages
        .iter()
        .flat_map(|(_, msg)| parse_wg_endpoints(msg))
        .collect())
}

fn wg_request(ifname: &str) -> Result<Genlmsghdr<WgCmd, WgDeviceAttr>, String> {
    let name = NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(WgDeviceAttr::Ifname)
                .build()
                .map_err(|e| format!("WGDEVICE_A_IFNAME type: {e}"))?,
        )
        .nla_payload(ifname)
        .build()
        .map_err(|e| format!("WGDEVICE_A_IFNAME: {e}"))?;
    GenlmsghdrBuilder::default()
        .cmd(WgCmd::GetDevice)
        .version(WG_GENL_VERSION)
        .attrs([name].into_iter().collect::<GenlBuffer<_, _>>())
        .build()
        .map_err(|e| format!("genl message: {e}"))
}

/// The peers' endpoints in one `WG_CMD_GET_DEVICE` message (a long peer list spans several).
fn parse_wg_endpoints(msg: &Genlmsghdr<WgCmd, WgDeviceAttr>) -> Vec<SocketAddr> {
    let Some(peers) = msg
        .attrs()
        .iter()
        .find(|a| *a.nla_type().nla_type() == WgDeviceAttr::Peers)
    else {
        return Vec::new();
    };
    let Ok(peers) = peers.get_attr_handle::<Index>() else {
        return Vec::new();
    };
    peers
        .iter()
        .filter_map(|peer: &Nlattr<Index, Buffer>| {
            let attrs = peer.get_attr_handle::<WgPeerAttr>().ok()?;
            let endpoint = attrs.get_attribute(WgPeerAttr::Endpoint)?;
            sockaddr(endpoint.nla_payload().as_ref())
        })
        .collect()
}

/// A `struct sockaddr_in` or `struct sockaddr_in6` (family native-endian, port big-endian).
fn sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let family = libc::c_int::from(u16::from_ne_bytes(b.get(..2)?.try_into().ok()?));
    let port = be16(b.get(2..4)?)?;
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flowinfo = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let scope_id = u32::from_ne_bytes(b.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flowinfo,
                scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use neli::ToBytes;

    use super::super::{decode_with_len, tests_support::hex};
    use super::*;

    fn v4(s: &str) -> Vec<u8> {
        s.parse::<Ipv4Addr>().expect("v4").octets().to_vec()
    }

    fn v6(s: &str) -> Vec<u8> {
        s.parse::<Ipv6Addr>().expect("v6").octets().to_vec()
    }

    // WireGuard: this machine cannot create wireguard devices (no module), so the decoder is
    // tested on a WG_CMD_GET_DEVICE reply built from the layout of include/uapi/linux/
    // wireguard.h: WGDEVICE_A_PEERS (8, NLA_F_NESTED) holding one nest per peer (type 0,
    // NLA_F_NESTED) with WGPEER_A_PUBLIC_KEY (1) and WGPEER_A_ENDPOINT (4), a struct
    // sockaddr_in or sockaddr_in6.

    fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&u16::try_from(4 + payload.len()).expect("len").to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    const NLA_F_NESTED: u16 = 1 << 15;

    fn sockaddr_in(ip: &str, port: u16) -> Vec<u8> {
        let mut v = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&port.to_be_bytes());
        v.extend_from_slice(&v4(ip));
        v.extend_from_slice(&[0; 8]);
        assert_eq!(v.len(), std::mem::size_of::<libc::sockaddr_in>());
        v
    }

    fn sockaddr_in6(ip: &str, port: u16, scope: u32) -> Vec<u8> {
        let mut v = (libc::AF_INET6 as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&port.to_be_bytes());
        v.extend_from_slice(&0u32.to_be_bytes());
        v.extend_from_slice(&v6(ip));
        v.extend_from_slice(&scope.to_ne_bytes());
        assert_eq!(v.len(), std::mem::size_of::<libc::sockaddr_in6>());
        v
    }

    fn wg_reply() -> Vec<u8> {
        let key = [0x11u8; 32];
        let mut peer1 = nla(1, &key);
        peer1.extend(nla(4, &sockaddr_in("198.18.0.2", 51820)));
        let mut peer2 = nla(1, &key);
        peer2.extend(nla(4, &sockaddr_in6("2001:db8::2", 51821, 0)));
        // A peer without an endpoint.
        let peer3 = nla(1, &key);
        let mut peers = nla(NLA_F_NESTED, &peer1);
        peers.extend(nla(NLA_F_NESTED, &peer2));
        peers.extend(nla(NLA_F_NESTED, &peer3));
        // genlmsghdr: cmd WG_CMD_GET_DEVICE, version 1, reserved.
        let mut msg = vec![0, 1, 0, 0];
        msg.extend(nla(1, &7u32.to_ne_bytes()));
        msg.extend(nla(2, b"wg0\0"));
        msg.extend(nla(6, &51820u16.to_ne_bytes()));
        msg.extend(nla(8 | NLA_F_NESTED, &peers));
        msg
    }

    #[test]
    fn decodes_wireguard_endpoints_from_uapi_layout() {
        let bytes = wg_reply();
        let msg: Genlmsghdr<WgCmd, WgDeviceAttr> = decode_with_len(&bytes).expect("genl");
        assert_eq!(*msg.cmd(), WgCmd::GetDevice);
        assert_eq!(
            parse_wg_endpoints(&msg),
            [
                "198.18.0.2:51820".parse::<SocketAddr>().expect("v4"),
                "[2001:db8::2]:51821".parse::<SocketAddr>().expect("v6"),
            ]
        );
    }

    #[test]
    fn sockaddrs_of_other_families_or_short_are_skipped() {
        assert_eq!(sockaddr(&[]), None);
        assert_eq!(sockaddr(&sockaddr_in("198.18.0.2", 1)[..6]), None);
        let mut unix = sockaddr_in("198.18.0.2", 1);
        unix[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        assert_eq!(sockaddr(&unix), None);
        let scoped = sockaddr(&sockaddr_in6("fe80::1", 9, 3)).expect("v6");
        assert_eq!(scoped, "[fe80::1%3]:9".parse().expect("scoped"));
    }

    #[test]
    fn the_wireguard_request_names_the_device() {
        let mut bytes = Cursor::new(Vec::new());
        wg_request("wg0")
            .expect("request")
            .to_bytes(&mut bytes)
            .expect("bytes");
        // cmd 0, version 1, reserved; WGDEVICE_A_IFNAME "wg0\0".
        assert_eq!(bytes.get_ref(), &hex("000100000800020077673000"));
    }

    #[test]
    fn missing_wireguard_is_a_typed_error() {
        match wireguard_endpoints("zcdnp-nowg0") {
            Err(NetlinkError::NoFamily { family, .. }) => assert_eq!(family, "wireguard"),
            Err(NetlinkError::NoDevice { ifname, .. }) => assert_eq!(ifname, "zcdnp-nowg0"),
            other => panic!("{other:?}"),
        }
    }
}
