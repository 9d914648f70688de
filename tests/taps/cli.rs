//! Privileged end-to-end tests of tap diagnosis: real culprits (tcpdump, dhclient, lldpd) and
//! sockets held by this test process, in throwaway namespaces; `zcdoctor check` must name every
//! tap that forces copies on the path, with its pid, and say nothing alarming about the rest.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Culprit, Netns, TapSocket, ZCDOCTOR, codes, finding, pids};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn tcpdump_on_the_lower_device_of_a_macvlan_forces_copies() {
    let ns = Netns::new("tpctd");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("link add mv0 link ifbz type macvlan mode bridge");
    ns.ip("link set mv0 up");
    let tcpdump = ns.tcpdump(&["-i", "ifbz", "-Q", "in"]);
    let pid = tcpdump.pid();

    let (code, doc) = ns.check_json(&["mv0"]);
    assert_eq!(code, 0, "--fail-on never");
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(pids(f), [u64::from(pid)]);
    assert_eq!(f["evidence"]["device"], "ifbz");
    assert_eq!(f["evidence"]["owners"][0]["comm"], "tcpdump");
    let fix = f["remediation"].to_string();
    assert!(fix.contains(&format!("kill {pid}")), "{fix}");
    assert_eq!(doc["verdict"]["zerocopy"], "no");
    // Default --fail-on blocker exits 1.
    assert_eq!(ns.zcdoctor(&["check", "mv0"]).status.code(), Some(1));

    drop(tcpdump);
    let (_, after) = ns.check_json(&["mv0"]);
    assert!(
        finding(&after, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&after)
    );
    assert_eq!(after["verdict"]["zerocopy"], "yes");
}

fn own_sockets_bound_unbound_and_ignoring_outgoing() {
    let me = u64::from(std::process::id());
    let ns = Netns::new("tpcown");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("link add ifbq type ifb");
    ns.ip("link set ifbq up");

    // Harmless: bound to an unrelated device, or ignoring outgoing packets.
    let unrelated = ns.tap_socket(Some("ifbq"), false);
    let ignoring = ns.tap_socket(Some("ifbz"), true);
    let (_, doc) = ns.check_json(&["ifbz"]);
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );
    let info = finding(&doc, "tap-ignores-outgoing").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(info["severity"], "info");
    assert_eq!(info["evidence"]["inodes"][0], ignoring.inode());
    assert_eq!(doc["verdict"]["zerocopy"], "yes");
    // The unrelated tap is only in the evidence, not a finding.
    let listed = doc["taps"]["sockets"].as_array().unwrap();
    assert!(listed.iter().any(|s| s["inode"] == unrelated.inode()));

    // Bound to the device without the option: a blocker naming this process.
    let bound = ns.tap_socket(Some("ifbz"), false);
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(f), [me]);
    assert_eq!(f["evidence"]["inodes"][0], bound.inode());
    drop(bound);

    // Unbound in the same namespace: sees every device, so it is on the path too.
    let unbound = ns.tap_socket(None, false);
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["inodes"][0], unbound.inode());
    assert!(f["summary"].as_str().unwrap().contains("unbound"));
}

fn unbound_tap_in_another_namespace_is_not_on_the_path() {
    let ns = Netns::new("tpcns1");
    ns.ifb("ifbz", "198.18.0.1/24");
    let other = Netns::new("tpcns2");
    other.ifb("ifbz", "198.18.0.1/24");
    let elsewhere = other.tap_socket(None, false);
    let (_, doc) = ns.check_json(&["ifbz"]);
    // Linux 6.15+ keeps unbound taps per namespace: nothing to report.
    let kernel = doc["host"]["kernel"].as_str().unwrap().to_string();
    let v: Vec<u32> = kernel
        .split(['.', '-'])
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    if v >= vec![6, 15] {
        assert!(
            finding(&doc, "tap-forces-copy").is_none(),
            "{:?}",
            codes(&doc)
        );
    } else {
        let f = finding(&doc, "tap-forces-copy").expect("pre-6.15: global tap");
        assert_eq!(f["evidence"]["inodes"][0], elsewhere.inode());
    }
}

fn taps_on_a_bridge_port_and_on_the_bridge() {
    let ns = Netns::new("tpcbr");
    ns.ip("link add br0 type bridge");
    ns.ip("link add ifb2 type ifb");
    ns.ip("link set ifb2 master br0");
    ns.ip("link set ifb2 up");
    ns.ip("link set br0 up");
    let on_port = ns.tap_socket(Some("ifb2"), false);
    let (_, doc) = ns.check_json(&["br0"]);
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "ifb2");
    assert!(f["summary"].as_str().unwrap().contains("below br0"));
    drop(on_port);

    let _on_bridge = ns.tap_socket(Some("br0"), false);
    let (_, doc) = ns.check_json(&["br0"]);
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "br0");
}

fn dhclient_is_named_with_a_dhcp_specific_fix() {
    let ns = Netns::new("tpcdh");
    ns.ifb("ifbz", "198.18.0.1/24");
    let dhclient = ns.start_dhclient("ifbz");
    let pid = dhclient.culprit.pid();
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(f), [u64::from(pid)]);
    assert_eq!(f["evidence"]["owners"][0]["comm"], "dhclient");
    let fix = f["remediation"].to_string();
    assert!(
        fix.contains("systemd-networkd") && fix.contains(&pid.to_string()),
        "{fix}"
    );
    assert!(f["notes"].to_string().contains("dhclient") || f["notes"].to_string().contains("DHCP"));
}

/// Debian 12's lldpd 1.0.16 sets PACKET_IGNORE_OUTGOING: its tap must be reported harmless,
/// read from the socket its unprivileged child holds.
fn lldpd_tap_is_read_from_the_socket_and_harmless() {
    let ns = Netns::new("tpcll");
    ns.ifb("ifbz", "198.18.0.1/24");
    let lldpd = ns.start_lldpd("ifbz");
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "tap-ignores-outgoing").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["owners"][0]["comm"], "lldpd");
    assert_eq!(f["evidence"]["read_from_socket"]["state"], "set");
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );
    assert_eq!(doc["verdict"]["zerocopy"], "yes");
    drop(lldpd);
}

/// setpriv arguments that make the rest of the command line run as nobody with no capability.
const AS_NOBODY: [&str; 5] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
];

/// Words of advice or conclusion that the probe's account of a failure must not contain.
const ADVICE: [&str; 4] = ["run zcdoctor", "as root", "so no tap", "needs CAP"];

/// `zcdoctor snapshot ifbz` inside the namespace, run through `prefix` (a setpriv command
/// line): the recorded evidence.
fn snapshot_as(ns: &Netns, prefix: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(prefix)
        .args([ZCDOCTOR, "snapshot", "ifbz", "-o", "-"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run zcdoctor snapshot: {e}"));
    assert!(
        out.status.success(),
        "zcdoctor snapshot through {prefix:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("snapshot is not JSON: {e}"))
}

/// The recorded socket with `inode`.
fn recorded(doc: &Value, inode: u64) -> &Value {
    doc["taps"]["sockets"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["inode"] == inode))
        .unwrap_or_else(|| panic!("socket {inode} not recorded: {:#}", doc["taps"]))
}

fn assert_factual(text: &str) {
    for word in ADVICE {
        assert!(!text.contains(word), "{word:?} in {text:?}");
    }
}

/// The tap, handed over as stdin to `sleep` running as nobody without capabilities; this
/// process keeps no copy. Ended by pid on drop.
fn held_by_nobody(tap: TapSocket) -> Culprit {
    let mut cmd = Command::new(AS_NOBODY[0]);
    cmd.args(&AS_NOBODY[1..])
        .args(["sleep", "600"])
        .stdin(Stdio::from(tap.fd))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start setpriv: {e}"));
    drop(cmd); // closes this process's copy of the tap
    let mut holder = Culprit {
        child,
        what: "sleep as nobody".to_string(),
    };
    let pid = holder.pid();
    holder.wait_until("setpriv execs sleep as nobody", WAIT, || {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        comm.trim() == "sleep" && status.contains("Uid:\t65534\t65534\t65534\t65534")
    });
    holder
}

/// An unprivileged zcdoctor (nobody, no capability) cannot read a root process's descriptors:
/// the root-held tap has no owner, recorded as the typed cause `no-owner` with the counts.
fn unprivileged_scan_records_no_owner_for_a_root_held_tap() {
    let ns = Netns::new("tpcnoown");
    ns.ifb("ifbz", "198.18.0.1/24");
    let tap = ns.tap_socket(Some("ifbz"), false);
    let doc = snapshot_as(&ns, &AS_NOBODY);
    let s = recorded(&doc, tap.inode());
    assert_eq!(s["owners"], json!([]), "{s:#}");
    assert_eq!(s["device"], "ifbz");
    let io = &s["ignore_outgoing"];
    assert_eq!(io["state"], "unknown", "{s:#}");
    assert_eq!(io["cause"], json!({"kind": "no-owner"}), "{s:#}");
    let unreadable = doc["taps"]["processes_unreadable"].as_u64().unwrap_or(0);
    assert!(unreadable > 0, "{:#}", doc["taps"]);
    let vanished = doc["taps"]["processes_vanished"].as_u64().unwrap_or(0);
    let mut expected = format!(
        "no owner found among the descriptors of {} process(es) ({unreadable} process(es) unreadable",
        doc["taps"]["processes_scanned"]
    );
    if vanished > 0 {
        expected.push_str(&format!(", {vanished} exited meanwhile"));
    }
    expected.push(')');
    assert_eq!(io["reason"], expected, "{s:#}");
    for p in doc["taps"]["problems"].as_array().into_iter().flatten() {
        assert_factual(p.as_str().unwrap_or_default());
    }
    drop(tap);
}

/// A tap held by nobody (no capability), scanned by a zcdoctor whose effective (so file-system)
/// uid is nobody but whose real uid is root, without any capability. Listing `/proc/PID/fd` is
/// checked with PTRACE_MODE_READ_FSCREDS and allowed; `pidfd_getfd` is checked with
/// PTRACE_MODE_ATTACH_REALCREDS and refused (EPERM): the owner is recorded and the setting is
/// `unknown` with the typed cause `refused`. The same scan run fully as nobody reads it.
fn refused_pidfd_getfd_is_recorded_as_refused() {
    let ns = Netns::new("tpcref");
    ns.ifb("ifbz", "198.18.0.1/24");
    let tap = ns.tap_socket(Some("ifbz"), false);
    let inode = tap.inode();
    let holder = held_by_nobody(tap);
    let pid = holder.pid();
    let yama: Value = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .map_or(Value::Null, Value::from);

    let doc = snapshot_as(
        &ns,
        &[
            "setpriv",
            "--ruid=0",
            "--euid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ],
    );
    let s = recorded(&doc, inode);
    assert_eq!(s["owners"][0]["pid"], pid, "{s:#}");
    assert_eq!(s["owners"][0]["comm"], "sleep");
    assert_eq!(s["owners"][0]["uid"], 65534);
    assert_eq!(s["fanout"], Value::Null);
    let op = format!("pidfd_getfd(pid {pid}, fd 0)");
    assert_eq!(
        s["ignore_outgoing"]["cause"],
        json!({
            "kind": "refused",
            "pid": pid,
            "error": {"op": op, "errno": libc::EPERM},
            "cap_sys_ptrace": false,
            "yama_ptrace_scope": yama,
        }),
        "{s:#}"
    );
    let yama_text = match yama.as_u64() {
        Some(n) => format!("Yama ptrace_scope is {n}"),
        None => "Yama ptrace_scope is not readable".to_string(),
    };
    assert_eq!(
        s["ignore_outgoing"]["reason"],
        format!(
            "{op}: Operation not permitted (EPERM); CAP_SYS_PTRACE is not in zcdoctor's effective capabilities; {yama_text}"
        )
    );

    // Real uid nobody too: the same process may duplicate the socket.
    let doc = snapshot_as(&ns, &AS_NOBODY);
    let s = recorded(&doc, inode);
    assert_eq!(s["owners"][0]["pid"], pid, "{s:#}");
    assert_eq!(s["ignore_outgoing"], json!({"state": "not-set"}), "{s:#}");
    drop(holder);
}

crate::cases!(
    privileged: [
        tcpdump_on_the_lower_device_of_a_macvlan_forces_copies needs ["tcpdump"],
        own_sockets_bound_unbound_and_ignoring_outgoing,
        unbound_tap_in_another_namespace_is_not_on_the_path,
        taps_on_a_bridge_port_and_on_the_bridge,
        dhclient_is_named_with_a_dhcp_specific_fix needs ["dhclient"],
        lldpd_tap_is_read_from_the_socket_and_harmless needs ["lldpd"],
        unprivileged_scan_records_no_owner_for_a_root_held_tap,
        refused_pidfd_getfd_is_recorded_as_refused,
    ]
);
