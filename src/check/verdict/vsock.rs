//! The verdict of a vsock target: only what the vsock probe proved (there is no path to
//! predict from).

use crate::check::rules::vsock_send_over_credit::split;
use crate::evidence::{Fact, VsockProbe};
use crate::report::{Basis, Verdict, Zerocopy};

pub fn verdict(v: &VsockProbe) -> Verdict {
    let target = v.target();
    let proven = |zerocopy, summary| Verdict {
        zerocopy,
        basis: Basis::Live,
        summary,
    };
    if let Some(e) = v.refused() {
        return proven(
            Zerocopy::No,
            format!(
                "this kernel has no MSG_ZEROCOPY for vsock ({e}): sends to {target} are copied"
            ),
        );
    }
    if let Fact::Failed(e) = &v.connect {
        return unproven(format!("the vsock probe did not send ({e})"));
    }
    let (clean, copied) = split(v);
    let done: u64 = v.runs.iter().map(|r| r.completions).sum();
    match (clean.iter().map(|r| r.message).max(), copied.first()) {
        (None, None) => unproven(format!(
            "the vsock probe to {target} received no completions"
        )),
        (Some(m), None) => proven(
            Zerocopy::Yes,
            format!(
                "zerocopy works over {target}: {done} completions for sends of up to {m} bytes, none copied"
            ),
        ),
        (Some(m), Some(c)) if m < c.message => proven(
            Zerocopy::Yes,
            format!(
                "zerocopy works over {target} for sends of up to {m} bytes; sends of {} bytes and more were copied (vsock-send-over-credit)",
                c.message
            ),
        ),
        _ => {
            let n: u64 = copied.iter().map(|r| r.copied).sum();
            proven(
                Zerocopy::No,
                format!(
                    "zerocopy sends to {target} are copied: {n} of {done} completions carried COPIED"
                ),
            )
        }
    }
}

fn unproven(summary: String) -> Verdict {
    Verdict {
        zerocopy: Zerocopy::Unknown,
        basis: Basis::Unproven,
        summary,
    }
}
