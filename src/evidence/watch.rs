//! What `zcdoctor watch` counted in the kernel during its window: each copy of zerocopy data by
//! the function that copied, its caller, the device and the sender's socket, and each
//! completion by socket. Facts only: which cause a caller stands for is decided by
//! `check::watch`.

use serde::{Deserialize, Serialize};

/// The watch's window and counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct WatchEvidence {
    /// Why watch could not run here (the one line it printed); the counts are then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// How long the probes were attached, in milliseconds.
    pub duration_ms: u64,
    /// The window was ended early by a signal (SIGINT, SIGTERM, SIGHUP).
    #[serde(default)]
    pub interrupted: bool,
    /// CPUs online (the overhead is a share of them).
    pub cpus: u32,
    /// The kernel functions probed, with their hits and the time the programs took.
    pub functions: Vec<WatchedFunction>,
    /// Functions that could not be probed on this kernel, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_probed: Vec<NotProbed>,
    /// Copies, one entry per (site, caller, device, socket).
    pub copies: Vec<CopyCount>,
    /// Completed `MSG_ZEROCOPY` notifications, per socket.
    pub completions: Vec<SocketCompletions>,
    /// Holders of the sockets seen, from `/proc/PID/fd` (a socket closed before the walk has
    /// none).
    pub sockets: Vec<SocketHolder>,
    /// IFACE: copies are reported only on the devices of its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface: Option<String>,
    /// `--pid`: the processes watched; copies of other senders are not reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<u32>,
    /// `--pid`: those processes' socket inodes, read when the window opened and closed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pid_sockets: Vec<u64>,
}

/// What a kprobe program on a function counts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum WatchRole {
    /// `skb_copy_ubufs`: copies every zerocopy frag; the notification reports it.
    CopyUbufs,
    /// `__pskb_pull_tail` pulling the whole paged part: linearisation; reported.
    FullPull,
    /// `skb_segment` without `NETIF_F_SG`: segments copied into linear skbs; the notification
    /// may say zerocopy (a silent copy).
    SegmentWithoutSg,
    /// The notification's completion (COPIED or not).
    Completion,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct WatchedFunction {
    /// Kernel symbol (`skb_copy_ubufs`, `__msg_zerocopy_callback`, …).
    pub function: String,
    pub role: WatchRole,
    /// Times the program ran (every call of the function, kept or not).
    pub hits: u64,
    /// Nanoseconds the program ran, summed (the kprobe's own trap is not included).
    pub bpf_ns: u64,
    /// Events dropped because a map was full.
    #[serde(default)]
    pub lost: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct NotProbed {
    pub function: String,
    pub role: WatchRole,
    pub reason: String,
}

/// A device as the kernel named it at the copy: its index in its namespace.
#[derive(
    Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub struct WatchDevice {
    pub ifindex: u32,
    /// The namespace's nsfs inode (`net:[N]`).
    pub netns_inode: u64,
    /// The device's name, read in its namespace after the window (`None`: gone, or the
    /// namespace could not be entered).
    #[serde(default)]
    pub name: Option<String>,
    /// The namespace's `/run/netns` name, when it has one.
    #[serde(default)]
    pub netns: Option<String>,
    /// The namespace is the one zcdoctor runs in.
    #[serde(default)]
    pub own_netns: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct CopyCount {
    pub role: WatchRole,
    /// The caller of the copying function (its return address, symbolised from
    /// `/proc/kallsyms`), e.g. `dev_queue_xmit_nit`; `None` when no symbol covers it.
    pub caller: Option<String>,
    /// The module of the caller (`tun`), when it is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_module: Option<String>,
    /// The skb's device at the copy (`None`: it had none).
    pub device: Option<WatchDevice>,
    /// The sending socket's inode (`None`: not found through the notification).
    pub socket: Option<u64>,
    /// skbs copied.
    pub count: u64,
    /// Their paged bytes (`skb->data_len` at the copy).
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct SocketCompletions {
    /// The socket inode (`None`: not found through the notification).
    pub socket: Option<u64>,
    /// Notifications completed.
    pub notifications: u64,
    /// Sends they covered.
    pub sends: u64,
    /// Of those, notifications flagged `SO_EE_CODE_ZEROCOPY_COPIED`.
    pub copied_notifications: u64,
    /// Sends they covered.
    pub copied_sends: u64,
}

/// A process holding a socket seen in the window.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct SocketHolder {
    pub inode: u64,
    pub pid: u32,
    pub comm: String,
    pub fd: i32,
}
