//! `optmem-low`: `net.core.optmem_max` leaves room for only a few zerocopy notifications per
//! socket, so a modest burst of sends fails with ENOBUFS until completions are read.
//!
//! Reads the `optmem_max` sysctl of the diagnosed namespace (`sysctls`).
//! Explanation and fix text: checks/findings/optmem-low.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::memory::{BURST_IN_FLIGHT, NOTIFICATION_TRUESIZE};
use crate::evidence::Evidence;

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if matches!(at, Step::Limits) {
        optmem_low(cx.ev, out);
    }
}

fn optmem_low(ev: &Evidence, out: &mut Findings) {
    let Some(optmem) = ev.sysctls.optmem_max else {
        return;
    };
    let in_flight = optmem / NOTIFICATION_TRUESIZE;
    let needed = BURST_IN_FLIGHT * NOTIFICATION_TRUESIZE;
    if in_flight >= BURST_IN_FLIGHT {
        out.pass(
            Code::OptmemLow.as_str(),
            format!(
                "net.core.optmem_max {optmem} allows about {in_flight} sends in flight per socket"
            ),
        );
        return;
    }
    out.raise(
        Code::OptmemLow,
        format!(
            "net.core.optmem_max is {optmem}: about {in_flight} zerocopy sends can be in flight per socket before ENOBUFS (a burst of {BURST_IN_FLIGHT} needs {needed})"
        ),
        json!({
            "optmem_max": optmem,
            "sends_in_flight": in_flight,
            "notification_bytes": NOTIFICATION_TRUESIZE,
            "burst": BURST_IN_FLIGHT,
            "needed": needed,
        }),
        vec![
            "sysctl -w net.core.optmem_max=131072".to_string(),
            "Persist it: `echo net.core.optmem_max=131072 > /etc/sysctl.d/90-zerocopy.conf` (on 6.8+ set it in the namespace that sends).".to_string(),
        ],
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised, run};
    use crate::evidence::Protocol;

    #[test]
    fn optmem_20480_is_low_and_131072_is_not() {
        let mut ev = fixture("clean-nic");
        ev.sysctls.optmem_max = Some(20480);
        let f = &raised(&ev, Code::OptmemLow)[0];
        assert!(f.summary.contains("about 35 zerocopy sends"));
        ev.sysctls.optmem_max = Some(131072);
        let out = run(&ev, Protocol::Udp);
        assert!(!out.has(Code::OptmemLow));
        assert!(out.passed.iter().any(|p| p.check == "optmem-low"));
    }
}
