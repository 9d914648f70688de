//! `no-scatter-gather`: a device the traffic is transmitted through has scatter-gather off, so
//! UDP sends are copied at send time and TCP sends linearised (copied) at transmit.
//!
//! Reads the offload features of every transmitting device of the path (`features`), through
//! the offload analysis of `check/offloads.rs` (the lowest device that lacks it; its uppers in
//! `affects`).
//! Explanation and fix text: checks/findings/no-scatter-gather.toml

use crate::check::context::{Context, Step};
use crate::check::findings::Findings;
use crate::check::offloads::{SG, raise};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if !matches!(at, Step::Devices) || cx.carriers.all.is_empty() {
        return;
    }
    raise(&cx.carriers.all, cx.protocol, &SG, None, out);
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};
    use crate::evidence::FeatureState;

    #[test]
    fn scatter_gather_off_is_fixed_with_ethtool() {
        let mut ev = fixture("clean-nic");
        assert!(raised(&ev, Code::NoScatterGather).is_empty());
        let f = ev.stack[0].features.as_mut().expect("features");
        f.0.insert(
            "tx-scatter-gather".to_string(),
            FeatureState {
                active: false,
                wanted: false,
                fixed: false,
            },
        );
        let found = raised(&ev, Code::NoScatterGather);
        let dev = &ev.stack[0].name;
        assert_eq!(found[0].remediation[0], format!("ethtool -K {dev} sg on"));
    }
}
