//! Packet taps analysis: which ETH_P_ALL sockets sit on the path ([`tap_on_path`]), grouped
//! by owner, setting and place ([`TapGroup`]: lldpd's socket per interface is one cause), and
//! what each group's finding says whatever its code ([`TapGroup::describe`]). The rules
//! `tap_forces_copy`, `tap_ignores_outgoing` and `tap_unknown_setting` turn a group into its
//! finding by its setting; `taps_not_checked` says what the scan could not read.

use serde_json::{Value, json};

use super::hops::{Hop, Toward, netns_label, with_toward};
use super::tap_fix;
use crate::evidence::{Evidence, HopRole, IgnoreOutgoing, Owner, PacketSocket, TapScan};
use crate::kernel::{self, IGNORE_OUTGOING, PER_NETNS_TAPS};
use crate::knowledge::Knowledge;

/// Where a tap sits on the path, as [`tap_on_path`] found it.
struct Place<'a> {
    why: String,
    toward: Option<Toward<'a>>,
    /// The traffic is received there ([`receives`]).
    receive: bool,
    /// The tap's device carries only the flows a bond hashes to it: the clause that says so.
    hashed: Option<String>,
}

/// Why a tap is on the path, or `None` when it is not: bound to a device of a hop's stack,
/// unbound in a hop's namespace, or unbound anywhere before Linux 6.15 (the first hop that
/// explains it; a tap is one cause however many hops it sees).
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

/// The taps on the path, grouped: one group, one finding.
pub struct TapsOnPath<'a> {
    pub scan: &'a TapScan,
    pub groups: Vec<TapGroup<'a>>,
    /// Whether this kernel has PACKET_IGNORE_OUTGOING (4.20): before it, every tap copies.
    pub option_exists: bool,
}

impl<'a> TapsOnPath<'a> {
    /// `None` when the tap probe did not run.
    pub fn of(ev: &'a Evidence, hops: &[Hop<'a>]) -> Option<TapsOnPath<'a>> {
        let scan = ev.taps.as_ref()?;
        // Before 4.20 the option does not exist: whatever the read said, a tap copies.
        let option_exists = kernel::has(ev.kernel.version, IGNORE_OUTGOING);
        let mut groups: Vec<TapGroup> = Vec::new();
        for s in &scan.sockets {
            let Some(place) = tap_on_path(ev, hops, s) else {
                continue;
            };
            // On the receive side the setting does not matter: the tap copies.
            let setting = if option_exists && !place.receive {
                effective_setting(s)
            } else {
                IgnoreOutgoing::NotSet
            };
            group(&mut groups, s, setting, place);
        }
        Some(TapsOnPath {
            scan,
            groups,
            option_exists,
        })
    }
}

/// Adds socket `s` to the group of its owners, setting and place, or starts one.
fn group<'a>(
    groups: &mut Vec<TapGroup<'a>>,
    s: &'a PacketSocket,
    setting: IgnoreOutgoing,
    place: Place<'a>,
) {
    let Place {
        why,
        toward,
        receive,
        hashed,
    } = place;
    let mut pids: Vec<u32> = s.owners.iter().map(|o| o.pid).collect();
    pids.sort_unstable();
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

/// What a group's finding says whatever its code: who holds what, the evidence, the owners'
/// fixes and notes.
pub struct Described {
    /// `tcpdump (pid 4242)`, or an unknown process with the socket's inode.
    pub who: String,
    /// `an ETH_P_ALL packet socket bound to eth0`, or several with where each is.
    pub what: String,
    pub evidence: Value,
    pub fix: Vec<String>,
    pub notes: Vec<String>,
}

/// Taps on the path with the same owners, setting and place: one cause.
pub struct TapGroup<'a> {
    pub pids: Vec<u32>,
    /// The setting the kernel applies (`NotSet` on the receive side and before 4.20).
    pub setting: IgnoreOutgoing,
    /// Each socket, with why it is on the path.
    pub sockets: Vec<(&'a PacketSocket, String)>,
    /// The other destination (`check --pid`) whose way the first socket is on.
    pub toward: Option<Toward<'a>>,
    /// The traffic is received where these taps are ([`receives`]).
    pub receive: bool,
    /// The first tap's device carries only some flows (a hashing bond's slave): the clause.
    pub hashed: Option<String>,
}

impl TapGroup<'_> {
    pub fn first(&self) -> &PacketSocket {
        self.sockets[0].0
    }

    /// Who holds what, the evidence, and the owners' fixes and notes (`tap_fix`).
    pub fn describe(&self, kb: &Knowledge) -> Described {
        let first = self.first();
        let owners: Vec<String> = first.owners.iter().map(owner_label).collect();
        let who = if owners.is_empty() {
            format!("an unknown process (socket inode {})", first.inode)
        } else {
            owners.join(", ")
        };
        let whys: Vec<&str> = self.sockets.iter().map(|(_, w)| w.as_str()).collect();
        let what = if self.sockets.len() == 1 {
            format!("an ETH_P_ALL packet socket {}", whys[0])
        } else {
            format!(
                "{} ETH_P_ALL packet sockets: {}",
                self.sockets.len(),
                whys.join("; ")
            )
        };
        let mut fix: Vec<String> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        for (s, _) in &self.sockets {
            let (n, f) = tap_fix::for_socket(kb, s, self.receive);
            notes.extend(n);
            fix.extend(f);
        }
        dedup_keep_order(&mut fix);
        dedup_keep_order(&mut notes);
        Described {
            who,
            what,
            evidence: self.evidence(&whys),
            fix,
            notes,
        }
    }

    fn evidence(&self, whys: &[&str]) -> Value {
        let first = self.first();
        let devices: Vec<String> = self
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
            "inodes": self.sockets.iter().map(|(s, _)| s.inode).collect::<Vec<_>>(),
            "netns": first.netns,
            "on_path": whys,
            "owners": first.owners,
            "pids": self.pids,
            "ignore_outgoing": self.setting,
            "read_from_socket": first.ignore_outgoing,
            "fanout": first.fanout,
        });
        with_toward(&mut evidence, self.toward);
        if let (true, Value::Object(map)) = (self.receive, &mut evidence) {
            map.insert("receive_side".into(), json!(true));
        }
        evidence
    }
}

fn dedup_keep_order(lines: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    lines.retain(|l| seen.insert(l.clone()));
}

/// `PACKET_FANOUT_FLAG_IGNORE_OUTGOING`, in the flags half of `getsockopt(PACKET_FANOUT)`.
const FANOUT_FLAG_IGNORE_OUTGOING: u16 = 0x4000;

/// The setting the kernel applies: a fanout member's own option is irrelevant, because the
/// group's hook replaces the member's (`fanout_add`), so the group flag decides.
pub fn effective_setting(s: &PacketSocket) -> IgnoreOutgoing {
    match &s.fanout {
        Some(f) if f.flags & FANOUT_FLAG_IGNORE_OUTGOING != 0 => IgnoreOutgoing::Set,
        Some(_) => IgnoreOutgoing::NotSet,
        None => s.ignore_outgoing.clone(),
    }
}
