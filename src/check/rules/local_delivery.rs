//! `local-delivery`: the traffic is delivered on this host instead of leaving it, which always
//! copies: a way that starts at loopback or a tun/tap device, a path that reaches a namespace
//! owning the destination (a veth peer's address), or a live probe's target that is an address
//! of this host.
//!
//! Reads the device stacks (`links`), the path walk's end (`path`) and the live probe's route.
//! Explanation and fix text: checks/findings/local-delivery.toml

use std::net::IpAddr;

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::hops::{Way, netns_label, with_toward};
use crate::check::live::{NotSent, not_sent};
use crate::evidence::{Device, DeviceKind, LiveProbe, NetnsRef, PathEnd};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    match at {
        Step::WayStart(start) => {
            let Some(top) = start.new_top else {
                return;
            };
            match top.kind {
                DeviceKind::Loopback | DeviceKind::Tun => at_device(top, start.way, out),
                DeviceKind::Veth => {} // veth-path speaks for it
                _ => out.pass(
                    "delivery",
                    format!(
                        "{} ({}) transmits off the host: no local delivery on the device itself{}",
                        top.name,
                        top.kind.as_str(),
                        start.way.label()
                    ),
                ),
            }
        }
        Step::WayEnd(way) => {
            if let Some(PathEnd::LocalDelivery { netns, address }) = way.path.map(|p| &p.end) {
                in_namespace(netns, *address, way, out);
            }
        }
        Step::LiveNotRun(m, _)
            if not_sent(m.live) == NotSent::LocalTarget && !out.has(Code::LocalDelivery) =>
        {
            at_target(&cx.ev.interface, m.live, out)
        }
        _ => {}
    }
}

/// A way's first device delivers locally (loopback, tun/tap).
fn at_device(dev: &Device, way: &Way, out: &mut Findings) {
    let how = if dev.kind == DeviceKind::Loopback {
        "is the loopback device: every packet is delivered to a local socket"
    } else {
        "is a tun/tap device: packets are handed to a user-space reader"
    };
    let mut evidence = json!({"device": dev.name, "kind": dev.kind.as_str()});
    with_toward(&mut evidence, way.toward);
    let fix = match way.toward {
        Some(t) => vec![format!(
            "Do not use MSG_ZEROCOPY on the sockets to {t}: the route to it is {}, so every send to it is copied and the notifications only add cost.",
            dev.name
        )],
        None => vec![
            format!(
                "Do not enable MSG_ZEROCOPY for traffic through {}: it is always copied and only adds notification overhead.",
                dev.name
            ),
            "Diagnose the interface that really leaves the host instead (`zcdoctor check` with no argument uses the default route's device).".to_string(),
        ],
    };
    out.raise(
        Code::LocalDelivery,
        format!("{} {how}, which always copies{}", dev.name, way.label()),
        evidence,
        fix,
    );
}

/// The path reaches a namespace that owns the destination (a veth peer's address).
fn in_namespace(netns: &NetnsRef, address: IpAddr, way: &Way, out: &mut Findings) {
    let from = way.interface;
    let mut evidence = json!({"device": from, "address": address, "netns": netns});
    with_toward(&mut evidence, way.toward);
    out.raise(
        Code::LocalDelivery,
        format!(
            "{address} is an address of namespace {}, which {from} reaches: delivered locally there, which always copies",
            netns_label(netns),
        ),
        evidence,
        vec![format!(
            "Do not use MSG_ZEROCOPY towards {address}: delivery into namespace {} is local and always copies; zerocopy pays only for traffic that leaves the host through a NIC.",
            netns_label(netns)
        )],
    );
}

/// The live probe's target is an address of this host or namespace.
fn at_target(interface: &str, live: &LiveProbe, out: &mut Findings) {
    out.raise(
        Code::LocalDelivery,
        format!(
            "{} is an address of this host: traffic to it is delivered locally, which always copies",
            live.target
        ),
        json!({"target": live.target, "route": live.route}),
        vec![format!(
            "Do not use MSG_ZEROCOPY towards {}: local delivery always copies. Probe a destination that leaves through {interface}.",
            live.target
        )],
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};
    use crate::evidence::NotRun;

    #[test]
    fn loopback_is_local_delivery() {
        let f = &raised(&fixture("loopback"), Code::LocalDelivery)[0];
        assert!(f.summary.starts_with("lo is the loopback device"));
    }

    #[test]
    fn a_local_target_is_local_delivery() {
        let mut ev = fixture("live-clean");
        let live = ev.live.as_mut().expect("live");
        live.not_run = Some("fact".to_string());
        live.not_run_cause = Some(NotRun::LocalRoute);
        live.runs.clear();
        let f = &raised(&ev, Code::LocalDelivery)[0];
        assert!(
            f.summary.contains("is an address of this host"),
            "{}",
            f.summary
        );
        assert!(raised(&ev, Code::LiveProbeNotRun).is_empty());
    }
}
