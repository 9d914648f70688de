//! The `tc` probe: the filters and actions on the clsact (or ingress) hooks of every device on
//! the path, as `tc filter show dev DEV ingress|egress` lists them (rtnetlink
//! `RTM_GETTFILTER`): the diagnosed stack here, each path segment's in its namespace.

use std::fs::File;
use std::path::PathBuf;

use super::netns::{self, NetnsHandle};
use super::{Context, GatherError, Outcome, Probe, netlink};
use crate::evidence::{
    Device, Entered, Evidence, ProbeName, Segment, TcFilters, TcProblem, off_path,
};

pub struct TcProbe;

impl Probe for TcProbe {
    fn name(&self) -> ProbeName {
        ProbeName::Tc
    }
    fn reads(&self) -> &'static str {
        "rtnetlink RTM_GETTFILTER of every device on the path: clsact ingress and egress filters, their actions (mirred targets, pedit, csum) and BPF programs (id, name, tag)"
    }
    fn privileges(&self) -> &'static str {
        "none here; CAP_SYS_ADMIN to enter the namespaces of the path's other hops"
    }
    fn gather(&self, _: &mut Context, ev: &mut Evidence) -> Result<Outcome, GatherError> {
        read_stack(&mut ev.stack);
        for seg in ev.path.iter_mut().flat_map(|p| p.segments.iter_mut()) {
            read_segment(seg);
        }
        Ok(outcome(ev))
    }
}

/// The filters of each device of `stack` on the path, in the calling thread's namespace.
fn read_stack(stack: &mut [Device]) {
    let off = off_path(stack);
    for dev in stack.iter_mut().filter(|d| !off.contains(&d.name)) {
        dev.tc = Some(netlink::tc_filters(dev.ifindex));
    }
}

/// A segment's devices, read in its namespace; each records why when it cannot be entered.
fn read_segment(seg: &mut Segment) {
    let entered = match segment_netns(seg) {
        Ok(None) => {
            read_stack(&mut seg.stack);
            return;
        }
        Ok(Some(file)) => {
            let mut stack = seg.stack.clone();
            netns::in_netns(&file, move || {
                read_stack(&mut stack);
                stack
            })
            .map_err(|e| format!("cannot enter its namespace: {}", e.desc()))
        }
        Err(e) => Err(e),
    };
    match entered {
        Ok(stack) => seg.stack = stack,
        Err(error) => {
            for dev in &mut seg.stack {
                dev.tc = Some(TcFilters {
                    problems: vec![TcProblem::Unenterable {
                        error: error.clone(),
                    }],
                    ..TcFilters::default()
                });
            }
        }
    }
}

/// The namespace file of a segment (checked to be the recorded one); `None` for this one.
pub(super) fn segment_netns(seg: &Segment) -> Result<Option<File>, String> {
    let path = match &seg.entered {
        Entered::Current => return Ok(None),
        Entered::Path { path } => PathBuf::from(path),
        Entered::Process { pid } => PathBuf::from(format!("/proc/{pid}/ns/net")),
    };
    let handle = NetnsHandle {
        inode: seg.netns.inode,
        name: seg.netns.name.clone(),
        path,
    };
    handle
        .open()
        .map(Some)
        .map_err(|e| format!("cannot open {}: {e}", handle.path.display()))
}

/// `3 filter(s) with 4 action(s) on 2 of 5 device(s)`, and what could not be read.
fn outcome(ev: &Evidence) -> Outcome {
    let devices: Vec<(&str, &TcFilters)> = ev
        .stack
        .iter()
        .chain(
            ev.path
                .iter()
                .flat_map(|p| &p.segments)
                .flat_map(|s| &s.stack),
        )
        .filter_map(|d| Some((d.name.as_str(), d.tc.as_ref()?)))
        .collect();
    let filters: usize = devices.iter().map(|(_, t)| t.filters.len()).sum();
    let actions: usize = devices
        .iter()
        .flat_map(|(_, t)| &t.filters)
        .map(|f| f.actions.len())
        .sum();
    let with = devices
        .iter()
        .filter(|(_, t)| !t.filters.is_empty())
        .count();
    let detail = format!(
        "{filters} filter(s) with {actions} action(s) on {with} of {} device(s)",
        devices.len()
    );
    let problems: Vec<String> = devices
        .iter()
        .flat_map(|(name, t)| t.problems.iter().map(move |p| format!("{name}: {p}")))
        .collect();
    Outcome::with_problems(detail, &problems)
}
