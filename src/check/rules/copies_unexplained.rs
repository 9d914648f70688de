//! `copies-unexplained`: the live probe's sends were copied, yet no finding raised before (a
//! tap, an offload, local delivery, …) explains it: says how to catch the copier in the act.
//!
//! Reads the live probe's totals and the findings raised so far (those that explain copies).
//! Explanation and fix text: checks/findings/copies-unexplained.toml

use serde_json::json;

use super::live_copied::explained_by;
use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    let Step::Live(m) = at else {
        return;
    };
    let (copied, completions) = (m.totals.copied, m.totals.completions);
    if copied == 0 || !explained_by(out, m.live).is_empty() {
        return;
    }
    out.raise(
        Code::CopiesUnexplained,
        format!("{copied} copied completions, but no tap, offload or local-delivery finding explains them"),
        json!({"copied": copied, "completions": completions}),
        vec![
            format!("While `zcdoctor check {} --target {}` runs, capture who copies: bpftrace -e 'kprobe:skb_copy_ubufs {{ @[kstack] = count(); }}'", cx.ev.interface, m.live.target),
            "Look for TX timestamping without SOF_TIMESTAMPING_OPT_TSONLY, tc actions that clone (mirred), IPsec without offload.".to_string(),
        ],
    );
}
