//! Probes: the only code that touches the OS. Each [`Probe`] reads one part of the host into
//! [`Evidence`] and says what it did (`Evidence::probes`); [`REGISTRY`] lists them in the order
//! they run, and [`gather`] runs the selected ones. Adding a probe is one file with a `Probe`
//! impl and one line in [`REGISTRY`] (plus its name in [`ProbeName`]).
//!
//! Probes record facts, never advice: what a fact means and what to do about it is the checks'
//! business.

pub mod features;
pub mod host;
pub mod live;
pub mod netlink;
pub mod netns;
pub mod nfqueue;
pub mod path;
pub mod process;
pub mod request;
mod sockopt;
pub mod stack;
pub mod taps;
pub mod tc;
pub mod watch;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;

use crate::evidence::{
    EVIDENCE_VERSION, Evidence, Kernel, ProbeName, ProbeState, ProbeStatus, Protocol, Sysctls,
};

/// Where the live probe sends: an address, IFACE's default gateway, or a link-local IPv6
/// address whose scope is an interface name (resolved by the live probe in the namespace it
/// runs in: parsing the command line asks the kernel nothing).
#[derive(Debug, Clone, PartialEq)]
pub enum TargetSpec {
    Addr(SocketAddr),
    Gateway {
        port: u16,
    },
    ScopedByName {
        ip: std::net::Ipv6Addr,
        port: u16,
        iface: String,
    },
    /// `vsock:CID:PORT`: the vsock live probe, with no IP path to read.
    Vsock {
        cid: u32,
        port: u32,
    },
}

impl TargetSpec {
    pub fn is_vsock(&self) -> bool {
        matches!(self, TargetSpec::Vsock { .. })
    }
}

#[derive(Debug, Clone)]
pub struct LiveRequest {
    pub target: TargetSpec,
    pub protocol: Protocol,
    pub duration: std::time::Duration,
    pub byte_cap: u64,
    /// Also send datagrams over the path MTU without UDP_SEGMENT (shows fragmentation copies).
    pub oversize: bool,
    /// Bound on the whole live run ([`live::DEFAULT_MAX_RUN_TIME`]).
    pub max_run_time: std::time::Duration,
    /// Which send APIs the live probe uses (`--api`).
    pub api: crate::evidence::ApiRequest,
    /// io_uring: send the zerocopy phase from a registered buffer (`--uring-fixed-buffers`).
    pub uring_fixed_buffers: bool,
    /// Transmit timestamps without OPT_TSONLY on the probe's sockets (`--timestamping`).
    pub timestamping: bool,
    /// vsock probe: its own SO_VM_SOCKETS_BUFFER_SIZE (`--vsock-buffer`).
    pub vsock_buffer: Option<u64>,
}

/// Which probes run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Selection {
    /// Every probe (the live probe only with a [`LiveRequest`]).
    #[default]
    All,
    /// Only these, and the required ones.
    Only(BTreeSet<ProbeName>),
    /// All but these.
    Skip(BTreeSet<ProbeName>),
}

impl Selection {
    /// A deselected probe's status detail: the option that deselected it.
    fn why_not(&self, name: ProbeName) -> String {
        match self {
            Selection::All => String::new(),
            Selection::Skip(_) => format!("not run: --skip {name}"),
            Selection::Only(names) => {
                let names: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
                format!("not run: --only {}", names.join(","))
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct GatherOptions {
    /// The destination the path is followed toward when no live probe runs (`check --pid`: the
    /// peer of the process's zerocopy socket); the live probe's target wins when both are set.
    pub path_target: Option<std::net::IpAddr>,
    /// How the sockets going to `path_target` are routed (their source, mark, bound device):
    /// every lookup of the route to it uses the same.
    pub path_routing: crate::evidence::SocketRouting,
    /// `None`: the device of the default route.
    pub iface: Option<String>,
    pub selection: Selection,
    pub live: Option<LiveRequest>,
    /// Applications to diagnose by pid (`--pid`).
    pub pids: Vec<u32>,
    /// Those already read (`check --pid` reads them first to find their sockets' peers): the
    /// process probe records these instead of reading them again.
    pub prefetched: Vec<crate::evidence::ProcessEvidence>,
    /// Process names of the daemons known to hold taps (`checks/tap-daemons.toml`, passed in by
    /// the caller): the tap probe walks their descriptors first.
    pub known_tap_daemons: Vec<String>,
}

/// Why there is nothing to diagnose. Every other failure is a probe's own status.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error(transparent)]
    UnknownInterface(#[from] stack::UnknownInterface),
    #[error(
        "no default route in this network namespace, so no interface to pick; name one of: {}",
        existing.join(", ")
    )]
    NoDefaultRoute { existing: Vec<String> },
    #[error("--target gateway: {iface} has no default gateway; give an address with --target ADDR")]
    NoGateway { iface: String },
    #[error("cannot read the link table: {0}")]
    Netlink(netlink::NetlinkError),
    #[error("the {0} probe is required: nothing can be diagnosed without it")]
    Required(ProbeName),
    #[error("no route to {peer}, the peer of the diagnosed process's zerocopy sockets: {error}")]
    NoRouteToPeer {
        peer: std::net::IpAddr,
        error: netlink::NetlinkError,
    },
    #[error(
        "--pid {pid}: its zerocopy sockets live in network namespace net:[{netns}], not in the one diagnosed; drop --netns (zcdoctor enters theirs when a diagnosed process lives there), --netns a path to theirs, or name an interface"
    )]
    SocketsElsewhere { pid: u32, netns: u64 },
    #[error("--pid {pid}: no such process")]
    NoSuchProcess { pid: u32 },
    #[error(
        "--target: no interface named {iface:?} for the scope of the link-local address ({error})"
    )]
    NoScope { iface: String, error: String },
}

/// What a probe did: its state and one line of fact.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub state: ProbeState,
    pub detail: String,
}

impl Outcome {
    pub fn new(state: ProbeState, detail: impl Into<String>) -> Outcome {
        Outcome {
            state,
            detail: detail.into(),
        }
    }

    pub fn ok(detail: impl Into<String>) -> Outcome {
        Outcome::new(ProbeState::Ok, detail)
    }

    /// Ok with `detail`, or an error that also lists `problems` (`where: what` each).
    pub fn with_problems(detail: String, problems: &[String]) -> Outcome {
        if problems.is_empty() {
            Outcome::ok(detail)
        } else {
            Outcome::new(
                ProbeState::Error,
                format!("{detail}; {}", problems.join("; ")),
            )
        }
    }
}

/// What a probe may use while it runs.
pub struct Context<'a> {
    pub opts: &'a GatherOptions,
    /// Set by the command line on SIGINT/SIGTERM/SIGHUP: long probes stop soon after.
    pub stop: &'a AtomicBool,
    /// The live probe's progress, at most every 200 ms (the command line draws it).
    pub on_tick: &'a mut dyn FnMut(&live::Tick),
}

/// One source of evidence.
pub trait Probe: Sync {
    fn name(&self) -> ProbeName;
    /// What it reads, for `zcdoctor probes`.
    fn reads(&self) -> &'static str;
    /// The privileges it needs for a complete answer, for `zcdoctor probes`.
    fn privileges(&self) -> &'static str;
    /// A required probe cannot be skipped: without it there is nothing to diagnose.
    fn required(&self) -> bool {
        false
    }
    /// Why it does not run although selected (the live probe without a target), if so.
    fn not_requested(&self, _opts: &GatherOptions) -> Option<String> {
        None
    }
    /// Reads its part of the host into `ev`. `Err` only when nothing can be diagnosed.
    fn gather(&self, cx: &mut Context, ev: &mut Evidence) -> Result<Outcome, GatherError>;
}

impl GatherOptions {
    /// The kernel's route to `dst`, looked up as the diagnosed sockets are routed when `dst` is
    /// the path target (`ip route get DST from SRC mark M oif DEV`).
    pub fn route(
        &self,
        dst: std::net::IpAddr,
    ) -> Result<crate::evidence::RouteInfo, netlink::NetlinkError> {
        if self.live.is_none() && self.path_target == Some(dst) {
            let query = netlink::RouteQuery::for_socket(dst, &self.path_routing);
            // A source that is not (or no longer) local, as a transparent or freebind socket
            // has, makes the kernel refuse the lookup (EINVAL): the rest still decides the route.
            netlink::route_lookup(&query).or_else(|e| match query.src {
                Some(_) => netlink::route_lookup(&netlink::RouteQuery { src: None, ..query }),
                None => Err(e),
            })
        } else {
            // Inside a VRF the diagnosed device selects the table, as it does for the
            // probe's socket bound to it.
            let links = match &self.iface {
                Some(_) => netlink::dump_links().unwrap_or_default(),
                None => Vec::new(),
            };
            let iface = self.iface.as_deref().unwrap_or_default();
            netlink::route_lookup(&netlink::RouteQuery::bound_to(dst, iface, &links))
        }
    }

    /// The destination the path and the bridge port choice are built for.
    pub fn destination(&self) -> Option<std::net::IpAddr> {
        match self.live.as_ref().map(|l| &l.target) {
            Some(TargetSpec::Addr(a)) => Some(a.ip()),
            Some(TargetSpec::ScopedByName { ip, .. }) => Some(std::net::IpAddr::V6(*ip)),
            _ => self.path_target,
        }
    }
}

/// Every probe, in the order they run: later probes use what earlier ones recorded (the stack
/// before its features, taps and live probe).
pub static REGISTRY: &[&dyn Probe] = &[
    &host::KernelProbe,
    &host::SysctlsProbe,
    &host::LimitsProbe,
    &stack::LinksProbe,
    &features::FeaturesProbe,
    &path::PathProbe,
    &tc::TcProbe,
    &nfqueue::NfQueueProbe,
    &taps::TapsProbe,
    &process::ProcessProbe,
    &live::LiveProbeRunner,
];

/// The registered probe called `name`.
pub fn probe(name: ProbeName) -> Option<&'static dyn Probe> {
    REGISTRY.iter().copied().find(|p| p.name() == name)
}

/// Reads the host into Evidence with the selected probes. Fails only when there is nothing to
/// diagnose (no such interface, no link table, a required probe deselected); every other probe
/// records its own failure and the rest go on. `stop` ends long probes early; `on_tick` is the
/// live probe's progress callback.
pub fn gather(
    opts: &GatherOptions,
    stop: &AtomicBool,
    on_tick: &mut dyn FnMut(&live::Tick),
) -> Result<Evidence, GatherError> {
    if let Some(&pid) = opts.pids.iter().find(|p| !process::exists(**p)) {
        return Err(GatherError::NoSuchProcess { pid });
    }
    if opts.live.as_ref().is_some_and(|l| l.target.is_vsock()) {
        return run(opts, stop, on_tick, VSOCK_PROBES);
    }
    match run(opts, stop, on_tick, REGISTRY) {
        // `check --pid` of a process with no IP destination in a namespace with no default
        // route (a guest agent that only speaks vsock): the processes alone, no IP path.
        Err(GatherError::NoDefaultRoute { .. })
            if !opts.pids.is_empty() && opts.iface.is_none() && opts.live.is_none() =>
        {
            run(opts, stop, on_tick, PROCESS_PROBES)
        }
        other => other,
    }
}

/// `check --pid` with no IP path to read: the host and the processes.
pub static PROCESS_PROBES: &[&dyn Probe] = &[
    &host::KernelProbe,
    &host::SysctlsProbe,
    &host::LimitsProbe,
    &process::ProcessProbe,
];

/// The probes of a vsock target: the host, the diagnosed processes and the live probe; no
/// device or path (vsock does not cross the IP stack).
pub static VSOCK_PROBES: &[&dyn Probe] = &[
    &host::KernelProbe,
    &host::SysctlsProbe,
    &host::LimitsProbe,
    &process::ProcessProbe,
    &live::LiveProbeRunner,
];

/// The probes that read one destination's way out: the device its route leaves by with the
/// stack below it, their offload features, the path beyond, and the tc filters on it.
pub static ROUTE_PROBES: &[&dyn Probe] = &[
    &stack::LinksProbe,
    &features::FeaturesProbe,
    &path::PathProbe,
    &tc::TcProbe,
    &nfqueue::NfQueueProbe,
];

/// Reads only the way toward `opts.path_target` ([`ROUTE_PROBES`], as selected): another
/// destination of a process diagnosed by pid. The result's `interface`, `stack` and `path` are
/// the route; the rest is left empty.
pub fn gather_route(opts: &GatherOptions, stop: &AtomicBool) -> Result<Evidence, GatherError> {
    run(opts, stop, &mut |_| {}, ROUTE_PROBES)
}

/// Evidence with only the host and kernel read: what `watch` reports beside its counts when
/// the static diagnosis could not be made (no interface to diagnose).
pub fn bare_evidence() -> Evidence {
    let mut ev = empty_evidence();
    ev.kernel = host::kernel();
    ev
}

fn empty_evidence() -> Evidence {
    Evidence {
        evidence_version: EVIDENCE_VERSION,
        host: host::host(),
        kernel: Kernel {
            release: String::new(),
            version: None,
        },
        sysctls: Sysctls::default(),
        interface: String::new(),
        stack: Vec::new(),
        process: None,
        taps: None,
        nfqueue: None,
        path: None,
        live: None,
        watch: None,
        vsock: None,
        processes: Vec::new(),
        serving: None,
        unpeered: Vec::new(),
        probes: Vec::new(),
    }
}

fn run(
    opts: &GatherOptions,
    stop: &AtomicBool,
    on_tick: &mut dyn FnMut(&live::Tick),
    probes: &[&dyn Probe],
) -> Result<Evidence, GatherError> {
    let mut ev = empty_evidence();
    let mut cx = Context {
        opts,
        stop,
        on_tick,
    };
    for probe in probes {
        let name = probe.name();
        let deselected = match &opts.selection {
            Selection::All => false,
            Selection::Only(names) => !names.contains(&name) && !probe.required(),
            Selection::Skip(names) => names.contains(&name),
        };
        if deselected && probe.required() {
            return Err(GatherError::Required(name));
        }
        let outcome = if deselected {
            Outcome::new(ProbeState::Skipped, opts.selection.why_not(name))
        } else if let Some(why) = probe.not_requested(opts) {
            Outcome::new(ProbeState::Skipped, why)
        } else {
            probe.gather(&mut cx, &mut ev)?
        };
        ev.probes.push(ProbeStatus {
            name,
            status: outcome.state,
            detail: outcome.detail,
        });
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_has_every_probe_once_in_order() {
        let names: Vec<ProbeName> = REGISTRY.iter().map(|p| p.name()).collect();
        assert_eq!(names, ProbeName::ALL);
        for p in REGISTRY {
            assert!(!p.reads().is_empty() && !p.privileges().is_empty());
        }
    }

    #[test]
    fn required_probes_cannot_be_skipped() {
        let opts = GatherOptions {
            selection: Selection::Skip(BTreeSet::from([ProbeName::Links])),
            ..GatherOptions::default()
        };
        let err =
            gather(&opts, &AtomicBool::new(false), &mut |_| {}).expect_err("links is required");
        assert!(matches!(err, GatherError::Required(ProbeName::Links)));
    }
}
