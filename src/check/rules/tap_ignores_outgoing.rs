//! `tap-ignores-outgoing`: an ETH_P_ALL packet socket sits on the path but sets
//! PACKET_IGNORE_OUTGOING (or its fanout group does), so it never sees the transmitted packets:
//! harmless, said so the operator need not chase it.
//!
//! Reads the packet sockets on the path and their real setting (`taps`), grouped by the taps
//! analysis (`check/taps.rs`).
//! Explanation and fix text: checks/findings/tap-ignores-outgoing.toml

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::taps::Described;
use crate::evidence::IgnoreOutgoing;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    let Step::Tap(g) = at else {
        return;
    };
    if g.setting != IgnoreOutgoing::Set {
        return;
    }
    let Described {
        who,
        what,
        evidence,
        ..
    } = g.describe(out.kb());
    out.raise(
        Code::TapIgnoresOutgoing,
        format!("{who} holds {what}, but sets PACKET_IGNORE_OUTGOING: harmless"),
        evidence,
        vec!["Nothing to do.".to_string()],
    );
}
