//! Bridge VLAN filtering: the VLANs each bridge port (and the bridge itself, `self`) carries,
//! like `bridge vlan show`, from an `AF_BRIDGE` link dump with `RTEXT_FILTER_BRVLAN`
//! (`rtnl_bridge_getlink` → `br_fill_ifinfo`: one `IFLA_BRIDGE_VLAN_INFO` per VLAN in the
//! `IFLA_AF_SPEC` nest). Layouts: include/uapi/linux/if_bridge.h.

use neli::{
    consts::{
        rtnl::{Arphrd, Iff, Ifla, RtAddrFamily, Rtm},
        socket::NlFamily,
    },
    rtnl::{Ifinfomsg, IfinfomsgBuilder, RtattrBuilder},
    types::RtBuffer,
};

use super::{Conn, NetlinkError};

/// The VLANs of one bridge port, or of a bridge's own (`self`) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortVlans {
    pub ifindex: u32,
    /// Every VLAN id the port carries.
    pub vids: Vec<u16>,
    /// The VLAN untagged frames entering (or, for the bridge itself, sent by the host) take.
    pub pvid: Option<u16>,
}

/// `IFLA_BRIDGE_VLAN_INFO` in the `IFLA_AF_SPEC` nest.
const IFLA_BRIDGE_VLAN_INFO: u16 = 2;
/// `BRIDGE_VLAN_INFO_PVID` in `struct bridge_vlan_info`'s flags.
const BRIDGE_VLAN_INFO_PVID: u16 = 1 << 1;

/// The VLANs of every bridge port and bridge of the calling thread's namespace.
pub fn bridge_vlans() -> Result<Vec<PortVlans>, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Route, "bridge vlan dump")?;
    let request = request().map_err(|e| conn.build_error(e))?;
    let messages = conn.dump::<_, _, Ifinfomsg>(Rtm::Getlink, request, "bridge vlans")?;
    Ok(messages
        .iter()
        .filter(|(t, _)| *t == Rtm::Newlink)
        .filter_map(|(_, msg)| {
            let ifindex = u32::try_from(*msg.ifi_index()).ok()?;
            let spec = msg
                .rtattrs()
                .iter()
                .find(|a| *a.rta_type() == Ifla::AfSpec)?;
            Some(parse_af_spec(ifindex, spec.rta_payload().as_ref()))
        })
        .filter(|p| !p.vids.is_empty())
        .collect())
}

fn request() -> Result<Ifinfomsg, String> {
    let mut attrs = RtBuffer::new();
    attrs.push(
        RtattrBuilder::default()
            .rta_type(Ifla::ExtMask)
            .rta_payload(libc::RTEXT_FILTER_BRVLAN as u32)
            .build()
            .map_err(|e| format!("IFLA_EXT_MASK: {e}"))?,
    );
    IfinfomsgBuilder::default()
        .ifi_family(RtAddrFamily::from(libc::AF_BRIDGE as u8))
        .ifi_type(Arphrd::from(0))
        .ifi_index(0)
        .ifi_flags(Iff::empty())
        .ifi_change(Iff::empty())
        .rtattrs(attrs)
        .build()
        .map_err(|e| format!("ifinfomsg: {e}"))
}

/// The `IFLA_BRIDGE_VLAN_INFO` entries (`struct bridge_vlan_info { __u16 flags; __u16 vid; }`,
/// native-endian) of an `IFLA_AF_SPEC` payload; other attributes are skipped.
fn parse_af_spec(ifindex: u32, mut payload: &[u8]) -> PortVlans {
    let mut port = PortVlans {
        ifindex,
        vids: Vec::new(),
        pvid: None,
    };
    while payload.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([payload[0], payload[1]]));
        let kind = u16::from_ne_bytes([payload[2], payload[3]]) & 0x3fff;
        if len < 4 || len > payload.len() {
            break;
        }
        if kind == IFLA_BRIDGE_VLAN_INFO && len >= 8 {
            let flags = u16::from_ne_bytes([payload[4], payload[5]]);
            let vid = u16::from_ne_bytes([payload[6], payload[7]]);
            port.vids.push(vid);
            if flags & BRIDGE_VLAN_INFO_PVID != 0 {
                port.pvid = Some(vid);
            }
        }
        payload = payload.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    port
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: u16, flags: u16, vid: u16) -> Vec<u8> {
        [8u16, kind, flags, vid]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect()
    }

    #[test]
    fn vlan_infos_and_the_pvid_are_read_and_other_attributes_skipped() {
        let mut payload = entry(IFLA_BRIDGE_VLAN_INFO, 0, 20);
        // IFLA_BRIDGE_FLAGS (0), 6 bytes padded to 8
        payload.extend([6u8, 0, 0, 0, 1, 0, 0, 0]);
        payload.extend(entry(IFLA_BRIDGE_VLAN_INFO, BRIDGE_VLAN_INFO_PVID | 4, 10));
        let port = parse_af_spec(7, &payload);
        assert_eq!(port.vids, [20, 10]);
        assert_eq!(port.pvid, Some(10));
        // A truncated attribute ends the walk without a panic.
        let port = parse_af_spec(7, &[8, 0, 2, 0, 1]);
        assert!(port.vids.is_empty());
    }
}
