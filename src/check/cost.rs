//! Cost: whether MSG_ZEROCOPY pays on this path, from the live probe's copy and zerocopy phases.
//! Slower means less throughput *and* no CPU saved per byte: on a real NIC the link is often
//! the bottleneck, and then the CPU zerocopy saves is the gain. The rules
//! `live_timing_unreliable` and `zerocopy_slower` raise what this says.

use super::live::primary_runs;
use crate::evidence::{Contention, LiveProbe, LiveRun};

/// Hypervisor steal above this share of CPU time during the probe makes its timings unreliable:
/// a stolen slice of a few percent lands on one phase or the other, not on both alike.
pub const MAX_STEAL: f64 = 0.05;
/// `/proc/pressure/cpu` `some avg10` above this (percent) before or after the probe: runnable
/// tasks waited for a CPU a fifth of the time, so either phase may have waited too.
pub const MAX_CPU_PRESSURE: f64 = 20.0;

/// Zerocopy that saves at least this share of CPU per byte pays even when throughput is lower.
pub const CPU_GAIN_THAT_PAYS: f64 = 1.1;
/// Below about this many bytes per send, pinning and notifications cost more than the copy.
pub const SMALL_SEND: usize = 10_000;

/// Why the timings of the probe cannot be trusted (empty when they can).
pub fn contention_reasons(c: &Contention) -> Vec<String> {
    let mut why = Vec::new();
    if !c.other_probes.is_empty() {
        let pids: Vec<String> = c.other_probes.iter().map(u32::to_string).collect();
        why.push(format!(
            "another zcdoctor live probe ran at the same time (pid {})",
            pids.join(", ")
        ));
    }
    if let Some(steal) = c.steal_fraction.filter(|s| *s > MAX_STEAL) {
        why.push(format!(
            "the hypervisor stole {:.0}% of CPU time during the probe",
            steal * 100.0
        ));
    }
    let pressure = c
        .cpu_pressure_before
        .into_iter()
        .chain(c.cpu_pressure_after);
    if let Some(p) = pressure.fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))))
        && p > MAX_CPU_PRESSURE
    {
        why.push(format!(
            "CPU pressure (some avg10) was {p:.1}%: runnable tasks waited for a CPU"
        ));
    }
    // The probe itself is one runnable task.
    if let (Some(cpus), Some(b), Some(a)) = (c.cpus, c.runnable_before, c.runnable_after)
        && b.min(a).saturating_sub(1) > cpus
    {
        why.push(format!(
            "{} and {} other tasks were runnable before and after the probe on {cpus} CPUs",
            b.saturating_sub(1),
            a.saturating_sub(1)
        ));
    }
    why
}

/// The contention that makes the probe's timings unreliable, with its reasons; `None` when they
/// can be trusted (or no run was timed).
pub fn unreliable(live: &LiveProbe) -> Option<(&Contention, Vec<String>)> {
    let timed = primary_runs(live).any(|r| r.gain().is_some());
    let c = live.contention.as_ref().filter(|_| timed)?;
    let why = contention_reasons(c);
    (!why.is_empty()).then_some((c, why))
}

/// Primary runs where zerocopy moved fewer bytes per second than the copy and did not pay it
/// back in CPU per byte (or was copied anyway).
pub fn slower(live: &LiveProbe) -> Vec<&LiveRun> {
    primary_runs(live)
        .filter(|r| r.gain().is_some_and(|g| g < 1.0))
        .filter(|r| r.copied > 0 || r.cpu_gain().is_none_or(|c| c < CPU_GAIN_THAT_PAYS))
        .collect()
}

/// Primary runs copied nowhere whose zerocopy saved CPU per byte (at least
/// [`CPU_GAIN_THAT_PAYS`]), with their throughput and CPU gains.
pub fn paying(live: &LiveProbe) -> Vec<(&LiveRun, f64, f64)> {
    primary_runs(live)
        .filter(|r| r.copied == 0)
        .filter_map(|r| Some((r, r.gain()?, r.cpu_gain()?)))
        .filter(|(_, _, c)| *c >= CPU_GAIN_THAT_PAYS)
        .collect()
}
