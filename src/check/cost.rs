//! Cost: whether MSG_ZEROCOPY pays on this path, from the live probe's copy and zerocopy phases.
//! Slower means less throughput *and* no CPU saved per byte: on a real NIC the link is often
//! the bottleneck, and then the CPU zerocopy saves is the gain.

use serde_json::{Value, json};

use super::findings::{Code, Findings};
use super::live::primary_runs;
use crate::evidence::{Contention, LiveProbe, LiveRun};
use crate::vocab::Severity;

/// Hypervisor steal above this share of CPU time during the probe makes its timings unreliable:
/// a stolen slice of a few percent lands on one phase or the other, not on both alike.
const MAX_STEAL: f64 = 0.05;
/// `/proc/pressure/cpu` `some avg10` above this (percent) before or after the probe: runnable
/// tasks waited for a CPU a fifth of the time, so either phase may have waited too.
const MAX_CPU_PRESSURE: f64 = 20.0;

/// Zerocopy that saves at least this share of CPU per byte pays even when throughput is lower.
const CPU_GAIN_THAT_PAYS: f64 = 1.1;
/// Below about this many bytes per send, pinning and notifications cost more than the copy.
const SMALL_SEND: usize = 10_000;

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

pub fn check(live: &LiveProbe, out: &mut Findings) {
    let timed = primary_runs(live).any(|r| r.gain().is_some());
    if let Some(c) = live.contention.as_ref().filter(|_| timed) {
        let why = contention_reasons(c);
        if !why.is_empty() {
            let gains: Vec<Value> = primary_runs(live)
                .map(|r| json!({"pattern": r.pattern, "gain": r.gain(), "cpu_gain": r.cpu_gain()}))
                .collect();
            out.raise(
                Code::LiveTimingUnreliable,
                format!(
                    "the measured gain is unreliable: {}; zerocopy-slower was not judged",
                    why.join("; ")
                ),
                json!({"contention": c, "runs": gains, "max_steal": MAX_STEAL, "max_cpu_pressure": MAX_CPU_PRESSURE}),
                vec!["Run the probe again on a quiet host, one probe at a time.".to_string()],
            );
            return;
        }
    }
    let slower: Vec<&LiveRun> = primary_runs(live)
        .filter(|r| r.gain().is_some_and(|g| g < 1.0))
        .filter(|r| r.copied > 0 || r.cpu_gain().is_none_or(|c| c < CPU_GAIN_THAT_PAYS))
        .collect();
    for r in primary_runs(live).filter(|r| r.copied == 0) {
        if let (Some(g), Some(c)) = (r.gain(), r.cpu_gain())
            && c >= CPU_GAIN_THAT_PAYS
        {
            out.pass(
                Code::ZerocopySlower.as_str(),
                format!(
                    "{} sends of {} bytes: zerocopy moved {:.2}x the bytes per CPU-second of a copy ({g:.2}x the throughput)",
                    r.pattern, r.send_size, c
                ),
            );
        }
    }
    if slower.is_empty() {
        return;
    }
    let any_copied = slower.iter().any(|r| r.copied > 0);
    let because = if any_copied {
        "the sends were copied anyway, so MSG_ZEROCOPY is slowing the application down"
    } else if slower.iter().any(|r| r.enobufs > 0) {
        "sends refused with ENOBUFS had to wait for completions"
    } else if slower.iter().all(|r| r.send_size < SMALL_SEND) {
        "the sends are too small for pinning and notifications to pay off"
    } else {
        "pinning pages and reading completions cost more than the copy they save here"
    };
    let parts: Vec<String> = slower
        .iter()
        .map(|r| {
            format!(
                "{:.2}x for {} sends of {} bytes",
                r.gain().unwrap_or_default(),
                r.pattern,
                r.send_size
            )
        })
        .collect();
    let runs: Vec<Value> = slower
        .iter()
        .map(|r| {
            json!({"pattern": r.pattern, "send_size": r.send_size, "gain": r.gain(), "cpu_gain": r.cpu_gain(), "copied": r.copied,
                   "copy_bytes_per_second": r.copy_phase.as_ref().map(|p| p.bytes_per_second()),
                   "zerocopy_bytes_per_second": r.zerocopy_phase.as_ref().map(|p| p.bytes_per_second())})
        })
        .collect();
    out.raise_as(
        Code::ZerocopySlower,
        if any_copied {
            Severity::Blocker
        } else {
            Severity::Warning
        },
        format!(
            "zerocopy throughput vs copy: {}; {because}",
            parts.join(", ")
        ),
        json!({"runs": runs}),
        vec![if any_copied {
            "Turn MSG_ZEROCOPY off for this path until the copy causes are fixed.".to_string()
        } else {
            format!(
                "Use MSG_ZEROCOPY only for sends of about {} KB and more (UDP_SEGMENT batches small datagrams into large sends).",
                SMALL_SEND / 1000
            )
        }],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::fixture;

    #[test]
    fn copied_and_slower_is_a_blocker() {
        let ev = fixture("live-tap-copied");
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(ev.live.as_ref().expect("live"), &mut out);
        let f = out.findings.first().expect("zerocopy-slower");
        assert_eq!(f.code, Code::ZerocopySlower);
        assert_eq!(f.severity, Severity::Blocker);
    }

    #[test]
    fn contention_makes_the_gain_unreliable_instead_of_slower() {
        for contention in [
            Contention {
                steal_fraction: Some(0.2),
                ..Contention::default()
            },
            Contention {
                cpu_pressure_after: Some(60.0),
                ..Contention::default()
            },
            Contention {
                other_probes: vec![4242],
                ..Contention::default()
            },
            Contention {
                cpus: Some(2),
                runnable_before: Some(6),
                runnable_after: Some(5),
                ..Contention::default()
            },
        ] {
            let mut ev = fixture("live-tap-copied");
            let live = ev.live.as_mut().expect("live");
            live.contention = Some(contention.clone());
            let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
            check(live, &mut out);
            let codes: Vec<Code> = out.findings.iter().map(|f| f.code).collect();
            assert_eq!(codes, [Code::LiveTimingUnreliable], "{contention:?}");
            assert_eq!(out.findings[0].severity, Severity::Info);
        }
        // A quiet host: judged as before.
        let mut ev = fixture("live-tap-copied");
        let live = ev.live.as_mut().expect("live");
        live.contention = Some(Contention {
            cpus: Some(2),
            runnable_before: Some(2),
            runnable_after: Some(1),
            cpu_pressure_before: Some(1.0),
            steal_fraction: Some(0.01),
            ..Contention::default()
        });
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(live, &mut out);
        assert_eq!(out.findings[0].code, Code::ZerocopySlower);
    }

    #[test]
    fn short_phases_make_no_gain_claim() {
        let mut ev = fixture("live-tap-copied");
        let live = ev.live.as_mut().expect("live");
        for r in &mut live.runs {
            if let Some(p) = r.zerocopy_phase.as_mut() {
                p.seconds = 0.00005;
            }
        }
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(live, &mut out);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(live.runs.iter().all(|r| r.gain().is_none()));
    }

    #[test]
    fn cpu_saved_per_byte_is_a_pass_not_a_finding() {
        let mut ev = fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        for r in &mut live.runs {
            if let (Some(copy), Some(zc)) = (r.copy_phase.as_mut(), r.zerocopy_phase.as_mut()) {
                zc.bytes = copy.bytes * 9 / 10;
                zc.seconds = copy.seconds;
                zc.cpu_system_seconds = copy.cpu_system_seconds / 2.0;
                zc.cpu_user_seconds = copy.cpu_user_seconds / 2.0;
            }
        }
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(live, &mut out);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        assert!(!out.passed.is_empty());
    }
}
