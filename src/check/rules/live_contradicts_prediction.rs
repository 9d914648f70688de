//! `live-contradicts-prediction`: the live probe proved its sends were not copied, although
//! blockers raised before predicted copies: the prediction or the probe does not match the
//! application's traffic.
//!
//! Reads the live probe's totals and shortfall, and the blockers raised so far that predict
//! copies.
//! Explanation and fix text: checks/findings/live-contradicts-prediction.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    let Step::Live(m) = at else {
        return;
    };
    let completions = m.totals.completions;
    if m.totals.copied > 0 || !m.gaps.is_empty() || completions == 0 {
        return;
    }
    let predicted_by = out.blocking_codes_where(|c| c.predicts_copies() && !c.oversize_only());
    if predicted_by.is_empty() {
        return;
    }
    let names: Vec<&str> = predicted_by.iter().map(|c| c.as_str()).collect();
    out.raise(
        Code::LiveContradictsPrediction,
        format!(
            "the live probe completed {completions} sends without a copy, although {} predicted copies",
            names.join(", ")
        ),
        json!({"completions": completions, "predicted_by": predicted_by}),
        vec!["Compare the probe's protocol, size and route with the application's; attach `zcdoctor snapshot` output to a bug report if they match.".to_string()],
    );
}
