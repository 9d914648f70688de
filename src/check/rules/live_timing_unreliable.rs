//! `live-timing-unreliable`: the host was contended while the live probe ran (another probe,
//! hypervisor steal, CPU pressure, more runnable tasks than CPUs), so its measured gain cannot
//! be trusted and `zerocopy-slower` is not judged.
//!
//! Reads the live probe's contention record and its timed runs, through `check/cost.rs`.
//! Explanation and fix text: checks/findings/live-timing-unreliable.toml

use serde_json::{Value, json};

use crate::check::context::{Context, Step};
use crate::check::cost::{MAX_CPU_PRESSURE, MAX_STEAL, unreliable};
use crate::check::findings::{Code, Findings};
use crate::check::live::primary_runs;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    let Step::Live(m) = at else {
        return;
    };
    let Some((c, why)) = unreliable(m.live) else {
        return;
    };
    let gains: Vec<Value> = primary_runs(m.live)
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
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, run};
    use crate::evidence::{Contention, Protocol};
    use crate::vocab::Severity;

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
            ev.live.as_mut().expect("live").contention = Some(contention.clone());
            let out = run(&ev, Protocol::Udp);
            assert!(!out.has(Code::ZerocopySlower), "{contention:?}");
            let f = out
                .findings
                .iter()
                .find(|f| f.code == Code::LiveTimingUnreliable)
                .expect("live-timing-unreliable");
            assert_eq!(f.severity, Severity::Info);
        }
        // A quiet host: judged as before.
        let mut ev = fixture("live-tap-copied");
        ev.live.as_mut().expect("live").contention = Some(Contention {
            cpus: Some(2),
            runnable_before: Some(2),
            runnable_after: Some(1),
            cpu_pressure_before: Some(1.0),
            steal_fraction: Some(0.01),
            ..Contention::default()
        });
        let out = run(&ev, Protocol::Udp);
        assert!(out.has(Code::ZerocopySlower));
        assert!(!out.has(Code::LiveTimingUnreliable));
    }
}
