//! `live-nothing-transmitted`: the live probe's zerocopy sends completed but the egress device
//! transmitted far fewer packets, most often because the next hop's neighbour entry is not
//! resolved: nothing was tested; or because a tc redirect on its egress hook sends them by
//! another device, which the finding then names.
//!
//! Reads the live probe's runs and the egress device's counters before and after each.
//! Explanation and fix text: checks/findings/live-nothing-transmitted.toml

use serde_json::{Value, json};

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::live::{MIN_TRANSMITTED_SHARE, primary_runs, untransmitted};
use crate::evidence::{Evidence, LiveProbe, LiveRun, MirredAction, TcHook};

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
    if let Some((filter, target)) = redirected(ev, device) {
        out.raise(
            Code::LiveNothingTransmitted,
            format!(
                "the zerocopy sends completed but {device} did not transmit them ({}): its tc {filter} redirects them to {target}, so {device}'s counters do not count them and do not show that anything left the host",
                parts.join(", ")
            ),
            json!({"device": device, "redirected_to": target, "filter": filter, "min_transmitted_share": MIN_TRANSMITTED_SHARE, "runs": evidence}),
            vec![format!(
                "tc -s filter show dev {device} egress (the redirect's counters), and diagnose {target}'s own way out."
            )],
        );
        return;
    }
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

/// A tc redirect on `device`'s egress hook (the filter's label, the target): the packets leave
/// by the target, so `device` counts none of them.
fn redirected(ev: &Evidence, device: &str) -> Option<(String, String)> {
    let dev = ev.stack.iter().find(|d| d.name == device)?;
    dev.tc
        .iter()
        .flat_map(|t| &t.filters)
        .filter(|f| f.hook == TcHook::Egress)
        .flat_map(|f| f.actions.iter().map(move |a| (f, a)))
        .find_map(|(f, a)| {
            let m = a.mirred.as_ref().filter(|m| {
                matches!(
                    m.action,
                    MirredAction::EgressRedirect | MirredAction::IngressRedirect
                )
            })?;
            let target = m
                .target
                .as_ref()
                .map_or(format!("ifindex {}", m.ifindex), |t| t.name.clone());
            Some((f.label(), target))
        })
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised, run};
    use crate::evidence::{
        DeviceCounters, LinkCounters, Mirred, MirredAction, Protocol, TcAction, TcFilter,
        TcFilters,
    };

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

    #[test]
    fn a_tc_redirect_is_named_instead_of_the_neighbour() {
        let mut ev = fixture("live-clean");
        let device = ev.stack[0].name.clone();
        for r in &mut ev.live.as_mut().expect("live").runs {
            r.device_counters = Some(DeviceCounters {
                device: device.clone(),
                kind: None,
                before: Default::default(),
                after: Default::default(),
            });
        }
        let action = TcAction {
            order: 1,
            kind: "mirred".into(),
            index: Some(1),
            mirred: Some(Mirred {
                action: MirredAction::EgressRedirect,
                eaction: 1,
                ifindex: 9,
                target: None,
            }),
            bpf: None,
        };
        ev.stack[0].tc = Some(TcFilters {
            filters: vec![TcFilter::u32_egress(10, vec![action])],
            ..TcFilters::default()
        });
        let f = &raised(&ev, Code::LiveNothingTransmitted)[0];
        assert!(
            f.summary.contains(&format!(
                "its tc egress filter u32 pref 10 handle 800::800 redirects them to ifindex 9, so {device}'s counters do not count them"
            )),
            "{}",
            f.summary
        );
    }
}
