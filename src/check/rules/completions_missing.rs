//! `completions-missing`: live zerocopy sends whose completion never arrived on the error
//! queue within the grace period (a qdisc or driver holding the skbs).
//!
//! Reads the live probe's per-run count of sends without a completion.
//! Explanation and fix text: checks/findings/completions-missing.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    let Step::Live(m) = at else {
        return;
    };
    let missing = m.totals.missing;
    if missing == 0 {
        return;
    }
    out.raise(
        Code::CompletionsMissing,
        format!("{missing} zerocopy sends had no completion after the grace period"),
        json!({"missing": missing}),
        vec![format!("tc -s qdisc show dev {}", cx.ev.interface)],
    );
}
