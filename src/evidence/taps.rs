//! Packet sockets of every namespace, their owners and their PACKET_IGNORE_OUTGOING setting.

use serde::{Deserialize, Serialize};

use super::{OsError, ScanProblem};

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct TapScan {
    /// The network namespace of the diagnosed interface (inode of its `ns/net`).
    pub diagnosed_netns: u64,
    /// Every packet socket seen, in every namespace.
    pub sockets: Vec<PacketSocket>,
    pub namespaces_scanned: u32,
    /// Namespaces whose packet table could not be read (reason in `problems`).
    #[serde(default)]
    pub namespaces_unreadable: u32,
    pub processes_scanned: u32,
    /// Processes whose fd table could not be read (permission).
    pub processes_unreadable: u32,
    /// Processes that exited while being scanned.
    pub processes_vanished: u32,
    /// Processes listed in /proc (`processes_scanned` may be fewer: see `owner_walk_stopped_early`).
    #[serde(default)]
    pub processes_listed: u32,
    /// File descriptors whose target was read while looking for owners.
    #[serde(default)]
    pub fds_scanned: u64,
    /// The owner walk stopped once every ETH_P_ALL socket had an owner, so a socket shared by
    /// several processes may list only some of them. `false` in old recordings.
    #[serde(default)]
    pub owner_walk_stopped_early: bool,
    /// What could not be read (and so is missing from the scan), as data.
    #[serde(default)]
    pub problems: Vec<ScanProblem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct PacketSocket {
    pub inode: u64,
    pub netns: NetnsRef,
    /// `raw` or `dgram`.
    pub sock_type: String,
    /// EtherType in host order; 0x0003 (ETH_P_ALL) makes the socket a TX tap.
    pub protocol: u16,
    /// Bound device index in its namespace; `None` when unbound (all devices).
    pub ifindex: Option<u32>,
    /// Bound device name, resolved in the socket's own namespace.
    #[serde(default)]
    pub device: Option<String>,
    /// Whether the socket is running (the hook is registered).
    #[serde(default = "yes")]
    pub running: bool,
    /// Socket owner uid, as /proc/net/packet reports it.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Processes found holding the socket (the owner walk may stop before finding them all:
    /// see `TapScan::owner_walk_stopped_early`).
    pub owners: Vec<Owner>,
    /// The socket's own `PACKET_IGNORE_OUTGOING`, as read from it. For a fanout member the
    /// kernel obeys the group's hook instead (see `fanout`); recordings made before probes
    /// recorded facts only hold the group's flag here for fanout members.
    pub ignore_outgoing: IgnoreOutgoing,
    /// Fanout group id and flags as `getsockopt(PACKET_FANOUT)` read them, when the socket is in
    /// a group.
    #[serde(default)]
    pub fanout: Option<Fanout>,
}

fn yes() -> bool {
    true
}

impl PacketSocket {
    pub const ETH_P_ALL: u16 = 0x0003;

    /// A socket that sees outgoing packets: only ETH_P_ALL hooks the TX path (`ptype_all`).
    pub fn is_tx_tap(&self) -> bool {
        self.protocol == Self::ETH_P_ALL && self.running
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct NetnsRef {
    pub inode: u64,
    /// Name under /run/netns, when it has one.
    #[serde(default)]
    pub name: Option<String>,
}

/// A fanout group membership: `getsockopt(PACKET_FANOUT)` split into its halves.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Fanout {
    /// Group id (low 16 bits).
    pub group: u16,
    /// Fanout type and `PACKET_FANOUT_FLAG_*` bits (high 16 bits), e.g.
    /// `PACKET_FANOUT_FLAG_IGNORE_OUTGOING` (0x4000).
    pub flags: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum IgnoreOutgoing {
    /// Read from the socket itself: set (non-zero).
    Set,
    /// Read from the socket itself: not set.
    NotSet,
    /// Not read; never a guess. `reason` is the probe's factual account (the failed call and
    /// its errno, or why it was not attempted); `cause` the same as data. `cause` is absent for
    /// a socket not read because it is not ETH_P_ALL, and in recordings made before it existed.
    Unknown {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Unreadable>,
    },
}

/// Why a tap's PACKET_IGNORE_OUTGOING could not be read.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Unreadable {
    /// No process holding the socket was found (see the scan's unreadable processes).
    NoOwner,
    /// The owner exited, or closed or reused the descriptor, while it was being read.
    OwnerGone { pid: u32 },
    /// The kernel refused to duplicate the owner's descriptor (EPERM), with whether the
    /// prober had CAP_SYS_PTRACE in its effective set and the Yama ptrace scope (`None` when
    /// unreadable, e.g. no Yama).
    Refused {
        pid: u32,
        error: OsError,
        cap_sys_ptrace: bool,
        #[serde(default)]
        yama_ptrace_scope: Option<u32>,
    },
    /// The call or the option does not exist on this kernel, or is filtered (ENOSYS,
    /// ENOPROTOOPT).
    Unsupported { error: OsError },
    /// Any other failure.
    Failed {
        #[serde(default)]
        pid: Option<u32>,
        error: OsError,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Owner {
    pub pid: u32,
    pub comm: String,
    #[serde(default)]
    pub exe: Option<String>,
    #[serde(default)]
    pub cmdline: Vec<String>,
    #[serde(default)]
    pub uid: Option<u32>,
    /// systemd unit from the cgroup path (`lldpd.service`).
    #[serde(default)]
    pub unit: Option<String>,
    /// Container id or scope from the cgroup path, when it looks like one.
    #[serde(default)]
    pub container: Option<String>,
    /// The raw cgroup path.
    #[serde(default)]
    pub cgroup: Option<String>,
}
