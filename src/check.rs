//! Checks: pure functions from Evidence to findings. No I/O here, ever: everything a check needs
//! is in the Evidence, so a recording diagnoses exactly like the live host.

use serde_json::{Map, Value, json};

use crate::evidence::{
    Device, DeviceKind, Evidence, IgnoreOutgoing, LiveProbe, Owner, PacketSocket, ProbeName,
    ProbeState, RouteType, RunPattern,
};
use crate::kernel;
use crate::knowledge::Knowledge;
use crate::report::{Basis, Finding, Passed, Report, Severity, Verdict, Zerocopy};

/// Every finding code a check can raise. A test keeps this and `checks/findings.toml` in step.
pub const ALL_CODES: &[&str] = &[
    "kernel-too-old",
    "no-scatter-gather",
    "no-tx-checksum",
    "local-delivery",
    "veth-path",
    "optmem-low",
    "memlock-limit",
    "device-down",
    "features-unreadable",
    "lower-device-elsewhere",
    "tap-forces-copy",
    "tap-ignores-outgoing",
    "tap-unknown-setting",
    "taps-not-checked",
    "udp-fragmentation",
    "live-copied",
    "copies-unexplained",
    "live-contradicts-prediction",
    "zerocopy-enobufs",
    "zerocopy-slower",
    "completions-missing",
    "live-probe-not-run",
];

/// Codes that can explain copies seen live (veth-path only says "may").
const COPY_EXPLAINERS: &[&str] = &[
    "no-scatter-gather",
    "no-tx-checksum",
    "local-delivery",
    "tap-forces-copy",
    "udp-fragmentation",
    "kernel-too-old",
    "veth-path",
];

/// Codes whose presence predicts that sends are copied.
const COPY_CAUSES: &[&str] = &[
    "no-scatter-gather",
    "no-tx-checksum",
    "local-delivery",
    "tap-forces-copy",
    "udp-fragmentation",
    "kernel-too-old",
];

pub use crate::evidence::Protocol;

/// One notification skb (SKB_TRUESIZE(0) on x86-64) is charged to optmem until its completion
/// is read; this many sends in flight per socket is a modest burst.
pub const NOTIFICATION_TRUESIZE: u64 = 576;
pub const BURST_IN_FLIGHT: u64 = 64;

/// Collects findings and passes; titles and default severities come from the knowledge base.
struct Sink {
    kb: &'static Knowledge,
    findings: Vec<Finding>,
    passed: Vec<Passed>,
}

impl Sink {
    fn push(
        &mut self,
        code: &str,
        severity: Option<Severity>,
        summary: String,
        evidence: Value,
        remediation: Vec<String>,
    ) {
        let entry = self.kb.entry(code);
        let evidence = match evidence {
            Value::Object(map) => map,
            other => {
                let mut map = Map::new();
                map.insert("value".into(), other);
                map
            }
        };
        self.findings.push(Finding {
            code: code.to_string(),
            severity: severity
                .or(entry.map(|e| e.severity))
                .unwrap_or(Severity::Warning),
            title: entry.map(|e| e.title.clone()).unwrap_or_default(),
            summary,
            notes: Vec::new(),
            evidence,
            remediation,
        });
    }

    /// Background on the last finding (what the owning daemon is, …).
    fn note_last(&mut self, notes: Vec<String>) {
        if let Some(f) = self.findings.last_mut() {
            f.notes = notes;
        }
    }

    fn pass(&mut self, check: &str, detail: String) {
        self.passed.push(Passed {
            check: check.to_string(),
            detail,
        });
    }

    fn has(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }
}

/// Diagnoses `e` for `protocol` traffic: findings ranked by severity, passes, and the verdict.
pub fn diagnose(e: &Evidence, protocol: Protocol) -> Report {
    let mut sink = Sink {
        kb: Knowledge::get(),
        findings: Vec::new(),
        passed: Vec::new(),
    };
    check_kernel(e, protocol, &mut sink);
    check_delivery(e, &mut sink);
    check_devices(e, &mut sink);
    check_offloads(e, protocol, &mut sink);
    check_optmem(e, &mut sink);
    check_taps(e, &mut sink);
    check_live(e, &mut sink);

    // Stable ranking: severity, then the order checks ran in (which follows the path).
    sink.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let verdict = verdict(e, &sink.findings);
    Report::new(e, protocol, sink.findings, sink.passed, verdict)
}

fn check_kernel(e: &Evidence, protocol: Protocol, sink: &mut Sink) {
    let needs = match protocol {
        Protocol::Udp => kernel::UDP_ZEROCOPY,
        Protocol::Tcp => kernel::TCP_ZEROCOPY,
    };
    match e.kernel.version {
        Some(v) if !v.at_least(needs) => sink.push(
            "kernel-too-old",
            None,
            format!(
                "Linux {v} has no MSG_ZEROCOPY for {}: it needs {needs} or newer",
                protocol.as_str().to_uppercase()
            ),
            json!({"release": e.kernel.release, "protocol": protocol.as_str(), "needs": needs.to_string()}),
            vec![format!(
                "Upgrade the kernel to {needs} or newer; until then turn zerocopy off in the application."
            )],
        ),
        Some(v) => sink.pass(
            "kernel",
            format!(
                "Linux {v} has MSG_ZEROCOPY for {} (since {needs})",
                protocol.as_str().to_uppercase()
            ),
        ),
        None => sink.pass(
            "kernel",
            format!(
                "kernel release {:?} not parsed; version checks skipped",
                e.kernel.release
            ),
        ),
    }
}

fn check_delivery(e: &Evidence, sink: &mut Sink) {
    let Some(top) = e.stack.first() else {
        return;
    };
    match top.kind {
        DeviceKind::Loopback | DeviceKind::Tun => {
            let how = if top.kind == DeviceKind::Loopback {
                "is the loopback device: every packet is delivered to a local socket"
            } else {
                "is a tun/tap device: packets are handed to a user-space reader"
            };
            sink.push(
                "local-delivery",
                None,
                format!("{} {how}, which always copies", top.name),
                json!({"device": top.name, "kind": top.kind.as_str()}),
                vec![
                    format!(
                        "Do not enable MSG_ZEROCOPY for traffic through {}: it is always copied and only adds notification overhead.",
                        top.name
                    ),
                    "Diagnose the interface that really leaves the host instead (`zcdoctor check` with no argument uses the default route's device).".to_string(),
                ],
            );
        }
        DeviceKind::Veth => {
            let forwarding_ok = kernel::has(e.kernel.version, kernel::FORWARDING_KEEPS_ZEROCOPY);
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
                        e.kernel.version.map(|v| v.to_string()).unwrap_or_default()
                    ),
                    format!(
                        "Turn MSG_ZEROCOPY off for senders behind {} until the host runs Linux 6.17 or newer.",
                        top.name
                    ),
                )
            };
            sink.push(
                "veth-path",
                Some(severity),
                summary,
                json!({"device": top.name, "kernel": e.kernel.release, "forwarding_keeps_zerocopy": forwarding_ok}),
                vec![fix],
            );
        }
        _ => sink.pass(
            "delivery",
            format!(
                "{} ({}) transmits off the host: no local delivery on the device itself",
                top.name,
                top.kind.as_str()
            ),
        ),
    }
}

fn check_devices(e: &Evidence, sink: &mut Sink) {
    if let Some(top) = e.stack.first() {
        let down = !top.admin_up
            || matches!(
                top.oper_state.as_str(),
                "down" | "lowerlayerdown" | "notpresent"
            );
        if down {
            sink.push(
                "device-down",
                None,
                format!(
                    "{} is {} (operational state {})",
                    top.name,
                    if top.admin_up {
                        "up but not running"
                    } else {
                        "administratively down"
                    },
                    top.oper_state
                ),
                json!({"device": top.name, "admin_up": top.admin_up, "oper_state": top.oper_state}),
                vec![if top.admin_up {
                    format!(
                        "{} has no carrier: check its cable or lower devices (`ip link show {}`), then diagnose it again.",
                        top.name, top.name
                    )
                } else {
                    format!("ip link set {} up", top.name)
                }],
            );
        }
    }
    for dev in &e.stack {
        if !dev.lowers_elsewhere.is_empty() {
            sink.push(
                "lower-device-elsewhere",
                None,
                format!(
                    "{} sits on a device of another network namespace (ifindex {}), which was not inspected",
                    dev.name,
                    join_num(&dev.lowers_elsewhere)
                ),
                json!({"device": dev.name, "lower_ifindexes": dev.lowers_elsewhere}),
                vec![format!(
                    "Run `zcdoctor check` on {}'s lower device inside the namespace that owns it (`ip netns exec NS zcdoctor check DEV`).",
                    dev.name
                )],
            );
        }
    }
    let unreadable: Vec<&str> = e
        .stack
        .iter()
        .filter(|d| d.features.is_none())
        .map(|d| d.name.as_str())
        .collect();
    if !unreadable.is_empty() {
        let why = e
            .probes
            .iter()
            .find(|p| p.name == ProbeName::Features && p.status != ProbeState::Ok)
            .map(|p| p.detail.clone())
            .unwrap_or_default();
        sink.push(
            "features-unreadable",
            None,
            format!(
                "offload features of {} could not be read{}",
                unreadable.join(", "),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ),
            json!({"devices": unreadable, "reason": why}),
            unreadable
                .iter()
                .map(|d| {
                    format!("Inspect by hand: `ethtool -k {d} | grep -E 'scatter-gather|checksum'`")
                })
                .collect(),
        );
    }
}

/// A feature group the kernel needs on every device of the path.
struct Offload {
    code: &'static str,
    label: &'static str,
    /// Any of these active satisfies the requirement.
    features: &'static [&'static str],
    /// The `ethtool -K` word that turns it on.
    ethtool_word: &'static str,
}

const SG: Offload = Offload {
    code: "no-scatter-gather",
    label: "scatter-gather",
    features: &["tx-scatter-gather"],
    ethtool_word: "sg",
};

const CSUM_V4: Offload = Offload {
    code: "no-tx-checksum",
    label: "TX checksum offload (IPv4)",
    features: &["tx-checksum-ip-generic", "tx-checksum-ipv4"],
    ethtool_word: "tx",
};

const CSUM_V6: Offload = Offload {
    code: "no-tx-checksum",
    label: "TX checksum offload (IPv6)",
    features: &["tx-checksum-ip-generic", "tx-checksum-ipv6"],
    ethtool_word: "tx",
};

fn check_offloads(e: &Evidence, protocol: Protocol, sink: &mut Sink) {
    // Loopback and tun copy anyway: their offloads are beside the point.
    if e.stack
        .first()
        .is_some_and(|d| matches!(d.kind, DeviceKind::Loopback | DeviceKind::Tun))
    {
        return;
    }
    let v6_target = e.live.as_ref().is_some_and(|l| l.target.starts_with('['));
    check_offload(e, protocol, &SG, Severity::Blocker, sink);
    if v6_target {
        check_offload(e, protocol, &CSUM_V6, Severity::Blocker, sink);
    } else {
        check_offload(e, protocol, &CSUM_V4, Severity::Blocker, sink);
        // IPv6 matters too unless the probe showed the traffic is IPv4; a gap there is lesser.
        if !sink.has("no-tx-checksum") {
            check_offload(e, protocol, &CSUM_V6, Severity::Warning, sink);
        }
    }
}

/// Raises `offload.code` on the lowest devices that lack it: an upper device that lacks it only
/// because a lower one does (bond, macvlan, vlan inherit) is listed in `affects`, not repeated.
fn check_offload(
    e: &Evidence,
    protocol: Protocol,
    offload: &Offload,
    severity: Severity,
    sink: &mut Sink,
) {
    let lacks = |d: &Device| {
        d.features
            .as_ref()
            .is_some_and(|f| !offload.features.iter().any(|name| f.is_active(name)))
    };
    let lacking: Vec<&Device> = e.stack.iter().filter(|d| lacks(d)).collect();
    if lacking.is_empty() {
        let checked: Vec<&str> = e
            .stack
            .iter()
            .filter(|d| d.features.is_some())
            .map(|d| d.name.as_str())
            .collect();
        if !checked.is_empty() {
            sink.pass(
                offload.code,
                format!("{} on: {}", offload.label, checked.join(", ")),
            );
        }
        return;
    }
    for dev in &lacking {
        let lower_lacks = dev
            .lowers
            .iter()
            .filter_map(|n| e.stack.iter().find(|d| &d.name == n))
            .any(lacks);
        if lower_lacks {
            continue; // reported at the lower device, with this one in `affects`
        }
        let affects = uppers_of(e, &dev.name)
            .into_iter()
            .filter(|u| lacking.iter().any(|l| &l.name == u))
            .collect::<Vec<_>>();
        let states: Map<String, Value> = offload
            .features
            .iter()
            .filter_map(|name| {
                let st = dev.features.as_ref()?.get(name)?;
                Some((name.to_string(), json!(st)))
            })
            .collect();
        let primary = dev
            .features
            .as_ref()
            .and_then(|f| f.get(offload.features[0]));
        let requested = primary.is_some_and(|s| s.wanted);
        let fixed = offload.features.iter().all(|name| {
            dev.features
                .as_ref()
                .and_then(|f| f.get(name))
                .is_none_or(|s| s.fixed)
        });
        let aggregate = matches!(
            dev.kind,
            DeviceKind::Bond | DeviceKind::Team | DeviceKind::Bridge
        );

        let state_word = if requested {
            "off [requested on]"
        } else if fixed {
            "off [fixed]"
        } else {
            "off"
        };
        let role = if dev.depth == 0 {
            String::new()
        } else {
            format!(
                " (below {} in the stack)",
                dev.upper.as_deref().unwrap_or(&e.interface)
            )
        };
        let when = match (offload.code, protocol) {
            ("no-scatter-gather", Protocol::Udp) | ("no-tx-checksum", Protocol::Udp) => {
                "UDP sends are copied at send time"
            }
            _ => "TCP sends are linearised (copied) at transmit",
        };
        let mut summary = format!(
            "{}: {} is {state_word}{role}; {when}",
            dev.name, offload.label
        );
        if !affects.is_empty() {
            summary.push_str(&format!(" (also makes {} lack it)", affects.join(", ")));
        }

        let mut fix = Vec::new();
        if aggregate && requested {
            let members: Vec<&str> = dev.lowers.iter().map(String::as_str).collect();
            fix.push(format!(
                "{} computes its features from its members ({}), which report {} on: the bond's own set is stale. Re-evaluate it with `ethtool -K {} {} on`, or release and re-add one member (`ip link set MEMBER nomaster; ip link set MEMBER master {}`).",
                dev.name,
                if members.is_empty() { "none".to_string() } else { members.join(", ") },
                offload.label,
                dev.name,
                offload.ethtool_word,
                dev.name
            ));
            fix.push(format!(
                "Check the members' vlan features too (`ethtool -k MEMBER`): a {} derives its offloads from its members' (vlan) features.",
                dev.kind.as_str()
            ));
        } else if fixed && !requested {
            fix.push(format!(
                "{}'s driver does not let {} change ([fixed]): zerocopy cannot work through this device. Send through a device whose driver supports it.",
                dev.name, offload.label
            ));
        } else {
            fix.push(format!(
                "ethtool -K {} {} on",
                dev.name, offload.ethtool_word
            ));
            fix.push(format!(
                "Persist it in the interface's configuration (systemd .link `{}=true`, NetworkManager `ethtool.feature-{}`).",
                link_file_key(offload.ethtool_word),
                offload.features[0]
            ));
        }
        if !affects.is_empty() {
            let one = affects.len() == 1;
            fix.push(format!(
                "{} {} {} and {} once it is fixed.",
                affects.join(", "),
                if one { "follows" } else { "follow" },
                dev.name,
                if one { "recovers" } else { "recover" }
            ));
        }
        sink.push(
            offload.code,
            Some(severity),
            summary,
            json!({
                "device": dev.name,
                "kind": dev.kind.as_str(),
                "depth": dev.depth,
                "upper": dev.upper,
                "affects": affects,
                "protocol": protocol.as_str(),
                "features": states,
            }),
            fix,
        );
    }
}

fn link_file_key(word: &str) -> &'static str {
    match word {
        "sg" => "ScatterGather",
        _ => "TransmitChecksumOffload",
    }
}

/// Every device above `name` in the stack, nearest first.
fn uppers_of(e: &Evidence, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = name.to_string();
    while let Some(up) = e
        .stack
        .iter()
        .find(|d| d.lowers.iter().any(|l| l == &current))
    {
        out.push(up.name.clone());
        current = up.name.clone();
    }
    out
}

fn check_optmem(e: &Evidence, sink: &mut Sink) {
    let Some(optmem) = e.sysctls.optmem_max else {
        return;
    };
    let in_flight = optmem / NOTIFICATION_TRUESIZE;
    let needed = BURST_IN_FLIGHT * NOTIFICATION_TRUESIZE;
    if in_flight < BURST_IN_FLIGHT {
        sink.push(
            "optmem-low",
            None,
            format!(
                "net.core.optmem_max is {optmem}: about {in_flight} zerocopy sends can be in flight per socket before ENOBUFS (a burst of {BURST_IN_FLIGHT} needs {needed})"
            ),
            json!({
                "optmem_max": optmem,
                "sends_in_flight": in_flight,
                "notification_bytes": NOTIFICATION_TRUESIZE,
                "burst": BURST_IN_FLIGHT,
                "needed": needed,
            }),
            vec![
                "sysctl -w net.core.optmem_max=131072".to_string(),
                "Persist it: `echo net.core.optmem_max=131072 > /etc/sysctl.d/90-zerocopy.conf` (on 6.8+ set it in the namespace that sends).".to_string(),
            ],
        );
    } else {
        sink.pass(
            "optmem-low",
            format!(
                "net.core.optmem_max {optmem} allows about {in_flight} sends in flight per socket"
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Taps

/// Why a tap is on the path of the diagnosed interface, or `None` when it is not.
fn tap_on_path(e: &Evidence, diagnosed_netns: u64, s: &PacketSocket) -> Option<String> {
    if !s.is_tx_tap() {
        return None;
    }
    let same_netns = s.netns.inode == diagnosed_netns;
    match s.ifindex {
        None if same_netns => Some("unbound (all devices) in the same namespace".to_string()),
        None if !kernel::has(e.kernel.version, kernel::PER_NETNS_TAPS) => Some(format!(
            "unbound in namespace {}: before Linux 6.15 such a tap sees every namespace's traffic",
            netns_label(s)
        )),
        None => None,
        Some(idx) if same_netns => {
            let dev = e.stack.iter().find(|d| d.ifindex == idx)?;
            Some(if dev.depth == 0 {
                format!("bound to {}", dev.name)
            } else {
                format!(
                    "bound to {}, below {} in the stack",
                    dev.name,
                    dev.upper.as_deref().unwrap_or(&e.interface)
                )
            })
        }
        Some(_) => None,
    }
}

fn netns_label(s: &PacketSocket) -> String {
    match &s.netns.name {
        Some(n) => format!("{n} (net:[{}])", s.netns.inode),
        None => format!("net:[{}]", s.netns.inode),
    }
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

fn check_taps(e: &Evidence, sink: &mut Sink) {
    let tap_probe = e.probes.iter().find(|p| p.name == ProbeName::Taps);
    let Some(scan) = &e.taps else {
        let why = tap_probe
            .map(|p| p.detail.clone())
            .unwrap_or_else(|| "the tap probe did not run".to_string());
        let by_request = tap_probe.is_some_and(|p| p.status == ProbeState::Skipped);
        sink.push(
            "taps-not-checked",
            None,
            format!("packet taps were not checked: {why}"),
            json!({"reason": why}),
            vec![if by_request {
                "Run without --no-taps to check them.".to_string()
            } else {
                "Run zcdoctor as root (it reads every namespace's packet table and each owner's socket through pidfd_getfd).".to_string()
            }],
        );
        return;
    };
    // Before 4.20 the option does not exist: whatever the read said, a tap copies.
    let option_exists = kernel::has(e.kernel.version, kernel::IGNORE_OUTGOING);
    let mut groups: Vec<TapGroup> = Vec::new();
    for s in &scan.sockets {
        let Some(why) = tap_on_path(e, scan.diagnosed_netns, s) else {
            continue;
        };
        let setting = if option_exists {
            s.ignore_outgoing.clone()
        } else {
            IgnoreOutgoing::NotSet
        };
        let mut pids: Vec<u32> = s.owners.iter().map(|o| o.pid).collect();
        pids.sort_unstable();
        // One finding per owner and setting: lldpd's socket per interface is one cause.
        match groups
            .iter_mut()
            .find(|g| !pids.is_empty() && g.pids == pids && g.setting == setting)
        {
            Some(g) => g.sockets.push((s, why)),
            None => groups.push(TapGroup {
                pids,
                setting,
                sockets: vec![(s, why)],
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
        let evidence = json!({
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
        let mut fix: Vec<String> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        for (s, _) in &g.sockets {
            let (n, f) = tap_fix(s);
            notes.extend(n);
            fix.extend(f);
        }
        dedup_keep_order(&mut fix);
        dedup_keep_order(&mut notes);
        match &g.setting {
            IgnoreOutgoing::NotSet => {
                let summary = if option_exists {
                    format!("{who} holds {what}; it does not set PACKET_IGNORE_OUTGOING")
                } else {
                    fix.insert(
                        0,
                        format!(
                            "Linux {} predates PACKET_IGNORE_OUTGOING (4.20): no daemon build can avoid the copy here, only taking the tap off this path (or a newer kernel) does.",
                            e.kernel.version.map(|v| v.to_string()).unwrap_or_default()
                        ),
                    );
                    format!(
                        "{who} holds {what}; this kernel predates PACKET_IGNORE_OUTGOING (4.20), so the tap copies every send"
                    )
                };
                sink.push("tap-forces-copy", None, summary, evidence, fix);
                sink.note_last(notes);
            }
            IgnoreOutgoing::Set => sink.push(
                "tap-ignores-outgoing",
                None,
                format!("{who} holds {what}, but sets PACKET_IGNORE_OUTGOING: harmless"),
                evidence,
                vec!["Nothing to do.".to_string()],
            ),
            IgnoreOutgoing::Unknown { reason, .. } => {
                fix.insert(0, "Run zcdoctor as root (pidfd_getfd needs CAP_SYS_PTRACE over the owner) to read the setting.".to_string());
                sink.push(
                    "tap-unknown-setting",
                    None,
                    format!(
                        "{who} holds {what}; its PACKET_IGNORE_OUTGOING could not be read: {reason}"
                    ),
                    evidence,
                    fix,
                );
                sink.note_last(notes);
            }
        }
    }
    if on_path == 0 {
        let total_taps = scan.sockets.iter().filter(|s| s.is_tx_tap()).count();
        sink.pass(
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
        sink.push(
            "taps-not-checked",
            None,
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
}

fn dedup_keep_order(lines: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    lines.retain(|l| seen.insert(l.clone()));
}

/// Fills a knowledge-base line for one owner. Without a systemd unit, `systemctl … {unit}`
/// would be a broken command, so it becomes the pid-based equivalent.
fn fill_daemon_line(line: &str, o: &Owner, device: &str, netns: &str) -> String {
    let mut line = line.to_string();
    if o.unit.is_none() {
        line = line
            .replace("`systemctl stop {unit}`", "`kill {pid}`")
            .replace("`systemctl restart {unit}`", "restart it")
            .replace("`systemctl disable --now {unit}`", "`kill {pid}`")
            .replace("{unit}", "its service");
    }
    line.replace("{pid}", &o.pid.to_string())
        .replace("{comm}", &o.comm)
        .replace("{unit}", o.unit.as_deref().unwrap_or_default())
        .replace("{device}", device)
        .replace("{netns}", netns)
}

/// What the owner is (notes) and the remediation specific to it, from the known tap daemons;
/// generic for unknown owners.
fn tap_fix(s: &PacketSocket) -> (Vec<String>, Vec<String>) {
    let kb = Knowledge::get();
    let device = s
        .device
        .clone()
        .unwrap_or_else(|| "every device (unbound socket)".to_string());
    let netns = s
        .netns
        .name
        .clone()
        .unwrap_or_else(|| format!("net:[{}]", s.netns.inode));
    let mut notes = Vec::new();
    let mut fix = Vec::new();
    for o in &s.owners {
        match kb.daemon(&o.comm, o.exe.as_deref()) {
            Some(d) => {
                notes.push(format!("{}: {}", d.title, d.what.trim()));
                fix.extend(d.fix.iter().map(|l| fill_daemon_line(l, o, &device, &netns)));
            }
            None => fix.push(format!(
                "{} (pid {}) is not a known tap daemon: stop it if the capture is not needed (`kill {}`), or change it to set PACKET_IGNORE_OUTGOING (setsockopt SOL_PACKET 23) on its socket.",
                o.comm, o.pid, o.pid
            )),
        }
    }
    for o in s.owners.iter().filter(|o| o.container.is_some()) {
        fix.push(format!(
            "pid {} runs in container {}: stop it there (`docker stop`/`crictl stop` on that container, or `kill {}` from the host), and keep captures out of production containers.",
            o.pid,
            o.container.as_deref().unwrap_or_default(),
            o.pid
        ));
    }
    if s.owners.is_empty() {
        fix.push(format!(
            "Find the owner of socket inode {} (`ss -0 -p | grep {}`) and stop it, or have it set PACKET_IGNORE_OUTGOING.",
            s.inode, s.inode
        ));
    }
    (notes, fix)
}

// ---------------------------------------------------------------------------------------------
// Live probe

/// Runs that represent the application's traffic (an `oversize` run is a deliberate experiment).
fn primary_runs(live: &LiveProbe) -> impl Iterator<Item = &crate::evidence::LiveRun> {
    live.runs
        .iter()
        .filter(|r| r.pattern != RunPattern::Oversize)
}

fn check_live(e: &Evidence, sink: &mut Sink) {
    let Some(live) = &e.live else {
        return;
    };
    if let Some(why) = &live.not_run {
        let local = live
            .route
            .as_ref()
            .is_some_and(|r| r.route_type == RouteType::Local);
        if local {
            if !sink.has("local-delivery") {
                sink.push(
                    "local-delivery",
                    None,
                    format!("{}: {why}", live.target),
                    json!({"target": live.target, "route": live.route}),
                    vec![format!(
                        "Do not use MSG_ZEROCOPY towards {}: local delivery always copies. Probe a destination that leaves through {}.",
                        live.target, e.interface
                    )],
                );
            }
        } else {
            sink.push(
                "live-probe-not-run",
                None,
                why.clone(),
                json!({"target": live.target, "route": live.route}),
                vec![format!(
                    "Choose a --target whose route leaves through {} (`ip route get ADDR` shows the device).",
                    e.interface
                )],
            );
        }
        return;
    }

    for run in &live.runs {
        if run.pattern == RunPattern::Oversize && run.copied > 0 {
            sink.push(
                "udp-fragmentation",
                None,
                format!(
                    "{}-byte datagrams (over the path MTU, no UDP_SEGMENT): {} of {} completions copied",
                    run.send_size, run.copied, run.completions
                ),
                json!({"send_size": run.send_size, "copied": run.copied, "completions": run.completions, "mtu": live.route.as_ref().and_then(|r| r.mtu)}),
                vec!["Send large buffers with UDP_SEGMENT (setsockopt SOL_UDP 103 or a cmsg) instead of one datagram over the MTU.".to_string()],
            );
        }
    }

    let copied: u64 = primary_runs(live).map(|r| r.copied).sum();
    let completions: u64 = primary_runs(live).map(|r| r.completions).sum();
    let enobufs: u64 = live.runs.iter().map(|r| r.enobufs).sum();
    let missing: u64 = live.runs.iter().map(|r| r.missing).sum();
    let causes = |list: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = sink
            .findings
            .iter()
            .filter(|f| list.contains(&f.code.as_str()) && f.code != "udp-fragmentation")
            .map(|f| f.code.clone())
            .collect();
        v.dedup();
        v
    };
    let explained_by = causes(COPY_EXPLAINERS);
    let predicted_by = causes(COPY_CAUSES);
    let runs_evidence: Vec<Value> = live
        .runs
        .iter()
        .map(|r| {
            json!({
                "pattern": r.pattern, "send_size": r.send_size, "sends": r.sends,
                "completions": r.completions, "copied": r.copied, "enobufs": r.enobufs,
                "missing": r.missing, "gain": r.gain(),
            })
        })
        .collect();

    if copied > 0 {
        let fraction = copied as f64 / completions.max(1) as f64;
        sink.push(
            "live-copied",
            None,
            format!(
                "{copied} of {completions} zerocopy completions to {} were copied ({:.0}%){}",
                live.target,
                fraction * 100.0,
                if explained_by.is_empty() {
                    String::new()
                } else {
                    format!("; explained by {}", explained_by.join(", "))
                }
            ),
            json!({"target": live.target, "copied": copied, "completions": completions, "copied_fraction": fraction, "explained_by": explained_by, "runs": runs_evidence}),
            vec![if explained_by.is_empty() {
                "See copies-unexplained for how to find the copier.".to_string()
            } else {
                format!("Fix {} (above); then run this probe again.", explained_by.join(", "))
            }],
        );
        if explained_by.is_empty() {
            sink.push(
                "copies-unexplained",
                None,
                format!("{copied} copied completions, but no tap, offload or local-delivery finding explains them"),
                json!({"copied": copied, "completions": completions}),
                vec![
                    format!("While `zcdoctor check {} --target {}` runs, capture who copies: bpftrace -e 'kprobe:skb_copy_ubufs {{ @[kstack] = count(); }}'", e.interface, live.target),
                    "Look for TX timestamping without SOF_TIMESTAMPING_OPT_TSONLY, tc actions that clone (mirred), IPsec without offload.".to_string(),
                ],
            );
        }
    } else if completions > 0 && !predicted_by.is_empty() {
        sink.push(
            "live-contradicts-prediction",
            None,
            format!(
                "the live probe completed {completions} sends without a copy, although {} predicted copies",
                predicted_by.join(", ")
            ),
            json!({"completions": completions, "predicted_by": predicted_by}),
            vec!["Compare the probe's protocol, size and route with the application's; attach `zcdoctor snapshot` output to a bug report if they match.".to_string()],
        );
    }

    if enobufs > 0 {
        let limit = enobufs_limit(e);
        sink.push(
            "zerocopy-enobufs",
            None,
            format!("{enobufs} zerocopy sends failed with ENOBUFS; the limit hit is {limit}"),
            json!({"enobufs": enobufs, "limit": limit, "optmem_max": e.sysctls.optmem_max, "process": e.process}),
            match limit {
                "RLIMIT_MEMLOCK" => vec![
                    "Raise the sending service's locked-memory limit (`LimitMEMLOCK=infinity` in its unit, `ulimit -l unlimited`) or grant it CAP_IPC_LOCK.".to_string(),
                ],
                _ => vec![
                    format!(
                        "sysctl -w net.core.optmem_max={} (in the namespace that sends), and read completions from the error queue promptly.",
                        (e.sysctls.optmem_max.unwrap_or(20480) * 4).max(131072)
                    ),
                ],
            },
        );
    }
    if let Some(p) = e.process.as_ref().filter(|p| !p.cap_ipc_lock) {
        if let Some(limit) = p.memlock_soft {
            let hit = enobufs > 0 && enobufs_limit(e) == "RLIMIT_MEMLOCK";
            sink.push(
                "memlock-limit",
                Some(if hit { Severity::Blocker } else { Severity::Warning }),
                format!(
                    "the probing process (uid {}) has RLIMIT_MEMLOCK {} KiB and no CAP_IPC_LOCK: pinned zerocopy pages count against it{}",
                    p.uid,
                    limit / 1024,
                    if hit { ", and sends failed with ENOBUFS" } else { "" }
                ),
                json!({"memlock_soft": limit, "locked_vm": p.locked_vm, "cap_ipc_lock": false, "uid": p.uid, "enobufs": enobufs}),
                vec![
                    "Give the sending service `LimitMEMLOCK=infinity` (systemd) or `ulimit -l unlimited`, or CAP_IPC_LOCK.".to_string(),
                    "The charge is per user: other processes of the same user share the limit.".to_string(),
                ],
            );
        }
    }
    if missing > 0 {
        sink.push(
            "completions-missing",
            None,
            format!("{missing} zerocopy sends had no completion after the grace period"),
            json!({"missing": missing}),
            vec![format!("tc -s qdisc show dev {}", e.interface)],
        );
    }
    // Slower means less throughput AND no CPU saved per byte: on a real NIC the link is often
    // the bottleneck, and then the CPU zerocopy saves is the gain.
    let slower: Vec<&crate::evidence::LiveRun> = primary_runs(live)
        .filter(|r| r.gain().is_some_and(|g| g < 1.0))
        .filter(|r| r.copied > 0 || r.cpu_gain().is_none_or(|c| c < 1.1))
        .collect();
    for r in primary_runs(live).filter(|r| r.copied == 0) {
        if let (Some(g), Some(c)) = (r.gain(), r.cpu_gain()) {
            if c >= 1.1 {
                sink.pass(
                    "zerocopy-slower",
                    format!(
                        "{} sends of {} bytes: zerocopy moved {:.2}x the bytes per CPU-second of a copy ({g:.2}x the throughput)",
                        r.pattern, r.send_size, c
                    ),
                );
            }
        }
    }
    if !slower.is_empty() {
        let any_copied = slower.iter().any(|r| r.copied > 0);
        let because = if any_copied {
            "the sends were copied anyway, so MSG_ZEROCOPY is slowing the application down"
        } else if slower.iter().any(|r| r.enobufs > 0) {
            "sends refused with ENOBUFS had to wait for completions"
        } else if slower.iter().all(|r| r.send_size < 10_000) {
            "the sends are too small for pinning and notifications to pay off"
        } else {
            "pinning pages and reading completions cost more than the copy they save here"
        };
        let parts: Vec<String> = slower
            .iter()
            .map(|r| {
                format!(
                    "{:.2}x for {} sends of {} bytes",
                    r.gain().unwrap_or_default(),
                    r.pattern,
                    r.send_size
                )
            })
            .collect();
        let runs: Vec<Value> = slower
            .iter()
            .map(|r| {
                json!({"pattern": r.pattern, "send_size": r.send_size, "gain": r.gain(), "cpu_gain": r.cpu_gain(), "copied": r.copied,
                       "copy_bytes_per_second": r.copy_phase.as_ref().map(|p| p.bytes_per_second()),
                       "zerocopy_bytes_per_second": r.zerocopy_phase.as_ref().map(|p| p.bytes_per_second())})
            })
            .collect();
        sink.push(
            "zerocopy-slower",
            Some(if any_copied { Severity::Blocker } else { Severity::Warning }),
            format!("zerocopy throughput vs copy: {}; {because}", parts.join(", ")),
            json!({"runs": runs}),
            vec![if any_copied {
                "Turn MSG_ZEROCOPY off for this path until the copy causes are fixed.".to_string()
            } else {
                "Use MSG_ZEROCOPY only for sends of about 10 KB and more (UDP_SEGMENT batches small datagrams into large sends).".to_string()
            }],
        );
    }
    if copied == 0 && completions > 0 {
        sink.pass(
            "live",
            format!(
                "live probe: {completions} zerocopy completions to {}, none copied",
                live.target
            ),
        );
    }
}

/// Which limit an ENOBUFS hit, from evidence: MEMLOCK only when it applies to the prober.
fn enobufs_limit(e: &Evidence) -> &'static str {
    match &e.process {
        Some(p) if !p.cap_ipc_lock && p.memlock_soft.is_some() => "RLIMIT_MEMLOCK",
        _ => "net.core.optmem_max",
    }
}

fn verdict(e: &Evidence, findings: &[Finding]) -> Verdict {
    let blocker = findings.iter().find(|f| f.severity == Severity::Blocker);
    if let Some(live) = e.live.as_ref().filter(|l| l.not_run.is_none()) {
        let copied: u64 = primary_runs(live).map(|r| r.copied).sum();
        let completions: u64 = primary_runs(live).map(|r| r.completions).sum();
        let enobufs: u64 = live.runs.iter().map(|r| r.enobufs).sum();
        let (zerocopy, summary) = if copied > 0 {
            (
                Zerocopy::No,
                format!(
                    "zerocopy sends are copied: {copied} of {completions} completions carried COPIED"
                ),
            )
        } else if enobufs > 0 {
            (
                Zerocopy::No,
                format!("{enobufs} zerocopy sends failed with ENOBUFS ({completions} completed)"),
            )
        } else if completions > 0 {
            (
                Zerocopy::Yes,
                format!(
                    "zerocopy works: {completions} completions to {}, none copied",
                    live.target
                ),
            )
        } else {
            (
                Zerocopy::Unknown,
                "the live probe received no completions".to_string(),
            )
        };
        return Verdict {
            zerocopy,
            basis: Basis::Live,
            summary,
        };
    }
    let uncertain = findings.iter().any(|f| {
        matches!(
            f.code.as_str(),
            "taps-not-checked" | "tap-unknown-setting" | "features-unreadable"
        )
    });
    let (zerocopy, summary) = match (blocker, uncertain) {
        (Some(_), _) => {
            let mut causes: Vec<String> = Vec::new();
            for f in findings.iter().filter(|f| f.severity == Severity::Blocker) {
                let label = match f.evidence.get("device").and_then(Value::as_str) {
                    Some(d) => format!("{} on {d}", f.code),
                    None => f.code.clone(),
                };
                if !causes.contains(&label) {
                    causes.push(label);
                }
            }
            (
                Zerocopy::No,
                format!(
                    "MSG_ZEROCOPY sends through {} will be copied or fail: {}",
                    e.interface,
                    causes.join(", ")
                ),
            )
        }
        (None, true) => (
            Zerocopy::Unknown,
            format!(
                "no cause of copies found on {}, but part of the path could not be inspected",
                e.interface
            ),
        ),
        (None, false) => (
            Zerocopy::Yes,
            format!(
                "nothing on {}'s path forces a copy; prove it with --target ADDR",
                e.interface
            ),
        ),
    };
    Verdict {
        zerocopy,
        basis: Basis::Predicted,
        summary,
    }
}

fn join_num(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}
