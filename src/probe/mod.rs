//! Probes: the only code that touches the OS. [`gather`] runs them in order and assembles
//! [`Evidence`]; every probe records what it did in `Evidence::probes`.

pub mod host;
pub mod live;
pub mod netlink;
mod sockopt;
pub mod stack;
pub mod taps;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;

use crate::evidence::{EVIDENCE_VERSION, Evidence, ProbeName, ProbeState, ProbeStatus};

/// Where the live probe sends: an address, or IFACE's default gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetSpec {
    Addr(SocketAddr),
    Gateway { port: u16 },
}

#[derive(Debug, Clone)]
pub struct LiveRequest {
    pub target: TargetSpec,
    pub protocol: live::Protocol,
    pub duration: std::time::Duration,
    pub byte_cap: u64,
    /// Also send datagrams over the path MTU without UDP_SEGMENT (shows fragmentation copies).
    pub oversize: bool,
}

#[derive(Debug, Clone, Default)]
pub struct GatherOptions {
    /// `None`: the device of the default route.
    pub iface: Option<String>,
    /// Scan packet taps (on by default; off for a quick offload-only look).
    pub taps: bool,
    pub live: Option<LiveRequest>,
}

#[derive(Debug)]
pub enum GatherError {
    UnknownInterface(stack::UnknownInterface),
    NoDefaultRoute { existing: Vec<String> },
    NoGateway { iface: String },
    Netlink(netlink::NetlinkError),
}

impl std::fmt::Display for GatherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatherError::UnknownInterface(e) => e.fmt(f),
            GatherError::NoDefaultRoute { existing } => write!(
                f,
                "no default route in this network namespace, so no interface to pick; name one of: {}",
                existing.join(", ")
            ),
            GatherError::NoGateway { iface } => write!(
                f,
                "--target gateway: {iface} has no default gateway; give an address with --target ADDR"
            ),
            GatherError::Netlink(e) => write!(f, "cannot read the link table: {e}"),
        }
    }
}

impl std::error::Error for GatherError {}

fn status(name: ProbeName, state: ProbeState, detail: impl Into<String>) -> ProbeStatus {
    ProbeStatus {
        name,
        status: state,
        detail: detail.into(),
    }
}

/// The device of the lowest-metric default route (IPv4 first, then IPv6).
fn default_interface(links: &[netlink::Link]) -> Option<(String, Option<IpAddr>)> {
    for v6 in [false, true] {
        if let Ok(routes) = netlink::default_routes(v6) {
            for r in routes {
                if let Some(l) = links.iter().find(|l| l.ifindex == r.ifindex) {
                    return Some((l.name.clone(), r.gateway));
                }
            }
        }
    }
    None
}

/// Reads the host into Evidence. Fails only when there is nothing to diagnose (no such
/// interface, no link table); every other probe records its own failure and the rest go on.
///
/// `stop` ends the live probe early; `on_tick` is its progress callback (see [`live::run`]).
pub fn gather(
    opts: &GatherOptions,
    stop: &AtomicBool,
    on_tick: &mut dyn FnMut(&live::Tick),
) -> Result<Evidence, GatherError> {
    let mut probes = Vec::new();
    let kernel = host::kernel();
    probes.push(status(
        ProbeName::Kernel,
        ProbeState::Ok,
        kernel.release.clone(),
    ));

    let (sysctls, problems) = host::sysctls();
    probes.push(if problems.is_empty() {
        status(
            ProbeName::Sysctls,
            ProbeState::Ok,
            "read in the diagnosed namespace",
        )
    } else {
        status(ProbeName::Sysctls, ProbeState::Error, problems.join("; "))
    });

    let links = netlink::dump_links().map_err(GatherError::Netlink)?;
    let iface = match &opts.iface {
        Some(name) => name.clone(),
        None => match default_interface(&links) {
            Some((name, _)) => name,
            None => {
                let mut existing: Vec<String> = links.iter().map(|l| l.name.clone()).collect();
                existing.sort();
                return Err(GatherError::NoDefaultRoute { existing });
            }
        },
    };
    let mut stack =
        stack::stack_from_links(&links, &iface).map_err(GatherError::UnknownInterface)?;
    probes.push(status(
        ProbeName::Links,
        ProbeState::Ok,
        format!("{} device(s) in the stack of {iface}", stack.len()),
    ));

    let mut feature_errors = Vec::new();
    for dev in &mut stack {
        match netlink::features(&dev.name) {
            Ok(f) => dev.features = Some(f),
            Err(e) => feature_errors.push(format!("{}: {e}", dev.name)),
        }
    }
    probes.push(if feature_errors.is_empty() {
        status(
            ProbeName::Features,
            ProbeState::Ok,
            "ethtool netlink FEATURES_GET",
        )
    } else {
        status(
            ProbeName::Features,
            ProbeState::Error,
            feature_errors.join("; "),
        )
    });

    let process = host::process_limits();
    let taps = if opts.taps {
        let scan = taps::scan();
        let detail = format!(
            "{} packet socket(s) in {} namespace(s); {} processes scanned, {} unreadable, {} vanished",
            scan.sockets.len(),
            scan.namespaces_scanned,
            scan.processes_scanned,
            scan.processes_unreadable,
            scan.processes_vanished
        );
        let detail = if scan.problems.is_empty() {
            detail
        } else {
            format!("{detail}; {}", scan.problems.join("; "))
        };
        let state = if process.cap_sys_ptrace && process.cap_sys_admin {
            ProbeState::Ok
        } else {
            ProbeState::Error
        };
        let detail = if state == ProbeState::Ok {
            detail
        } else {
            format!(
                "{detail}; without CAP_SYS_PTRACE and CAP_SYS_ADMIN (run as root) owners and PACKET_IGNORE_OUTGOING of other users' sockets cannot be read"
            )
        };
        probes.push(status(ProbeName::Taps, state, detail));
        Some(scan)
    } else {
        probes.push(status(
            ProbeName::Taps,
            ProbeState::Skipped,
            "--no-taps given",
        ));
        None
    };

    let live = match &opts.live {
        None => {
            probes.push(status(
                ProbeName::Live,
                ProbeState::Skipped,
                format!("no --target: run `zcdoctor check {iface} --target ADDR` to send a short burst and prove the verdict"),
            ));
            None
        }
        Some(req) => {
            let target = match req.target {
                TargetSpec::Addr(a) => a,
                TargetSpec::Gateway { port } => {
                    let gw = netlink::default_routes(false)
                        .into_iter()
                        .chain(netlink::default_routes(true))
                        .flatten()
                        .filter(|r| stack.first().is_some_and(|d| d.ifindex == r.ifindex))
                        .find_map(|r| r.gateway);
                    match gw {
                        Some(ip) => SocketAddr::new(ip, port),
                        None => return Err(GatherError::NoGateway { iface }),
                    }
                }
            };
            let lopts = live::LiveOptions {
                target,
                protocol: req.protocol,
                iface: iface.clone(),
                duration: req.duration,
                byte_cap: req.byte_cap,
                oversize: req.oversize,
            };
            let result = live::run(&lopts, stop, on_tick);
            probes.push(status(
                ProbeName::Live,
                if result.not_run.is_some() {
                    ProbeState::Skipped
                } else {
                    ProbeState::Ok
                },
                result
                    .not_run
                    .clone()
                    .unwrap_or_else(|| format!("{} to {}", result.protocol, result.target)),
            ));
            Some(result)
        }
    };

    Ok(Evidence {
        evidence_version: EVIDENCE_VERSION,
        host: host::host(),
        kernel,
        sysctls,
        interface: iface,
        stack,
        process: Some(process),
        taps,
        live,
        probes,
    })
}
