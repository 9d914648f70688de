//! Evidence: everything the probes observed about a host, as plain serde data.
//!
//! Probes are the only code that fills these types; checks only read them. Because it is data,
//! a host can be recorded (`zcdoctor snapshot`) and diagnosed anywhere (`check --from FILE`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped when a field changes meaning; new optional fields do not bump it.
pub const EVIDENCE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// The live probe's result; `None` when no `--target` was given.
    #[serde(default)]
    pub live: Option<LiveProbe>,
    /// What each probe did: ok, skipped or error, and why.
    pub probes: Vec<ProbeStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub hostname: String,
    #[serde(default)]
    pub os: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Kernel {
    /// `uname -r`, verbatim.
    pub release: String,
    /// Parsed from `release`; `None` when it does not start with `X.Y`.
    pub version: Option<KernelVersion>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Device {
    pub name: String,
    pub ifindex: u32,
    pub kind: DeviceKind,
    /// `IFLA_INFO_KIND` verbatim when the kernel gave one (`bond`, `vlan`, …).
    #[serde(default)]
    pub link_kind: Option<String>,
    pub mtu: u32,
    /// Operational state as rtnetlink reports it (`up`, `down`, `unknown`, …).
    pub oper_state: String,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// 0 for the diagnosed device, 1 for its lower devices, and so on.
    pub depth: u32,
    /// The device this one was found below (`None` for the diagnosed device).
    #[serde(default)]
    pub upper: Option<String>,
    /// Names of the devices directly below this one.
    #[serde(default)]
    pub lowers: Vec<String>,
    /// Lower devices that live in another network namespace, by ifindex there.
    #[serde(default)]
    pub lowers_elsewhere: Vec<u32>,
    /// Offload features; `None` when ethtool netlink could not be read (reason in `probes`).
    pub features: Option<Features>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    Physical,
    Loopback,
    Bond,
    Team,
    Vlan,
    Macvlan,
    Macvtap,
    Ipvlan,
    Bridge,
    Veth,
    Tun,
    Ifb,
    Vxlan,
    Geneve,
    Dummy,
    Wireguard,
    Other,
}

impl DeviceKind {
    /// Maps `IFLA_INFO_KIND` (absent for real NICs) to a kind.
    pub fn from_link_kind(kind: Option<&str>, is_loopback: bool) -> Self {
        if is_loopback {
            return DeviceKind::Loopback;
        }
        match kind {
            None => DeviceKind::Physical,
            Some("bond") => DeviceKind::Bond,
            Some("team") => DeviceKind::Team,
            Some("vlan") => DeviceKind::Vlan,
            Some("macvlan") => DeviceKind::Macvlan,
            Some("macvtap") => DeviceKind::Macvtap,
            Some("ipvlan") | Some("ipvtap") => DeviceKind::Ipvlan,
            Some("bridge") => DeviceKind::Bridge,
            Some("veth") => DeviceKind::Veth,
            Some("tun") => DeviceKind::Tun,
            Some("ifb") => DeviceKind::Ifb,
            Some("vxlan") => DeviceKind::Vxlan,
            Some("geneve") => DeviceKind::Geneve,
            Some("dummy") => DeviceKind::Dummy,
            Some("wireguard") => DeviceKind::Wireguard,
            Some(_) => DeviceKind::Other,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            DeviceKind::Physical => "physical",
            DeviceKind::Loopback => "loopback",
            DeviceKind::Bond => "bond",
            DeviceKind::Team => "team",
            DeviceKind::Vlan => "vlan",
            DeviceKind::Macvlan => "macvlan",
            DeviceKind::Macvtap => "macvtap",
            DeviceKind::Ipvlan => "ipvlan",
            DeviceKind::Bridge => "bridge",
            DeviceKind::Veth => "veth",
            DeviceKind::Tun => "tun",
            DeviceKind::Ifb => "ifb",
            DeviceKind::Vxlan => "vxlan",
            DeviceKind::Geneve => "geneve",
            DeviceKind::Dummy => "dummy",
            DeviceKind::Wireguard => "wireguard",
            DeviceKind::Other => "other",
        }
    }
}

/// Offload features by their ethtool names (`tx-scatter-gather`, `tx-checksum-ipv4`, …).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Features(pub BTreeMap<String, FeatureState>);

impl Features {
    pub fn get(&self, name: &str) -> Option<&FeatureState> {
        self.0.get(name)
    }

    pub fn is_active(&self, name: &str) -> bool {
        self.get(name).is_some_and(|f| f.active)
    }
}

/// One feature as `ethtool -k` shows it: `off [requested on]` is `active: false, wanted: true`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeatureState {
    pub active: bool,
    pub wanted: bool,
    /// The driver does not let it change (`[fixed]`).
    pub fixed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeStatus {
    pub name: ProbeName,
    pub status: ProbeState,
    pub detail: String,
}

/// The probes zcdoctor has; the serde names are the `probes[].name` of recordings and reports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeName {
    Kernel,
    Sysctls,
    Limits,
    Links,
    Features,
    Taps,
    Live,
}

impl ProbeName {
    pub const ALL: [ProbeName; 7] = [
        ProbeName::Kernel,
        ProbeName::Sysctls,
        ProbeName::Limits,
        ProbeName::Links,
        ProbeName::Features,
        ProbeName::Taps,
        ProbeName::Live,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeName::Kernel => "kernel",
            ProbeName::Sysctls => "sysctls",
            ProbeName::Limits => "limits",
            ProbeName::Links => "links",
            ProbeName::Features => "features",
            ProbeName::Taps => "taps",
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

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProbeState {
    Ok,
    Skipped,
    Error,
}

/// A system call or netlink request that failed, as a probe saw it: the operation and the
/// errno, so checks match on the kind of failure, never on prose.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
        let e = self.errno();
        write!(f, "{}: {} ({e:?})", self.op, e.desc())
    }
}

impl std::error::Error for OsError {}

// ---------------------------------------------------------------------------------------------
// Packet taps

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
    /// Sentences of fact on anything that could not be read (what failed and what is
    /// therefore missing from the scan); never advice.
    #[serde(default)]
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetnsRef {
    pub inode: u64,
    /// Name under /run/netns, when it has one.
    #[serde(default)]
    pub name: Option<String>,
}

/// A fanout group membership: `getsockopt(PACKET_FANOUT)` split into its halves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fanout {
    /// Group id (low 16 bits).
    pub group: u16,
    /// Fanout type and `PACKET_FANOUT_FLAG_*` bits (high 16 bits), e.g.
    /// `PACKET_FANOUT_FLAG_IGNORE_OUTGOING` (0x4000).
    pub flags: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

// ---------------------------------------------------------------------------------------------
// Live probe

/// The transport the diagnosis is for and the live probe sends.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Udp,
    Tcp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LiveProbe {
    pub protocol: Protocol,
    /// The address traffic was sent to, with port.
    pub target: String,
    /// The route the kernel chose: output device and whether it is local.
    pub route: Option<RouteInfo>,
    /// Set when the probe could not run (for example the route is local); the counters are 0.
    /// A sentence of fact; `not_run_cause` is the same as data.
    #[serde(default)]
    pub not_run: Option<String>,
    /// Why nothing was sent, as data (absent in recordings made before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_run_cause: Option<NotRun>,
    /// One entry per traffic pattern tried (for UDP: MTU-sized datagrams, UDP GSO).
    pub runs: Vec<LiveRun>,
    /// The probe was stopped early (Ctrl-C).
    #[serde(default)]
    pub interrupted: bool,
    /// What the probe noticed while setting up, in sentences (a pattern skipped because the
    /// kernel lacks UDP GSO, `SO_BINDTODEVICE` refused, the path MTU it used, …).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Why the live probe sent nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NotRun {
    /// The target is an address of this host or namespace (route type `local`, or loopback).
    LocalRoute,
    /// The route is not unicast (broadcast, multicast, blackhole, unreachable, …).
    NotUnicast { route_type: RouteType },
    /// The route leaves through another device than the diagnosed one.
    OtherDevice { device: String },
    /// The route names no output device.
    NoDevice,
    /// The kernel had no route, or the lookup failed.
    RouteLookup { error: OsError },
    /// The probe's socket could not be set up.
    Socket { error: OsError },
    /// TCP: the connection to the sink failed (`error`), timed out, or was interrupted.
    Connect {
        #[serde(default)]
        error: Option<OsError>,
        #[serde(default)]
        timed_out: bool,
        #[serde(default)]
        interrupted: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteInfo {
    pub device: Option<String>,
    pub ifindex: Option<u32>,
    pub gateway: Option<String>,
    pub source: Option<String>,
    /// `unicast`, `local`, `broadcast`, … as `ip route` prints it.
    pub route_type: RouteType,
    /// Path MTU from the route or the device.
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// `RTN_*` (include/uapi/linux/rtnetlink.h), serialized as `ip route` names it; a type this
/// table does not know is `type-N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum RouteType {
    Unspec,
    Unicast,
    Local,
    Broadcast,
    Anycast,
    Multicast,
    Blackhole,
    Unreachable,
    Prohibit,
    Throw,
    Nat,
    Xresolve,
    Other(u8),
}

impl RouteType {
    const NAMED: [(RouteType, &'static str); 12] = [
        (RouteType::Unspec, "unspec"),
        (RouteType::Unicast, "unicast"),
        (RouteType::Local, "local"),
        (RouteType::Broadcast, "broadcast"),
        (RouteType::Anycast, "anycast"),
        (RouteType::Multicast, "multicast"),
        (RouteType::Blackhole, "blackhole"),
        (RouteType::Unreachable, "unreachable"),
        (RouteType::Prohibit, "prohibit"),
        (RouteType::Throw, "throw"),
        (RouteType::Nat, "nat"),
        (RouteType::Xresolve, "xresolve"),
    ];

    /// From the kernel's `rtm_type` (`RTN_UNSPEC` is 0, then in the order above).
    pub fn from_rtn(t: u8) -> RouteType {
        RouteType::NAMED
            .get(usize::from(t))
            .map_or(RouteType::Other(t), |(r, _)| *r)
    }
}

impl std::fmt::Display for RouteType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteType::Other(t) => write!(f, "type-{t}"),
            named => {
                let name = RouteType::NAMED
                    .iter()
                    .find(|(r, _)| r == named)
                    .map_or("unspec", |(_, n)| n);
                f.pad(name)
            }
        }
    }
}

impl From<RouteType> for String {
    fn from(r: RouteType) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for RouteType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Some((r, _)) = RouteType::NAMED.iter().find(|(_, n)| *n == s) {
            return Ok(*r);
        }
        s.strip_prefix("type-")
            .and_then(|n| n.parse::<u8>().ok())
            .map(RouteType::Other)
            .ok_or_else(|| format!("{s:?} is not a route type"))
    }
}

/// The traffic shape of one live-probe run.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RunPattern {
    /// UDP datagrams that fit the path MTU.
    Datagram,
    /// UDP_SEGMENT super-datagrams.
    Gso,
    /// UDP datagrams one byte over the path MTU, no GSO (fragmented): an experiment.
    Oversize,
    /// A TCP stream.
    Stream,
}

impl RunPattern {
    pub fn as_str(self) -> &'static str {
        match self {
            RunPattern::Datagram => "datagram",
            RunPattern::Gso => "gso",
            RunPattern::Oversize => "oversize",
            RunPattern::Stream => "stream",
        }
    }
}

impl std::fmt::Display for RunPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why a live-probe phase stopped.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PhaseEnd {
    Duration,
    ByteCap,
    Interrupted,
    /// Every send kept failing.
    Errors,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LiveRun {
    pub pattern: RunPattern,
    /// Bytes per send call.
    pub send_size: usize,
    /// UDP_SEGMENT size when GSO was used.
    #[serde(default)]
    pub gso_size: Option<u16>,
    /// Zerocopy sends that the kernel accepted (each has a notification id).
    pub sends: u64,
    /// Notifications received (ids covered by completion ranges).
    pub completions: u64,
    /// Of those, how many carried SO_EE_CODE_ZEROCOPY_COPIED. Exact when a path copies all or
    /// nothing; approximate when copying starts or stops mid-run, because the kernel merges a
    /// completion into the queued record before it whatever their codes, keeping the earlier
    /// record's code (`__msg_zerocopy_callback`, net/core/skbuff.c).
    pub copied: u64,
    /// Sends still without a completion after the grace period.
    pub missing: u64,
    /// Sends refused with ENOBUFS.
    pub enobufs: u64,
    /// Error-queue records read; the kernel merges consecutive completions into one record, so
    /// this is usually far below `completions`.
    #[serde(default)]
    pub notifications: u64,
    /// Other send errors of the zerocopy phase (ENOBUFS is in `enobufs`), by errno name.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// The same traffic without MSG_ZEROCOPY.
    pub copy_phase: Option<Phase>,
    /// With MSG_ZEROCOPY.
    pub zerocopy_phase: Option<Phase>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Phase {
    pub bytes: u64,
    pub sends: u64,
    pub seconds: f64,
    /// System CPU time of the sending thread.
    pub cpu_system_seconds: f64,
    /// User CPU time of the sending thread.
    #[serde(default)]
    pub cpu_user_seconds: f64,
    /// Send errors of this phase by errno name (`ENOBUFS`, `EAGAIN`, `EIO`, …).
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Why the phase stopped.
    #[serde(default)]
    pub ended_by: Option<PhaseEnd>,
}

impl Phase {
    pub fn bytes_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / self.seconds
        } else {
            0.0
        }
    }
}

impl Phase {
    /// Bytes sent per second of the sending thread's CPU (system + user).
    pub fn bytes_per_cpu_second(&self) -> f64 {
        let cpu = self.cpu_system_seconds + self.cpu_user_seconds;
        if cpu > 0.0 {
            self.bytes as f64 / cpu
        } else {
            0.0
        }
    }
}

impl LiveRun {
    /// Zerocopy bytes per CPU-second over copy bytes per CPU-second: what zerocopy saves when
    /// the link, not the CPU, is the bottleneck. `None` unless both phases ran.
    pub fn cpu_gain(&self) -> Option<f64> {
        let copy = self.copy_phase.as_ref()?.bytes_per_cpu_second();
        let zc = self.zerocopy_phase.as_ref()?.bytes_per_cpu_second();
        (copy > 0.0).then(|| zc / copy)
    }

    /// Zerocopy throughput over copy throughput; `None` unless both phases ran.
    pub fn gain(&self) -> Option<f64> {
        let copy = self.copy_phase.as_ref()?.bytes_per_second();
        let zc = self.zerocopy_phase.as_ref()?.bytes_per_second();
        (copy > 0.0).then(|| zc / copy)
    }
}

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
    fn route_types_keep_their_ip_route_names() {
        assert_eq!(RouteType::from_rtn(libc::RTN_LOCAL), RouteType::Local);
        assert_eq!(RouteType::from_rtn(libc::RTN_XRESOLVE), RouteType::Xresolve);
        assert_eq!(RouteType::from_rtn(42).to_string(), "type-42");
        for t in 0..=255u8 {
            let r = RouteType::from_rtn(t);
            assert_eq!(RouteType::try_from(r.to_string()), Ok(r));
        }
        assert!(RouteType::try_from("sideways".to_string()).is_err());
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
