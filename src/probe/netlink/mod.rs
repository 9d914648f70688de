//! rtnetlink (links, routes, addresses, neighbours, nsids) and generic netlink (ethtool
//! features, wireguard peers), on neli's typed layer.
//!
//! - `link`: `RTM_GETLINK` dump ([`dump_links`]).
//! - `route`: `RTM_GETROUTE` lookups ([`route_get`], [`route_lookup`]) and the default-route
//!   dump ([`default_routes`]).
//! - `ethtool`: ethtool `FEATURES_GET` + `STRSET_GET` ([`features`]).
//! - `addr`: `RTM_GETADDR` dump ([`addresses`]).
//! - `neigh`: `RTM_GETNEIGH` dumps: ARP/NDP ([`neighbours`]) and a bridge FDB ([`bridge_fdb`]).
//! - `tunnel`: one link's tunnel endpoints ([`tunnel`]).
//! - `wireguard`: a wireguard device's peers ([`wireguard_endpoints`]).
//! - `nsid`: `RTM_GETNSID` ([`nsid_of`]): which nsid names a namespace here.
//! - `tc`: `RTM_GETTFILTER` dumps of a device's clsact hooks and their actions ([`tc_filters`]).
//! - `nftables`: nfnetlink `NFT_MSG_GETCHAIN`/`GETRULE` dumps: the rules that queue packets
//!   ([`queue_rules`]).
//!
//! - `error`: [`NetlinkError`], what a request asked and why it failed.
//!
//! This file holds what they share: `Conn`, one request/reply exchange
//! on a neli [`NlSocketHandle`] (sequence matching, `NLMSG_ERROR` with its extended ack,
//! `NLMSG_DONE`, `NLM_F_DUMP_INTR`, a receive timeout).
//!
//! **Network namespaces.** Every public function opens its own socket in the network namespace
//! of the *calling thread* and closes it before returning. To ask another namespace, a caller
//! runs the call on a thread that first did `setns(fd, CLONE_NEWNET)` (see
//! [`crate::probe::netns::in_netns`]); nothing here changes namespaces or keeps sockets across
//! calls.
//!
//! **Why `NlSocketHandle` and not `NlRouter`.** neli's router receives on a background thread
//! and hands replies over a channel without a timeout, so a missing reply would hang the
//! caller, and its `RouterError::Io` keeps only an `io::ErrorKind`, not the errno. The socket
//! handle gives the same typed parsing (`recv` yields `Nlmsghdr`s) with `SO_RCVTIMEO` and the
//! errno intact.

pub mod addr;
mod brvlan;
mod error;
mod ethtool;
mod link;
pub mod neigh;
mod nftables;
pub mod nsid;
mod route;
mod tc;
pub mod tunnel;
pub mod wireguard;

use std::{fmt::Debug, io, io::Cursor, os::fd::AsRawFd, time::Duration};

use neli::{
    FromBytesWithInput, Size, ToBytes,
    consts::{
        nl::{NlType, NlmF, Nlmsg},
        socket::NlFamily,
    },
    err::SocketError,
    nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder},
    socket::synchronous::NlSocketHandle,
    types::Buffer,
    utils::Groups,
};
use nix::errno::Errno;

pub use addr::{Address, addresses};
pub use brvlan::{PortVlans, bridge_vlans};
pub use error::NetlinkError;
use error::{kernel_error, socket_error};
pub use ethtool::{FeatureReader, features};
pub use link::{BondAttrs, Link, LinkStats, MACVLAN_MODE_BRIDGE, dump_links, link_stats};
pub use neigh::{FdbEntry, Neighbour, bridge_fdb, neighbours};
pub use nftables::{QueueRules, queue_rules};
pub use nsid::nsid_of;
pub use route::{DefaultRoute, RouteQuery, default_routes, route_get, route_lookup};
pub use tc::tc_filters;
pub use tunnel::{Tunnel, tunnel};
pub use wireguard::wireguard_endpoints;

/// How long one `recv` waits for the kernel before the request fails.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a dump is restarted when the kernel flags it `NLM_F_DUMP_INTR`.
const DUMP_ATTEMPTS: usize = 5;

// ---------------------------------------------------------------------------------------------
// Payload helpers

/// A NUL-terminated (or unterminated) attribute string. neli's `String` decoding assumes a
/// trailing NUL: it drops the last byte of an unterminated string and panics on an empty
/// payload (see `neli_string_decoding_is_not_safe_on_any_payload`).
fn attr_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A request serialized by neli, as a `Buffer` payload: for request types neli does not make
/// `Clone` (`Ndmsg`, `Rtgenmsg`), which [`Conn::dump`] needs to restart a dump.
fn to_buffer<T: ToBytes>(request: &T) -> Result<Buffer, String> {
    let mut bytes = Cursor::new(Vec::new());
    request
        .to_bytes(&mut bytes)
        .map_err(|e| format!("cannot serialize the request: {e}"))?;
    Ok(Buffer::from(bytes.into_inner()))
}

/// An IPv4 (4 bytes) or IPv6 (16 bytes) address attribute.
fn ip_from_bytes(b: &[u8]) -> Option<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match b.len() {
        4 => decode::<[u8; 4]>(b).map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        16 => decode::<[u8; 16]>(b).map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        _ => None,
    }
}

/// A typed value decoded from an attribute payload with neli (`u32`, `[u8; 4]`, …).
fn decode<T: neli::FromBytes>(payload: &[u8]) -> Option<T> {
    T::from_bytes(&mut Cursor::new(payload)).ok()
}

/// A typed value decoded from a whole buffer with neli (`Ifinfomsg`, `Vec<u32>`, …).
fn decode_with_len<T: FromBytesWithInput<Input = usize>>(
    payload: &[u8],
) -> Result<T, neli::err::DeError> {
    T::from_bytes_with_input(&mut Cursor::new(payload), payload.len())
}

// ---------------------------------------------------------------------------------------------
// Requests

/// One netlink socket, opened in the calling thread's network namespace, and the operation it
/// serves (for errors).
pub(super) struct Conn {
    sock: NlSocketHandle,
    seq: u32,
    op: String,
}

/// The messages answering one request.
#[derive(Debug)]
pub(super) struct Reply<T, P> {
    /// Each data message's type and typed payload, in order.
    pub messages: Vec<(T, P)>,
    /// A dump carried `NLM_F_DUMP_INTR`: the table changed under it.
    pub interrupted: bool,
}

/// What one received message means for the exchange.
#[derive(Debug)]
enum Incoming<T, P> {
    Data { nl_type: T, payload: P, multi: bool },
    End,
    Skip,
}

impl Conn {
    pub(super) fn open(family: NlFamily, op: impl Into<String>) -> Result<Conn, NetlinkError> {
        let op = op.into();
        let sock = NlSocketHandle::connect(family, None, Groups::empty())
            .map_err(|e| socket_error(&op, "cannot open netlink socket", e))?;
        // Best effort: extended acks only make error messages better.
        let _ = sock.enable_ext_ack(true);
        set_recv_timeout(&sock).map_err(|e| NetlinkError::Io {
            op: op.clone(),
            context: "cannot set the receive timeout",
            source: io::Error::from(e),
        })?;
        Ok(Conn { sock, seq: 0, op })
    }

    pub(super) fn malformed(&self, detail: impl Into<String>) -> NetlinkError {
        NetlinkError::Malformed {
            op: self.op.clone(),
            detail: detail.into(),
        }
    }

    pub(super) fn build_error(&self, detail: impl std::fmt::Display) -> NetlinkError {
        NetlinkError::Request {
            op: self.op.clone(),
            detail: detail.to_string(),
        }
    }

    /// Sends one request (`SP`) and collects its typed reply (`RP`): every message up to
    /// `NLMSG_DONE` for a dump, the single answer otherwise; `NLMSG_ERROR` becomes
    /// [`NetlinkError::Kernel`].
    ///
    /// neli receives into 32 KiB buffers: the most the kernel puts in one dump datagram
    /// (`netlink_recvmsg` caps its allocation there). A single larger message would fail to
    /// decode ([`NetlinkError::Malformed`]), never be misread.
    pub(super) fn request<T, SP, RP>(
        &mut self,
        nl_type: T,
        flags: NlmF,
        payload: SP,
    ) -> Result<Reply<T, RP>, NetlinkError>
    where
        T: NlType + Debug,
        SP: Size + ToBytes + Debug,
        RP: Size + FromBytesWithInput<Input = usize>,
    {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let dump = flags.contains(NlmF::DUMP);
        let msg = NlmsghdrBuilder::default()
            .nl_type(nl_type)
            .nl_flags(flags | NlmF::REQUEST)
            .nl_seq(seq)
            .nl_pid(0)
            .nl_payload(NlPayload::Payload(payload))
            .build()
            .map_err(|e| self.build_error(e))?;
        self.sock
            .send(&msg)
            .map_err(|e| socket_error(&self.op, "send", e))?;

        let mut reply = Reply {
            messages: Vec::new(),
            interrupted: false,
        };
        loop {
            let messages = match self.sock.recv::<u16, Buffer>() {
                Ok((messages, _groups)) => messages,
                Err(SocketError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(socket_error(&self.op, "recv", e)),
            };
            for msg in messages {
                let msg = msg.map_err(|e| socket_error(&self.op, "recv", e))?;
                // Not ours (a stale reply); nothing else is subscribed.
                if *msg.nl_seq() != seq {
                    continue;
                }
                if msg.nl_flags().contains(NlmF::DUMP_INTR) {
                    reply.interrupted = true;
                }
                match incoming::<T, RP>(&self.op, msg)? {
                    Incoming::Skip => {}
                    Incoming::End => return Ok(reply),
                    Incoming::Data {
                        nl_type,
                        payload,
                        multi,
                    } => {
                        reply.messages.push((nl_type, payload));
                        if !dump && !multi {
                            return Ok(reply);
                        }
                    }
                }
            }
        }
    }

    /// A dump (`NLM_F_DUMP`), restarted while the kernel flags it `NLM_F_DUMP_INTR`.
    /// `table` names what is dumped, for the error (`link table`, `routing table`).
    pub(super) fn dump<T, SP, RP>(
        &mut self,
        nl_type: T,
        request: SP,
        table: &'static str,
    ) -> Result<Vec<(T, RP)>, NetlinkError>
    where
        T: NlType + Debug,
        SP: Size + ToBytes + Debug + Clone,
        RP: Size + FromBytesWithInput<Input = usize>,
    {
        for _ in 0..DUMP_ATTEMPTS {
            let reply = self.request(nl_type, NlmF::DUMP, request.clone())?;
            if !reply.interrupted {
                return Ok(reply.messages);
            }
        }
        Err(NetlinkError::DumpInterrupted {
            op: self.op.clone(),
            table,
        })
    }
}

/// Classifies one message of our sequence and types its payload.
fn incoming<T, P>(op: &str, msg: Nlmsghdr<u16, Buffer>) -> Result<Incoming<T, P>, NetlinkError>
where
    T: NlType,
    P: Size + FromBytesWithInput<Input = usize>,
{
    let kind = Nlmsg::from(*msg.nl_type());
    match msg.nl_payload() {
        NlPayload::Err(e) => return Err(kernel_error(op, e)),
        NlPayload::DumpExtAck(e) if *e.error() < 0 => return Err(kernel_error(op, e)),
        NlPayload::Ack(_) | NlPayload::DumpExtAck(_) => return Ok(Incoming::End),
        _ => {}
    }
    match kind {
        Nlmsg::Done => Ok(Incoming::End),
        Nlmsg::Noop => Ok(Incoming::Skip),
        Nlmsg::Overrun => Err(NetlinkError::Malformed {
            op: op.to_string(),
            detail: "netlink overrun".to_string(),
        }),
        _ => match msg.nl_payload() {
            NlPayload::Payload(buffer) => {
                let payload =
                    decode_with_len::<P>(buffer.as_ref()).map_err(|e| NetlinkError::Malformed {
                        op: op.to_string(),
                        detail: format!("undecodable message of type {}: {e}", msg.nl_type()),
                    })?;
                Ok(Incoming::Data {
                    nl_type: T::from(*msg.nl_type()),
                    payload,
                    multi: msg.nl_flags().contains(NlmF::MULTI),
                })
            }
            _ => Ok(Incoming::Skip),
        },
    }
}

fn set_recv_timeout(sock: &NlSocketHandle) -> Result<(), Errno> {
    use nix::sys::{socket::setsockopt, socket::sockopt::ReceiveTimeout, time::TimeVal};
    // SAFETY: the descriptor belongs to `sock`, which outlives this borrow (used only for the
    // setsockopt call below); neli exposes it only as a raw fd.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(sock.as_raw_fd()) };
    let secs = libc::time_t::try_from(RECV_TIMEOUT.as_secs()).unwrap_or(libc::time_t::MAX);
    setsockopt(&fd, ReceiveTimeout, &TimeVal::new(secs, 0))
}

// ---------------------------------------------------------------------------------------------

/// Helpers for the tests of this module's files.
/// A netlink attribute of type `kind` around `payload`, padded to 4 bytes, as the kernel lays
/// it out: the parsers' unit tests build their payloads with it.
#[cfg(test)]
fn test_attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut out = Vec::new();
    out.extend((len as u16).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(payload);
    out.resize(len.next_multiple_of(4), 0);
    out
}

/// `NLA_TYPE_MASK` of `linux/netlink.h`: an attribute's type without the nested and
/// byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3FFF;

/// The attributes of a nested payload, each with its type (flags masked off); a truncated
/// attribute ends the walk.
fn nested(mut payload: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while payload.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([payload[0], payload[1]]));
        let kind = u16::from_ne_bytes([payload[2], payload[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > payload.len() {
            break;
        }
        out.push((kind, &payload[4..len]));
        payload = payload.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    out
}

/// The payload of the first attribute of type `kind`.
fn find<'a>(attrs: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, p)| *p)
}

#[cfg(test)]
mod tests_support {
    /// Bytes from a hex dump (as captured from the kernel).
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::error::ext_ack_message;
    use super::tests_support::hex;
    use super::*;
    use neli::genl::Genlmsghdr;

    /// `FEATURES_GET` for `nonexistent0`, as kernel 6.18 answered it (captured with a raw
    /// socket, `NETLINK_EXT_ACK` on): `NLMSG_ERROR` -ENODEV, the echoed request, and an
    /// extended ack with `NLMSGERR_ATTR_MSG` "no device matches name" and `NLMSGERR_ATTR_OFFS`.
    const ENODEV_REPLY: &str = "640000000200000207000000e7370000edffffff2c000000150001000700\
        0000000000000b01000018000180110002006e6f6e6578697374656e7430000000001b0001006e6f2064\
        6576696365206d617463686573206e616d6500000800020018000000";

    fn kernel_message(bytes: &[u8]) -> Nlmsghdr<u16, Buffer> {
        use neli::FromBytes;
        Nlmsghdr::<u16, Buffer>::from_bytes(&mut Cursor::new(bytes)).expect("one message")
    }

    #[test]
    fn kernel_error_keeps_errno_and_ext_ack() {
        let msg = kernel_message(&hex(ENODEV_REPLY));
        assert_eq!(*msg.nl_seq(), 7);
        let e = incoming::<u16, Genlmsghdr<u8, u16>>("ethtool features of nonexistent0", msg)
            .expect_err("an error reply");
        assert_eq!(e.errno(), Some(Errno::ENODEV));
        assert_eq!(
            e.to_string(),
            "ethtool features of nonexistent0: No such device (no device matches name)"
        );
        let os = e.to_os_error().expect("has an errno");
        assert_eq!(os.op, "ethtool features of nonexistent0");
        assert_eq!(os.errno, libc::ENODEV);
    }

    /// Why `kernel_error` reads the untyped message: neli's typed conversion loses the
    /// extended ack of real kernel input.
    #[test]
    fn neli_to_typed_drops_the_ext_ack() {
        let msg = kernel_message(&hex(ENODEV_REPLY));
        let NlPayload::Err(untyped) = msg.nl_payload() else {
            panic!("NLMSG_ERROR parses as an error");
        };
        assert_eq!(
            ext_ack_message(untyped.ext_ack()).as_deref(),
            Some("no device matches name")
        );
        let mut typed = msg
            .to_typed::<u16, Genlmsghdr<u8, u16>>()
            .expect("typed conversion");
        let typed = typed.get_err().expect("still an error");
        assert_eq!(*typed.error(), -libc::ENODEV);
        assert_eq!(
            ext_ack_message(typed.ext_ack()),
            None,
            "neli fixed to_typed?"
        );
    }

    /// Why strings are decoded by `attr_string`: neli's `String` assumes a trailing NUL.
    #[test]
    fn neli_string_decoding_is_not_safe_on_any_payload() {
        let unterminated = decode_with_len::<String>(b"eth0").expect("decodes");
        assert_eq!(unterminated, "eth", "neli drops the last byte");
        let empty = std::panic::catch_unwind(|| decode_with_len::<String>(b""));
        assert!(empty.is_err(), "neli panics on an empty string payload");
        assert_eq!(attr_string(b"eth0"), "eth0");
        assert_eq!(attr_string(b"eth0\0"), "eth0");
        assert_eq!(attr_string(b""), "");
    }

    #[test]
    fn error_texts_and_errnos() {
        let e = NetlinkError::DumpInterrupted {
            op: "rtnetlink link dump".to_string(),
            table: "link table",
        };
        assert_eq!(
            e.to_string(),
            "rtnetlink link dump: the link table kept changing during the dump"
        );
        assert_eq!(e.errno(), Some(Errno::EINTR));
        let e = NetlinkError::Malformed {
            op: "route get".to_string(),
            detail: "x".to_string(),
        };
        assert_eq!((e.errno(), e.to_os_error()), (None, None));
        let e = NetlinkError::Io {
            op: "route get".to_string(),
            context: "send",
            source: io::Error::from_raw_os_error(libc::ENOBUFS),
        };
        assert_eq!(e.errno(), Some(Errno::ENOBUFS));
        assert!(std::error::Error::source(&e).is_some());
        let e = NetlinkError::Timeout {
            op: "route get".to_string(),
        };
        assert_eq!(
            e.to_string(),
            "route get: no reply from the kernel within 5 s"
        );
    }

    #[test]
    fn done_ends_and_noop_is_skipped() {
        // NLMSG_DONE of a dump: NLM_F_MULTI, error code 0.
        let mut done = Vec::new();
        done.extend_from_slice(&20u32.to_ne_bytes());
        done.extend_from_slice(&3u16.to_ne_bytes());
        done.extend_from_slice(&(libc::NLM_F_MULTI as u16).to_ne_bytes());
        done.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        done.extend_from_slice(&0i32.to_ne_bytes());
        let r = incoming::<u16, Buffer>("t", kernel_message(&done)).expect("done");
        assert!(matches!(r, Incoming::End), "{r:?}");
        // A failed dump: NLMSG_DONE carrying -EINVAL.
        let len = done.len();
        done[len - 4..].copy_from_slice(&(-libc::EINVAL).to_ne_bytes());
        let e = incoming::<u16, Buffer>("t", kernel_message(&done)).expect_err("failed dump");
        assert_eq!(e.errno(), Some(Errno::EINVAL));
    }
}
