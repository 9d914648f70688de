//! `tap-forces-copy`: an ETH_P_ALL packet socket (tcpdump, lldpd, a DHCP client, …) sits on the
//! path without PACKET_IGNORE_OUTGOING, so the kernel hands it a clone of every transmitted
//! packet and must copy the zerocopy pages first. On the receive side (a veth's peer) the
//! option cannot help; on one slave of a hashing bond it copies only some flows (a warning);
//! before Linux 4.20 the option does not exist. With no tap on the path, its pass line.
//!
//! Reads the packet sockets of every namespace with their owners and real setting (`taps`),
//! grouped by the taps analysis (`check/taps.rs`); owner-specific fixes come from
//! `checks/tap-daemons.toml` (`check/tap_fix.rs`).
//! Explanation and fix text: checks/findings/tap-forces-copy.toml

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::taps::{Described, TapGroup, TapsOnPath, effective_setting};
use crate::evidence::IgnoreOutgoing;
use crate::vocab::Severity;

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    match at {
        Step::Tap(g) if g.setting == IgnoreOutgoing::NotSet => forces_copy(cx, g, out),
        Step::TapsEnd(taps) if taps.groups.is_empty() => pass(taps, out),
        _ => {}
    }
}

fn forces_copy(cx: &Context, g: &TapGroup, out: &mut Findings) {
    let Described {
        who,
        what,
        evidence,
        mut fix,
        notes,
    } = g.describe(out.kb());
    if g.receive {
        fix.insert(0, receive_side_fix(g));
        let set = match effective_setting(g.first()) {
            IgnoreOutgoing::Set => "even though it sets PACKET_IGNORE_OUTGOING",
            _ => "whatever PACKET_IGNORE_OUTGOING says",
        };
        let summary = format!(
            "{who} holds {what}; the traffic is received there, and a tap copies every received packet, {set} (the option only skips transmitted ones)"
        );
        out.raise(Code::TapForcesCopy, summary, evidence, fix).notes = notes;
    } else if let Some(hashed) = &g.hashed {
        // Only the flows the bond hashes to this slave are copied: a possibility for any one
        // flow, which a live probe decides.
        let summary = format!("{who} holds {what}; it does not set PACKET_IGNORE_OUTGOING{hashed}");
        out.raise_as(
            Code::TapForcesCopy,
            Severity::Warning,
            summary,
            evidence,
            fix,
        )
        .notes = notes;
    } else {
        let option_exists = cx.taps.as_ref().is_some_and(|t| t.option_exists);
        let summary = if option_exists {
            format!("{who} holds {what}; it does not set PACKET_IGNORE_OUTGOING")
        } else {
            fix.insert(
                0,
                format!(
                    "Linux {} predates PACKET_IGNORE_OUTGOING (4.20): no daemon build can avoid the copy here, only taking the tap off this path (or a newer kernel) does.",
                    cx.ev.kernel.version.map(|v| v.to_string()).unwrap_or_default()
                ),
            );
            format!(
                "{who} holds {what}; this kernel predates PACKET_IGNORE_OUTGOING (4.20), so the tap copies every send"
            )
        };
        out.raise(Code::TapForcesCopy, summary, evidence, fix).notes = notes;
    }
}

/// On the receive side the option cannot help: stop the tap or keep it off the devices.
fn receive_side_fix(g: &TapGroup) -> String {
    let devices = g
        .sockets
        .iter()
        .filter_map(|(s, _)| s.device.clone())
        .collect::<Vec<_>>();
    let place = if devices.is_empty() {
        "its namespace".to_string()
    } else {
        devices.join(", ")
    };
    format!(
        "PACKET_IGNORE_OUTGOING cannot help here: the zerocopy traffic is received on {place} (from a veth), and a tap copies every received packet. Stop the tap, or keep it off {place}."
    )
}

/// No tap on the path: what the scan covered.
fn pass(taps: &TapsOnPath, out: &mut Findings) {
    let scan = taps.scan;
    let total_taps = scan.sockets.iter().filter(|s| s.is_tx_tap()).count();
    out.pass(
        "taps",
        format!(
            "no packet tap on the path ({} packet socket{}, {total_taps} ETH_P_ALL, in {} namespace{}; {} processes scanned)",
            scan.sockets.len(),
            if scan.sockets.len() == 1 { "" } else { "s" },
            scan.namespaces_scanned,
            if scan.namespaces_scanned == 1 { "" } else { "s" },
            scan.processes_scanned
        ),
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{evidence_with_kernel, fixture, raised};

    #[test]
    fn tcpdump_in_the_container_forces_a_copy() {
        let ev = fixture("container-5.15");
        let f = &raised(&ev, Code::TapForcesCopy)[0];
        assert!(
            f.summary.contains("ETH_P_ALL packet socket"),
            "{}",
            f.summary
        );
        assert!(raised(&evidence_with_kernel("6.18.0"), Code::TapForcesCopy).is_empty());
    }
}
