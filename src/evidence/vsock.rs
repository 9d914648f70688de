//! AF_VSOCK (virtio-vsock, the host ↔ guest channel of QEMU and Firecracker-style agents): a
//! process's vsock sockets (`check --pid`), and the vsock live probe (`--target vsock:CID:PORT`).
//!
//! MSG_ZEROCOPY over vsock exists since Linux 6.7 for the virtio and loopback transports
//! (`vsock_msgzerocopy_allow`); before, `SO_ZEROCOPY` is refused with EOPNOTSUPP and the flag
//! is ignored. Its completions come as `SOL_VSOCK` / `VSOCK_RECVERR`.

use serde::{Deserialize, Serialize};

use super::{Fact, OsError};

/// The kernel-internal `ENOTSUPP` (`include/linux/errno.h`), which `sock_setsockopt()` leaks
/// to user space for SO_ZEROCOPY on vsock in Debian's 5.10 (6.1 returns EOPNOTSUPP).
pub const ENOTSUPP: i32 = 524;

/// A vsock socket of a diagnosed process, read through a duplicate of its descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct VsockSocket {
    pub fd: i32,
    pub inode: u64,
    /// `stream`, `seqpacket` or `dgram`.
    pub kind: String,
    /// `getsockname`: `CID:PORT`.
    pub local: Fact<String>,
    /// `getpeername`: `CID:PORT`; `None` when not connected.
    pub peer: Fact<Option<String>>,
    /// `SO_ZEROCOPY`.
    pub zerocopy: Fact<bool>,
    /// `SO_VM_SOCKETS_BUFFER_SIZE`: this socket's receive buffer, which is the credit its peer
    /// may send into (the peer's own is not readable from here).
    pub buffer_size: Fact<u64>,
}

impl VsockSocket {
    /// `local → peer` (or `local (unconnected)`).
    pub fn endpoints(&self) -> String {
        let local = self.local.value().map_or("?", String::as_str);
        match &self.peer {
            Fact::Read(Some(p)) => format!("vsock {local} → {p}"),
            Fact::Read(None) => format!("vsock {local} (unconnected)"),
            _ => format!("vsock {local} → ?"),
        }
    }
}

/// What the kernel answers to `SO_ZEROCOPY` on a new, unconnected AF_VSOCK stream socket: set
/// (6.7+), or refused (EOPNOTSUPP before 6.7).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum VsockZerocopySupport {
    Accepted,
    Refused {
        error: OsError,
    },
    /// No AF_VSOCK socket could be made (no vsock module: EAFNOSUPPORT).
    NoVsock {
        error: OsError,
    },
}

/// The vsock live probe: MSG_ZEROCOPY sends of growing sizes over one AF_VSOCK stream
/// connection to a listener the operator runs (`zcdoctor sink` has no vsock side: any reader
/// that drains, such as `socat VSOCK-LISTEN:PORT,fork /dev/null`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct VsockProbe {
    pub cid: u32,
    pub port: u32,
    /// `SO_ZEROCOPY` on the probe's socket, set before `connect` as applications do.
    pub so_zerocopy: Fact<()>,
    /// The connection to the listener, or why it failed.
    pub connect: Fact<()>,
    /// The probe's own `SO_VM_SOCKETS_BUFFER_SIZE` (the peer's, which bounds what it may send,
    /// is not readable).
    #[serde(default)]
    pub buffer_size: Option<u64>,
    /// `--vsock-buffer`: the buffer the probe set on its socket before connecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_requested: Option<u64>,
    /// One run per message size, smallest first.
    pub runs: Vec<VsockRun>,
    /// Stopped early (Ctrl-C).
    #[serde(default)]
    pub interrupted: bool,
}

impl VsockProbe {
    /// `vsock:CID:PORT`.
    pub fn target(&self) -> String {
        format!("vsock:{}:{}", self.cid, self.port)
    }

    /// Whether the kernel refused zerocopy outright: `SO_ZEROCOPY` or the `MSG_ZEROCOPY` send
    /// failed with EOPNOTSUPP (or ENOTSUPP, which 5.10 returns for it).
    pub fn refused(&self) -> Option<&OsError> {
        let eopnotsupp =
            |e: &&OsError| e.errno == nix::errno::Errno::EOPNOTSUPP as i32 || e.errno == ENOTSUPP;
        if let Fact::Failed(e) = &self.so_zerocopy {
            return Some(e).filter(eopnotsupp);
        }
        if let Fact::Failed(e) = &self.connect {
            return Some(e).filter(eopnotsupp);
        }
        self.runs
            .iter()
            .filter_map(|r| r.error.as_ref())
            .find(eopnotsupp)
    }
}

/// MSG_ZEROCOPY sends of one size.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct VsockRun {
    /// Bytes per `sendmsg`.
    pub message: u64,
    /// Messages sent in full.
    pub messages: u64,
    pub bytes: u64,
    /// Notification ids completed (a message larger than what one call can queue takes
    /// several), and of those the ones that carried `SO_EE_CODE_ZEROCOPY_COPIED`.
    pub completions: u64,
    pub copied: u64,
    /// Completion records read (the kernel merges consecutive ids of the same outcome).
    pub records: u64,
    /// The send error that ended the run early, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<OsError>,
}

impl VsockRun {
    pub fn zerocopy(&self) -> u64 {
        self.completions.saturating_sub(self.copied)
    }
}
