//! The live probe: the route it took, each traffic pattern's counts and costs, or why it did
//! not send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{LiveNote, OsError, TimestampingFlags, UringSupport};

/// The transport the diagnosis is for and the live probe sends.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash,
)]
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

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct LiveProbe {
    pub protocol: Protocol,
    /// The address traffic was sent to, with port (and the scope of a link-local IPv6 address).
    pub target: std::net::SocketAddr,
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
    pub notes: Vec<LiveNote>,
    /// How busy the host was around the probe, and whether another live probe ran at the same
    /// time (absent in recordings made before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contention: Option<Contention>,
    /// The send APIs asked for (`--api`); absent (sendmsg) in recordings made before it existed.
    #[serde(default, skip_serializing_if = "ApiRequest::is_sendmsg")]
    pub api: ApiRequest,
    /// What the kernel offers for io_uring zerocopy sends; probed only when io_uring was asked
    /// for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_uring: Option<UringSupport>,
    /// The `SO_TIMESTAMPING` flags the probe set on its sockets (`--timestamping`); `None`:
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamping: Option<TimestampingFlags>,
}

impl LiveProbe {
    /// A probe toward `target` that has sent nothing yet.
    pub fn new(protocol: Protocol, target: std::net::SocketAddr, api: ApiRequest) -> LiveProbe {
        LiveProbe {
            protocol,
            target,
            route: None,
            not_run: None,
            not_run_cause: None,
            runs: Vec::new(),
            interrupted: false,
            notes: Vec::new(),
            contention: None,
            api,
            io_uring: None,
            timestamping: None,
        }
    }
}

/// The interface a live run sends through.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash,
)]
#[serde(rename_all = "snake_case")]
pub enum SendApi {
    /// `sendmsg(MSG_ZEROCOPY)`, completions from `MSG_ERRQUEUE`.
    #[default]
    Sendmsg,
    /// `IORING_OP_SEND_ZC` with `IORING_SEND_ZC_REPORT_USAGE`, completions from notification CQEs.
    IoUring,
}

impl SendApi {
    pub fn as_str(self) -> &'static str {
        match self {
            SendApi::Sendmsg => "sendmsg",
            SendApi::IoUring => "io_uring",
        }
    }
    pub fn is_sendmsg(&self) -> bool {
        *self == SendApi::Sendmsg
    }
}

impl std::fmt::Display for SendApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The send APIs a live probe was asked to use (`--api`).
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash,
)]
#[serde(rename_all = "snake_case")]
pub enum ApiRequest {
    #[default]
    Sendmsg,
    IoUring,
    Both,
}

impl ApiRequest {
    pub fn is_sendmsg(&self) -> bool {
        *self == ApiRequest::Sendmsg
    }
    /// The APIs to run, in order.
    pub fn apis(self) -> &'static [SendApi] {
        match self {
            ApiRequest::Sendmsg => &[SendApi::Sendmsg],
            ApiRequest::IoUring => &[SendApi::IoUring],
            ApiRequest::Both => &[SendApi::Sendmsg, SendApi::IoUring],
        }
    }
    pub fn includes_io_uring(self) -> bool {
        self != ApiRequest::Sendmsg
    }
}

/// Facts about CPU contention around the live probe: timings measured under contention say
/// little about what zerocopy gains.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Contention {
    /// Online CPUs (`available_parallelism`).
    #[serde(default)]
    pub cpus: Option<u32>,
    /// Runnable tasks (`/proc/loadavg`, 4th field, before the slash) before the probe,
    /// including the probe itself.
    #[serde(default)]
    pub runnable_before: Option<u32>,
    /// The same after the probe.
    #[serde(default)]
    pub runnable_after: Option<u32>,
    /// One-minute load average (`/proc/loadavg`) after the probe.
    #[serde(default)]
    pub load1_after: Option<f64>,
    /// `/proc/pressure/cpu` `some avg10` (percent of the last 10 s in which a runnable task
    /// waited for a CPU) before and after the probe; absent without PSI.
    #[serde(default)]
    pub cpu_pressure_before: Option<f64>,
    #[serde(default)]
    pub cpu_pressure_after: Option<f64>,
    /// Share of all CPU time stolen by the hypervisor during the probe (`/proc/stat` `steal`
    /// delta over the total delta), 0 to 1.
    #[serde(default)]
    pub steal_fraction: Option<f64>,
    /// Pids of other zcdoctor live probes that ran at the same time (they held or joined
    /// `/run/zcdoctor.live.lock`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_probes: Vec<u32>,
    /// Why the lock could not be used (no other probe can then be seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_error: Option<String>,
}

/// Why the live probe sent nothing.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
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
    /// `--api io_uring`: io_uring zerocopy sends cannot run here (`LiveProbe::io_uring` says
    /// what is missing).
    IoUringUnavailable,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum PhaseEnd {
    Duration,
    ByteCap,
    Interrupted,
    /// Every send kept failing.
    Errors,
    /// The bound on the whole live run (`--max-run-time`) was reached.
    MaxRunTime,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct LiveRun {
    /// The send API: absent (sendmsg) in recordings made before io_uring runs existed.
    #[serde(default, skip_serializing_if = "SendApi::is_sendmsg")]
    pub api: SendApi,
    pub pattern: RunPattern,
    /// Bytes per send call.
    pub send_size: usize,
    /// UDP_SEGMENT size when GSO was used.
    #[serde(default)]
    pub gso_size: Option<u16>,
    /// Zerocopy sends that the kernel accepted (each has a notification id; io_uring: send
    /// CQEs with `res` >= 0).
    pub sends: u64,
    /// Notifications received (ids covered by completion ranges; io_uring: notification CQEs,
    /// less those announced on failed sends).
    pub completions: u64,
    /// Of those, how many carried SO_EE_CODE_ZEROCOPY_COPIED (io_uring: `res` with
    /// IORING_NOTIF_USAGE_ZC_COPIED, one per send, exact). Exact when a path copies all or
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
    /// The egress device's counters just before and just after the zerocopy phase (with its
    /// grace period): what the device really handled while the sends completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_counters: Option<DeviceCounters>,
    /// io_uring: the zerocopy phase sent from a registered buffer (`IORING_RECVSEND_FIXED_BUF`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed_buffers: bool,
    /// `--timestamping`: transmit timestamps read from the error queue (and dropped) in the
    /// zerocopy phase; `None` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamps: Option<u64>,
}

/// A device's counters (`IFLA_STATS64`) around a phase.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct DeviceCounters {
    pub device: String,
    /// `IFLA_INFO_KIND` (`ifb`, `veth`, …); `None` for real NICs.
    #[serde(default)]
    pub kind: Option<String>,
    pub before: LinkCounters,
    pub after: LinkCounters,
}

/// Packet and byte counters of a device.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq,
)]
pub struct LinkCounters {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
}

impl DeviceCounters {
    /// Packets the device took for transmission during the phase. An `ifb` that no tc rule
    /// feeds counts what it is given to transmit as *received* and drops it (`ifb_xmit`,
    /// drivers/net/ifb.c), so for it the receive counter is the transmit count.
    pub fn transmitted_packets(&self) -> u64 {
        if self.kind.as_deref() == Some("ifb") {
            self.after.rx_packets.saturating_sub(self.before.rx_packets)
        } else {
            self.after.tx_packets.saturating_sub(self.before.tx_packets)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
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

/// A phase shorter than this times nothing worth comparing: the sending thread's CPU time
/// is accounted in scheduler ticks (4 ms at HZ=250), and one preemption or timer slip of a few
/// milliseconds is already several percent of a 100 ms phase, a whole phase of a 50 µs one.
pub const MIN_TIMED_SECONDS: f64 = 0.1;
/// A phase with fewer sends than this times the set-up (first page faults, the first
/// notification, the socket's first skb allocations), not the steady state.
pub const MIN_TIMED_SENDS: u64 = 100;

impl Phase {
    /// Long enough, and with enough sends, for its throughput and CPU cost to mean something.
    pub fn timed_enough(&self) -> bool {
        self.seconds >= MIN_TIMED_SECONDS && self.sends >= MIN_TIMED_SENDS
    }
}

impl LiveRun {
    /// The run's name in sentences: `datagram`, or `io_uring datagram`.
    pub fn label(&self) -> String {
        match self.api {
            SendApi::Sendmsg => self.pattern.to_string(),
            api => format!("{api} {}", self.pattern),
        }
    }

    /// Both phases ran and each is [`Phase::timed_enough`].
    pub fn timed_enough(&self) -> bool {
        self.copy_phase.as_ref().is_some_and(Phase::timed_enough)
            && self
                .zerocopy_phase
                .as_ref()
                .is_some_and(Phase::timed_enough)
    }

    /// Zerocopy bytes per CPU-second over copy bytes per CPU-second: what zerocopy saves when
    /// the link, not the CPU, is the bottleneck. `None` unless both phases ran long enough
    /// ([`LiveRun::timed_enough`]).
    pub fn cpu_gain(&self) -> Option<f64> {
        if !self.timed_enough() {
            return None;
        }
        let copy = self.copy_phase.as_ref()?.bytes_per_cpu_second();
        let zc = self.zerocopy_phase.as_ref()?.bytes_per_cpu_second();
        (copy > 0.0).then(|| zc / copy)
    }

    /// Zerocopy throughput over copy throughput; `None` unless both phases ran long enough
    /// ([`LiveRun::timed_enough`]).
    pub fn gain(&self) -> Option<f64> {
        if !self.timed_enough() {
            return None;
        }
        let copy = self.copy_phase.as_ref()?.bytes_per_second();
        let zc = self.zerocopy_phase.as_ref()?.bytes_per_second();
        (copy > 0.0).then(|| zc / copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
