//! rtnetlink link dump and route lookup, and ethtool FEATURES_GET over generic netlink (neli).
//!
//! Every public function opens its own netlink socket, so it answers for the network namespace
//! of the calling thread (a caller may `setns()` a thread and call in).
//!
//! neli builds the requests and parses the message payloads (`ifinfomsg`, `rtmsg`, `genlmsghdr`
//! and their attributes). The netlink message framing of replies (sequence numbers, `NLMSG_ERROR`,
//! `NLMSG_DONE`, multipart dumps) is walked here, so that a malformed or unexpected message
//! becomes an error and never a panic.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Debug,
    io::Cursor,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
};

use neli::{
    FromBytesWithInput, Size, ToBytes,
    consts::{
        nl::NlmF,
        rtnl::{Arphrd, Iff, Ifla, RtAddrFamily, RtScope, RtTable, Rta, Rtn, Rtprot},
        socket::{Msg, NlFamily},
    },
    genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, Nlattr, NlattrBuilder},
    nl::{NlPayload, NlmsghdrBuilder},
    rtnl::{Ifinfomsg, IfinfomsgBuilder, Rtattr, RtattrBuilder, Rtmsg, RtmsgBuilder},
    socket::NlSocket,
    types::{Buffer, GenlBuffer, RtBuffer},
    utils::Groups,
};

use crate::evidence::{FeatureState, Features, RouteInfo, RouteType};

// ---------------------------------------------------------------------------------------------
// Public API

/// A netlink request that failed: what was asked (`op`) and why it failed (`detail`).
#[derive(Debug)]
pub struct NetlinkError {
    pub op: String,
    pub detail: String,
}

impl std::fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.op, self.detail)
    }
}

impl std::error::Error for NetlinkError {}

impl NetlinkError {
    fn new(op: impl Into<String>, detail: impl Into<String>) -> Self {
        NetlinkError {
            op: op.into(),
            detail: detail.into(),
        }
    }
}

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
}

/// A default route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute {
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
    pub metric: u32,
}

/// Every link of the calling thread's network namespace (`RTM_GETLINK` dump).
pub fn dump_links() -> Result<Vec<Link>, NetlinkError> {
    const OP: &str = "rtnetlink link dump";
    let mut sock = Socket::open(NlFamily::Route, OP)?;
    let mut last = String::new();
    for _ in 0..DUMP_ATTEMPTS {
        let request = link_request(0, true).map_err(|e| NetlinkError::new(OP, e))?;
        let reply = sock
            .request(libc::RTM_GETLINK, NlmF::DUMP, request)
            .map_err(|e| NetlinkError::new(OP, e.to_string()))?;
        if reply.interrupted {
            last = "the link table kept changing during the dump".to_string();
            continue;
        }
        let mut links = Vec::new();
        for msg in reply.messages {
            if msg.nl_type != libc::RTM_NEWLINK {
                continue;
            }
            links.push(parse_link(&msg.payload).map_err(|e| NetlinkError::new(OP, e))?);
        }
        return Ok(links);
    }
    Err(NetlinkError::new(OP, last))
}

/// Offload features of `ifname` as `ethtool -k` shows them (ethtool netlink `FEATURES_GET`).
///
/// The map holds every feature the kernel knows (the `netdev-features` string set), with
/// `active`, `wanted` (requested) and `fixed` (not changeable, or in the no-change set).
pub fn features(ifname: &str) -> Result<Features, NetlinkError> {
    let op = format!("ethtool features of {ifname}");
    let mut sock = Socket::open(NlFamily::Generic, &op)?;
    let family =
        resolve_genl_family(&mut sock, ETHTOOL_GENL_NAME).map_err(|e| NetlinkError::new(&op, e))?;

    // FEATURES_GET first: a missing device is reported by it (ENODEV).
    let request = features_request(ifname).map_err(|e| NetlinkError::new(&op, e))?;
    let reply = sock
        .request(family, NlmF::empty(), request)
        .map_err(|e| match e {
            Fail::Errno { errno, .. } if errno == libc::ENODEV => NetlinkError::new(
                &op,
                format!("no device named {ifname:?} in this network namespace (ENODEV)"),
            ),
            e => NetlinkError::new(&op, e.to_string()),
        })?;
    let sets = parse_features_reply(&reply.messages).map_err(|e| NetlinkError::new(&op, e))?;

    // Every feature name the kernel knows, by bit index.
    let request = strset_request(ETH_SS_FEATURES).map_err(|e| NetlinkError::new(&op, e))?;
    let reply = sock
        .request(family, NlmF::empty(), request)
        .map_err(|e| NetlinkError::new(&op, format!("netdev-features strings: {e}")))?;
    let names = parse_strset_reply(&reply.messages, ETH_SS_FEATURES)
        .map_err(|e| NetlinkError::new(&op, format!("netdev-features strings: {e}")))?;

    Ok(combine_features(&names, &sets))
}

/// The route the kernel picks for `dst`, like `ip route get` (`RTM_GETROUTE`, not a dump).
pub fn route_get(dst: IpAddr) -> Result<RouteInfo, NetlinkError> {
    let op = "route get".to_string();
    let mut sock = Socket::open(NlFamily::Route, &op)?;
    let request = route_get_request(dst).map_err(|e| NetlinkError::new(&op, e))?;
    let reply = sock
        .request(libc::RTM_GETROUTE, NlmF::empty(), request)
        .map_err(|e| route_get_error(dst, e))?;
    let msg = reply
        .messages
        .iter()
        .find(|m| m.nl_type == libc::RTM_NEWROUTE)
        .ok_or_else(|| NetlinkError::new(&op, format!("{dst}: the kernel sent no route")))?;
    let route = parse_route(&msg.payload).map_err(|e| NetlinkError::new(&op, e))?;

    let device = match route.oif {
        Some(index) => link_name(&mut sock, index),
        None => None,
    };
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

/// `ENETUNREACH` and friends read as "no route to DST: Network is unreachable".
fn route_get_error(dst: IpAddr, e: Fail) -> NetlinkError {
    let detail = match e {
        Fail::Errno { errno, .. } => format!("no route to {dst}: {}", e.errno_text(errno)),
        e => format!("{dst}: {e}"),
    };
    NetlinkError::new("route get", detail)
}

/// Default routes (`dst_len` 0) of the main table, IPv4 or IPv6, lowest metric first.
///
/// Only `unicast` routes with an output device are listed; a multipath route gives one entry
/// per next hop.
pub fn default_routes(v6: bool) -> Result<Vec<DefaultRoute>, NetlinkError> {
    let op = format!("{} default routes", if v6 { "IPv6" } else { "IPv4" });
    let mut sock = Socket::open(NlFamily::Route, &op)?;
    let family = if v6 {
        RtAddrFamily::Inet6
    } else {
        RtAddrFamily::Inet
    };
    let mut last = String::new();
    for _ in 0..DUMP_ATTEMPTS {
        let request = route_dump_request(family).map_err(|e| NetlinkError::new(&op, e))?;
        let reply = sock
            .request(libc::RTM_GETROUTE, NlmF::DUMP, request)
            .map_err(|e| NetlinkError::new(&op, e.to_string()))?;
        if reply.interrupted {
            last = "the routing table kept changing during the dump".to_string();
            continue;
        }
        let mut routes = Vec::new();
        for msg in &reply.messages {
            if msg.nl_type != libc::RTM_NEWROUTE {
                continue;
            }
            let route = parse_route(&msg.payload).map_err(|e| NetlinkError::new(&op, e))?;
            if route.family != u8::from(family)
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
        return Ok(routes);
    }
    Err(NetlinkError::new(&op, last))
}

// ---------------------------------------------------------------------------------------------
// Constants not in neli or libc (include/uapi/linux/ethtool_netlink*.h, genetlink.h).

const DUMP_ATTEMPTS: usize = 5;
const RECV_TIMEOUT_SECS: libc::time_t = 5;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDRLEN: usize = 16;
const NLMSGERR_ATTR_MSG: u16 = 1;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const RTAX_MTU: u16 = 2;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const ETHTOOL_GENL_NAME: &str = "ethtool";
const ETHTOOL_GENL_VERSION: u8 = 1;
const ETHTOOL_MSG_STRSET_GET: u8 = 1;
const ETHTOOL_MSG_FEATURES_GET: u8 = 11;
const ETHTOOL_MSG_STRSET_GET_REPLY: u8 = 1;
const ETHTOOL_MSG_FEATURES_GET_REPLY: u8 = 11;

const ETHTOOL_A_HEADER_DEV_NAME: u16 = 2;

const ETHTOOL_A_BITSET_BIT_INDEX: u16 = 1;
const ETHTOOL_A_BITSET_BIT_NAME: u16 = 2;
const ETHTOOL_A_BITSET_BIT_VALUE: u16 = 3;
const ETHTOOL_A_BITSET_BITS_BIT: u16 = 1;
const ETHTOOL_A_BITSET_NOMASK: u16 = 1;
const ETHTOOL_A_BITSET_SIZE: u16 = 2;
const ETHTOOL_A_BITSET_BITS: u16 = 3;
const ETHTOOL_A_BITSET_VALUE: u16 = 4;
const ETHTOOL_A_BITSET_MASK: u16 = 5;

const ETHTOOL_A_STRING_INDEX: u16 = 1;
const ETHTOOL_A_STRING_VALUE: u16 = 2;
const ETHTOOL_A_STRINGS_STRING: u16 = 1;
const ETHTOOL_A_STRINGSET_ID: u16 = 1;
const ETHTOOL_A_STRINGSET_STRINGS: u16 = 3;
const ETHTOOL_A_STRINGSETS_STRINGSET: u16 = 1;
const ETHTOOL_A_STRSET_HEADER: u16 = 1;
const ETHTOOL_A_STRSET_STRINGSETS: u16 = 2;

const ETHTOOL_A_FEATURES_HEADER: u16 = 1;
const ETHTOOL_A_FEATURES_HW: u16 = 2;
const ETHTOOL_A_FEATURES_WANTED: u16 = 3;
const ETHTOOL_A_FEATURES_ACTIVE: u16 = 4;
const ETHTOOL_A_FEATURES_NOCHANGE: u16 = 5;

const ETH_SS_FEATURES: u32 = 4;

// ---------------------------------------------------------------------------------------------
// Socket and message framing

/// Why a request failed.
#[derive(Debug)]
enum Fail {
    /// The kernel answered with `NLMSG_ERROR` (or a failed `NLMSG_DONE`).
    Errno { errno: i32, ext_ack: Option<String> },
    /// Anything else: socket errors, malformed replies, timeouts.
    Other(String),
}

impl Fail {
    /// The errno description, with the kernel's extended ack message when it sent one.
    fn errno_text(&self, errno: i32) -> String {
        let desc = nix::errno::Errno::from_raw(errno).desc();
        match self {
            Fail::Errno {
                ext_ack: Some(msg), ..
            } => format!("{desc} ({msg})"),
            _ => desc.to_string(),
        }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Errno { errno, .. } => write!(f, "{}", self.errno_text(*errno)),
            Fail::Other(s) => write!(f, "{s}"),
        }
    }
}

/// One netlink message of a reply: its type, flags and payload (after the `nlmsghdr`).
#[derive(Debug)]
struct RawMsg {
    nl_type: u16,
    payload: Vec<u8>,
}

#[derive(Debug)]
struct Reply {
    messages: Vec<RawMsg>,
    /// A dump carried `NLM_F_DUMP_INTR`: the table changed under it, the caller should retry.
    interrupted: bool,
}

/// A netlink socket opened in the calling thread's network namespace.
struct Socket {
    sock: NlSocket,
    seq: u32,
}

impl Socket {
    fn open(family: NlFamily, op: &str) -> Result<Self, NetlinkError> {
        let sock = NlSocket::connect(family, None, Groups::empty())
            .map_err(|e| NetlinkError::new(op, format!("cannot open netlink socket: {e}")))?;
        // Best effort: extended acks only make error messages better.
        let _ = sock.enable_ext_ack(true);
        set_recv_timeout(&sock, RECV_TIMEOUT_SECS)
            .map_err(|e| NetlinkError::new(op, format!("cannot set socket timeout: {e}")))?;
        Ok(Socket { sock, seq: 0 })
    }

    /// Sends one request and collects its reply: every message up to `NLMSG_DONE` for a dump,
    /// the single answer (or error) otherwise.
    fn request<P>(&mut self, nl_type: u16, flags: NlmF, payload: P) -> Result<Reply, Fail>
    where
        P: Size + ToBytes + Debug,
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
            .map_err(|e| Fail::Other(format!("cannot build request: {e}")))?;
        let mut buf = Cursor::new(Vec::with_capacity(msg.padded_size()));
        msg.to_bytes(&mut buf)
            .map_err(|e| Fail::Other(format!("cannot serialize request: {e}")))?;
        self.sock
            .send(buf.get_ref(), Msg::empty())
            .map_err(|e| Fail::Other(format!("send: {e}")))?;

        let mut reply = Reply {
            messages: Vec::new(),
            interrupted: false,
        };
        loop {
            let datagram = self.recv_datagram()?;
            for frame in Frames::new(&datagram) {
                let frame = frame.map_err(Fail::Other)?;
                if frame.seq != seq {
                    continue; // not ours (a stale reply); nothing else is subscribed
                }
                if frame.flags & libc::NLM_F_DUMP_INTR as u16 != 0 {
                    reply.interrupted = true;
                }
                match i32::from(frame.nl_type) {
                    libc::NLMSG_NOOP => {}
                    libc::NLMSG_ERROR => {
                        let errno = read_i32(frame.payload).ok_or_else(|| {
                            Fail::Other("truncated NLMSG_ERROR from the kernel".to_string())
                        })?;
                        if errno == 0 {
                            return Ok(reply); // an ACK ends the exchange
                        }
                        return Err(Fail::Errno {
                            errno: -errno,
                            ext_ack: ext_ack_message(frame.flags, frame.payload),
                        });
                    }
                    libc::NLMSG_DONE => {
                        if let Some(errno) = read_i32(frame.payload)
                            && errno < 0
                        {
                            return Err(Fail::Errno {
                                errno: -errno,
                                ext_ack: None,
                            });
                        }
                        return Ok(reply);
                    }
                    libc::NLMSG_OVERRUN => {
                        return Err(Fail::Other("netlink overrun".to_string()));
                    }
                    _ => {
                        let multi = frame.flags & libc::NLM_F_MULTI as u16 != 0;
                        reply.messages.push(RawMsg {
                            nl_type: frame.nl_type,
                            payload: frame.payload.to_vec(),
                        });
                        if !dump && !multi {
                            return Ok(reply);
                        }
                    }
                }
            }
        }
    }

    /// Receives one whole datagram, sized with `MSG_PEEK | MSG_TRUNC` so nothing is cut.
    fn recv_datagram(&self) -> Result<Vec<u8>, Fail> {
        loop {
            let mut probe = [0u8; 0];
            let size = match self.sock.recv(&mut probe[..], Msg::PEEK | Msg::TRUNC) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(recv_fail(e)),
            };
            let mut buf = vec![0u8; size.max(NLMSG_HDRLEN)];
            match self.sock.recv(&mut buf[..], Msg::empty()) {
                Ok((n, _)) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(recv_fail(e)),
            }
        }
    }
}

fn recv_fail(e: std::io::Error) -> Fail {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Fail::Other(format!(
            "no reply from the kernel within {RECV_TIMEOUT_SECS} s"
        )),
        _ => Fail::Other(format!("recv: {e}")),
    }
}

fn set_recv_timeout(sock: &NlSocket, secs: libc::time_t) -> std::io::Result<()> {
    let tv = libc::timeval {
        tv_sec: secs,
        tv_usec: 0,
    };
    // SAFETY: the fd is the live socket owned by `sock`; `tv` outlives the call and its size
    // is passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One `nlmsghdr` and its payload inside a datagram.
struct Frame<'a> {
    nl_type: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

/// Walks the messages of one datagram.
struct Frames<'a> {
    data: &'a [u8],
    done: bool,
}

impl<'a> Frames<'a> {
    fn new(data: &'a [u8]) -> Self {
        Frames { data, done: false }
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        const HDR: usize = NLMSG_HDRLEN;
        if self.done || self.data.is_empty() {
            return None;
        }
        let fail = |s: &mut Self, msg: String| {
            s.done = true;
            Some(Err(msg))
        };
        if self.data.len() < HDR {
            return fail(
                self,
                format!("truncated netlink header ({} bytes)", self.data.len()),
            );
        }
        let len = read_u32(&self.data[0..4]).unwrap_or(0) as usize;
        if len < HDR || len > self.data.len() {
            return fail(
                self,
                format!(
                    "bad netlink message length {len} ({} bytes left)",
                    self.data.len()
                ),
            );
        }
        let frame = Frame {
            nl_type: read_u16(&self.data[4..6]).unwrap_or(0),
            flags: read_u16(&self.data[6..8]).unwrap_or(0),
            seq: read_u32(&self.data[8..12]).unwrap_or(0),
            payload: &self.data[HDR..len],
        };
        let advance = align4(len).min(self.data.len());
        self.data = &self.data[advance..];
        Some(Ok(frame))
    }
}

/// The `NLMSGERR_ATTR_MSG` string of an extended ack, when present.
fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    const HDR: usize = NLMSG_HDRLEN;
    if flags & libc::NLM_F_ACK_TLVS as u16 == 0 {
        return None;
    }
    // error code, then the request's header (capped) or the whole request.
    let echoed = payload.get(4..)?;
    let skip = if flags & libc::NLM_F_CAPPED as u16 != 0 {
        HDR
    } else {
        align4(read_u32(echoed.get(0..4)?)? as usize)
    };
    let mut tlvs = echoed.get(skip..)?;
    while tlvs.len() >= 4 {
        let len = read_u16(&tlvs[0..2])? as usize;
        let ty = read_u16(&tlvs[2..4])? & NLA_TYPE_MASK;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if ty == NLMSGERR_ATTR_MSG {
            let msg = c_string(&tlvs[4..len]);
            return (!msg.is_empty()).then_some(msg);
        }
        tlvs = tlvs.get(align4(len)..).unwrap_or(&[]);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Byte helpers

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn read_u16(b: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?))
}

fn read_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(0..4)?.try_into().ok()?))
}

fn read_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(0..4)?.try_into().ok()?))
}

/// A NUL-terminated (or unterminated) attribute string.
fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

/// `RTA_VIA`: `struct rtvia { __kernel_sa_family_t family; __u8 addr[]; }`.
fn ip_from_via(b: &[u8]) -> Option<IpAddr> {
    let family = i32::from(read_u16(b)?);
    let addr = b.get(2..)?;
    match family {
        libc::AF_INET => ip_from_bytes(addr.get(..4)?),
        libc::AF_INET6 => ip_from_bytes(addr.get(..16)?),
        _ => None,
    }
}

fn rta_kind<T: Into<u16> + Copy>(t: &T) -> u16 {
    (*t).into() & NLA_TYPE_MASK
}

// ---------------------------------------------------------------------------------------------
// rtnetlink: links

fn link_request(ifindex: i32, dump: bool) -> Result<Ifinfomsg, String> {
    let mut attrs = RtBuffer::new();
    if dump {
        attrs.push(
            RtattrBuilder::default()
                .rta_type(Ifla::ExtMask)
                .rta_payload(RTEXT_FILTER_SKIP_STATS)
                .build()
                .map_err(|e| format!("cannot build IFLA_EXT_MASK: {e}"))?,
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
        .map_err(|e| format!("cannot build ifinfomsg: {e}"))
}

fn parse_link(payload: &[u8]) -> Result<Link, String> {
    let msg = Ifinfomsg::from_bytes_with_input(&mut Cursor::new(payload), payload.len())
        .map_err(|e| format!("malformed RTM_NEWLINK: {e}"))?;
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
    };
    for attr in msg.rtattrs().get_attr_handle().iter() {
        let data = attr.rta_payload().as_ref();
        match rta_kind(attr.rta_type()) {
            t if t == libc::IFLA_IFNAME => link.name = c_string(data),
            t if t == libc::IFLA_MTU => link.mtu = read_u32(data).unwrap_or(0),
            t if t == libc::IFLA_OPERSTATE => {
                if let Some(&state) = data.first() {
                    link.oper_state = oper_state_name(state);
                }
            }
            t if t == libc::IFLA_MASTER => link.master = read_u32(data).filter(|&i| i != 0),
            t if t == libc::IFLA_LINK => link.link = read_u32(data).filter(|&i| i != 0),
            t if t == libc::IFLA_LINK_NETNSID => link.link_netnsid = read_i32(data),
            t if t == libc::IFLA_LINKINFO => link.link_kind = link_kind(attr),
            _ => {}
        }
    }
    if link.name.is_empty() {
        return Err(format!("RTM_NEWLINK for ifindex {ifindex} without a name"));
    }
    Ok(link)
}

fn link_kind(linkinfo: &Rtattr<Ifla, Buffer>) -> Option<String> {
    let nested = linkinfo.get_attr_handle::<u16>().ok()?;
    nested
        .iter()
        .find(|a| rta_kind(a.rta_type()) == libc::IFLA_INFO_KIND)
        .map(|a| c_string(a.rta_payload().as_ref()))
        .filter(|k| !k.is_empty())
}

/// `IF_OPER_*` (include/uapi/linux/if.h) as `ip link` prints it, lowercased.
fn oper_state_name(state: u8) -> String {
    match state {
        0 => "unknown",
        1 => "notpresent",
        2 => "down",
        3 => "lowerlayerdown",
        4 => "testing",
        5 => "dormant",
        6 => "up",
        other => return format!("state-{other}"),
    }
    .to_string()
}

/// The name of `ifindex`, asked on the same (namespace-bound) socket.
fn link_name(sock: &mut Socket, ifindex: u32) -> Option<String> {
    let index = i32::try_from(ifindex).ok()?;
    let request = link_request(index, false).ok()?;
    let reply = sock
        .request(libc::RTM_GETLINK, NlmF::empty(), request)
        .ok()?;
    let msg = reply
        .messages
        .iter()
        .find(|m| m.nl_type == libc::RTM_NEWLINK)?;
    parse_link(&msg.payload).ok().map(|l| l.name)
}

// ---------------------------------------------------------------------------------------------
// rtnetlink: routes

#[derive(Debug, Default)]
struct NextHop {
    oif: Option<u32>,
    gateway: Option<IpAddr>,
}

#[derive(Debug)]
struct Route {
    family: u8,
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

fn route_get_request(dst: IpAddr) -> Result<Rtmsg, String> {
    let (family, len, bytes): (RtAddrFamily, u8, Vec<u8>) = match dst {
        IpAddr::V4(a) => (RtAddrFamily::Inet, 32, a.octets().to_vec()),
        IpAddr::V6(a) => (RtAddrFamily::Inet6, 128, a.octets().to_vec()),
    };
    let dst_attr = RtattrBuilder::default()
        .rta_type(Rta::Dst)
        .rta_payload(bytes.as_slice())
        .build()
        .map_err(|e| format!("cannot build RTA_DST: {e}"))?;
    rtmsg(family, len, std::iter::once(dst_attr).collect())
}

fn route_dump_request(family: RtAddrFamily) -> Result<Rtmsg, String> {
    rtmsg(family, 0, RtBuffer::new())
}

fn rtmsg(family: RtAddrFamily, dst_len: u8, attrs: RtBuffer<Rta, Buffer>) -> Result<Rtmsg, String> {
    RtmsgBuilder::default()
        .rtm_family(family)
        .rtm_dst_len(dst_len)
        .rtm_src_len(0)
        .rtm_tos(0)
        .rtm_table(RtTable::Unspec)
        .rtm_protocol(Rtprot::Unspec)
        .rtm_scope(RtScope::Universe)
        .rtm_type(Rtn::Unspec)
        .rtattrs(attrs)
        .build()
        .map_err(|e| format!("cannot build rtmsg: {e}"))
}

fn parse_route(payload: &[u8]) -> Result<Route, String> {
    let msg = Rtmsg::from_bytes_with_input(&mut Cursor::new(payload), payload.len())
        .map_err(|e| format!("malformed RTM_NEWROUTE: {e}"))?;
    let mut route = Route {
        family: u8::from(*msg.rtm_family()),
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
    let mut multipath = None;
    for attr in msg.rtattrs().get_attr_handle().iter() {
        let data = attr.rta_payload().as_ref();
        match rta_kind(attr.rta_type()) {
            t if t == libc::RTA_OIF => route.oif = read_u32(data).filter(|&i| i != 0),
            t if t == libc::RTA_GATEWAY => gateway = ip_from_bytes(data),
            t if t == libc::RTA_VIA => gateway = ip_from_via(data),
            t if t == libc::RTA_PREFSRC => route.prefsrc = ip_from_bytes(data),
            t if t == libc::RTA_PRIORITY => route.priority = read_u32(data).unwrap_or(0),
            t if t == libc::RTA_TABLE => {
                if let Some(table) = read_u32(data) {
                    route.table = table;
                }
            }
            t if t == libc::RTA_METRICS => route.mtu = metrics_mtu(data),
            t if t == libc::RTA_MULTIPATH => multipath = Some(parse_multipath(data)),
            _ => {}
        }
    }
    route.nexthops = match multipath {
        Some(hops) if !hops.is_empty() => hops,
        _ => vec![NextHop {
            oif: route.oif,
            gateway,
        }],
    };
    Ok(route)
}

/// `RTAX_MTU` inside `RTA_METRICS` (a nest of u32 attributes).
fn metrics_mtu(data: &[u8]) -> Option<u32> {
    let attrs =
        RtBuffer::<u16, Buffer>::from_bytes_with_input(&mut Cursor::new(data), data.len()).ok()?;
    attrs
        .get_attr_handle()
        .iter()
        .find(|a| rta_kind(a.rta_type()) == RTAX_MTU)
        .and_then(|a| read_u32(a.rta_payload().as_ref()))
        .filter(|&m| m != 0)
}

/// `RTA_MULTIPATH`: `struct rtnexthop { u16 len; u8 flags; u8 hops; i32 ifindex; }` + attrs.
fn parse_multipath(mut data: &[u8]) -> Vec<NextHop> {
    const RTNH_LEN: usize = 8;
    let mut hops = Vec::new();
    while data.len() >= RTNH_LEN {
        let len = read_u16(data).unwrap_or(0) as usize;
        if len < RTNH_LEN || len > data.len() {
            break;
        }
        let mut hop = NextHop {
            oif: read_u32(&data[4..8]).filter(|&i| i != 0),
            gateway: None,
        };
        let attrs = &data[RTNH_LEN..len];
        if let Ok(attrs) =
            RtBuffer::<u16, Buffer>::from_bytes_with_input(&mut Cursor::new(attrs), attrs.len())
        {
            for a in attrs.get_attr_handle().iter() {
                let kind = rta_kind(a.rta_type());
                if kind == libc::RTA_GATEWAY {
                    hop.gateway = ip_from_bytes(a.rta_payload().as_ref());
                } else if kind == libc::RTA_VIA {
                    hop.gateway = ip_from_via(a.rta_payload().as_ref());
                }
            }
        }
        hops.push(hop);
        data = data.get(align4(len)..).unwrap_or(&[]);
    }
    hops
}

// ---------------------------------------------------------------------------------------------
// Generic netlink: family lookup and ethtool

type GenlMsg = Genlmsghdr<u8, u16>;

fn genl_attr<P: Size + ToBytes>(kind: u16, payload: P) -> Result<Nlattr<u16, Buffer>, String> {
    genl_attr_typed(kind, false, payload)
}

fn genl_attr_typed<P: Size + ToBytes>(
    kind: u16,
    nested: bool,
    payload: P,
) -> Result<Nlattr<u16, Buffer>, String> {
    NlattrBuilder::default()
        .nla_type(
            AttrTypeBuilder::default()
                .nla_type(kind)
                .nla_nested(nested)
                .build()
                .map_err(|e| format!("cannot build attribute type {kind}: {e}"))?,
        )
        .nla_payload(payload)
        .build()
        .map_err(|e| format!("cannot build attribute {kind}: {e}"))
}

/// A nest attribute marked `NLA_F_NESTED`, even when empty (ethtool validates strictly).
fn genl_nest(kind: u16, children: &[Nlattr<u16, Buffer>]) -> Result<Nlattr<u16, Buffer>, String> {
    let mut nest = genl_attr_typed(kind, true, Buffer::new())?;
    for child in children {
        nest = nest
            .nest(child)
            .map_err(|e| format!("cannot nest attribute in {kind}: {e}"))?;
    }
    Ok(nest)
}

fn genl_msg(cmd: u8, version: u8, attrs: Vec<Nlattr<u16, Buffer>>) -> Result<GenlMsg, String> {
    GenlmsghdrBuilder::default()
        .cmd(cmd)
        .version(version)
        .attrs(attrs.into_iter().collect::<GenlBuffer<u16, Buffer>>())
        .build()
        .map_err(|e| format!("cannot build genl message: {e}"))
}

fn parse_genl(msg: &RawMsg) -> Result<GenlMsg, String> {
    GenlMsg::from_bytes_with_input(&mut Cursor::new(&msg.payload), msg.payload.len())
        .map_err(|e| format!("malformed generic netlink reply: {e}"))
}

fn resolve_genl_family(sock: &mut Socket, name: &str) -> Result<u16, String> {
    let request = genl_msg(
        CTRL_CMD_GETFAMILY,
        2,
        vec![genl_attr(CTRL_ATTR_FAMILY_NAME, name)?],
    )?;
    let reply = sock
        .request(GENL_ID_CTRL, NlmF::empty(), request)
        .map_err(|e| match e {
            Fail::Errno { errno, .. } if errno == libc::ENOENT => format!(
                "generic netlink family {name:?} not found (kernel without ethtool netlink?)"
            ),
            e => format!("cannot resolve generic netlink family {name:?}: {e}"),
        })?;
    for msg in &reply.messages {
        let genl = parse_genl(msg)?;
        for attr in genl.attrs().iter() {
            if *attr.nla_type().nla_type() == CTRL_ATTR_FAMILY_ID
                && let Some(id) = read_u16(attr.nla_payload().as_ref())
            {
                return Ok(id);
            }
        }
    }
    Err(format!(
        "generic netlink family {name:?}: reply without an id"
    ))
}

fn features_request(ifname: &str) -> Result<GenlMsg, String> {
    let header = genl_nest(
        ETHTOOL_A_FEATURES_HEADER,
        &[genl_attr(ETHTOOL_A_HEADER_DEV_NAME, ifname)?],
    )?;
    genl_msg(ETHTOOL_MSG_FEATURES_GET, ETHTOOL_GENL_VERSION, vec![header])
}

fn strset_request(set: u32) -> Result<GenlMsg, String> {
    let header = genl_nest(ETHTOOL_A_STRSET_HEADER, &[])?;
    let stringset = genl_nest(
        ETHTOOL_A_STRINGSETS_STRINGSET,
        &[genl_attr(ETHTOOL_A_STRINGSET_ID, set)?],
    )?;
    let stringsets = genl_nest(ETHTOOL_A_STRSET_STRINGSETS, &[stringset])?;
    genl_msg(
        ETHTOOL_MSG_STRSET_GET,
        ETHTOOL_GENL_VERSION,
        vec![header, stringsets],
    )
}

fn nested(attr: &Nlattr<u16, Buffer>) -> Result<GenlBuffer<u16, Buffer>, String> {
    let data = attr.nla_payload().as_ref();
    GenlBuffer::<u16, Buffer>::from_bytes_with_input(&mut Cursor::new(data), data.len()).map_err(
        |e| {
            format!(
                "malformed nested attribute {}: {e}",
                attr.nla_type().nla_type()
            )
        },
    )
}

/// A decoded ethtool bitset: which bits are set, and the names the kernel gave them.
#[derive(Debug, Default, Clone, PartialEq)]
struct Bitset {
    set: BTreeSet<u32>,
    names: BTreeMap<u32, String>,
}

/// Decodes an ethtool bitset nest (`ETHTOOL_A_BITSET_*`) in either form:
/// - compact: `VALUE` (and `MASK`) u32 arrays;
/// - verbose: a `BITS` list of `BIT` nests with `INDEX`, `NAME` and, unless `NOMASK` is set, a
///   `VALUE` flag; with `NOMASK` only set bits are listed and each listed bit is set.
fn parse_bitset(attr: &Nlattr<u16, Buffer>) -> Result<Bitset, String> {
    let mut nomask = false;
    let mut size = None;
    let mut bits = None;
    let mut value = None;
    let fields = nested(attr)?;
    for a in fields.iter() {
        match *a.nla_type().nla_type() {
            ETHTOOL_A_BITSET_NOMASK => nomask = true,
            ETHTOOL_A_BITSET_SIZE => size = read_u32(a.nla_payload().as_ref()),
            ETHTOOL_A_BITSET_BITS => bits = Some(a),
            ETHTOOL_A_BITSET_VALUE => value = Some(a.nla_payload().as_ref().to_vec()),
            ETHTOOL_A_BITSET_MASK => {} // only which bits `VALUE` speaks for; all do here
            _ => {}
        }
    }
    let mut out = Bitset::default();
    if let Some(words) = value {
        let nbits = size.unwrap_or((words.len() * 8) as u32);
        for (w, chunk) in words.chunks_exact(4).enumerate() {
            let word = read_u32(chunk).unwrap_or(0);
            for b in 0..32u32 {
                let index = w as u32 * 32 + b;
                if index < nbits && word & (1 << b) != 0 {
                    out.set.insert(index);
                }
            }
        }
    } else if let Some(bits) = bits {
        for bit in nested(bits)?.iter() {
            if *bit.nla_type().nla_type() != ETHTOOL_A_BITSET_BITS_BIT {
                continue;
            }
            let mut index = None;
            let mut name = None;
            let mut on = nomask;
            for f in nested(bit)?.iter() {
                let data = f.nla_payload().as_ref();
                match *f.nla_type().nla_type() {
                    ETHTOOL_A_BITSET_BIT_INDEX => index = read_u32(data),
                    ETHTOOL_A_BITSET_BIT_NAME => name = Some(c_string(data)),
                    ETHTOOL_A_BITSET_BIT_VALUE => on = true,
                    _ => {}
                }
            }
            let index = index.ok_or("bitset bit without an index")?;
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                out.names.insert(index, name);
            }
            if on {
                out.set.insert(index);
            }
        }
    } else if size.is_some_and(|s| s > 0) && !nomask {
        return Err("bitset with neither bits nor value".to_string());
    }
    Ok(out)
}

/// The four bitsets of a `FEATURES_GET` reply.
#[derive(Debug, Default)]
struct FeatureSets {
    hw: Bitset,
    wanted: Bitset,
    active: Bitset,
    nochange: Bitset,
}

fn parse_features_reply(messages: &[RawMsg]) -> Result<FeatureSets, String> {
    for msg in messages {
        let genl = parse_genl(msg)?;
        if *genl.cmd() != ETHTOOL_MSG_FEATURES_GET_REPLY {
            continue;
        }
        let mut sets = FeatureSets::default();
        let mut seen = 0;
        for attr in genl.attrs().iter() {
            let slot = match *attr.nla_type().nla_type() {
                ETHTOOL_A_FEATURES_HW => &mut sets.hw,
                ETHTOOL_A_FEATURES_WANTED => &mut sets.wanted,
                ETHTOOL_A_FEATURES_ACTIVE => &mut sets.active,
                ETHTOOL_A_FEATURES_NOCHANGE => &mut sets.nochange,
                _ => continue,
            };
            *slot = parse_bitset(attr)?;
            seen += 1;
        }
        if seen < 4 {
            return Err(format!("FEATURES_GET reply with {seen} of 4 bitsets"));
        }
        return Ok(sets);
    }
    Err("no FEATURES_GET reply".to_string())
}

/// Index → name of string set `set` from a `STRSET_GET` reply.
fn parse_strset_reply(messages: &[RawMsg], set: u32) -> Result<BTreeMap<u32, String>, String> {
    for msg in messages {
        let genl = parse_genl(msg)?;
        if *genl.cmd() != ETHTOOL_MSG_STRSET_GET_REPLY {
            continue;
        }
        for sets in genl.attrs().iter() {
            if *sets.nla_type().nla_type() != ETHTOOL_A_STRSET_STRINGSETS {
                continue;
            }
            for stringset in nested(sets)?.iter() {
                if *stringset.nla_type().nla_type() != ETHTOOL_A_STRINGSETS_STRINGSET {
                    continue;
                }
                let fields = nested(stringset)?;
                let id = fields
                    .iter()
                    .find(|f| *f.nla_type().nla_type() == ETHTOOL_A_STRINGSET_ID)
                    .and_then(|f| read_u32(f.nla_payload().as_ref()));
                if id != Some(set) {
                    continue;
                }
                let mut names = BTreeMap::new();
                for strings in fields.iter() {
                    if *strings.nla_type().nla_type() != ETHTOOL_A_STRINGSET_STRINGS {
                        continue;
                    }
                    for string in nested(strings)?.iter() {
                        if *string.nla_type().nla_type() != ETHTOOL_A_STRINGS_STRING {
                            continue;
                        }
                        let mut index = None;
                        let mut value = None;
                        for f in nested(string)?.iter() {
                            let data = f.nla_payload().as_ref();
                            match *f.nla_type().nla_type() {
                                ETHTOOL_A_STRING_INDEX => index = read_u32(data),
                                ETHTOOL_A_STRING_VALUE => value = Some(c_string(data)),
                                _ => {}
                            }
                        }
                        if let (Some(index), Some(value)) = (index, value) {
                            names.insert(index, value);
                        }
                    }
                }
                return Ok(names);
            }
        }
    }
    Err(format!("no string set {set} in the STRSET_GET reply"))
}

/// Builds the feature map as `ethtool -k` reads it: `[fixed]` when not in `hw` (changeable) or
/// in `nochange`. Every named bit of the string set or of the bitsets gets an entry.
fn combine_features(strings: &BTreeMap<u32, String>, sets: &FeatureSets) -> Features {
    let mut names: BTreeMap<u32, &str> = strings.iter().map(|(i, n)| (*i, n.as_str())).collect();
    for set in [&sets.hw, &sets.wanted, &sets.active, &sets.nochange] {
        for (index, name) in &set.names {
            names.entry(*index).or_insert(name.as_str());
        }
    }
    let mut map = BTreeMap::new();
    for (index, name) in names {
        if name.is_empty() {
            continue;
        }
        map.insert(
            name.to_string(),
            FeatureState {
                active: sets.active.set.contains(&index),
                wanted: sets.wanted.set.contains(&index),
                fixed: !sets.hw.set.contains(&index) || sets.nochange.set.contains(&index),
            },
        );
    }
    Features(map)
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn loopback_features() {
        let f = features("lo").expect("features of lo");
        // lo has no changeable features (hw_features is empty), so `wanted` is all off.
        let sg = f.get("tx-scatter-gather").expect("tx-scatter-gather known");
        assert!(sg.active && sg.fixed);
        assert!(f.is_active("tx-checksum-ip-generic"));
        // Known to the kernel but off and fixed on lo.
        let fcoe = f.get("tx-checksum-fcoe-crc").expect("fcoe crc known");
        assert_eq!(
            *fcoe,
            FeatureState {
                active: false,
                wanted: false,
                fixed: true
            }
        );
        assert!(f.0.len() > 40, "only {} features", f.0.len());
    }

    #[test]
    fn missing_device_error_names_it() {
        let e = features("nonexistent0").expect_err("no such device");
        assert!(e.to_string().contains("nonexistent0"), "{e}");
    }

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

    fn attr(kind: u16, payload: impl Size + ToBytes) -> Nlattr<u16, Buffer> {
        genl_attr(kind, payload).expect("attr")
    }

    fn bit(index: u32, name: &str, value: bool) -> Nlattr<u16, Buffer> {
        let mut fields = vec![
            attr(ETHTOOL_A_BITSET_BIT_INDEX, index),
            attr(ETHTOOL_A_BITSET_BIT_NAME, name),
        ];
        if value {
            fields.push(attr(ETHTOOL_A_BITSET_BIT_VALUE, Buffer::new()));
        }
        genl_nest(ETHTOOL_A_BITSET_BITS_BIT, &fields).expect("bit")
    }

    /// Serializes and re-parses, as the kernel's bytes would arrive.
    fn roundtrip(a: Nlattr<u16, Buffer>) -> Nlattr<u16, Buffer> {
        let mut buf = Cursor::new(Vec::new());
        a.to_bytes(&mut buf).expect("serialize");
        let bytes = buf.into_inner();
        let parsed =
            GenlBuffer::<u16, Buffer>::from_bytes_with_input(&mut Cursor::new(&bytes), bytes.len())
                .expect("parse");
        parsed.iter().next().cloned().expect("one attr")
    }

    #[test]
    fn bitset_forms() {
        // NOMASK list: listed bits are set.
        let nomask = genl_nest(
            ETHTOOL_A_FEATURES_ACTIVE,
            &[
                attr(ETHTOOL_A_BITSET_NOMASK, Buffer::new()),
                attr(ETHTOOL_A_BITSET_SIZE, 70u32),
                genl_nest(
                    ETHTOOL_A_BITSET_BITS,
                    &[bit(0, "tx-scatter-gather", false), bit(65, "x", false)],
                )
                .expect("bits"),
            ],
        )
        .expect("nest");
        let b = parse_bitset(&roundtrip(nomask)).expect("nomask bitset");
        assert_eq!(b.set, BTreeSet::from([0, 65]));
        assert_eq!(
            b.names.get(&0).map(String::as_str),
            Some("tx-scatter-gather")
        );

        // Masked list: only bits with VALUE are set.
        let masked = genl_nest(
            ETHTOOL_A_FEATURES_ACTIVE,
            &[
                attr(ETHTOOL_A_BITSET_SIZE, 70u32),
                genl_nest(
                    ETHTOOL_A_BITSET_BITS,
                    &[bit(0, "a", false), bit(3, "b", true)],
                )
                .expect("bits"),
            ],
        )
        .expect("nest");
        let b = parse_bitset(&roundtrip(masked)).expect("masked bitset");
        assert_eq!(b.set, BTreeSet::from([3]));
        assert_eq!(b.names.len(), 2);

        // Compact: u32 words.
        let mut words = Vec::new();
        words.extend_from_slice(&0b1001u32.to_ne_bytes());
        words.extend_from_slice(&0b10u32.to_ne_bytes());
        let compact = genl_nest(
            ETHTOOL_A_FEATURES_ACTIVE,
            &[
                attr(ETHTOOL_A_BITSET_SIZE, 64u32),
                attr(ETHTOOL_A_BITSET_VALUE, words.as_slice()),
            ],
        )
        .expect("nest");
        let b = parse_bitset(&roundtrip(compact)).expect("compact bitset");
        assert_eq!(b.set, BTreeSet::from([0, 3, 33]));
    }

    #[test]
    fn requested_on_but_off() {
        // A bond whose lower device lacks SG: `tx-scatter-gather: off [requested on]`.
        let strings = BTreeMap::from([
            (0, "tx-scatter-gather".to_string()),
            (1, "tx-checksum-ipv4".to_string()),
            (2, "tx-fcoe-segmentation".to_string()),
        ]);
        let sets = FeatureSets {
            hw: Bitset {
                set: BTreeSet::from([0, 1]),
                ..Bitset::default()
            },
            wanted: Bitset {
                set: BTreeSet::from([0, 1]),
                ..Bitset::default()
            },
            active: Bitset {
                set: BTreeSet::from([1]),
                ..Bitset::default()
            },
            nochange: Bitset {
                set: BTreeSet::from([1]),
                ..Bitset::default()
            },
        };
        let f = combine_features(&strings, &sets);
        let state = |n: &str| *f.get(n).expect(n);
        assert_eq!(
            state("tx-scatter-gather"),
            FeatureState {
                active: false,
                wanted: true,
                fixed: false
            }
        );
        assert!(state("tx-checksum-ipv4").fixed);
        assert_eq!(
            state("tx-fcoe-segmentation"),
            FeatureState {
                active: false,
                wanted: false,
                fixed: true
            }
        );
    }

    #[test]
    fn unreachable_route_error_is_clear() {
        let dst: IpAddr = "198.18.9.9".parse().expect("ip");
        let e = route_get_error(
            dst,
            Fail::Errno {
                errno: libc::ENETUNREACH,
                ext_ack: None,
            },
        );
        assert_eq!(e.detail, "no route to 198.18.9.9: Network is unreachable");
        assert_eq!(
            e.to_string(),
            "route get: no route to 198.18.9.9: Network is unreachable"
        );
    }
}
