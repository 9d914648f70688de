//! `tc-mirred-copies`: a tc `mirred` action on the path mirrors or redirects the traffic to a
//! device where its zerocopy pages are copied: one with a packet tap bound to it, a tun/tap
//! device (its reader), or, before Linux 6.17, any device it is handed to on the receive side
//! (`ingress mirror|redirect`). A mirror or redirect to a clean device copies nothing.
//!
//! Reads each hop's tc filters and their mirred targets (`tc`) and the packet sockets of the
//! target's namespace (`taps`), with the kernel release.
//! Explanation and fix text: checks/findings/tc-mirred-copies.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::taps::effective_setting;
use crate::check::tc::{OnPath, on_path};
use crate::evidence::{DeviceKind, IgnoreOutgoing, Mirred, MirredTarget, PacketSocket, TcAction};
use crate::kernel::{self, FORWARDING_KEEPS_ZEROCOPY};

/// The feature whose absence makes the target's transmit copy the pages.
const SG: &str = "tx-scatter-gather";

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if !matches!(at, Step::Path) {
        return;
    }
    for f in on_path(&cx.hops) {
        for action in &f.filter.actions {
            let Some(m) = &action.mirred else {
                continue;
            };
            let Some(target) = &m.target else {
                continue;
            };
            if let Some(cause) = cause(cx, &f, m, target) {
                raise(&f, action, m, target, &cause, out);
            }
        }
    }
}

/// Why the target copies what the action hands it.
enum Cause<'a> {
    /// Packet taps bound to the target that the packet reaches.
    Taps(Vec<&'a PacketSocket>),
    /// The target is a tun/tap device: its reader gets the packet.
    Tun,
    /// The target receives the packet, on a kernel whose receive path copies zerocopy pages.
    ReceivePath,
    /// The target transmits the packet without scatter-gather.
    NoScatterGather,
}

fn cause<'a>(cx: &Context<'a>, f: &OnPath, m: &Mirred, target: &MirredTarget) -> Option<Cause<'a>> {
    let ingress = m.action.to_ingress();
    let taps: Vec<&PacketSocket> = cx
        .ev
        .taps
        .iter()
        .flat_map(|t| &t.sockets)
        .filter(|s| {
            s.is_tx_tap()
                && s.netns.inode == f.hop.netns_key
                && s.ifindex == Some(m.ifindex)
                // PACKET_IGNORE_OUTGOING skips a transmitted clone, never a received one.
                && (ingress || effective_setting(s) != IgnoreOutgoing::Set)
        })
        .collect();
    if !taps.is_empty() {
        return Some(Cause::Taps(taps));
    }
    if !ingress && target.kind == DeviceKind::Tun {
        return Some(Cause::Tun);
    }
    let sg = target.features.as_ref().map(|f| f.is_active(SG));
    if !ingress && sg == Some(false) {
        return Some(Cause::NoScatterGather);
    }
    (ingress && !kernel::has(cx.ev.kernel.version, FORWARDING_KEEPS_ZEROCOPY))
        .then_some(Cause::ReceivePath)
}

fn owners(taps: &[&PacketSocket]) -> String {
    let mut names: Vec<String> = taps
        .iter()
        .flat_map(|s| &s.owners)
        .map(|o| format!("{} (pid {})", o.comm, o.pid))
        .collect();
    names.dedup();
    if names.is_empty() {
        format!("an unknown process (socket inode {})", taps[0].inode)
    } else {
        names.join(", ")
    }
}

fn because(cause: &Cause, target: &MirredTarget) -> String {
    match cause {
        Cause::Taps(taps) => format!(
            "{} holds an ETH_P_ALL packet socket bound to {}: the clone the action hands it shares the send's pages, and delivering it to the tap copies them (deliver_skb → skb_orphan_frags_rx)",
            owners(taps),
            target.name
        ),
        Cause::Tun => format!(
            "{} is a tun/tap device: a process reads what it transmits, so tun_net_xmit copies the pages first (skb_orphan_frags_rx)",
            target.name
        ),
        Cause::NoScatterGather => format!(
            "{} transmits without scatter-gather ({SG} off), so the packet's pages are copied into one buffer before it leaves (measured on 6.18: every send copied, mirror or redirect)",
            target.name
        ),
        Cause::ReceivePath => format!(
            "{} receives the packet (netif_receive_skb), and before Linux 6.17 the receive path copies the zerocopy pages of what it is handed (measured on 5.10 and 6.1: every send copied; 6.17 keeps them for packets that are forwarded on)",
            target.name
        ),
    }
}

fn raise(
    f: &OnPath,
    action: &TcAction,
    m: &Mirred,
    target: &MirredTarget,
    cause: &Cause,
    out: &mut Findings,
) {
    let summary = format!(
        "{} runs {}, mirred {} to {}: {}; every zerocopy send the filter matches is copied",
        f.name(),
        OnPath::action_name(action),
        m.action.as_str(),
        target.name,
        because(cause, target)
    );
    let mut evidence = f.evidence(Some(action));
    evidence["mirred"] = json!({
        "action": m.action,
        "target": target.name,
        "target_ifindex": m.ifindex,
        "target_kind": target.kind.as_str(),
    });
    if let Cause::Taps(taps) = cause {
        evidence["taps"] = json!(taps.iter().map(|s| json!({"inode": s.inode, "owners": s.owners.iter().map(|o| json!({"pid": o.pid, "comm": o.comm})).collect::<Vec<_>>()})).collect::<Vec<_>>());
    }
    out.raise(
        Code::TcMirredCopies,
        summary,
        evidence,
        remediation(f, target, cause),
    );
}

fn remediation(f: &OnPath, target: &MirredTarget, cause: &Cause) -> Vec<String> {
    let mut fix = Vec::new();
    match cause {
        Cause::Taps(taps) => fix.push(format!(
            "Stop the capture on {} by {}, or capture the mirrored traffic where zerocopy sends do not pass; the mirror itself copies nothing.",
            target.name,
            owners(taps)
        )),
        Cause::Tun => fix.push(format!(
            "Mirror or redirect to a device no process reads instead of {}, or leave MSG_ZEROCOPY off for this traffic: it is copied anyway.",
            target.name
        )),
        Cause::NoScatterGather => fix.push(format!(
            "Turn scatter-gather on for the target: {}, or mirror to a device that has it.",
            f.hop.command(&format!("ethtool -K {} sg on", target.name))
        )),
        Cause::ReceivePath => fix.push(
            "Use an egress mirror or redirect instead, or a kernel from 6.17 on, whose receive path keeps zerocopy pages; otherwise leave MSG_ZEROCOPY off for this traffic.".to_string(),
        ),
    }
    fix.push(format!(
        "If the mirror is not needed: {} (it removes every filter of that preference; see them with {}).",
        f.delete(),
        f.show()
    ));
    fix
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{evidence_with_kernel, raised};
    use crate::evidence::{Evidence, MirredAction, Owner, TcFilter, TcFilters, TcHook};

    fn mirred_filter(action: MirredAction, target: &str, kind: DeviceKind) -> TcFilter {
        TcFilter::u32_egress(
            49152,
            vec![TcAction {
                order: 1,
                kind: "mirred".into(),
                index: Some(7),
                mirred: Some(Mirred {
                    action,
                    eaction: 2,
                    ifindex: 77,
                    target: Some(MirredTarget {
                        name: target.into(),
                        kind,
                        link_kind: None,
                        oper_state: "up".into(),
                        features: None,
                    }),
                }),
                bpf: None,
            }],
        )
    }

    fn with_filter(mut ev: Evidence, f: TcFilter) -> Evidence {
        ev.stack[0].tc = Some(TcFilters {
            filters: vec![f],
            ..TcFilters::default()
        });
        ev
    }

    fn tap_on(ev: &mut Evidence, ifindex: u32, setting: IgnoreOutgoing) {
        let scan = ev.taps.as_mut().expect("taps read");
        let netns = crate::evidence::NetnsRef {
            inode: scan.diagnosed_netns,
            name: None,
        };
        scan.sockets.push(PacketSocket {
            inode: 555,
            netns,
            sock_type: "raw".into(),
            protocol: PacketSocket::ETH_P_ALL,
            ifindex: Some(ifindex),
            device: Some("ifbm".into()),
            running: true,
            uid: Some(0),
            owners: vec![Owner {
                pid: 4321,
                comm: "tcpdump".into(),
                exe: None,
                cmdline: Vec::new(),
                uid: Some(0),
                unit: None,
                container: None,
                cgroup: None,
            }],
            ignore_outgoing: setting,
            fanout: None,
        });
    }

    #[test]
    fn a_mirror_to_a_tapped_device_is_a_blocker_naming_filter_and_tap() {
        let f = mirred_filter(MirredAction::EgressMirror, "ifbm", DeviceKind::Ifb);
        let mut ev = with_filter(evidence_with_kernel("6.18.0"), f);
        assert!(raised(&ev, Code::TcMirredCopies).is_empty(), "no tap yet");
        tap_on(&mut ev, 77, IgnoreOutgoing::NotSet);
        let found = raised(&ev, Code::TcMirredCopies);
        let f = &found[0];
        assert_eq!(f.severity, crate::vocab::Severity::Blocker);
        assert!(
            f.summary.starts_with("tc egress filter u32 pref 49152 handle 800::800 on eth0 runs")
                && f.summary.contains("runs action 1 mirred (index 7), mirred egress mirror to ifbm: tcpdump (pid 4321) holds an ETH_P_ALL packet socket bound to ifbm"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence["mirred"]["target"], "ifbm");
        assert_eq!(f.evidence["taps"][0]["owners"][0]["pid"], 4321);
        assert!(
            f.remediation[1].contains("egress pref 49152"),
            "{:?}",
            f.remediation
        );
        // A tap that ignores outgoing packets skips the transmitted clone.
        let mut ev = with_filter(
            evidence_with_kernel("6.18.0"),
            mirred_filter(MirredAction::EgressMirror, "ifbm", DeviceKind::Ifb),
        );
        tap_on(&mut ev, 77, IgnoreOutgoing::Set);
        assert!(raised(&ev, Code::TcMirredCopies).is_empty());
    }

    #[test]
    fn tun_targets_and_ingress_before_6_17_copy_clean_targets_do_not() {
        let tun = mirred_filter(MirredAction::EgressRedirect, "tun0", DeviceKind::Tun);
        let ev = with_filter(evidence_with_kernel("6.18.0"), tun);
        assert!(
            raised(&ev, Code::TcMirredCopies)[0]
                .summary
                .contains("tun0 is a tun/tap device")
        );
        let mut clean = mirred_filter(MirredAction::EgressRedirect, "eth1", DeviceKind::Physical);
        let ev = with_filter(evidence_with_kernel("6.18.0"), clean.clone());
        assert!(raised(&ev, Code::TcMirredCopies).is_empty());
        // The same target without scatter-gather copies.
        let target = clean.actions[0].mirred.as_mut().unwrap().target.as_mut().unwrap();
        let off = crate::evidence::FeatureState { active: false, wanted: false, fixed: false };
        target.features = Some(crate::evidence::Features([(SG.to_string(), off)].into()));
        let ev = with_filter(evidence_with_kernel("6.18.0"), clean);
        let f = &raised(&ev, Code::TcMirredCopies)[0];
        assert!(f.summary.contains("eth1 transmits without scatter-gather"), "{}", f.summary);
        assert_eq!(f.remediation[0], "Turn scatter-gather on for the target: ethtool -K eth1 sg on, or mirror to a device that has it.");
        for (release, copies) in [("6.1.0", true), ("5.10.0", true), ("6.18.0", false)] {
            let f = mirred_filter(MirredAction::IngressRedirect, "veth1", DeviceKind::Veth);
            let ev = with_filter(evidence_with_kernel(release), f);
            assert_eq!(
                !raised(&ev, Code::TcMirredCopies).is_empty(),
                copies,
                "{release}"
            );
        }
        // A filter on the ingress hook of a transmitting device does not see the traffic.
        let mut f = mirred_filter(MirredAction::EgressRedirect, "tun0", DeviceKind::Tun);
        f.hook = TcHook::Ingress;
        let ev = with_filter(evidence_with_kernel("6.18.0"), f);
        assert!(raised(&ev, Code::TcMirredCopies).is_empty());
    }
}
