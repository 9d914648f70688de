//! `features-unreadable`: the offload features of a device the traffic is transmitted through
//! could not be read, so its scatter-gather and checksum offload are unknown.
//!
//! Reads the transmitting devices of every hop and the `features` probe's status.
//! Explanation and fix text: checks/findings/features-unreadable.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::offloads::transmits;
use crate::evidence::{ProbeName, ProbeState};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if !matches!(at, Step::Devices) {
        return;
    }
    let unreadable: Vec<&str> = cx
        .hops
        .iter()
        .filter(|h| transmits(h))
        .flat_map(|h| h.stack.iter())
        .filter(|d| d.features.is_none())
        .map(|d| d.name.as_str())
        .collect();
    if unreadable.is_empty() {
        return;
    }
    let why = cx
        .ev
        .probes
        .iter()
        .find(|p| p.name == ProbeName::Features && p.status != ProbeState::Ok)
        .map(|p| p.detail.clone())
        .unwrap_or_default();
    out.raise(
        Code::FeaturesUnreadable,
        format!(
            "offload features of {} could not be read{}",
            unreadable.join(", "),
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        ),
        json!({"devices": unreadable, "reason": why}),
        unreadable
            .iter()
            .map(|d| {
                format!("Inspect by hand: `ethtool -k {d} | grep -E 'scatter-gather|checksum'`")
            })
            .collect(),
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};

    #[test]
    fn unread_features_are_named() {
        let mut ev = fixture("clean-nic");
        ev.stack[0].features = None;
        let f = &raised(&ev, Code::FeaturesUnreadable)[0];
        assert!(f.remediation[0].starts_with("Inspect by hand: `ethtool -k "));
        assert!(raised(&ev, Code::NoScatterGather).is_empty());
    }
}
