//! `zerocopy-slower`: in the live probe, zerocopy moved fewer bytes per second than copying and
//! saved no CPU per byte: a blocker when the sends were copied anyway, else a warning that says
//! why (small sends, ENOBUFS waits, pinning cost). A run where zerocopy saved CPU per byte gets a
//! pass line instead. Not judged when the timings are unreliable (`live-timing-unreliable`).
//!
//! Reads the live probe's copy and zerocopy phases (bytes, seconds, CPU), through
//! `check/cost.rs`.
//! Explanation and fix text: checks/findings/zerocopy-slower.toml

use serde_json::{Value, json};

use crate::check::context::{Context, Step};
use crate::check::cost::{SMALL_SEND, paying, slower, unreliable};
use crate::check::findings::{Code, Findings};
use crate::evidence::LiveRun;
use crate::vocab::Severity;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    let Step::Live(m) = at else {
        return;
    };
    let live = m.live;
    if unreliable(live).is_some() {
        return;
    }
    for (r, g, c) in paying(live) {
        out.pass(
            Code::ZerocopySlower.as_str(),
            format!(
                "{} sends of {} bytes: zerocopy moved {:.2}x the bytes per CPU-second of a copy ({g:.2}x the throughput)",
                r.pattern, r.send_size, c
            ),
        );
    }
    let slower = slower(live);
    if !slower.is_empty() {
        raise(&slower, out);
    }
}

fn raise(slower: &[&LiveRun], out: &mut Findings) {
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
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised, run};
    use crate::evidence::Protocol;
    use crate::vocab::Severity;

    #[test]
    fn copied_and_slower_is_a_blocker() {
        let f = &raised(&fixture("live-tap-copied"), Code::ZerocopySlower)[0];
        assert_eq!(f.severity, Severity::Blocker);
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
        assert!(live.runs.iter().all(|r| r.gain().is_none()));
        assert!(raised(&ev, Code::ZerocopySlower).is_empty());
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
        let out = run(&ev, Protocol::Udp);
        assert!(!out.has(Code::ZerocopySlower), "{:?}", out.findings);
        assert!(out.passed.iter().any(|p| p.check == "zerocopy-slower"));
    }
}
