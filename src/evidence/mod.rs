//! Evidence: everything the probes observed about a host, as plain serde data.
//!
//! Probes are the only code that fills these types; checks only read them. Because it is data,
//! a host can be recorded (`zcdoctor snapshot`) and diagnosed anywhere (`check --from FILE`).

mod device;
mod live;
mod nfqueue;
mod path;
mod problems;
mod process;
mod taps;
mod tc;
mod timestamping;
mod uring;
pub mod validate;
mod vsock;
pub mod watch;

pub use device::*;
pub use live::*;
pub use nfqueue::*;
pub use path::*;
pub use problems::*;
pub use process::*;
pub use taps::*;
pub use tc::*;
pub use timestamping::*;
pub use uring::*;
pub use vsock::*;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The sockets of a process that the diagnosed path carries (`check --pid` without an
/// interface: the path toward the peer of its largest group of connected zerocopy sockets), and
/// the paths of its other destinations.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Serving {
    pub pid: u32,
    /// Other peers whose sockets take the same way as `peer`'s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_peers: Vec<std::net::IpAddr>,
    /// The other processes diagnosed with it (`--pid` repeated): their sockets are grouped with
    /// `pid`'s, each labelled `pid P fd N`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_pids: Vec<u32>,
    pub peer: std::net::IpAddr,
    /// The sockets whose path is the diagnosed one (`interface`, `stack`, `path`): those going
    /// to `peer` and to any other peer reached the same way, as `fd N (proto local → peer)`.
    pub sockets: Vec<String>,
    /// How the route to `peer` was looked up (as the kernel routes these sockets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<SocketRouting>,
    /// The process's other destinations, each with its own path, diagnosed in the same report
    /// (at most [`MAX_ROUTES`]; peers whose path is the same share one entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Destinations of the process's zerocopy sockets not diagnosed here, and why.
    #[serde(default)]
    pub others: Vec<NotDiagnosed>,
}

impl Serving {
    /// `pid N`, or `pids N, M` when several processes were diagnosed together.
    pub fn whose(&self) -> String {
        if self.also_pids.is_empty() {
            return format!("pid {}", self.pid);
        }
        let all: Vec<String> = std::iter::once(self.pid)
            .chain(self.also_pids.iter().copied())
            .map(|p| p.to_string())
            .collect();
        format!("pids {}", all.join(", "))
    }
}

/// What the kernel's output route lookup for a process's connected sockets uses besides the
/// destination: their source address, `SO_MARK` and bound device. zcdoctor looks the way out up
/// with the same (`ip route get PEER from SOURCE mark MARK oif DEV`).
#[derive(
    Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash,
)]
pub struct SocketRouting {
    /// The sockets' local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<std::net::IpAddr>,
    /// `SO_MARK`, when not 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<u32>,
    /// `SO_BINDTOIFINDEX` (or `SO_BINDTODEVICE`), when bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_ifindex: Option<u32>,
    /// The bound device's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_device: Option<String>,
    /// The sockets' owner (`sk_uid`), for `ip rule uidrange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
}

impl SocketRouting {
    /// ` with mark 0x2a, bound to eth1` for what sets the lookup apart, else empty (the source
    /// and the owner are in every lookup and rarely set a way apart).
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.mark {
            parts.push(format!("mark {m:#x}"));
        }
        match (&self.bound_device, self.bound_ifindex) {
            (Some(name), _) => parts.push(format!("bound to {name}")),
            (None, Some(i)) => parts.push(format!("bound to ifindex {i}")),
            (None, None) => {}
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" with {}", parts.join(", "))
        }
    }
}

/// The most further destinations of one process whose paths a report diagnoses.
pub const MAX_ROUTES: usize = 8;

/// Another destination of the diagnosed process, read like the main one: the device its route
/// leaves by, the stack below it, and the path beyond it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Route {
    /// The destination the route was looked up for (the first peer of `sockets`).
    pub peer: std::net::IpAddr,
    /// Other peers whose sockets take the same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_peers: Vec<std::net::IpAddr>,
    /// The sockets taking this path, as `fd N (proto local → peer)`.
    pub sockets: Vec<String>,
    /// How the route to `peer` was looked up (as the kernel routes these sockets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<SocketRouting>,
    /// The device the route to `peer` leaves by, in the process's namespace.
    pub interface: String,
    /// `interface` first, then every device below it (as `Evidence::stack`).
    pub stack: Vec<Device>,
    /// The path beyond `stack`, when there is one (as `Evidence::path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathEvidence>,
}

/// Bumped when a field changes meaning; new optional fields do not bump it.
pub const EVIDENCE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Evidence {
    pub evidence_version: u32,
    pub host: Host,
    pub kernel: Kernel,
    /// Sysctls read in the network namespace of the diagnosed interface.
    pub sysctls: Sysctls,
    /// The interface being diagnosed (the first device of `stack`).
    pub interface: String,
    /// The diagnosed device first, then every device below it, breadth first.
    pub stack: Vec<Device>,
    /// Limits of the probing process (they matter for the live probe's ENOBUFS).
    #[serde(default)]
    pub process: Option<ProcessLimits>,
    /// Packet sockets of every namespace; `None` when the tap probe did not run.
    #[serde(default)]
    pub taps: Option<TapScan>,
    /// Netfilter queue rules of the diagnosed namespace (the `nfqueue` probe); `None` when it
    /// did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfqueue: Option<NfQueueScan>,
    /// The path beyond the diagnosed stack; `None` when the path probe did not run or found
    /// nothing beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathEvidence>,
    /// The live probe's result; `None` when no `--target` was given.
    #[serde(default)]
    pub live: Option<LiveProbe>,
    /// `check --pid` without an interface: the process's zerocopy sockets whose path this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<Serving>,
    /// `check --pid` without an interface: the processes' zerocopy sockets that have no peer
    /// (unconnected UDP, listening TCP), as `fd N (proto local)`. Each send picks its
    /// destination, so their path is not followed; with no connected one either, the diagnosed
    /// path is the default route's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unpeered: Vec<String>,
    /// Applications diagnosed by pid (`--pid`); empty when none was given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessEvidence>,
    /// `zcdoctor watch`: what the kernel counted during the window; `None` for `check`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<watch::WatchEvidence>,
    /// The vsock live probe (`--target vsock:CID:PORT`); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock: Option<VsockProbe>,
    /// What each probe did: ok, skipped or error, and why.
    pub probes: Vec<ProbeStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Host {
    pub hostname: String,
    #[serde(default)]
    pub os: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Kernel {
    /// `uname -r`, verbatim.
    pub release: String,
    /// Parsed from `release`; `None` when it does not start with `X.Y`.
    pub version: Option<KernelVersion>,
}

#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    #[serde(default)]
    pub patch: u32,
}

impl KernelVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        KernelVersion {
            major,
            minor,
            patch: 0,
        }
    }

    /// Parses the leading `X.Y[.Z]` of a release string such as `6.18.44-fc-v669`.
    pub fn parse(release: &str) -> Option<Self> {
        let numeric: String = release
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = numeric.split('.').filter(|p| !p.is_empty());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(KernelVersion {
            major,
            minor,
            patch,
        })
    }

    pub fn at_least(&self, other: KernelVersion) -> bool {
        (self.major, self.minor) >= (other.major, other.minor)
    }
}

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Sysctls bearing on zerocopy; `None` means the file could not be read (reason in `probes`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Sysctls {
    /// `net.core.optmem_max`: caps per-socket option memory, which holds zerocopy notifications.
    pub optmem_max: Option<u64>,
    /// `net.ipv4.ip_forward`.
    #[serde(default)]
    pub ip_forward: Option<u64>,
    /// `net.core.wmem_max`.
    #[serde(default)]
    pub wmem_max: Option<u64>,
    /// Anything else read, by dotted name.
    #[serde(default)]
    pub other: BTreeMap<String, String>,
    /// Sysctls this kernel keeps host-wide (absent from the diagnosed namespace's /proc/sys,
    /// as `net.core.optmem_max` before Linux 6.8), read in the initial namespace instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_wide: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct ProcessLimits {
    /// `RLIMIT_MEMLOCK` soft limit in bytes; `None` = unlimited.
    pub memlock_soft: Option<u64>,
    /// Bytes already locked by the probing user (`locked_vm` is charged per user).
    #[serde(default)]
    pub locked_vm: Option<u64>,
    /// Whether the probing process has CAP_IPC_LOCK (pinned pages are then not charged).
    pub cap_ipc_lock: bool,
    /// Whether it has CAP_NET_ADMIN and CAP_SYS_PTRACE (tap probe needs them).
    #[serde(default)]
    pub cap_net_admin: bool,
    #[serde(default)]
    pub cap_sys_ptrace: bool,
    #[serde(default)]
    pub cap_sys_admin: bool,
    pub uid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct ProbeStatus {
    pub name: ProbeName,
    pub status: ProbeState,
    pub detail: String,
}

/// The probes zcdoctor has; the serde names are the `probes[].name` of recordings and reports.
#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeName {
    Kernel,
    Sysctls,
    Limits,
    Links,
    Features,
    Path,
    Tc,
    Nfqueue,
    Taps,
    Process,
    Live,
}

impl ProbeName {
    pub const ALL: [ProbeName; 11] = [
        ProbeName::Kernel,
        ProbeName::Sysctls,
        ProbeName::Limits,
        ProbeName::Links,
        ProbeName::Features,
        ProbeName::Path,
        ProbeName::Tc,
        ProbeName::Nfqueue,
        ProbeName::Taps,
        ProbeName::Process,
        ProbeName::Live,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeName::Kernel => "kernel",
            ProbeName::Sysctls => "sysctls",
            ProbeName::Limits => "limits",
            ProbeName::Links => "links",
            ProbeName::Features => "features",
            ProbeName::Path => "path",
            ProbeName::Tc => "tc",
            ProbeName::Nfqueue => "nfqueue",
            ProbeName::Taps => "taps",
            ProbeName::Process => "process",
            ProbeName::Live => "live",
        }
    }
}

impl std::fmt::Display for ProbeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for ProbeName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProbeName::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ProbeName::ALL.iter().map(|p| p.as_str()).collect();
                format!("no probe named {s:?}; probes: {}", names.join(", "))
            })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProbeState {
    Ok,
    Skipped,
    Error,
}

/// A system call or netlink request that failed, as a probe saw it: the operation and the
/// errno, so checks match on the kind of failure, never on prose.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
pub struct OsError {
    /// What was attempted: `pidfd_getfd(pid 812, fd 5)`, `getsockopt(PACKET_IGNORE_OUTGOING)`.
    pub op: String,
    /// The raw errno value (`libc::EPERM`, …).
    pub errno: i32,
}

impl OsError {
    pub fn new(op: impl Into<String>, errno: nix::errno::Errno) -> OsError {
        OsError {
            op: op.into(),
            errno: errno as i32,
        }
    }

    pub fn errno(&self) -> nix::errno::Errno {
        nix::errno::Errno::from_raw(self.errno)
    }
}

impl std::fmt::Display for OsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.errno == ENOTSUPP {
            return write!(f, "{}: operation not supported (ENOTSUPP, 524)", self.op);
        }
        let e = self.errno();
        write!(f, "{}: {} ({e:?})", self.op, e.desc())
    }
}

impl std::error::Error for OsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_releases() {
        assert_eq!(
            KernelVersion::parse("6.18.44-fc-v669"),
            Some(KernelVersion {
                major: 6,
                minor: 18,
                patch: 44
            })
        );
        assert_eq!(
            KernelVersion::parse("4.18.0-553.el8_10.x86_64"),
            Some(KernelVersion {
                major: 4,
                minor: 18,
                patch: 0
            })
        );
        assert_eq!(KernelVersion::parse("5.4"), Some(KernelVersion::new(5, 4)));
        assert_eq!(KernelVersion::parse("garbage"), None);
        assert_eq!(KernelVersion::parse("6"), None);
    }

    #[test]
    fn probe_names_parse() {
        for p in ProbeName::ALL {
            assert_eq!(p.as_str().parse::<ProbeName>(), Ok(p));
        }
        assert!("nope".parse::<ProbeName>().is_err());
    }

    #[test]
    fn version_ordering_ignores_patch() {
        let v = KernelVersion::parse("6.15.0").unwrap();
        assert!(v.at_least(KernelVersion::new(6, 15)));
        assert!(!v.at_least(KernelVersion::new(6, 17)));
    }
}
