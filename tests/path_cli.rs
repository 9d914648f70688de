//! Privileged end-to-end tests of the path beyond the diagnosed device: a container behind a
//! veth whose traffic a forwarding namespace routes out of an ifb, a veth to the peer's own
//! address, a macvlan whose lower device stays in the parent namespace, a vxlan over an ifb
//! underlay. Each shape is built for real in namespaces these tests create (tags `pa…`); the
//! live probe gives the kernel's answer (completions flagged COPIED) next to the prediction.
//! Traffic goes only to 198.18.0.0/15 addresses inside these namespaces.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Culprit, Netns, ZCDOCTOR, codes, finding, pids};
use serde_json::Value;

const SHORT: &str = "200ms";

fn copied_and_completions(doc: &Value) -> (u64, u64) {
    let runs = doc["live_probe"]["runs"].as_array().expect("runs");
    let sum = |k: &str| runs.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
    (sum("copied"), sum("completions"))
}

/// tcpdump on `dev` in `ns` (`-Q in`: it still copies), once it holds its socket.
fn tcpdump(ns: &Netns, dev: &str) -> Culprit {
    ns.tcpdump(&["-i", dev, "-Q", "in"])
}

/// The roles of the path's segments, in order.
fn roles(doc: &Value) -> Vec<String> {
    doc["path"]["segments"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|g| g["role"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A sender namespace `a` (va 198.18.1.1) with a veth to a forwarding namespace `b` (vb
/// 198.18.1.2), which routes 198.18.2.0/24 out of its ifb `ifbz` (198.18.2.1).
fn forwarding_pair() -> (Netns, Netns) {
    let a = Netns::new("pafwa");
    let b = Netns::new("pafwb");
    a.veth_to(&b);
    b.ifb("ifbz", "198.18.2.1/24");
    b.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    a.ip("route add 198.18.2.0/24 via 198.18.1.2");
    (a, b)
}

fn forwarded_traffic_is_followed_to_the_egress_and_its_tap() {
    let (a, b) = forwarding_pair();
    let args = ["va", "--target", "198.18.2.2", "--duration", SHORT];

    // Clean: the kernel keeps zerocopy through forwarding (6.17+), and nothing is predicted.
    let (_, doc) = a.check_json(&args);
    assert_eq!(
        roles(&doc),
        ["veth-peer", "forwarded-egress"],
        "{:#}",
        doc["path"]
    );
    assert_eq!(doc["path"]["end"]["kind"], "wire");
    let egress = &doc["path"]["segments"][1];
    assert_eq!(egress["stack"][0]["name"], "ifbz");
    assert_eq!(egress["netns"]["name"], b.name.as_str());
    assert_eq!(egress["forwarding"], true);
    let (copied, completions) = copied_and_completions(&doc);
    assert!(completions > 0 && copied == 0, "{copied} of {completions}");
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );

    // tcpdump on the forwarding namespace's egress: every send copied, the culprit named there.
    let dump = tcpdump(&b, "ifbz");
    let (_, doc) = a.check_json(&args);
    let (copied, completions) = copied_and_completions(&doc);
    assert!(
        completions > 0 && copied == completions,
        "{copied} of {completions}"
    );
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(dump.pid())]);
    let on_path = tap["evidence"]["on_path"][0].as_str().expect("on_path");
    assert!(
        on_path.contains("bound to ifbz in namespace") && on_path.contains(&b.name),
        "{on_path}"
    );
    let live = finding(&doc, "live-copied").expect("live-copied");
    assert!(
        live["evidence"]["explained_by"]
            .as_array()
            .is_some_and(|e| e.iter().any(|c| c == "tap-forces-copy")),
        "{live:#}"
    );
    assert!(finding(&doc, "copies-unexplained").is_none());
}

fn forwarded_egress_without_scatter_gather_is_a_blocker() {
    let (a, b) = forwarding_pair();
    b.ethtool_k("ifbz", "sg", "off");
    let (_, doc) = a.check_json(&["va", "--target", "198.18.2.2", "--duration", SHORT]);
    let f = finding(&doc, "no-scatter-gather").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "ifbz");
    assert_eq!(f["evidence"]["hop"], 3);
    assert!(
        f["remediation"][0]
            .as_str()
            .is_some_and(|r| r == format!("ip netns exec {} ethtool -K ifbz sg on", b.name)),
        "{f:#}"
    );
    let (copied, completions) = copied_and_completions(&doc);
    assert!(
        completions > 0 && copied == completions,
        "{copied} of {completions}"
    );
}

fn veth_to_the_peer_address_is_local_delivery() {
    let a = Netns::new("palocala");
    let b = Netns::new("palocalb");
    a.veth_to(&b);
    // UDP.
    let (_, doc) = a.check_json(&["va", "--target", "198.18.1.2", "--duration", SHORT]);
    let f = finding(&doc, "local-delivery").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(f["evidence"]["address"], "198.18.1.2");
    assert_eq!(f["evidence"]["netns"]["name"], b.name.as_str());
    assert_eq!(doc["path"]["end"]["kind"], "local-delivery");
    let (copied, completions) = copied_and_completions(&doc);
    assert!(
        completions > 0 && copied == completions,
        "{copied} of {completions}"
    );
    // TCP, to a sink in the peer namespace.
    let _sink = b.spawn(&[ZCDOCTOR, "sink", "--listen", "198.18.1.2:5201"]);
    std::thread::sleep(Duration::from_millis(300));
    let (_, doc) = a.check_json(&[
        "va",
        "--protocol",
        "tcp",
        "--target",
        "198.18.1.2:5201",
        "--duration",
        SHORT,
    ]);
    assert!(
        finding(&doc, "local-delivery").is_some(),
        "{:?}",
        codes(&doc)
    );
    let (copied, completions) = copied_and_completions(&doc);
    assert!(
        completions > 0 && copied == completions,
        "{copied} of {completions}"
    );
}

fn container_macvlan_over_a_host_lower_with_a_tap() {
    let host = Netns::new("pahost");
    let pod = Netns::new("papod");
    host.ifb("ifbz", "198.18.0.1/24");
    host.ip("link add mv0 link ifbz type macvlan mode bridge");
    host.ip(&format!("link set mv0 netns {}", pod.name));
    pod.ip("addr add 198.18.0.5/24 dev mv0");
    pod.ip("link set mv0 up");
    pod.ip("neigh add 198.18.0.2 lladdr 02:00:00:00:00:02 dev mv0 nud permanent");
    let args = ["mv0", "--target", "198.18.0.2", "--duration", SHORT];

    let (_, doc) = pod.check_json(&args);
    assert_eq!(roles(&doc), ["stacked-lower"], "{:#}", doc["path"]);
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );
    let (copied, completions) = copied_and_completions(&doc);
    assert!(completions > 0 && copied == 0, "{copied} of {completions}");

    let dump = tcpdump(&host, "ifbz");
    let (_, doc) = pod.check_json(&args);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(dump.pid())]);
    assert_eq!(tap["evidence"]["netns"]["name"], host.name.as_str());
    let (copied, completions) = copied_and_completions(&doc);
    assert!(
        completions > 0 && copied == completions,
        "{copied} of {completions}"
    );
    assert!(finding(&doc, "copies-unexplained").is_none());
    drop(dump);

    host.ethtool_k("ifbz", "sg", "off");
    let (_, doc) = pod.check_json(&args);
    let f = finding(&doc, "no-scatter-gather").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "ifbz");
    assert_eq!(f["evidence"]["netns"]["name"], host.name.as_str());
}

fn vxlan_underlay_with_a_tap_or_without_checksum() {
    let ns = Netns::new("pavx");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip(
        "link add vxlan0 type vxlan id 42 remote 198.18.0.2 local 198.18.0.1 dev ifbz dstport 4789",
    );
    ns.ip("addr add 198.19.0.1/24 dev vxlan0");
    ns.ip("link set vxlan0 up");
    ns.ip("neigh add 198.19.0.2 lladdr 02:00:00:00:00:09 dev vxlan0 nud permanent");
    let args = ["vxlan0", "--target", "198.19.0.2", "--duration", SHORT];

    let (_, doc) = ns.check_json(&args);
    assert_eq!(roles(&doc), ["tunnel-underlay"], "{:#}", doc["path"]);
    assert_eq!(doc["path"]["segments"][0]["stack"][0]["name"], "ifbz");
    let (copied, completions) = copied_and_completions(&doc);
    assert!(completions > 0 && copied == 0, "{copied} of {completions}");

    let dump = tcpdump(&ns, "ifbz");
    let (_, doc) = ns.check_json(&args);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(dump.pid())]);
    let (copied, completions) = copied_and_completions(&doc);
    assert!(
        completions > 0 && copied == completions,
        "{copied} of {completions}"
    );
    drop(dump);

    ns.ethtool_k("ifbz", "tx", "off");
    let (_, doc) = ns.check_json(&args);
    let f = finding(&doc, "no-tx-checksum").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "ifbz");
    let (copied, completions) = copied_and_completions(&doc);
    assert!(
        completions > 0 && copied == completions,
        "{copied} of {completions}"
    );
}

fn unprivileged_run_says_where_the_path_stops() {
    let (a, _b) = forwarding_pair();
    let doc = a.check_json_as_nobody(&["va"]);
    let f = finding(&doc, "path-incomplete").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(doc["path"]["end"]["kind"], "incomplete");
    assert_ne!(doc["verdict"]["zerocopy"], "yes");
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.contains("could not be followed"))
    );
}

/// A bridge sends a destination's frames to the port its FDB names: a tap on another port is
/// not on the path (the kernel copies nothing), a tap on that port is; without an FDB entry the
/// bridge floods and every port is on the path.
fn bridge_tap_counts_only_on_the_port_the_fdb_uses() {
    let ns = Netns::new("pabr");
    ns.ip("link add br0 type bridge");
    for port in ["ifb1", "ifb2"] {
        ns.ip(&format!("link add {port} type ifb"));
        ns.ip(&format!("link set {port} master br0"));
        ns.ip(&format!("link set {port} up"));
    }
    ns.ip("addr add 198.18.0.1/24 dev br0");
    ns.ip("link set br0 up");
    ns.ip("neigh add 198.18.0.2 lladdr 02:00:00:00:00:02 dev br0 nud permanent");
    ns.exec_ok(&[
        "bridge",
        "fdb",
        "add",
        "02:00:00:00:00:02",
        "dev",
        "ifb1",
        "master",
        "static",
    ]);
    let args = ["br0", "--target", "198.18.0.2", "--duration", SHORT];

    let other = tcpdump(&ns, "ifb2");
    let (_, doc) = ns.check_json(&args);
    let bridge = &doc["stack"][0];
    assert_eq!(bridge["forwards_to"]["port"], "ifb1", "{bridge:#}");
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );
    let (copied, completions) = copied_and_completions(&doc);
    assert!(completions > 0 && copied == 0, "{copied} of {completions}");
    drop(other);

    let used = tcpdump(&ns, "ifb1");
    let (_, doc) = ns.check_json(&args);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(used.pid())]);
    assert_eq!(tap["evidence"]["device"], "ifb1");
    let (copied, completions) = copied_and_completions(&doc);
    assert!(
        completions > 0 && copied == completions,
        "{copied} of {completions}"
    );
    drop(used);

    // No FDB entry: flooded to every port, so a tap on either is on the path.
    ns.exec_ok(&[
        "bridge",
        "fdb",
        "del",
        "02:00:00:00:00:02",
        "dev",
        "ifb1",
        "master",
    ]);
    let flooded = tcpdump(&ns, "ifb2");
    let (_, doc) = ns.check_json(&args);
    assert!(
        doc["stack"][0]["forwards_to"]["port"].is_null(),
        "{:#}",
        doc["stack"][0]
    );
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(flooded.pid())]);
    let (copied, completions) = copied_and_completions(&doc);
    assert!(
        completions > 0 && copied == completions,
        "{copied} of {completions}"
    );
}

/// `check --pid` of a sender in a pod namespace, from the host's: the path of its zerocopy
/// socket toward its peer, through the veth and the router namespace, with the router's tap.
fn pid_in_another_namespace_is_diagnosed_along_its_sockets_path() {
    let (a, b) = forwarding_pair();
    let sender = a.spawn(&[
        "python3",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/zc_sender.py"),
        "--target",
        "198.18.2.2",
        "--connect",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let pid = sender.pid().to_string();
    let check = || -> Value {
        let out = Command::new(ZCDOCTOR)
            .args(["check", "--json", "--fail-on", "never", "--pid", &pid])
            .output()
            .expect("run zcdoctor");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
    };
    let doc = check();
    assert_eq!(doc["serving"]["pid"], sender.pid(), "{:#}", doc["serving"]);
    assert_eq!(doc["serving"]["peer"], "198.18.2.2");
    assert_eq!(doc["interface"], "va");
    assert_eq!(
        roles(&doc),
        ["veth-peer", "forwarded-egress"],
        "{:#}",
        doc["path"]
    );
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );

    let dump = tcpdump(&b, "ifbz");
    let doc = check();
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(dump.pid())]);
    assert_eq!(tap["evidence"]["device"], "ifbz");
}

/// The kernel's answer per peer from `zc_multi.py`'s counts file: (completions, copied), once
/// every peer has at least 100 completions.
fn kernel_counts(file: &str, sender: &mut Culprit) -> Value {
    let ready = |v: &Value| {
        v.as_object()
            .is_some_and(|m| m.values().all(|c| c["completions"].as_u64() >= Some(100)))
    };
    let read = || -> Value {
        std::fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    };
    sender.wait_until("100 completions per peer", Duration::from_secs(20), || {
        ready(&read())
    });
    read()
}

/// `check --pid` of a process whose zerocopy sockets go four ways from its pod namespace:
/// forwarded by the router namespace (two peers, one way: clean), out of the pod's own ifb with
/// tcpdump on it, to the router's own address (local delivery there), to its own address (lo).
/// Each way is diagnosed in the one report and names its culprit; the sender's own count of
/// COPIED completions per peer is the kernel's answer beside it.
fn pid_with_many_destinations_is_diagnosed_along_each_way() {
    let (a, b) = forwarding_pair();
    a.ifb("ifbq", "198.18.3.1/24");
    let dump = tcpdump(&a, "ifbq");
    let counts = common::tmp_path("counts");
    let _files = common::TmpFiles(vec![counts.clone()]);
    let peers = [
        "198.18.2.2",
        "198.18.2.2",
        "198.18.2.3",
        "198.18.3.2",
        "198.18.1.2",
        "198.18.1.1",
    ];
    let mut cmd = vec![
        "python3",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/zc_multi.py"),
        "--counts",
        &counts,
    ];
    for p in &peers {
        cmd.extend(["--peer", p]);
    }
    let mut sender = a.spawn(&cmd);
    let kernel = kernel_counts(&counts, &mut sender);
    let pid = sender.pid().to_string();
    let out = Command::new(ZCDOCTOR)
        .args(["check", "--json", "--fail-on", "never", "--pid", &pid])
        .output()
        .expect("run zcdoctor");
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    println!("kernel, per peer: {kernel}");
    let copied_all = |peer: &str| copied_all_of(&kernel[peer]);
    // The kernel: forwarded traffic kept zerocopy; every other way copied every send.
    assert_eq!(kernel["198.18.2.2"]["copied"], 0, "{kernel}");
    assert_eq!(kernel["198.18.2.3"]["copied"], 0, "{kernel}");
    for peer in ["198.18.3.2", "198.18.1.2", "198.18.1.1"] {
        assert!(copied_all(peer), "{peer}: {kernel}");
    }

    // zcdoctor: the largest group's way is the diagnosed one, 198.18.2.3 shares it.
    let serving = &doc["serving"];
    assert_eq!(serving["peer"], "198.18.2.2", "{serving:#}");
    assert_eq!(doc["interface"], "va");
    assert_eq!(roles(&doc), ["veth-peer", "forwarded-egress"]);
    let sockets = serving["sockets"].to_string();
    assert!(
        sockets.contains("198.18.2.2:9") && sockets.contains("198.18.2.3:9"),
        "{sockets}"
    );
    let routes: Vec<(&str, &str)> = serving["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| {
            (
                r["peer"].as_str().unwrap(),
                r["interface"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("198.18.3.2", "ifbq"),
            ("198.18.1.2", "va"),
            ("198.18.1.1", "lo")
        ],
        "{serving:#}"
    );
    assert_eq!(
        serving["routes"][1]["path"]["end"]["kind"],
        "local-delivery"
    );

    // Each copying way named with its culprit; nothing blamed on the clean one.
    let toward = |code: &str, peer: &str| -> Option<Value> {
        doc["findings"]
            .as_array()?
            .iter()
            .find(|f| f["code"] == code && f["evidence"]["toward"] == peer)
            .cloned()
    };
    let tap =
        toward("tap-forces-copy", "198.18.3.2").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(&tap), [u64::from(dump.pid())]);
    assert_eq!(tap["evidence"]["device"], "ifbq");
    let local = toward("local-delivery", "198.18.1.2").expect("local delivery in the router");
    assert_eq!(local["evidence"]["netns"]["name"], b.name.as_str());
    let lo = toward("local-delivery", "198.18.1.1").expect("local delivery over lo");
    assert_eq!(lo["evidence"]["device"], "lo");
    let blockers: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "blocker")
        .collect();
    assert_eq!(blockers.len(), 3, "{:?}", codes(&doc));
    assert!(blockers.iter().all(|f| f["evidence"]["toward"].is_string()));
    assert_eq!(doc["verdict"]["zerocopy"], "no");
    println!("verdict: {}", doc["verdict"]["summary"]);

    // A second process, --pid repeated: its socket to 198.18.3.3 leaves by ifbq too, so it
    // joins that way, labelled with its pid.
    let counts2 = common::tmp_path("counts");
    let _files2 = common::TmpFiles(vec![counts2.clone()]);
    let mut second = a.spawn(&[
        "python3",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/zc_multi.py"),
        "--counts",
        &counts2,
        "--peer",
        "198.18.3.3",
    ]);
    let kernel2 = kernel_counts(&counts2, &mut second);
    assert!(copied_all_of(&kernel2["198.18.3.3"]), "{kernel2}");
    let pid2 = second.pid().to_string();
    let out = Command::new(ZCDOCTOR)
        .args(["check", "--json", "--fail-on", "never"])
        .args(["--pid", &pid, "--pid", &pid2])
        .output()
        .expect("run zcdoctor");
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let serving = &doc["serving"];
    assert_eq!(serving["also_pids"], serde_json::json!([second.pid()]));
    let ifbq = serving["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["interface"] == "ifbq")
        .unwrap_or_else(|| panic!("{serving:#}"));
    let labels = ifbq["sockets"].to_string();
    assert!(
        labels.contains(&format!("pid {pid2} fd ")) && labels.contains("198.18.3.3:9"),
        "{labels}"
    );
    assert_eq!(doc["processes"].as_array().map(Vec::len), Some(2));
}

fn copied_all_of(c: &Value) -> bool {
    c["completions"].as_u64() > Some(0) && c["copied"] == c["completions"]
}

/// `--netns NAME|PATH|PID` diagnoses inside a namespace from outside it, no `ip netns exec`.
fn netns_option_diagnoses_inside_another_namespace() {
    let ns = Netns::new("pansopt");
    ns.ifb("ifbz", "198.18.0.1/24");
    let sleeper = ns.spawn(&["sleep", "30"]);
    let pid = sleeper.pid().to_string();
    let path = format!("/run/netns/{}", ns.name);
    for spec in [ns.name.as_str(), path.as_str(), pid.as_str()] {
        let out = Command::new(ZCDOCTOR)
            .args([
                "check",
                "--json",
                "--fail-on",
                "never",
                "--netns",
                spec,
                "ifbz",
            ])
            .args(["--target", "198.18.0.2", "--duration", SHORT])
            .output()
            .expect("run zcdoctor");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "--netns {spec}: no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(doc["interface"], "ifbz", "--netns {spec}");
        assert_eq!(
            doc["verdict"]["basis"], "live",
            "--netns {spec}: {:#}",
            doc["verdict"]
        );
        let (copied, completions) = copied_and_completions(&doc);
        assert!(
            completions > 0 && copied == 0,
            "--netns {spec}: {copied} of {completions}"
        );
    }
    let out = Command::new(ZCDOCTOR)
        .args(["check", "--netns", "zcd-no-such-namespace", "ifbz"])
        .output()
        .expect("run zcdoctor");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--netns zcd-no-such-namespace"), "{err}");
}

harness_main!(
    privileged: [
        forwarded_traffic_is_followed_to_the_egress_and_its_tap,
        forwarded_egress_without_scatter_gather_is_a_blocker,
        veth_to_the_peer_address_is_local_delivery,
        container_macvlan_over_a_host_lower_with_a_tap,
        vxlan_underlay_with_a_tap_or_without_checksum,
        unprivileged_run_says_where_the_path_stops,
        netns_option_diagnoses_inside_another_namespace,
        bridge_tap_counts_only_on_the_port_the_fdb_uses,
        pid_in_another_namespace_is_diagnosed_along_its_sockets_path,
        pid_with_many_destinations_is_diagnosed_along_each_way,
    ]
);
