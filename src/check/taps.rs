//! Packet taps: which ETH_P_ALL sockets sit on the path, what their owners are, and whether
//! each forces a copy (PACKET_IGNORE_OUTGOING not set, or a kernel before 4.20).

use serde_json::{Value, json};

use super::findings::{Code, Findings};
use super::hops::{Hop, Toward, hops, netns_label, with_toward};
use super::tap_fix;
use crate::evidence::{
    Evidence, HopRole, IgnoreOutgoing, Owner, PacketSocket, ProbeName, ProbeState,
};
use crate::kernel::{self, IGNORE_OUTGOING, PER_NETNS_TAPS};
use crate::vocab::Severity;

/// Why a tap is on the path, or `None` when it is not: bound to a device of a hop's stack,
/// unbound in a hop's namespace, or unbound anywhere before Linux 6.15 (the first hop that
/// explains it; a tap is one cause however many hops it sees).
/// Where a tap sits on the path, as [`tap_on_path`] found it.
struct Place<'a> {
    why: String,
    toward: Option<Toward<'a>>,
    /// The traffic is received there ([`receives`]).
    receive: bool,
    /// The tap's device carries only the flows a bond hashes to it: the clause that says so.
    hashed: Option<String>,
}

fn tap_on_path<'a>(ev: &Evidence, hops: &[Hop<'a>], s: &PacketSocket) -> Option<Place<'a>> {
    if !s.is_tx_tap() {
        return None;
    }
    for hop in hops {
        let same_netns = s.netns.inode == hop.netns_key;
        let whereabouts = hop.whereabouts();
        match s.ifindex {
            None if same_netns => {
                let why = if hop.index == 0 {
                    "unbound (all devices) in the same namespace".to_string()
                } else {
                    format!("unbound (all devices){whereabouts}")
                };
                return Some(Place {
                    why,
                    toward: hop.toward,
                    receive: receives(hop),
                    hashed: None,
                });
            }
            Some(idx) if same_netns => {
                let Some(dev) = hop.stack.iter().find(|d| d.ifindex == idx) else {
                    continue;
                };
                let why = if dev.depth == 0 {
                    format!("bound to {}{whereabouts}", dev.name)
                } else {
                    format!(
                        "bound to {}, below {} in the stack{whereabouts}",
                        dev.name,
                        dev.upper.as_deref().unwrap_or(hop.top())
                    )
                };
                return Some(Place {
                    why,
                    toward: hop.toward,
                    receive: receives(hop),
                    hashed: hop.partial_clause(&dev.name),
                });
            }
            _ => {}
        }
    }
    (s.ifindex.is_none() && !kernel::has(ev.kernel.version, PER_NETNS_TAPS)).then(|| {
        let why = format!(
            "unbound in namespace {}: before Linux 6.15 such a tap sees every namespace's traffic",
            netns_label(&s.netns)
        );
        Place {
            why,
            toward: None,
            receive: false,
            hashed: None,
        }
    })
}

/// Whether the traffic is received on the hop's devices (a veth's peer, and what it is a port
/// of) rather than transmitted: there a tap is served by the receive path (`deliver_skb`), which
/// copies the pages whatever `PACKET_IGNORE_OUTGOING` says (that option only skips
/// `dev_queue_xmit_nit`).
fn receives(hop: &Hop) -> bool {
    hop.role.is_some_and(HopRole::receives)
}

fn owner_label(o: &Owner) -> String {
    let mut s = format!("{} (pid {}", o.comm, o.pid);
    if let Some(u) = &o.unit {
        s.push_str(&format!(", {u}"));
    }
    if let Some(c) = &o.container {
        s.push_str(&format!(", container {c}"));
    }
    s.push(')');
    s
}

pub fn check(ev: &Evidence, out: &mut Findings) {
    let tap_probe = ev.probes.iter().find(|p| p.name == ProbeName::Taps);
    let Some(scan) = &ev.taps else {
        let why = tap_probe
            .map(|p| p.detail.clone())
            .unwrap_or_else(|| "the tap probe did not run".to_string());
        let by_request = tap_probe.is_some_and(|p| p.status == ProbeState::Skipped);
        out.raise(
            Code::TapsNotChecked,
            format!("packet taps were not checked: {why}"),
            json!({"reason": why}),
            vec![if by_request {
                "Run without --skip taps (or --no-taps) to check them.".to_string()
            } else {
                "Run zcdoctor as root (it reads every namespace's packet table and each owner's socket through pidfd_getfd).".to_string()
            }],
        );
        return;
    };
    // Before 4.20 the option does not exist: whatever the read said, a tap copies.
    let option_exists = kernel::has(ev.kernel.version, IGNORE_OUTGOING);
    let hops = hops(ev);
    let mut groups: Vec<TapGroup> = Vec::new();
    for s in &scan.sockets {
        let Some(Place {
            why,
            toward,
            receive,
            hashed,
        }) = tap_on_path(ev, &hops, s)
        else {
            continue;
        };
        // On the receive side the setting does not matter: the tap copies.
        let setting = if option_exists && !receive {
            effective_setting(s)
        } else {
            IgnoreOutgoing::NotSet
        };
        let mut pids: Vec<u32> = s.owners.iter().map(|o| o.pid).collect();
        pids.sort_unstable();
        // One finding per owner and setting: lldpd's socket per interface is one cause.
        match groups.iter_mut().find(|g| {
            !pids.is_empty()
                && g.pids == pids
                && g.setting == setting
                && g.receive == receive
                && g.hashed.is_some() == hashed.is_some()
        }) {
            Some(g) => g.sockets.push((s, why)),
            None => groups.push(TapGroup {
                pids,
                setting,
                sockets: vec![(s, why)],
                toward,
                receive,
                hashed,
            }),
        }
    }
    let on_path = groups.len();
    for g in &groups {
        let (first, _) = g.sockets[0];
        let owners: Vec<String> = first.owners.iter().map(owner_label).collect();
        let who = if owners.is_empty() {
            format!("an unknown process (socket inode {})", first.inode)
        } else {
            owners.join(", ")
        };
        let whys: Vec<&str> = g.sockets.iter().map(|(_, w)| w.as_str()).collect();
        let what = if g.sockets.len() == 1 {
            format!("an ETH_P_ALL packet socket {}", whys[0])
        } else {
            format!(
                "{} ETH_P_ALL packet sockets: {}",
                g.sockets.len(),
                whys.join("; ")
            )
        };
        let devices: Vec<String> = g
            .sockets
            .iter()
            .map(|(s, _)| {
                s.device
                    .clone()
                    .unwrap_or_else(|| "(all devices)".to_string())
            })
            .collect();
        let mut evidence = json!({
            "device": first.device,
            "devices": devices,
            "inodes": g.sockets.iter().map(|(s, _)| s.inode).collect::<Vec<_>>(),
            "netns": first.netns,
            "on_path": whys,
            "owners": first.owners,
            "pids": g.pids,
            "ignore_outgoing": g.setting,
            "read_from_socket": first.ignore_outgoing,
            "fanout": first.fanout,
        });
        with_toward(&mut evidence, g.toward);
        let mut fix: Vec<String> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        for (s, _) in &g.sockets {
            let (n, f) = tap_fix::for_socket(out.kb(), s, g.receive);
            notes.extend(n);
            fix.extend(f);
        }
        dedup_keep_order(&mut fix);
        dedup_keep_order(&mut notes);
        if let (true, Value::Object(map)) = (g.receive, &mut evidence) {
            map.insert("receive_side".into(), json!(true));
        }
        match &g.setting {
            IgnoreOutgoing::NotSet if g.receive => {
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
                fix.insert(
                    0,
                    format!(
                        "PACKET_IGNORE_OUTGOING cannot help here: the zerocopy traffic is received on {place} (from a veth), and a tap copies every received packet. Stop the tap, or keep it off {place}."
                    ),
                );
                let set = match effective_setting(first) {
                    IgnoreOutgoing::Set => "even though it sets PACKET_IGNORE_OUTGOING",
                    _ => "whatever PACKET_IGNORE_OUTGOING says",
                };
                let summary = format!(
                    "{who} holds {what}; the traffic is received there, and a tap copies every received packet, {set} (the option only skips transmitted ones)"
                );
                out.raise(Code::TapForcesCopy, summary, evidence, fix).notes = notes;
            }
            IgnoreOutgoing::NotSet if g.hashed.is_some() => {
                // Only the flows the bond hashes to this slave are copied: a possibility for
                // any one flow, which a live probe decides.
                let summary = format!(
                    "{who} holds {what}; it does not set PACKET_IGNORE_OUTGOING{}",
                    g.hashed.as_deref().unwrap_or_default()
                );
                out.raise_as(
                    Code::TapForcesCopy,
                    Severity::Warning,
                    summary,
                    evidence,
                    fix,
                )
                .notes = notes;
            }
            IgnoreOutgoing::NotSet => {
                let summary = if option_exists {
                    format!("{who} holds {what}; it does not set PACKET_IGNORE_OUTGOING")
                } else {
                    fix.insert(
                        0,
                        format!(
                            "Linux {} predates PACKET_IGNORE_OUTGOING (4.20): no daemon build can avoid the copy here, only taking the tap off this path (or a newer kernel) does.",
                            ev.kernel.version.map(|v| v.to_string()).unwrap_or_default()
                        ),
                    );
                    format!(
                        "{who} holds {what}; this kernel predates PACKET_IGNORE_OUTGOING (4.20), so the tap copies every send"
                    )
                };
                out.raise(Code::TapForcesCopy, summary, evidence, fix).notes = notes;
            }
            IgnoreOutgoing::Set => {
                out.raise(
                    Code::TapIgnoresOutgoing,
                    format!("{who} holds {what}, but sets PACKET_IGNORE_OUTGOING: harmless"),
                    evidence,
                    vec!["Nothing to do.".to_string()],
                );
            }
            IgnoreOutgoing::Unknown { reason, cause } => {
                fix.insert(0, tap_fix::unreadable(cause.as_ref()));
                out.raise(
                    Code::TapUnknownSetting,
                    format!(
                        "{who} holds {what}; its PACKET_IGNORE_OUTGOING could not be read: {reason}"
                    ),
                    evidence,
                    fix,
                )
                .notes = notes;
            }
        }
    }
    if on_path == 0 {
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
    if scan.namespaces_unreadable > 0 {
        out.raise(
            Code::TapsNotChecked,
            format!(
                "the packet tables of {} namespace{} could not be read",
                scan.namespaces_unreadable,
                if scan.namespaces_unreadable == 1 {
                    ""
                } else {
                    "s"
                }
            ),
            json!({"namespaces_unreadable": scan.namespaces_unreadable, "problems": scan.problems}),
            vec!["Run zcdoctor as root so it can enter every network namespace.".to_string()],
        );
    }
}

struct TapGroup<'a> {
    pids: Vec<u32>,
    setting: IgnoreOutgoing,
    sockets: Vec<(&'a PacketSocket, String)>,
    /// The other destination (`check --pid`) whose way the first socket is on.
    toward: Option<Toward<'a>>,
    /// The traffic is received where these taps are ([`receives`]).
    receive: bool,
    /// The first tap's device carries only some flows (a hashing bond's slave): the clause.
    hashed: Option<String>,
}

fn dedup_keep_order(lines: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    lines.retain(|l| seen.insert(l.clone()));
}

/// `PACKET_FANOUT_FLAG_IGNORE_OUTGOING`, in the flags half of `getsockopt(PACKET_FANOUT)`.
const FANOUT_FLAG_IGNORE_OUTGOING: u16 = 0x4000;

/// The setting the kernel applies: a fanout member's own option is irrelevant, because the
/// group's hook replaces the member's (`fanout_add`), so the group flag decides.
fn effective_setting(s: &PacketSocket) -> IgnoreOutgoing {
    match &s.fanout {
        Some(f) if f.flags & FANOUT_FLAG_IGNORE_OUTGOING != 0 => IgnoreOutgoing::Set,
        Some(_) => IgnoreOutgoing::NotSet,
        None => s.ignore_outgoing.clone(),
    }
}
