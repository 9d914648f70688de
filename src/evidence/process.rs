//! Applications diagnosed by pid (`check --pid PID`): identity, memory limits, the TCP and UDP
//! sockets they hold with their zerocopy option and option memory, and their io_uring instances.
//!
//! Everything is as read from the kernel; what could not be read is a [`Fact::Failed`] with the
//! call and its errno, never a guess.

use serde::{Deserialize, Serialize};

use super::{
    NetnsRef, OsError, ProcessProblem, TimestampingFlags, VsockSocket, VsockZerocopySupport,
};

/// A value read from the kernel, or why it could not be.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Fact<T> {
    Read(T),
    /// The call that failed and its errno.
    Failed(OsError),
    /// Read, but not in the expected form (what was wrong).
    Malformed(String),
}

impl<T> Fact<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            Fact::Read(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_ref(&self) -> Fact<&T> {
        match self {
            Fact::Read(v) => Fact::Read(v),
            Fact::Failed(e) => Fact::Failed(e.clone()),
            Fact::Malformed(m) => Fact::Malformed(m.clone()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct ProcessEvidence {
    pub pid: u32,
    /// `/proc/PID/comm` (at most 15 bytes).
    pub comm: String,
    /// Target of `/proc/PID/exe`.
    pub exe: Fact<String>,
    /// Arguments of `/proc/PID/cmdline`, at most [`ProcessEvidence::CMDLINE_MAX`] bytes read.
    pub cmdline: Vec<String>,
    /// The command line was longer than what was read.
    #[serde(default)]
    pub cmdline_truncated: bool,
    /// Real uid: the user whose `locked_vm` pinned pages are charged to.
    pub uid: Option<u32>,
    /// The process's network namespace (`/proc/PID/ns/net`), named when under /run/netns.
    pub netns: Fact<NetnsRef>,
    /// Its cgroup path, and the systemd unit and container id found in it.
    #[serde(default)]
    pub cgroup: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub container: Option<String>,
    /// `RLIMIT_MEMLOCK` from `/proc/PID/limits`.
    pub memlock: Fact<Memlock>,
    /// Effective capabilities, `CapEff` of `/proc/PID/status`.
    pub capeff: Fact<u64>,
    /// `VmLck` and `VmPin` of `/proc/PID/status`, in bytes (the process's own; the user's
    /// total `locked_vm` is not exposed by procfs).
    #[serde(default)]
    pub vm_lck: Option<u64>,
    #[serde(default)]
    pub vm_pin: Option<u64>,
    /// `net.core.optmem_max` of each namespace the process or its sockets live in, the
    /// process's own first.
    pub namespaces: Vec<NamespaceSysctls>,
    /// Its TCP and UDP sockets (IPv4 and IPv6), in descriptor order.
    pub sockets: Vec<InetSocket>,
    /// Socket descriptors beyond [`ProcessEvidence::SOCKETS_MAX`], not read.
    #[serde(default)]
    pub sockets_not_read: u32,
    /// Socket descriptors that are not TCP or UDP over IPv4/IPv6 or vsock (unix, netlink,
    /// packet, …).
    #[serde(default)]
    pub other_sockets: u32,
    /// Socket descriptors that could not be read (the call and errno each), at most 16.
    #[serde(default)]
    pub unreadable_sockets: Vec<UnreadableSocket>,
    /// How many socket descriptors could not be read (all of them, listed or not).
    #[serde(default)]
    pub sockets_unreadable: u32,
    /// The process's io_uring instances.
    #[serde(default)]
    pub io_urings: Vec<IoUring>,
    /// Its AF_VSOCK sockets (counted in `other_sockets` in recordings made before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vsock_sockets: Vec<VsockSocket>,
    /// Whether this kernel takes `SO_ZEROCOPY` on a vsock stream socket; probed when the
    /// process holds vsock sockets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock_zerocopy: Option<VsockZerocopySupport>,
    /// Anything else that could not be read, as data.
    #[serde(default)]
    pub problems: Vec<ProcessProblem>,
}

impl ProcessEvidence {
    pub const CMDLINE_MAX: usize = 4096;
    pub const SOCKETS_MAX: usize = 4096;
    /// `CAP_IPC_LOCK` of `linux/capability.h`.
    pub const CAP_IPC_LOCK: u32 = 14;

    /// Whether `CapEff` holds CAP_IPC_LOCK; `None` when it was not read.
    pub fn cap_ipc_lock(&self) -> Option<bool> {
        self.capeff
            .value()
            .map(|c| c & (1u64 << Self::CAP_IPC_LOCK) != 0)
    }

    /// The namespace inode of the process.
    pub fn netns_inode(&self) -> Option<u64> {
        self.netns.value().map(|n| n.inode)
    }

    /// `net.core.optmem_max` of namespace `inode`, when read.
    pub fn optmem_max_of(&self, inode: u64) -> Option<u64> {
        self.namespaces
            .iter()
            .find(|n| n.netns.inode == inode)
            .and_then(|n| n.optmem_max.value().copied())
    }

    /// The sockets with SO_ZEROCOPY set.
    pub fn zerocopy_sockets(&self) -> impl Iterator<Item = &InetSocket> {
        self.sockets
            .iter()
            .filter(|s| s.zerocopy.value() == Some(&true))
    }

    /// `systemd unit`, `container`, or nothing: how the process is managed.
    pub fn managed_by(&self) -> Option<String> {
        match (&self.unit, &self.container) {
            (Some(u), Some(c)) => Some(format!("{u}, {c}")),
            (Some(u), None) => Some(u.clone()),
            (None, Some(c)) => Some(c.clone()),
            (None, None) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct Memlock {
    /// Soft limit in bytes; `None` = unlimited.
    pub soft: Option<u64>,
    /// Hard limit in bytes; `None` = unlimited.
    pub hard: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct NamespaceSysctls {
    pub netns: NetnsRef,
    /// `net.core.optmem_max` read inside that namespace (per namespace since Linux 6.8).
    pub optmem_max: Fact<u64>,
}

/// A TCP or UDP socket, read through a duplicate of the descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct InetSocket {
    pub fd: i32,
    pub inode: u64,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The socket's own network namespace (`SIOCGSKNS`), which may differ from the process's.
    pub netns: Fact<u64>,
    /// `getsockname`, e.g. `198.18.0.1:40000` or `[::1]:22`.
    pub local: Fact<String>,
    /// `getpeername`; `None` when not connected (ENOTCONN).
    pub peer: Fact<Option<String>>,
    /// TCP state from `TCP_INFO` (`established`, `listen`, …); `None` for UDP.
    #[serde(default)]
    pub tcp_state: Option<Fact<String>>,
    /// `SO_ZEROCOPY`: whether MSG_ZEROCOPY is allowed on it (not that it is used).
    pub zerocopy: Fact<bool>,
    /// `SO_MEMINFO`.
    pub meminfo: Fact<SkMeminfo>,
    /// The socket's owner (`sk_uid`, the owner of its inode), which `ip rule uidrange` sees;
    /// `None` in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// `SO_MARK`: the fwmark policy routing sees for its packets; `None` when not read (older
    /// recordings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
    /// `SO_BINDTOIFINDEX`: the device it is bound to (0: none); `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_ifindex: Option<u32>,
    /// `SO_BINDTODEVICE`: that device's name, in the socket's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_device: Option<String>,
    /// `SO_TIMESTAMPING`: the socket's timestamping flags; `None` in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamping: Option<Fact<TimestampingFlags>>,
    /// `TCP_ULP`: the TCP upper-layer protocol (`tls`, `espintcp`, `mptcp`…), empty for none;
    /// `None` for UDP and in older recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ulp: Option<Fact<String>>,
}

impl InetSocket {
    /// Option memory in use (`SK_MEMINFO_OPTMEM`), where zerocopy notifications sit.
    pub fn optmem(&self) -> Option<u64> {
        self.meminfo.value().map(|m| u64::from(m.optmem))
    }

    /// `local → peer` (or `local (unconnected)`).
    pub fn endpoints(&self) -> String {
        let local = self.local.value().map_or("?", String::as_str);
        match &self.peer {
            Fact::Read(Some(p)) => format!("{local} → {p}"),
            Fact::Read(None) => match self.tcp_state.as_ref().and_then(Fact::value) {
                Some(state) => format!("{local} ({state})"),
                None => format!("{local} (unconnected)"),
            },
            _ => format!("{local} → ?"),
        }
    }

    pub fn is_connected_tcp(&self) -> bool {
        self.protocol == "tcp"
            && matches!(self.peer, Fact::Read(Some(_)))
            && self
                .tcp_state
                .as_ref()
                .and_then(Fact::value)
                .is_some_and(|s| s == "established")
    }
}

/// `SO_MEMINFO`: the `SK_MEMINFO_*` array of `linux/sock_diag.h`, by name (bytes).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct SkMeminfo {
    pub rmem_alloc: u32,
    pub rcvbuf: u32,
    pub wmem_alloc: u32,
    pub sndbuf: u32,
    pub fwd_alloc: u32,
    pub wmem_queued: u32,
    /// `SK_MEMINFO_OPTMEM` (index 6).
    pub optmem: u32,
    pub backlog: u32,
    pub drops: u32,
    /// Entries past `drops` a newer kernel returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<u32>,
}

impl SkMeminfo {
    pub const NAMES: [&'static str; 9] = [
        "rmem_alloc",
        "rcvbuf",
        "wmem_alloc",
        "sndbuf",
        "fwd_alloc",
        "wmem_queued",
        "optmem",
        "backlog",
        "drops",
    ];

    /// From the array the kernel returned (`None` when shorter than `optmem`).
    pub fn from_array(a: &[u32]) -> Option<SkMeminfo> {
        if a.len() <= 6 {
            return None;
        }
        let at = |i: usize| a.get(i).copied().unwrap_or(0);
        Some(SkMeminfo {
            rmem_alloc: at(0),
            rcvbuf: at(1),
            wmem_alloc: at(2),
            sndbuf: at(3),
            fwd_alloc: at(4),
            wmem_queued: at(5),
            optmem: at(6),
            backlog: at(7),
            drops: at(8),
            more: a.get(9..).map(<[u32]>::to_vec).unwrap_or_default(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct UnreadableSocket {
    pub fd: i32,
    pub inode: u64,
    pub error: OsError,
}

/// An io_uring instance (`anon_inode:[io_uring]`) and the key fields of its fdinfo.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct IoUring {
    pub fd: i32,
    #[serde(default)]
    pub sq_entries: Option<u64>,
    #[serde(default)]
    pub cq_entries: Option<u64>,
    /// Pid of the SQPOLL thread; `None` or -1 without SQPOLL.
    #[serde(default)]
    pub sq_thread: Option<i64>,
    /// Registered files and buffers.
    #[serde(default)]
    pub user_files: Option<u64>,
    #[serde(default)]
    pub user_bufs: Option<u64>,
    /// Why the fdinfo could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fdinfo_error: Option<OsError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_by_name() {
        let m = SkMeminfo::from_array(&[0, 212992, 0, 212992, 0, 0, 130624, 0, 0]).unwrap();
        assert_eq!(m.optmem, 130624);
        assert_eq!(m.rcvbuf, 212992);
        assert!(m.more.is_empty());
        let m = SkMeminfo::from_array(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).unwrap();
        assert_eq!((m.optmem, m.drops, m.more.as_slice()), (7, 9, &[10][..]));
        assert_eq!(SkMeminfo::from_array(&[1, 2, 3]), None);
        assert_eq!(SkMeminfo::NAMES[6], "optmem");
    }

    #[test]
    fn facts_serialize_tagged() {
        let f: Fact<u64> = Fact::Read(5);
        assert_eq!(serde_json::to_string(&f).unwrap(), r#"{"read":5}"#);
        let f: Fact<u64> = Fact::Failed(OsError::new("setns", nix::errno::Errno::EPERM));
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"failed":{"op":"setns","errno":1}}"#
        );
        let back: Fact<u64> = serde_json::from_str(r#"{"malformed":"x"}"#).unwrap();
        assert_eq!(back, Fact::Malformed("x".into()));
    }
}
