//! A command's request carried out: what `check` and `snapshot` ask the probes for. The CLI
//! only parses; reading the `--pid` processes, their namespace and routes, and entering
//! `--netns` happen here.

use std::sync::atomic::AtomicBool;

use super::process::routes::{PidPlan, serving};
use super::{GatherError, GatherOptions, gather, live, netns};
use crate::evidence::Evidence;

/// What to gather: the probes' options (with `pids`), and where.
#[derive(Debug, Clone)]
pub struct Request {
    pub opts: GatherOptions,
    /// `--netns`: a name under /run/netns, a path, or a pid living there.
    pub netns: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error("--netns {spec}: not a network namespace")]
    NotNetns {
        spec: String,
        #[source]
        error: std::io::Error,
    },
    #[error("--netns {spec}: cannot open {path}")]
    OpenNetns {
        spec: String,
        path: String,
        #[source]
        error: std::io::Error,
    },
    #[error("--netns {spec}: cannot enter it")]
    EnterNetns {
        spec: String,
        #[source]
        error: nix::Error,
    },
}

/// Gathers `req`'s evidence. `--pid` without an interface or target: the path of the
/// processes' zerocopy sockets, from their namespace toward their peers (the largest group's
/// path is the diagnosed one), each other way read into `serving`.
pub fn gather_request(
    req: &Request,
    stop: &AtomicBool,
    on_tick: &mut (dyn FnMut(&live::Tick) + Send),
) -> Result<Evidence, RequestError> {
    let mut opts = req.opts.clone();
    let mut netns = req.netns.clone();
    let follow = !opts.pids.is_empty() && opts.iface.is_none() && opts.live.is_none();
    let plan = follow.then(|| PidPlan::read(&opts.pids));
    if let Some(plan) = &plan {
        if let (None, Some(pid)) = (&netns, plan.enter_through) {
            netns = Some(pid.to_string());
        }
        // The processes were just read: the process probe reuses that reading.
        opts.prefetched = plan.processes.clone();
    }
    let run = |on_tick: &mut (dyn FnMut(&live::Tick) + Send)| {
        let mut opts = opts.clone();
        // The sockets' peer is followed only from the namespace they live in.
        if let Some(plan) = &plan
            && let Some((peer, routing)) = plan.first()
        {
            if !plan.is_here() {
                return Err(GatherError::SocketsElsewhere {
                    pid: plan.pids.first().copied().unwrap_or_default(),
                    netns: plan.netns.unwrap_or_default(),
                });
            }
            opts.path_target = Some(peer);
            opts.path_routing = routing;
        }
        let mut ev = gather(&opts, stop, on_tick)?;
        if let Some(plan) = &plan {
            ev.serving = serving(plan, &opts, stop, &ev);
            ev.unpeered = plan.unpeered.clone();
        }
        Ok(ev)
    };
    let Some(spec) = &netns else {
        return Ok(run(on_tick)?);
    };
    // Every probe runs on one thread that entered the namespace: they all read "the calling
    // thread's namespace", as under `ip netns exec`.
    let ns = netns::by_spec(spec).map_err(|error| RequestError::NotNetns {
        spec: spec.clone(),
        error,
    })?;
    let file = ns.open().map_err(|error| RequestError::OpenNetns {
        spec: spec.clone(),
        path: ns.path.display().to_string(),
        error,
    })?;
    let evidence =
        netns::in_netns(&file, || run(on_tick)).map_err(|error| RequestError::EnterNetns {
            spec: spec.clone(),
            error,
        })?;
    Ok(evidence?)
}
