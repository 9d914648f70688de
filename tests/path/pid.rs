//! Privileged end-to-end tests of `check --pid` along the path: a sender in a pod namespace
//! diagnosed from the host, a process whose zerocopy sockets go several ways (forwarded, out of a
//! tapped ifb, to a local address in the router namespace and over lo), and sockets to one peer
//! that policy routing (SO_MARK) or a bound device (SO_BINDTODEVICE) sends another way. Senders
//! of our own (tests/senders/) count the kernel's answer, COPIED completions per peer, beside
//! zcdoctor's prediction. Namespaces are the tests' own (tags `pp…`), traffic only to
//! 198.18.0.0/15 inside them.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::path::{forwarding_pair, roles, tcpdump};
use common::{Culprit, ZCDOCTOR, codes, finding, pids};
use serde_json::Value;

const MULTI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/zc_multi.py");

/// `zcdoctor check --json --fail-on never ARGS` from the host namespace.
fn check_from_host(args: &[&str]) -> Value {
    let out = Command::new(ZCDOCTOR)
        .args(["check", "--json", "--fail-on", "never"])
        .args(args)
        .output()
        .expect("run zcdoctor");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

/// `zc_multi.py` in `ns` with one socket per peer spec, and its counts file.
fn multi_sender(ns: &common::Netns, peers: &[&str]) -> (Culprit, String, common::TmpFiles) {
    let counts = common::tmp_path("counts");
    let files = common::TmpFiles(vec![counts.clone()]);
    let mut cmd = vec![common::python(), MULTI, "--counts", &counts];
    for p in peers {
        cmd.extend(["--peer", p]);
    }
    (ns.spawn(&cmd), counts, files)
}

/// The finding with `code` on the way to `peer` (`evidence.toward`).
fn toward(doc: &Value, code: &str, peer: &str) -> Option<Value> {
    doc["findings"]
        .as_array()?
        .iter()
        .find(|f| f["code"] == code && f["evidence"]["toward"] == peer)
        .cloned()
}

/// `check --pid` of a sender in a pod namespace, from the host's: the path of its zerocopy
/// socket toward its peer, through the veth and the router namespace, with the router's tap.
fn pid_in_another_namespace_is_diagnosed_along_its_sockets_path() {
    let (a, b) = forwarding_pair();
    let status = common::tmp_path("status");
    let _files = common::TmpFiles(vec![status.clone()]);
    let mut sender = a.spawn(&[
        common::python(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/zc_sender.py"),
        "--target",
        "198.18.2.2",
        "--connect",
        "--status",
        &status,
    ]);
    sender.wait_until("the sender has sent", Duration::from_secs(10), || {
        std::fs::read_to_string(&status).is_ok_and(|t| t.contains("READY"))
    });
    let pid = sender.pid().to_string();
    let check = || check_from_host(&["--pid", &pid]);
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
    let (mut sender, counts, _files) = multi_sender(
        &a,
        &[
            "198.18.2.2",
            "198.18.2.2",
            "198.18.2.3",
            "198.18.3.2",
            "198.18.1.2",
            "198.18.1.1",
        ],
    );
    let kernel = kernel_counts(&counts, &mut sender);
    let pid = sender.pid().to_string();
    let doc = check_from_host(&["--pid", &pid]);
    println!("kernel, per peer: {kernel}");
    assert_only_forwarded_kept_zerocopy(&kernel);
    assert_serving_way_and_routes(&doc);
    assert_each_copying_way_named(&doc, dump.pid(), &b.name);
    println!("verdict: {}", doc["verdict"]["summary"]);
    second_pid_joins_the_ifbq_way(&a, &pid);
}

/// The kernel's count per peer: forwarded traffic kept zerocopy; every other way copied every
/// send.
fn assert_only_forwarded_kept_zerocopy(kernel: &Value) {
    assert_eq!(kernel["198.18.2.2"]["copied"], 0, "{kernel}");
    assert_eq!(kernel["198.18.2.3"]["copied"], 0, "{kernel}");
    for peer in ["198.18.3.2", "198.18.1.2", "198.18.1.1"] {
        assert!(copied_all_of(&kernel[peer]), "{peer}: {kernel}");
    }
}

/// zcdoctor: the largest group's way is the diagnosed one, 198.18.2.3 shares it; the other
/// ways are routes out of ifbq, va (to the router's own address) and lo.
fn assert_serving_way_and_routes(doc: &Value) {
    let serving = &doc["serving"];
    assert_eq!(serving["peer"], "198.18.2.2", "{serving:#}");
    assert_eq!(doc["interface"], "va");
    assert_eq!(roles(doc), ["veth-peer", "forwarded-egress"]);
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
}

/// Each copying way named with its culprit (tcpdump `dump_pid` on ifbq, local delivery in the
/// router namespace `router` and over lo); nothing blamed on the clean one.
fn assert_each_copying_way_named(doc: &Value, dump_pid: u32, router: &str) {
    let toward = |code: &str, peer: &str| toward(doc, code, peer);
    let tap = toward("tap-forces-copy", "198.18.3.2").unwrap_or_else(|| panic!("{:?}", codes(doc)));
    assert_eq!(pids(&tap), [u64::from(dump_pid)]);
    assert_eq!(tap["evidence"]["device"], "ifbq");
    let local = toward("local-delivery", "198.18.1.2").expect("local delivery in the router");
    assert_eq!(local["evidence"]["netns"]["name"], router);
    let lo = toward("local-delivery", "198.18.1.1").expect("local delivery over lo");
    assert_eq!(lo["evidence"]["device"], "lo");
    let blockers: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "blocker")
        .collect();
    assert_eq!(blockers.len(), 3, "{:?}", codes(doc));
    assert!(blockers.iter().all(|f| f["evidence"]["toward"].is_string()));
    assert_eq!(doc["verdict"]["zerocopy"], "no");
}

/// A second process, --pid repeated: its socket to 198.18.3.3 leaves by ifbq too, so it joins
/// that way, labelled with its pid.
fn second_pid_joins_the_ifbq_way(a: &common::Netns, pid: &str) {
    let (mut second, counts2, _files2) = multi_sender(a, &["198.18.3.3"]);
    let kernel2 = kernel_counts(&counts2, &mut second);
    assert!(copied_all_of(&kernel2["198.18.3.3"]), "{kernel2}");
    let pid2 = second.pid().to_string();
    let doc = check_from_host(&["--pid", pid, "--pid", &pid2]);
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

/// Four sockets to the same router-side network: two plain (forwarded by the router: clean), one
/// with SO_MARK 0x2a that a policy rule sends out of the pod's tapped ifb, one bound to that ifb
/// (SO_BINDTODEVICE) toward another peer. The kernel copies the marked and the bound socket's
/// sends and not the plain one's; zcdoctor looks each route up as the kernel does (source,
/// mark, bound device), so the marked socket is not diagnosed along the plain one's way.
fn sockets_routed_by_mark_or_device_get_their_own_way() {
    let (a, _b) = forwarding_pair();
    a.ifb("ifbq", "198.18.3.1/24");
    a.ip("rule add fwmark 0x2a table 100");
    a.ip("route add 198.18.2.0/24 dev ifbq table 100");
    let dump = tcpdump(&a, "ifbq");
    let (mut sender, counts, _files) = multi_sender(
        &a,
        &[
            "198.18.2.2",
            "198.18.2.2",
            "198.18.2.2,mark=0x2a",
            "198.18.2.4,dev=ifbq",
        ],
    );
    let kernel = kernel_counts(&counts, &mut sender);
    println!("kernel, per socket: {kernel}");
    assert_eq!(kernel["198.18.2.2"]["copied"], 0, "{kernel}");
    assert!(copied_all_of(&kernel["198.18.2.2,mark=0x2a"]), "{kernel}");
    assert!(copied_all_of(&kernel["198.18.2.4,dev=ifbq"]), "{kernel}");

    let doc = check_from_host(&["--pid", &sender.pid().to_string()]);
    let serving = &doc["serving"];
    assert_eq!(doc["interface"], "va", "{serving:#}");
    assert_eq!(roles(&doc), ["veth-peer", "forwarded-egress"]);
    assert_eq!(serving["routing"]["mark"], Value::Null);
    let routes = serving["routes"].as_array().expect("routes");
    assert_eq!(routes.len(), 1, "one way out of ifbq for both: {serving:#}");
    let way = &routes[0];
    assert_eq!(way["interface"], "ifbq");
    assert_eq!(way["peer"], "198.18.2.2");
    assert_eq!(way["routing"]["mark"], 0x2a);
    let sockets = way["sockets"].to_string();
    assert!(sockets.contains("198.18.2.4:9"), "{sockets}");
    let bound = doc["processes"][0]["sockets"]
        .as_array()
        .expect("sockets")
        .iter()
        .find(|s| s["peer"]["read"] == "198.18.2.4:9")
        .expect("the bound socket");
    assert_eq!(bound["bound_device"], "ifbq");

    let tap = toward(&doc, "tap-forces-copy", "198.18.2.2")
        .unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(&tap), [u64::from(dump.pid())]);
    assert_eq!(tap["evidence"]["toward_routing"]["mark"], 0x2a);
    let blockers = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["severity"] == "blocker")
        .count();
    assert_eq!(blockers, 1, "{:?}", codes(&doc));
    let verdict = doc["verdict"]["summary"].as_str().expect("summary");
    assert!(
        verdict.contains("(to 198.18.2.2 with mark 0x2a)"),
        "{verdict}"
    );
}

/// A sender whose zerocopy socket is not connected (sendto per datagram): no destination can be
/// read from it, so `check --pid` says so and diagnoses the default route of the sender's own
/// namespace (not the host's), which is the way the kernel sent its datagrams.
fn unconnected_socket_is_diagnosed_along_its_namespace_default_route() {
    let ns = common::Netns::new("ppunc");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("route add default dev ifbz");
    let status = common::tmp_path("status");
    let _files = common::TmpFiles(vec![status.clone()]);
    let mut sender = ns.spawn(&[
        common::python(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/zc_sender.py"),
        "--status",
        &status,
    ]);
    sender.wait_until("the sender has sent", Duration::from_secs(10), || {
        std::fs::read_to_string(&status).is_ok_and(|t| t.contains("READY"))
    });
    // The kernel sent them through ifbz (an ifb counts what it is handed to transmit as
    // received, then drops it).
    let handed = || -> u64 {
        let out = ns.exec_ok(&["cat", "/sys/class/net/ifbz/statistics/rx_bytes"]);
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("rx_bytes")
    };
    assert!(handed() >= 4 * 8192, "{} bytes", handed());
    let doc = check_from_host(&["--pid", &sender.pid().to_string()]);
    assert_eq!(
        doc["interface"], "ifbz",
        "the sender's namespace, not the host's: {:#} {}",
        doc["processes"], doc["unpeered"]
    );
    assert!(doc.get("serving").is_none(), "{:#}", doc["serving"]);
    let unpeered = doc["unpeered"].to_string();
    assert!(
        unpeered.contains("(udp 0.0.0.0:") && unpeered.contains("unconnected"),
        "{unpeered}"
    );
    println!("ifbz was handed {} bytes; unpeered: {unpeered}", handed());
}

/// A server with more peers than a report reads (41 sockets to 40 peers, all out of one ifb): the
/// ways of the 33 largest groups are read and found to be one, the rest are summed up.
fn a_server_with_many_peers_is_read_up_to_the_bound() {
    let ns = common::Netns::new("ppmany");
    ns.ifb("ifbz", "198.18.0.1/24");
    let peers: Vec<String> = (2..42).map(|i| format!("198.18.0.{i}")).collect();
    let mut refs: Vec<&str> = peers.iter().map(String::as_str).collect();
    // A dual-stack socket to an IPv4 peer: the kernel routes it as 198.18.0.41, so it joins that
    // peer's group, which becomes the largest.
    refs.push("::ffff:198.18.0.41");
    let (mut sender, counts, _files) = multi_sender(&ns, &refs);
    let kernel = kernel_counts(&counts, &mut sender);
    let copied: u64 = peers
        .iter()
        .filter_map(|p| kernel[p.as_str()]["copied"].as_u64())
        .sum();
    assert_eq!(copied, 0, "{kernel}");
    let doc = check_from_host(&["--pid", &sender.pid().to_string()]);
    let serving = &doc["serving"];
    assert_eq!(doc["interface"], "ifbz");
    assert!(serving.get("routes").is_none(), "one way out: {serving:#}");
    assert_eq!(serving["peer"], "198.18.0.41", "{serving:#}");
    assert_eq!(serving["sockets"].as_array().map(Vec::len), Some(34));
    assert_eq!(serving["also_peers"].as_array().map(Vec::len), Some(32));
    assert_eq!(
        serving["others"],
        serde_json::json!([{"reason": "past-read-limit", "destinations": 7, "sockets": 7, "limit": 33}]),
        "{serving:#}"
    );
}

/// `--pid` with a `--netns` where its sockets do not live: their routes there are not theirs, so
/// the run is refused with one line naming the sockets' namespace, not diagnosed along a path
/// the sockets never take.
fn pid_with_another_netns_is_refused() {
    let (a, b) = forwarding_pair();
    let (mut sender, counts, _files) = multi_sender(&a, &["198.18.2.2"]);
    kernel_counts(&counts, &mut sender);
    let out = Command::new(ZCDOCTOR)
        .args([
            "check",
            "--pid",
            &sender.pid().to_string(),
            "--netns",
            &b.name,
        ])
        .output()
        .expect("run zcdoctor");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let ino = std::fs::metadata(format!("/run/netns/{}", a.name))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("namespace file");
    assert!(err.contains(&format!("net:[{ino}]")), "{err}");
    // In their own namespace (given, or entered by zcdoctor) the path is followed.
    let doc = check_from_host(&["--pid", &sender.pid().to_string(), "--netns", &a.name]);
    assert_eq!(doc["serving"]["peer"], "198.18.2.2");
}

crate::cases!(
    privileged: [
        pid_with_another_netns_is_refused needs ["python3"],
        a_server_with_many_peers_is_read_up_to_the_bound needs ["python3"],
        unconnected_socket_is_diagnosed_along_its_namespace_default_route needs ["python3"],
        pid_in_another_namespace_is_diagnosed_along_its_sockets_path needs ["python3", "tcpdump"],
        pid_with_many_destinations_is_diagnosed_along_each_way needs ["python3", "tcpdump"],
        sockets_routed_by_mark_or_device_get_their_own_way needs ["python3", "tcpdump"],
    ]
);
