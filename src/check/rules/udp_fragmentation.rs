//! `udp-fragmentation`: the live probe's deliberate oversize run (datagrams over the path MTU,
//! no UDP_SEGMENT) came back copied: IP fragmentation copies, so such sends never stay
//! zerocopy.
//!
//! Reads the live probe's `oversize` run and its route's MTU.
//! Explanation and fix text: checks/findings/udp-fragmentation.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::evidence::RunPattern;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    let Step::Live(m) = at else {
        return;
    };
    let live = m.live;
    for run in live
        .runs
        .iter()
        .filter(|r| r.pattern == RunPattern::Oversize && r.copied > 0)
    {
        out.raise(
            Code::UdpFragmentation,
            format!(
                "{}-byte datagrams (over the path MTU, no UDP_SEGMENT): {} of {} completions copied",
                run.send_size, run.copied, run.completions
            ),
            json!({"send_size": run.send_size, "copied": run.copied, "completions": run.completions, "mtu": live.route.as_ref().and_then(|r| r.mtu)}),
            vec!["Send large buffers with UDP_SEGMENT (setsockopt SOL_UDP 103 or a cmsg) instead of one datagram over the MTU.".to_string()],
        );
    }
}
