//! `veth-path`: the traffic crosses a veth. Before Linux 6.17 the kernel copies everything
//! arriving through a veth, forwarded or not (a blocker); from 6.17 only what is delivered in
//! the peer's namespace is copied (a warning, which a live probe decides).
//!
//! Reads the device stacks (`links`), the veth peers of the path walk (`path`) and the kernel
//! release.
//! Explanation and fix text: checks/findings/veth-path.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::hops::{WayStart, netns_label, ways, with_toward};
use crate::evidence::{DeviceKind, Evidence, HopRole};
use crate::kernel::{self, FORWARDING_KEEPS_ZEROCOPY};
use crate::vocab::Severity;

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    match at {
        Step::WayStart(start) if start.new_top.is_some_and(|d| d.kind == DeviceKind::Veth) => {
            at_start(cx.ev, start, out)
        }
        Step::Path => further_on(cx.ev, out),
        _ => {}
    }
}

/// The way starts at a veth.
fn at_start(ev: &Evidence, start: &WayStart, out: &mut Findings) {
    let (Some(top), way) = (start.new_top, start.way) else {
        return;
    };
    let forwarding_ok = kernel::has(ev.kernel.version, FORWARDING_KEEPS_ZEROCOPY);
    let (severity, summary, fix) = if forwarding_ok {
        (
            Severity::Warning,
            format!(
                "{} is a veth: sends to an address of the peer namespace are delivered locally and copied; forwarded traffic keeps zerocopy on this kernel",
                top.name
            ),
            format!(
                "Prove the real path with a live probe to the final destination: `zcdoctor check {} --target ADDR`.",
                top.name
            ),
        )
    } else {
        (
            Severity::Blocker,
            format!(
                "{} is a veth and Linux {} copies all traffic arriving through veth, even when forwarded (fixed in 6.17)",
                top.name,
                ev.kernel.version.map(|v| v.to_string()).unwrap_or_default()
            ),
            format!(
                "Turn MSG_ZEROCOPY off for senders behind {} until the host runs Linux 6.17 or newer.",
                top.name
            ),
        )
    };
    let mut evidence = json!({"device": top.name, "kernel": ev.kernel.release, "forwarding_keeps_zerocopy": forwarding_ok});
    with_toward(&mut evidence, way.toward);
    out.raise_as(
        Code::VethPath,
        severity,
        format!("{summary}{}", way.label()),
        evidence,
        vec![fix],
    );
}

/// Before 6.17 the kernel copies everything arriving through a veth, forwarded or not: a veth
/// crossed further along a way (a tunnel's underlay, a lower device's namespace) copies as
/// surely as one the way starts at (that one is [`at_start`]'s).
fn further_on(ev: &Evidence, out: &mut Findings) {
    if kernel::has(ev.kernel.version, FORWARDING_KEEPS_ZEROCOPY) {
        return;
    }
    let mut seen: Vec<(u64, u32)> = Vec::new();
    for way in ways(ev) {
        if way
            .stack
            .first()
            .is_some_and(|d| d.kind == DeviceKind::Veth)
        {
            continue;
        }
        let segments = way.path.iter().flat_map(|p| &p.segments).enumerate();
        for (i, seg) in segments.filter(|(_, s)| s.role == HopRole::VethPeer) {
            let Some(peer) = seg.stack.first() else {
                continue;
            };
            if seen.contains(&(seg.netns.inode, peer.ifindex)) {
                continue;
            }
            seen.push((seg.netns.inode, peer.ifindex));
            let mut evidence = json!({
                "device": peer.name,
                "netns": seg.netns,
                "hop": i + 2,
                "kernel": ev.kernel.release,
                "forwarding_keeps_zerocopy": false,
            });
            with_toward(&mut evidence, way.toward);
            out.raise_as(
                Code::VethPath,
                Severity::Blocker,
                format!(
                    "the traffic arrives through the veth {} in namespace {} (hop {}), and Linux {} copies all traffic arriving through veth, even when forwarded (fixed in 6.17){}",
                    peer.name,
                    netns_label(&seg.netns),
                    i + 2,
                    ev.kernel.version.map(|v| v.to_string()).unwrap_or_default(),
                    way.label()
                ),
                evidence,
                vec![format!(
                    "Turn MSG_ZEROCOPY off for senders whose traffic crosses {} until the host runs Linux 6.17 or newer.",
                    peer.name
                )],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{evidence_with_kernel, fixture, raised};
    use crate::evidence::DeviceKind;
    use crate::vocab::Severity;

    #[test]
    fn veth_is_a_blocker_only_before_6_17() {
        for (release, severity) in [
            ("6.16.3", Severity::Blocker),
            ("6.18.44", Severity::Warning),
        ] {
            let mut ev = evidence_with_kernel(release);
            ev.stack[0].kind = DeviceKind::Veth;
            let found = raised(&ev, Code::VethPath);
            assert_eq!(found[0].severity, severity, "{release}");
        }
    }

    /// A veth crossed further along the way (here the way starts at a macvlan whose traffic
    /// reaches a veth peer) copies before 6.17 as surely as one the way starts at.
    #[test]
    fn a_veth_further_on_is_a_blocker_before_6_17() {
        let mut ev = fixture("process-pid-many-ways");
        ev.stack[0].kind = DeviceKind::Macvlan;
        for (release, is_raised) in [("6.16.3", true), ("6.18.44", false)] {
            ev.kernel.release = release.to_string();
            ev.kernel.version = crate::evidence::KernelVersion::parse(release);
            let found = raised(&ev, Code::VethPath);
            let veth = found.first();
            assert_eq!(veth.is_some(), is_raised, "{release}");
            if let Some(f) = veth {
                assert_eq!(f.severity, Severity::Blocker);
                assert_eq!(f.evidence["device"], "vb");
                assert!(f.summary.contains("(hop 2)"), "{}", f.summary);
            }
        }
    }
}
