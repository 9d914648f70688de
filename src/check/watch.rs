//! `zcdoctor watch`'s counts attributed: the cause of each copy from the kernel function that
//! called the copy (the table below, read from the kernel sources in
//! docs/research/watch-kernel-sites.md), the tap's owner from the taps evidence, the sender from
//! the socket holders, and each sender's copied fraction from its completions. Pure: no I/O.

use std::collections::BTreeMap;

use crate::evidence::watch::{CopyCount, WatchDevice, WatchEvidence, WatchRole};
use crate::evidence::{Evidence, Fact, IgnoreOutgoing};
use crate::report::watch::{
    TapCulprit, WatchCause, WatchCopies, WatchOverhead, WatchSender, WatchSenderTotals,
    WatchSummary,
};
use crate::vocab::Code;

/// Callers of the copying functions and the cause each stands for (the same on 5.10, 6.1 and
/// 6.12; a `.constprop.N`/`.isra.N` suffix of a compiler clone is ignored).
const CALLERS: &[(WatchRole, &str, WatchCause)] = &[
    (WatchRole::CopyUbufs, "dev_queue_xmit_nit", WatchCause::Tap),
    (
        WatchRole::CopyUbufs,
        "__netif_receive_skb_core",
        WatchCause::LocalDelivery,
    ),
    (
        WatchRole::CopyUbufs,
        "__netif_receive_skb_one_core",
        WatchCause::LocalDelivery,
    ),
    (
        WatchRole::CopyUbufs,
        "__skb_tstamp_tx",
        WatchCause::Timestamping,
    ),
    (WatchRole::CopyUbufs, "tun_net_xmit", WatchCause::Tun),
    (
        WatchRole::FullPull,
        "validate_xmit_skb",
        WatchCause::Linearize,
    ),
    (
        WatchRole::FullPull,
        "skb_checksum_help",
        WatchCause::Checksum,
    ),
    (WatchRole::FullPull, "skb_segment", WatchCause::Segmentation),
    (WatchRole::FullPull, "skb_cow_data", WatchCause::Encryption),
];

/// The cause of a copy by where it was counted and who called.
pub fn cause(role: WatchRole, caller: Option<&str>) -> WatchCause {
    if role == WatchRole::SegmentWithoutSg {
        return WatchCause::SilentSegmentation;
    }
    let base = caller.map(|c| c.split('.').next().unwrap_or(c));
    CALLERS
        .iter()
        .find(|(r, name, _)| *r == role && Some(*name) == base)
        .map_or(WatchCause::Other, |(_, _, c)| *c)
}

/// The finding that explains a cause, where one does.
pub fn code_of(cause: WatchCause) -> Option<Code> {
    let name = match cause {
        WatchCause::Tap => "tap-forces-copy",
        WatchCause::LocalDelivery => "local-delivery",
        WatchCause::Linearize | WatchCause::SilentSegmentation => "no-scatter-gather",
        WatchCause::Checksum | WatchCause::Segmentation => "no-tx-checksum",
        WatchCause::Encryption => "tunnel-encrypts",
        WatchCause::Timestamping => "tx-timestamp-copies",
        _ => return None,
    };
    Code::ALL.iter().copied().find(|c| c.as_str() == name)
}

/// The tap sockets on `d` that see outgoing packets, with their owners.
fn tap_culprits(ev: &Evidence, d: &WatchDevice) -> Vec<TapCulprit> {
    let Some(taps) = &ev.taps else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in &taps.sockets {
        let on_device = s.ifindex.is_none_or(|i| i == d.ifindex);
        let ignores = matches!(s.ignore_outgoing, IgnoreOutgoing::Set);
        if s.netns.inode != d.netns_inode || !on_device || !s.is_tx_tap() || ignores {
            continue;
        }
        for o in &s.owners {
            out.push(TapCulprit {
                pid: o.pid,
                comm: o.comm.clone(),
                unit: o.unit.clone(),
                socket: s.inode,
            });
        }
    }
    out
}

/// The sender behind socket `inode`: its holder, and what `--pid` read of it.
fn sender(ev: &Evidence, w: &WatchEvidence, inode: Option<u64>) -> WatchSender {
    let Some(inode) = inode else {
        return WatchSender::default();
    };
    let holder = w.sockets.iter().find(|h| h.inode == inode);
    let mut s = WatchSender {
        socket: Some(inode),
        pid: holder.map(|h| h.pid),
        comm: holder.map(|h| h.comm.clone()),
        fd: holder.map(|h| h.fd),
        socket_label: None,
    };
    for p in &ev.processes {
        let Some(sock) = p.sockets.iter().find(|x| x.inode == inode) else {
            continue;
        };
        let local = sock.local.value().cloned().unwrap_or_default();
        let peer = match &sock.peer {
            Fact::Read(Some(peer)) => format!(" -> {peer}"),
            _ => String::new(),
        };
        let qemu = if crate::check::process::qemu::is_qemu(p) && !peer.is_empty() {
            " (QEMU migration channel)"
        } else {
            ""
        };
        s.socket_label = Some(format!("{} {local}{peer}{qemu}", sock.protocol));
        s.pid = s.pid.or(Some(p.pid));
        s.comm = s.comm.clone().or_else(|| Some(p.comm.clone()));
        s.fd = s.fd.or(Some(sock.fd));
    }
    s
}

/// The devices of the diagnosed interface's path, as (namespace inode, ifindex).
fn path_devices(ev: &Evidence) -> Vec<(u64, u32)> {
    let origin = ev
        .path
        .as_ref()
        .map(|p| p.origin.inode)
        .or(ev.taps.as_ref().map(|t| t.diagnosed_netns));
    let mut out: Vec<(u64, u32)> = Vec::new();
    if let Some(o) = origin {
        out.extend(ev.stack.iter().map(|d| (o, d.ifindex)));
    }
    for seg in ev.path.iter().flat_map(|p| &p.segments) {
        out.extend(seg.stack.iter().map(|d| (seg.netns.inode, d.ifindex)));
    }
    out
}

/// Whether a copy is in the watch's scope (`--pid`, IFACE).
fn in_scope(w: &WatchEvidence, c: &CopyCount, devices: &[(u64, u32)]) -> bool {
    if !w.pids.is_empty() && !c.socket.is_some_and(|s| w.pid_sockets.contains(&s)) {
        return false;
    }
    if w.iface.is_some() {
        let Some(d) = &c.device else {
            return false;
        };
        return devices.contains(&(d.netns_inode, d.ifindex));
    }
    true
}

fn scope_text(w: &WatchEvidence) -> String {
    let mut parts = Vec::new();
    if let Some(iface) = &w.iface {
        parts.push(format!("the path of {iface}"));
    }
    if !w.pids.is_empty() {
        let pids: Vec<String> = w.pids.iter().map(u32::to_string).collect();
        parts.push(format!("the sockets of pid {}", pids.join(", ")));
    }
    if parts.is_empty() {
        "every device and sender of the host".to_string()
    } else {
        parts.join(", ")
    }
}

/// The watch of `ev`, attributed; `None` when `ev` has none.
pub fn summarise(ev: &Evidence) -> Option<WatchSummary> {
    let w = ev.watch.as_ref()?;
    let secs = (w.duration_ms as f64 / 1000.0).max(0.001);
    let devices = path_devices(ev);
    let mut copies: Vec<WatchCopies> = Vec::new();
    for c in w.copies.iter().filter(|c| in_scope(w, c, &devices)) {
        let cause = cause(c.role, c.caller.as_deref());
        let culprits = match (&c.device, cause) {
            (Some(d), WatchCause::Tap) => tap_culprits(ev, d),
            _ => Vec::new(),
        };
        copies.push(WatchCopies {
            cause,
            reported: cause != WatchCause::SilentSegmentation,
            caller: c.caller.clone(),
            device: c.device.clone(),
            sender: sender(ev, w, c.socket),
            culprits,
            code: code_of(cause),
            count: c.count,
            bytes: c.bytes,
            per_second: c.count as f64 / secs,
        });
    }
    copies.sort_by(|a, b| b.count.cmp(&a.count).then(a.cause.cmp(&b.cause)));
    let senders = sender_totals(ev, w, &copies);
    let hits: u64 = w.functions.iter().map(|f| f.hits).sum();
    let bpf_ns: u64 = w.functions.iter().map(|f| f.bpf_ns).sum();
    let cpu_ns = secs * 1e9 * f64::from(w.cpus.max(1));
    Some(WatchSummary {
        refused: w.refused.clone(),
        duration_ms: w.duration_ms,
        interrupted: w.interrupted,
        scope: scope_text(w),
        functions: w.functions.clone(),
        not_probed: w.not_probed.clone(),
        reported_copies: copies.iter().filter(|c| c.reported).map(|c| c.count).sum(),
        silent_copies: copies.iter().filter(|c| !c.reported).map(|c| c.count).sum(),
        copies,
        senders,
        overhead: WatchOverhead {
            hits,
            hits_per_second: hits as f64 / secs,
            bpf_ns,
            cpu_share: bpf_ns as f64 / cpu_ns,
            lost: w.functions.iter().map(|f| f.lost).sum(),
        },
    })
}

/// Each sender's completions, with the copies counted for its socket.
fn sender_totals(
    ev: &Evidence,
    w: &WatchEvidence,
    copies: &[WatchCopies],
) -> Vec<WatchSenderTotals> {
    let mut by_socket: BTreeMap<Option<u64>, (u64, u64)> = BTreeMap::new();
    for c in copies {
        let e = by_socket.entry(c.sender.socket).or_default();
        if c.reported {
            e.0 += c.count;
        } else {
            e.1 += c.count;
        }
    }
    let mut out = Vec::new();
    for done in &w.completions {
        if !w.pids.is_empty() && !done.socket.is_some_and(|s| w.pid_sockets.contains(&s)) {
            continue;
        }
        let (reported_copies, silent_copies) =
            by_socket.get(&done.socket).copied().unwrap_or_default();
        out.push(WatchSenderTotals {
            sender: sender(ev, w, done.socket),
            notifications: done.notifications,
            sends: done.sends,
            copied_sends: done.copied_sends,
            copied_fraction: (done.sends > 0).then(|| done.copied_sends as f64 / done.sends as f64),
            reported_copies,
            silent_copies,
            send_fallback: done.copied_sends > 0 && reported_copies == 0,
        });
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.sends));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_follow_the_caller_and_ignore_compiler_clones() {
        let c = |role, caller| cause(role, Some(caller));
        assert_eq!(
            c(WatchRole::CopyUbufs, "dev_queue_xmit_nit"),
            WatchCause::Tap
        );
        assert_eq!(
            c(WatchRole::CopyUbufs, "__netif_receive_skb_core.constprop.0"),
            WatchCause::LocalDelivery
        );
        assert_eq!(
            c(WatchRole::CopyUbufs, "__skb_tstamp_tx"),
            WatchCause::Timestamping
        );
        assert_eq!(
            c(WatchRole::FullPull, "validate_xmit_skb"),
            WatchCause::Linearize
        );
        assert_eq!(
            c(WatchRole::FullPull, "skb_cow_data"),
            WatchCause::Encryption
        );
        // The same caller at another site is not that cause.
        assert_eq!(
            c(WatchRole::FullPull, "dev_queue_xmit_nit"),
            WatchCause::Other
        );
        assert_eq!(cause(WatchRole::CopyUbufs, None), WatchCause::Other);
        assert_eq!(
            cause(WatchRole::SegmentWithoutSg, Some("tcp_gso_segment")),
            WatchCause::SilentSegmentation
        );
        assert_eq!(
            code_of(WatchCause::Tap).map(|c| c.as_str()),
            Some("tap-forces-copy")
        );
        // Each name in `code_of` is a code of the knowledge base.
        for cause in [
            WatchCause::Tap,
            WatchCause::LocalDelivery,
            WatchCause::Linearize,
            WatchCause::Checksum,
            WatchCause::Encryption,
            WatchCause::Timestamping,
        ] {
            assert!(code_of(cause).is_some(), "{cause:?}");
        }
    }
}
