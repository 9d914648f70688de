//! The netlink requests' error: what was asked and why it failed (the kernel's errno with its
//! extended ack, a timeout, an I/O error, a malformed answer), and its conversions.

use std::io;

use neli::{
    consts::nl::NlmsgerrAttr,
    err::{Nlmsgerr, SocketError},
    types::{Buffer, GenlBuffer},
};
use nix::errno::Errno;

use super::{RECV_TIMEOUT, attr_string};
use crate::evidence::OsError;

/// A netlink request that failed: what was asked (`op`) and why.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel answered `NLMSG_ERROR` (or a failed `NLMSG_DONE`).
    #[error("{op}: {}", errno_text(*errno, ext_ack.as_deref()))]
    Kernel {
        op: String,
        errno: Errno,
        /// The extended ack message (`NLMSGERR_ATTR_MSG`), when the kernel sent one.
        ext_ack: Option<String>,
    },
    /// A route lookup the kernel refused (`ENETUNREACH`, `EHOSTUNREACH`, …).
    #[error("{op}: no route to {dst}: {}", errno_text(*errno, ext_ack.as_deref()))]
    NoRoute {
        op: String,
        dst: std::net::IpAddr,
        errno: Errno,
        ext_ack: Option<String>,
    },
    /// ethtool `ENODEV`: no such device in the calling thread's network namespace.
    #[error("{op}: no device named {ifname:?} in this network namespace (ENODEV)")]
    NoDevice { op: String, ifname: String },
    /// The generic netlink family is not registered (`ENOENT` from the controller).
    #[error("{op}: generic netlink family {family:?} not found (kernel without ethtool netlink?)")]
    NoFamily { op: String, family: String },
    /// A socket call failed (`socket`, `setsockopt`, `send`, `recv`).
    #[error("{op}: {context}: {source}")]
    Io {
        op: String,
        context: &'static str,
        #[source]
        source: io::Error,
    },
    /// The kernel sent nothing within the receive timeout (5 s).
    #[error("{op}: no reply from the kernel within {} s", RECV_TIMEOUT.as_secs())]
    Timeout { op: String },
    /// A reply that does not decode, or lacks what the request must return.
    #[error("{op}: {detail}")]
    Malformed { op: String, detail: String },
    /// The request could not be built (a bug, or an argument netlink cannot carry).
    #[error("{op}: cannot build the request: {detail}")]
    Request { op: String, detail: String },
    /// Every attempt of a dump was flagged `NLM_F_DUMP_INTR`.
    #[error("{op}: the {table} kept changing during the dump")]
    DumpInterrupted { op: String, table: &'static str },
}

impl NetlinkError {
    /// A request about device `ifname`: the kernel's ENODEV becomes [`NetlinkError::NoDevice`],
    /// naming it.
    pub(crate) fn for_device(self, ifname: &str) -> NetlinkError {
        match self {
            NetlinkError::Kernel {
                op,
                errno: Errno::ENODEV,
                ..
            } => NetlinkError::NoDevice {
                op,
                ifname: ifname.to_string(),
            },
            e => e,
        }
    }

    /// What was asked: `rtnetlink link dump`, `route get`, `ethtool features of eth0`, …
    pub fn op(&self) -> &str {
        match self {
            NetlinkError::Kernel { op, .. }
            | NetlinkError::NoRoute { op, .. }
            | NetlinkError::NoDevice { op, .. }
            | NetlinkError::NoFamily { op, .. }
            | NetlinkError::Io { op, .. }
            | NetlinkError::Timeout { op }
            | NetlinkError::Malformed { op, .. }
            | NetlinkError::Request { op, .. }
            | NetlinkError::DumpInterrupted { op, .. } => op,
        }
    }

    /// The errno behind the failure, when there is one. An interrupted dump reads as `EINTR`
    /// (as libmnl reports `NLM_F_DUMP_INTR`), a timeout as `EAGAIN`.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            NetlinkError::Kernel { errno, .. } | NetlinkError::NoRoute { errno, .. } => {
                Some(*errno)
            }
            NetlinkError::NoDevice { .. } => Some(Errno::ENODEV),
            NetlinkError::NoFamily { .. } => Some(Errno::ENOENT),
            NetlinkError::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            NetlinkError::Timeout { .. } => Some(Errno::EAGAIN),
            NetlinkError::DumpInterrupted { .. } => Some(Errno::EINTR),
            NetlinkError::Malformed { .. } | NetlinkError::Request { .. } => None,
        }
    }

    /// The failure as evidence records it, when it has an errno.
    pub fn to_os_error(&self) -> Option<OsError> {
        self.errno().map(|errno| OsError::new(self.op(), errno))
    }
}

/// The errno description, with the kernel's extended ack message when it sent one.
fn errno_text(errno: Errno, ext_ack: Option<&str>) -> String {
    match ext_ack {
        Some(msg) => format!("{} ({msg})", errno.desc()),
        None => errno.desc().to_string(),
    }
}

/// `NLMSG_ERROR` / failed `NLMSG_DONE` as an error, with its `NLMSGERR_ATTR_MSG`.
///
/// Read from the untyped message on purpose: neli's `Nlmsgerr::to_typed` drops the extended
/// ack (see `neli_to_typed_drops_the_ext_ack`).
pub(super) fn kernel_error<M>(op: &str, e: &Nlmsgerr<M>) -> NetlinkError {
    NetlinkError::Kernel {
        op: op.to_string(),
        errno: Errno::from_raw(e.error().saturating_neg()),
        ext_ack: ext_ack_message(e.ext_ack()),
    }
}

fn io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

pub(super) fn socket_error(op: &str, context: &'static str, e: SocketError) -> NetlinkError {
    match e {
        SocketError::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            NetlinkError::Timeout { op: op.to_string() }
        }
        SocketError::Io(e) => NetlinkError::Io {
            op: op.to_string(),
            context,
            source: io_error(&e),
        },
        e => NetlinkError::Malformed {
            op: op.to_string(),
            detail: format!("{context}: {e}"),
        },
    }
}

/// `NLMSGERR_ATTR_MSG` of an extended ack, when present and not empty.
pub(super) fn ext_ack_message(ext_ack: &GenlBuffer<NlmsgerrAttr, Buffer>) -> Option<String> {
    ext_ack
        .get_attr_handle()
        .get_attribute(NlmsgerrAttr::Msg)
        .map(|a| attr_string(a.nla_payload().as_ref()))
        .filter(|m| !m.is_empty())
}
