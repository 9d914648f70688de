//! `RTM_GETNSID`: the id ("netnsid") the calling thread's network namespace uses for another
//! one, as `IFLA_LINK_NETNSID` and `NDA_LINK_NETNSID` name namespaces. Like `ip netns list-id`
//! read from the other side: `nsid_of(fd of /run/netns/X)` is the nsid `ip netns list-id`
//! prints for X in the calling namespace.
//!
//! Attributes: include/uapi/linux/net_namespace.h. The message header is a `struct rtgenmsg`
//! (one byte) padded to 4: see `Netnsmsg`.

use std::io::Cursor;
use std::os::fd::{AsRawFd, BorrowedFd};

use neli::{
    FromBytes, FromBytesWithInput, Size, ToBytes,
    consts::{rtnl::RtaType, rtnl::Rtm, socket::NlFamily},
    err::DeError,
    rtnl::RtattrBuilder,
    types::{Buffer, RtBuffer},
};

use super::{Conn, NetlinkError, decode};

/// `NETNSA_*` (net_namespace.h).
#[neli::neli_enum(serialized_type = "u16")]
enum Netnsa {
    None = 0,
    Nsid = 1,
    Pid = 2,
    Fd = 3,
    TargetNsid = 4,
    CurrentNsid = 5,
}
impl RtaType for Netnsa {}

/// `NETNSA_NSID_NOT_ASSIGNED`.
const NSID_NOT_ASSIGNED: i32 = -1;

/// `struct rtgenmsg` and its attributes, as `RTM_GETNSID`/`RTM_NEWNSID` carry them: the kernel
/// reads the attributes at `NLMSG_ALIGN(sizeof(struct rtgenmsg))` = 4. neli's `Rtgenmsg` puts
/// them right after the family byte, at 1 (see `neli_rtgenmsg_is_not_padded`).
///
/// `FromBytesWithInput` is written by hand: neli's derive of it expands to calls of the `log`
/// crate, which this crate does not depend on.
#[derive(Debug, Clone, Size, ToBytes)]
struct Netnsmsg {
    family: u8,
    pad1: u8,
    pad2: u16,
    attrs: RtBuffer<Netnsa, Buffer>,
}

/// `sizeof(struct rtgenmsg)` aligned to `NLMSG_ALIGNTO`.
const NETNSMSG_HDRLEN: usize = 4;

impl FromBytesWithInput for Netnsmsg {
    type Input = usize;

    fn from_bytes_with_input(
        buffer: &mut Cursor<impl AsRef<[u8]>>,
        input: usize,
    ) -> Result<Self, DeError> {
        let family = u8::from_bytes(buffer)?;
        let pad1 = u8::from_bytes(buffer)?;
        let pad2 = u16::from_bytes(buffer)?;
        let attrs_len = input
            .checked_sub(NETNSMSG_HDRLEN)
            .ok_or(DeError::InvalidInput(input))?;
        let attrs = RtBuffer::from_bytes_with_input(buffer, attrs_len)?;
        Ok(Netnsmsg {
            family,
            pad1,
            pad2,
            attrs,
        })
    }
}

/// The nsid the calling thread's network namespace uses for the namespace `ns_fd` refers to
/// (an open `/run/netns/X` or `/proc/PID/ns/net`); `None` when it has not assigned one
/// (`NETNSA_NSID_NOT_ASSIGNED`). Assigning one (`ip netns set X auto`) is left to the caller.
pub fn nsid_of(ns_fd: BorrowedFd<'_>) -> Result<Option<i32>, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Route, "rtnetlink nsid of a namespace")?;
    let request = nsid_request(ns_fd.as_raw_fd()).map_err(|e| conn.build_error(e))?;
    let reply =
        conn.request::<_, _, Netnsmsg>(Rtm::Getnsid, neli::consts::nl::NlmF::empty(), request)?;
    let (_, msg) = reply
        .messages
        .iter()
        .find(|(t, _)| *t == Rtm::Newnsid)
        .ok_or_else(|| conn.malformed("no RTM_NEWNSID in the reply"))?;
    parse_nsid(msg).map_err(|e| conn.malformed(e))
}

fn nsid_request(fd: i32) -> Result<Netnsmsg, String> {
    let fd = u32::try_from(fd).map_err(|_| format!("descriptor {fd}"))?;
    let mut attrs = RtBuffer::new();
    attrs.push(
        RtattrBuilder::default()
            .rta_type(Netnsa::Fd)
            .rta_payload(fd)
            .build()
            .map_err(|e| format!("NETNSA_FD: {e}"))?,
    );
    Ok(Netnsmsg {
        family: libc::AF_UNSPEC as u8,
        pad1: 0,
        pad2: 0,
        attrs,
    })
}

fn parse_nsid(msg: &Netnsmsg) -> Result<Option<i32>, String> {
    let nsid = msg
        .attrs
        .iter()
        .find(|a| *a.rta_type() == Netnsa::Nsid)
        .and_then(|a| decode::<i32>(a.rta_payload().as_ref()))
        .ok_or("RTM_NEWNSID without NETNSA_NSID")?;
    Ok((nsid != NSID_NOT_ASSIGNED).then_some(nsid))
}

#[cfg(test)]
mod tests {
    use super::super::{decode_with_len, tests_support::hex};
    use super::*;

    /// Kernel 6.18's answers to `RTM_GETNSID` with `NETNSA_FD` (netlink header included): an
    /// assigned nsid 0, and `NETNSA_NSID_NOT_ASSIGNED`.
    const NSID_0: &str = "1c00000058000000090000003a1f0000000000000800010000000000";
    const NOT_ASSIGNED: &str = "1c0000005800000009000000ac1f00000000000008000100ffffffff";

    #[test]
    fn parses_kernel_nsid_replies() {
        let msg: Netnsmsg = decode_with_len(&hex(NSID_0)[16..]).expect("nsid reply");
        assert_eq!(parse_nsid(&msg), Ok(Some(0)));
        let msg: Netnsmsg = decode_with_len(&hex(NOT_ASSIGNED)[16..]).expect("nsid reply");
        assert_eq!(parse_nsid(&msg), Ok(None));
    }

    #[test]
    fn the_request_has_its_attribute_at_offset_4() {
        let mut bytes = Cursor::new(Vec::new());
        nsid_request(7)
            .expect("request")
            .to_bytes(&mut bytes)
            .expect("bytes");
        // rtgenmsg { AF_UNSPEC } + 3 bytes padding, NETNSA_FD (3) = 7.
        assert_eq!(bytes.get_ref(), &hex("000000000800030007000000"));
    }

    /// Why `Netnsmsg` exists: neli's `Rtgenmsg` serializes its attributes unaligned, right
    /// after the family byte, where the kernel does not look for them.
    #[test]
    fn neli_rtgenmsg_is_not_padded() {
        let msg = neli::rtnl::RtgenmsgBuilder::default()
            .rtgen_family(neli::consts::rtnl::RtAddrFamily::Unspecified)
            .rtattrs(
                [RtattrBuilder::default()
                    .rta_type(neli::consts::rtnl::Ifa::Local)
                    .rta_payload(7u32)
                    .build()
                    .expect("attr")]
                .into_iter()
                .collect(),
            )
            .build()
            .expect("rtgenmsg");
        let mut bytes = Cursor::new(Vec::new());
        msg.to_bytes(&mut bytes).expect("bytes");
        assert_eq!(
            &bytes.get_ref()[..3],
            &[0, 8, 0],
            "neli pads Rtgenmsg now? then Netnsmsg can go"
        );
    }

    #[test]
    fn own_namespace_is_asked_without_error() {
        let own = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
        use std::os::fd::AsFd;
        // Assigned or not, the kernel answers for the own namespace too.
        nsid_of(own.as_fd()).expect("nsid of the own namespace");
    }
}
