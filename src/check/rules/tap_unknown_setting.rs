//! `tap-unknown-setting`: an ETH_P_ALL packet socket sits on the path but its
//! PACKET_IGNORE_OUTGOING could not be read (no privilege, Yama, the owner went away), so
//! whether it forces a copy is unknown; says what would let zcdoctor read it.
//!
//! Reads the packet sockets on the path and why their setting was unreadable (`taps`), grouped
//! by the taps analysis (`check/taps.rs`); the fix for the cause is `tap_fix::unreadable`.
//! Explanation and fix text: checks/findings/tap-unknown-setting.toml

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::tap_fix;
use crate::check::taps::Described;
use crate::evidence::IgnoreOutgoing;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    let Step::Tap(g) = at else {
        return;
    };
    let IgnoreOutgoing::Unknown { reason, cause } = &g.setting else {
        return;
    };
    let mut d: Described = g.describe(out.kb());
    d.fix.insert(0, tap_fix::unreadable(cause.as_ref()));
    out.raise(
        Code::TapUnknownSetting,
        format!(
            "{} holds {}; its PACKET_IGNORE_OUTGOING could not be read: {reason}",
            d.who, d.what
        ),
        d.evidence,
        d.fix,
    )
    .notes = d.notes;
}
