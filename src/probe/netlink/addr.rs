//! `RTM_GETADDR`: the IPv4 and IPv6 addresses of the calling thread's network namespace.
//!
//! **`IFA_LOCAL` and `IFA_ADDRESS`** (include/uapi/linux/if_addr.h). For IPv4 the kernel sends
//! both: `IFA_LOCAL` is the interface's own address, `IFA_ADDRESS` the same address, or the
//! *peer* on a point-to-point link (`ip addr add A peer B`). For IPv6 it sends `IFA_ADDRESS`
//! alone (the own address), and adds `IFA_LOCAL` only when a peer is configured, in which case
//! `IFA_LOCAL` is the own address and `IFA_ADDRESS` the peer. So the own address is `IFA_LOCAL`
//! when present, else `IFA_ADDRESS`; a differing `IFA_ADDRESS` next to an `IFA_LOCAL` is a
//! peer. [`addresses`] lists the own address with `local: true` and such a peer as a second
//! entry with `local: false` (what `ip addr` prints as `local` and `peer`).

use std::net::IpAddr;

use neli::{
    consts::{
        rtnl::{Ifa, IfaF, RtAddrFamily, RtScope, Rtm},
        socket::NlFamily,
    },
    rtnl::{Ifaddrmsg, IfaddrmsgBuilder},
    types::RtBuffer,
};

use super::{Conn, NetlinkError, ip_from_bytes};

/// One address of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub ifindex: u32,
    pub addr: IpAddr,
    /// `ifa_prefixlen`: of the own address, or of the peer for a point-to-point peer.
    pub prefix_len: u8,
    /// `true`: an address of this namespace (traffic to it is delivered locally).
    /// `false`: the peer of a point-to-point address (`IFA_ADDRESS` differing from
    /// `IFA_LOCAL`), reached through `ifindex`, not an address of this namespace.
    pub local: bool,
}

/// Every IPv4 and IPv6 address of the calling thread's network namespace (`RTM_GETADDR` dump),
/// peers of point-to-point addresses included (`local: false`), in kernel order.
pub fn addresses() -> Result<Vec<Address>, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Route, "rtnetlink address dump")?;
    let request = IfaddrmsgBuilder::default()
        .ifa_family(RtAddrFamily::Unspecified)
        .ifa_prefixlen(0)
        .ifa_flags(IfaF::empty())
        .ifa_scope(RtScope::Universe)
        .ifa_index(0)
        .rtattrs(RtBuffer::new())
        .build()
        .map_err(|e| conn.build_error(format!("ifaddrmsg: {e}")))?;
    let messages = conn.dump::<_, _, Ifaddrmsg>(Rtm::Getaddr, request, "address table")?;
    let mut out = Vec::new();
    for (_, msg) in messages.iter().filter(|(t, _)| *t == Rtm::Newaddr) {
        out.extend(parse_address(msg).map_err(|e| conn.malformed(e))?);
    }
    Ok(out)
}

/// The own address of one `RTM_NEWADDR`, and its peer when it has one. Families other than
/// IPv4/IPv6 give nothing.
fn parse_address(msg: &Ifaddrmsg) -> Result<Vec<Address>, String> {
    if !matches!(msg.ifa_family(), RtAddrFamily::Inet | RtAddrFamily::Inet6) {
        return Ok(Vec::new());
    }
    let ifindex = *msg.ifa_index();
    let mut local = None;
    let mut address = None;
    for attr in msg.rtattrs().iter() {
        let payload = attr.rta_payload().as_ref();
        match attr.rta_type() {
            Ifa::Local => local = Some(ip_or_err("IFA_LOCAL", ifindex, payload)?),
            Ifa::Address => address = Some(ip_or_err("IFA_ADDRESS", ifindex, payload)?),
            _ => {}
        }
    }
    let prefix_len = *msg.ifa_prefixlen();
    let entry = |addr, local| Address {
        ifindex,
        addr,
        prefix_len,
        local,
    };
    Ok(match (local, address) {
        (Some(own), Some(peer)) if own != peer => vec![entry(own, true), entry(peer, false)],
        (Some(own), _) | (None, Some(own)) => vec![entry(own, true)],
        (None, None) => {
            return Err(format!(
                "RTM_NEWADDR on ifindex {ifindex} without IFA_LOCAL or IFA_ADDRESS"
            ));
        }
    })
}

fn ip_or_err(what: &str, ifindex: u32, payload: &[u8]) -> Result<IpAddr, String> {
    ip_from_bytes(payload).ok_or_else(|| {
        format!(
            "{what} of {} bytes on ifindex {ifindex} is no IP address",
            payload.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::{decode_with_len, tests_support::hex};
    use super::*;

    /// `RTM_NEWADDR` messages as kernel 6.18 dumped them (netlink header included), in a
    /// namespace with ifb `ifbz` (ifindex 2):
    /// `ip addr add 198.18.5.1 peer 198.18.5.2/32 dev ifbz`.
    const V4_PEER: &str = "500000001400020007000000fe140000022080000200000008000100c61205020800\
        0200c6120501090003006966627a00000000080008008000000014000600ffffffffffffffff\
        fe230300fe230300";
    /// `ip addr add 198.18.0.1/24 dev ifbz`: `IFA_ADDRESS` = `IFA_LOCAL`.
    const V4_PLAIN: &str = "500000001400020007000000fe140000021880000200000008000100c61200010800\
        0200c6120001090003006966627a00000000080008008000000014000600ffffffffffffffff\
        fe230300fe230300";
    /// `ip addr add 2001:db8::1/64 dev ifbz nodad`: `IFA_ADDRESS` alone.
    const V6_PLAIN: &str = "480000001400020007000000fe1400000a408200020000001400010020010db80000\
        0000000000000000000114000600fffffffffffffffffe230300fe2303000800080082000000";
    /// `ip addr add 2001:db8:5::1 peer 2001:db8:5::2/128 dev ifbz nodad`: `IFA_LOCAL` (own)
    /// first, then `IFA_ADDRESS` (peer).
    const V6_PEER: &str = "5c0000001400020007000000fe1400000a808200020000001400020020010db80005\
        000000000000000000011400010020010db800050000000000000000000214000600ffffffff\
        fffffffffe230300fe2303000800080082000000";

    fn parse(msg_hex: &str) -> Vec<Address> {
        let bytes = hex(msg_hex);
        let msg: Ifaddrmsg = decode_with_len(&bytes[16..]).expect("ifaddrmsg");
        parse_address(&msg).expect("address")
    }

    fn a(ifindex: u32, addr: &str, prefix_len: u8, local: bool) -> Address {
        Address {
            ifindex,
            addr: addr.parse().expect("ip"),
            prefix_len,
            local,
        }
    }

    #[test]
    fn v4_local_and_peer() {
        assert_eq!(
            parse(V4_PEER),
            [a(2, "198.18.5.1", 32, true), a(2, "198.18.5.2", 32, false)]
        );
        assert_eq!(parse(V4_PLAIN), [a(2, "198.18.0.1", 24, true)]);
    }

    #[test]
    fn v6_address_alone_is_local_and_local_before_peer() {
        assert_eq!(parse(V6_PLAIN), [a(2, "2001:db8::1", 64, true)]);
        assert_eq!(
            parse(V6_PEER),
            [
                a(2, "2001:db8:5::1", 128, true),
                a(2, "2001:db8:5::2", 128, false)
            ]
        );
    }

    #[test]
    fn a_bad_address_length_is_malformed() {
        let mut bytes = hex(V4_PLAIN);
        // IFA_ADDRESS length 8 -> 7: a 3-byte payload.
        bytes[24] = 7;
        let msg: Ifaddrmsg = decode_with_len(&bytes[16..]).expect("ifaddrmsg");
        assert!(parse_address(&msg).is_err());
    }

    #[test]
    fn loopback_addresses_are_listed() {
        let all = addresses().expect("address dump");
        assert!(
            all.iter()
                .any(|x| x.addr == IpAddr::from([127, 0, 0, 1]) && x.local && x.prefix_len == 8),
            "{all:?}"
        );
    }
}
