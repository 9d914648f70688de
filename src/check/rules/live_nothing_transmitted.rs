//! `live-nothing-transmitted`: the live probe's zerocopy sends completed but the egress device
//! transmitted far fewer packets, most often because the next hop's neighbour entry is not
//! resolved: nothing was tested.
//!
//! Reads the live probe's runs and the egress device's counters before and after each.
//! Explanation and fix text: checks/findings/live-nothing-transmitted.toml

use serde_json::{Value, json};

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::live::{MIN_TRANSMITTED_SHARE, primary_runs, untransmitted};
use crate::evidence::{Evidence, LiveProbe, LiveRun};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if let Step::Live(m) = at {
        nothing_transmitted(cx.ev, m.live, out);
    }
}

/// Sends completed but the egress device transmitted far fewer packets: they were dropped
/// before it, most often while waiting for an unresolved neighbour.
fn nothing_transmitted(ev: &Evidence, live: &LiveProbe, out: &mut Findings) {
    let runs: Vec<&LiveRun> = primary_runs(live).filter(|r| untransmitted(r)).collect();
    let Some(first) = runs.first() else {
        return;
    };
    let device = first
        .device_counters
        .as_ref()
        .map_or(ev.interface.as_str(), |c| c.device.as_str());
    let route = live.route.as_ref();
    let hop = route
        .and_then(|r| r.gateway.clone())
        .unwrap_or_else(|| live.target.ip().to_string());
    let parts: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{} run: {} sends, {} packets transmitted",
                r.label(),
                r.sends,
                r.device_counters
                    .as_ref()
                    .map_or(0, |c| c.transmitted_packets())
            )
        })
        .collect();
    let evidence: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({"pattern": r.pattern, "sends": r.sends, "completions": r.completions,
                   "transmitted_packets": r.device_counters.as_ref().map(|c| c.transmitted_packets()),
                   "counters": r.device_counters})
        })
        .collect();
    out.raise(
        Code::LiveNothingTransmitted,
        format!(
            "the zerocopy sends completed but {device} did not transmit them ({}); {hop} is probably not resolved on {device}, so nothing was tested",
            parts.join(", ")
        ),
        json!({"device": device, "next_hop": hop, "min_transmitted_share": MIN_TRANSMITTED_SHARE, "runs": evidence}),
        vec![
            format!("ip neigh show {hop} dev {device}"),
            format!(
                "Choose a --target that answers on {device}, or add a static neighbour: `ip neigh replace {hop} lladdr MAC dev {device}`; then probe again."
            ),
        ],
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised, run};
    use crate::evidence::{DeviceCounters, LinkCounters, Protocol};

    #[test]
    fn nothing_transmitted_names_the_neighbour() {
        let mut ev = fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        for r in &mut live.runs {
            r.device_counters = Some(DeviceCounters {
                device: "eth0".into(),
                kind: Some("veth".into()),
                before: Default::default(),
                after: LinkCounters {
                    tx_packets: 3,
                    ..Default::default()
                },
            });
        }
        let out = run(&ev, Protocol::Udp);
        let f = out
            .findings
            .iter()
            .find(|f| f.code == Code::LiveNothingTransmitted)
            .expect("live-nothing-transmitted");
        assert_eq!(f.remediation[0], "ip neigh show 198.18.0.2 dev eth0");
        assert!(!out.passed.iter().any(|p| p.check == "live"));
        // An ifb counts what it is given to transmit as received.
        let mut ev = fixture("live-clean");
        for r in &mut ev.live.as_mut().expect("live").runs {
            r.device_counters = Some(DeviceCounters {
                device: "ifbz".into(),
                kind: Some("ifb".into()),
                before: Default::default(),
                after: LinkCounters {
                    rx_packets: r.sends,
                    ..Default::default()
                },
            });
        }
        assert!(raised(&ev, Code::LiveNothingTransmitted).is_empty());
    }
}
