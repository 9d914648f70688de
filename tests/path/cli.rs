//! Privileged end-to-end tests of the path beyond the diagnosed device: a container behind a
//! veth whose traffic a forwarding namespace routes out of an ifb, a veth to the peer's own
//! address, a macvlan whose lower device stays in the parent namespace, a vxlan over an ifb
//! underlay. Each shape is built for real in namespaces these tests create (tags `pa…`); the
//! live probe gives the kernel's answer (completions flagged COPIED) next to the prediction.
//! Traffic goes only to 198.18.0.0/15 addresses inside these namespaces.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::path::{every_send_copied, forwarding_pair, no_send_copied, roles, tcpdump};
use common::{Netns, ZCDOCTOR, codes, finding, pids};
use serde_json::Value;

const SHORT: &str = "200ms";

/// How long a sink or a neighbour's answer may take.
const WAIT: Duration = Duration::from_secs(10);

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
    no_send_copied(&doc);
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );

    // tcpdump on the forwarding namespace's egress: every send copied, the culprit named there.
    let dump = tcpdump(&b, "ifbz");
    let (_, doc) = a.check_json(&args);
    every_send_copied(&doc);
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
    every_send_copied(&doc);
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
    every_send_copied(&doc);
    // TCP, to a sink in the peer namespace.
    let mut sink = b.spawn(&[ZCDOCTOR, "sink", "--listen", "198.18.1.2:5201"]);
    let pid = sink.pid();
    sink.wait_until("the sink listens", WAIT, || common::listens_on(pid, 5201));
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
    every_send_copied(&doc);
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
    no_send_copied(&doc);

    let dump = tcpdump(&host, "ifbz");
    let (_, doc) = pod.check_json(&args);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(dump.pid())]);
    assert_eq!(tap["evidence"]["netns"]["name"], host.name.as_str());
    every_send_copied(&doc);
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
    no_send_copied(&doc);

    let dump = tcpdump(&ns, "ifbz");
    let (_, doc) = ns.check_json(&args);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(dump.pid())]);
    every_send_copied(&doc);
    drop(dump);

    ns.ethtool_k("ifbz", "tx", "off");
    let (_, doc) = ns.check_json(&args);
    let f = finding(&doc, "no-tx-checksum").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "ifbz");
    every_send_copied(&doc);
}

/// A vxlan with a local address and no fixed device: a source rule sends its encapsulated
/// packets out of a tapped ifb, not the main table's clean one. The kernel copies every send;
/// zcdoctor looks the underlay up from the tunnel's local address and names the tap.
fn vxlan_underlay_follows_a_source_rule() {
    let ns = Netns::new("pavxs");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ifb("ifby", "198.18.4.1/24");
    ns.ip("route add 198.18.9.0/24 dev ifbz");
    ns.ip("rule add from 198.18.4.1 table 200");
    ns.ip("route add 198.18.9.0/24 dev ifby table 200");
    ns.ip("link add vxlan0 type vxlan id 43 remote 198.18.9.2 local 198.18.4.1 dstport 4789");
    ns.ip("addr add 198.19.1.1/24 dev vxlan0");
    ns.ip("link set vxlan0 up");
    ns.ip("neigh add 198.19.1.2 lladdr 02:00:00:00:00:0a dev vxlan0 nud permanent");
    let dump = tcpdump(&ns, "ifby");
    let (_, doc) = ns.check_json(&["vxlan0", "--target", "198.19.1.2", "--duration", SHORT]);
    assert_eq!(
        doc["path"]["segments"][0]["stack"][0]["name"], "ifby",
        "{:#}",
        doc["path"]
    );
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(dump.pid())]);
    every_send_copied(&doc);
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
    // Without a destination the FDB's choice is unknown: a tap on a port is a possibility,
    // a warning that says how to decide it, not a blocker.
    let (code, doc) = ns.check_json(&["br0"]);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(tap["severity"], "warning", "{tap:#}");
    assert!(
        tap["summary"]
            .as_str()
            .is_some_and(|s| s.contains("--target")),
        "{tap:#}"
    );
    assert_eq!(code, 0, "{:?}", codes(&doc));
    let (_, doc) = ns.check_json(&args);
    let bridge = &doc["stack"][0];
    assert_eq!(bridge["forwards_to"]["port"], "ifb1", "{bridge:#}");
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );
    no_send_copied(&doc);
    drop(other);

    let used = tcpdump(&ns, "ifb1");
    let (_, doc) = ns.check_json(&args);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(used.pid())]);
    assert_eq!(tap["evidence"]["device"], "ifb1");
    every_send_copied(&doc);
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
    every_send_copied(&doc);
}

/// A vxlan inside a pod whose underlay leaves by the pod's veth and is forwarded out of the
/// host's ifb: the walk follows the encapsulated packets to the tunnel's remote (not the inner
/// destination) through the host, where a tap copies them; and the tunnel's MTU left at 1500
/// over a 1500 underlay fragments full-size datagrams after encapsulation, which copies.
fn vxlan_in_a_pod_is_followed_through_the_host() {
    let (pod, host) = forwarding_pair();
    pod.ip("link add vxlan0 type vxlan id 44 remote 198.18.2.2 local 198.18.1.1 dstport 4789");
    pod.ip("link set vxlan0 mtu 1450");
    pod.ip("addr add 198.19.2.1/24 dev vxlan0");
    pod.ip("link set vxlan0 up");
    pod.ip("neigh add 198.19.2.2 lladdr 02:00:00:00:00:0b dev vxlan0 nud permanent");
    let args = ["vxlan0", "--target", "198.19.2.2", "--duration", SHORT];

    let (_, doc) = pod.check_json(&args);
    assert_eq!(
        roles(&doc),
        ["tunnel-underlay", "veth-peer", "forwarded-egress"],
        "{:#}",
        doc["path"]
    );
    assert_eq!(doc["path"]["end"]["kind"], "wire", "{:#}", doc["path"]);
    assert_eq!(doc["path"]["segments"][2]["stack"][0]["name"], "ifbz");
    assert_eq!(
        doc["path"]["segments"][0]["encapsulates"]["remote"],
        "198.18.2.2"
    );
    no_send_copied(&doc);

    let dump = tcpdump(&host, "ifbz");
    let (_, doc) = pod.check_json(&args);
    every_send_copied(&doc);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(dump.pid())]);
    assert!(
        finding(&doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(&doc)
    );
    drop(dump);

    pod.ip("link set vxlan0 mtu 1500");
    let (_, doc) = pod.check_json(&args);
    every_send_copied(&doc);
    let f = finding(&doc, "tunnel-mtu-fragments").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["underlay"], "va", "{f:#}");
    assert_eq!(f["evidence"]["fitting_mtu"], 1450, "{f:#}");
    assert_eq!(f["remediation"][0], "ip link set vxlan0 mtu 1450", "{f:#}");
    assert!(
        finding(&doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(&doc)
    );
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
        no_send_copied(&doc);
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

/// The veth's peer receives the forwarded traffic; it does not transmit it. A tap there copies
/// every send even with PACKET_IGNORE_OUTGOING (the receive path serves taps whatever the option
/// says), while the same tap on the egress device is harmless; scatter-gather off on the peer
/// copies nothing (only transmitting devices' offloads count). zcdoctor predicts each.
fn the_receiving_veth_peer_is_judged_as_a_receiver() {
    let (a, b) = forwarding_pair();
    let args = ["va", "--target", "198.18.2.2", "--duration", SHORT];

    let rx_tap = b.tap_socket(Some("vb"), true);
    let (_, doc) = a.check_json(&args);
    let (copied, completions) = every_send_copied(&doc);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(tap["evidence"]["device"], "vb");
    assert_eq!(tap["evidence"]["receive_side"], true);
    // The socket sets the option; what the kernel applies to received traffic is "not set".
    assert_eq!(
        tap["evidence"]["read_from_socket"]["state"], "set",
        "{tap:#}"
    );
    assert_eq!(tap["evidence"]["ignore_outgoing"]["state"], "not-set");
    assert!(
        finding(&doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(&doc)
    );
    println!(
        "tap on vb, ignoring outgoing: {copied} of {completions} copied; {}",
        tap["summary"]
    );
    drop(rx_tap);

    let tx_tap = b.tap_socket(Some("ifbz"), true);
    let (_, doc) = a.check_json(&args);
    no_send_copied(&doc);
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );
    assert!(
        finding(&doc, "tap-ignores-outgoing").is_some(),
        "{:?}",
        codes(&doc)
    );
    drop(tx_tap);

    b.ethtool_k("vb", "sg", "off");
    let (_, doc) = a.check_json(&args);
    let (copied, completions) = no_send_copied(&doc);
    assert!(
        finding(&doc, "no-scatter-gather").is_none(),
        "{:?}",
        codes(&doc)
    );
    println!("sg off on vb: {copied} of {completions} copied, no blocker");
}

/// A host bridge with two pods behind veth ports (the docker0 / cni0 shape). Sends from the host
/// to a pod, and from one pod to the other (bridged, not routed: ip_forward stays 0), are
/// delivered locally in the pod's namespace, and the kernel copies every one. zcdoctor follows
/// the FDB's port into the pod and says so, instead of "leaves the host".
fn a_bridge_port_veth_leads_into_the_pod() {
    let host = Netns::new("pabrh");
    let pod_a = Netns::new("pabra");
    let pod_c = Netns::new("pabrc");
    host.ip("link add br0 type bridge");
    host.ip("addr add 198.18.5.1/24 dev br0");
    host.ip("link set br0 up");
    for (port, pod, addr) in [
        ("vha", &pod_a, "198.18.5.2/24"),
        ("vhc", &pod_c, "198.18.5.3/24"),
    ] {
        host.ip(&format!(
            "link add {port} type veth peer name eth0 netns {}",
            pod.name
        ));
        host.ip(&format!("link set {port} master br0"));
        host.ip(&format!("link set {port} up"));
        pod.ip(&format!("addr add {addr} dev eth0"));
        pod.ip("link set eth0 up");
    }
    // One datagram from each sender resolves the neighbour and teaches the bridge's FDB.
    let hello = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('198.18.5.3', 9))";
    for ns in [&host, &pod_a] {
        ns.exec_ok(&[common::python(), "-c", hello]);
    }
    common::wait_for("198.18.5.3 answers the host and pod a", WAIT, || {
        host.neighbour_resolved("198.18.5.3") && pod_a.neighbour_resolved("198.18.5.3")
    });
    for (from, dev) in [(&host, "br0"), (&pod_a, "eth0")] {
        let (_, doc) = from.check_json(&[dev, "--target", "198.18.5.3", "--duration", SHORT]);
        let (copied, completions) = every_send_copied(&doc);
        assert_eq!(
            doc["path"]["end"]["kind"], "local-delivery",
            "{:#}",
            doc["path"]
        );
        assert_eq!(doc["path"]["end"]["netns"]["name"], pod_c.name.as_str());
        let local = finding(&doc, "local-delivery").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
        assert_eq!(local["severity"], "blocker");
        assert!(
            finding(&doc, "path-incomplete").is_none(),
            "{:?}",
            codes(&doc)
        );
        println!(
            "{dev} in {}: {copied} of {completions} copied; path {:?}",
            from.name,
            roles(&doc)
        );
    }
}

/// Two pods with macvlans in bridge mode on one host ifb (the docker macvlan network shape). A
/// send to the sibling pod is handed to it (`dev_forward_skb`), delivered there, and the kernel
/// copies every one; a send to an address beyond the lower device leaves clean. zcdoctor follows
/// the next hop's MAC to the sibling and says so.
fn a_macvlan_sibling_in_bridge_mode_is_local_delivery() {
    let host = Netns::new("pamvh");
    let pod1 = Netns::new("pamv1");
    let pod2 = Netns::new("pamv2");
    host.ip("link add ifbl type ifb");
    host.ip("link set ifbl up");
    for (dev, pod, addr) in [
        ("mv1", &pod1, "198.18.6.1/24"),
        ("mv2", &pod2, "198.18.6.2/24"),
    ] {
        host.ip(&format!(
            "link add {dev} link ifbl type macvlan mode bridge"
        ));
        host.ip(&format!("link set {dev} netns {}", pod.name));
        pod.ip(&format!("addr add {addr} dev {dev}"));
        pod.ip(&format!("link set {dev} up"));
    }
    pod1.ip("neigh add 198.18.6.9 lladdr 02:00:00:00:00:0b dev mv1 nud permanent");
    let hello = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('198.18.6.2', 9))";
    pod1.exec_ok(&[common::python(), "-c", hello]);
    common::wait_for("the sibling answers pod 1", WAIT, || {
        pod1.neighbour_resolved("198.18.6.2")
    });

    let (_, doc) = pod1.check_json(&["mv1", "--target", "198.18.6.2", "--duration", SHORT]);
    let (copied, completions) = every_send_copied(&doc);
    assert_eq!(roles(&doc), ["macvlan-sibling"], "{:#}", doc["path"]);
    assert_eq!(doc["path"]["end"]["kind"], "local-delivery");
    assert_eq!(doc["path"]["end"]["netns"]["name"], pod2.name.as_str());
    let local = finding(&doc, "local-delivery").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(local["severity"], "blocker");
    println!("mv1 to its sibling: {copied} of {completions} copied");

    let (_, doc) = pod1.check_json(&["mv1", "--target", "198.18.6.9", "--duration", SHORT]);
    no_send_copied(&doc);
    assert_eq!(roles(&doc), ["stacked-lower"], "{:#}", doc["path"]);
    assert!(
        finding(&doc, "local-delivery").is_none(),
        "{:?}",
        codes(&doc)
    );
}

crate::cases!(
    privileged: [
        vxlan_in_a_pod_is_followed_through_the_host needs ["tcpdump"],
        a_macvlan_sibling_in_bridge_mode_is_local_delivery needs ["python3"],
        vxlan_underlay_follows_a_source_rule needs ["tcpdump"],
        a_bridge_port_veth_leads_into_the_pod needs ["python3"],
        the_receiving_veth_peer_is_judged_as_a_receiver needs ["ethtool"],
        forwarded_traffic_is_followed_to_the_egress_and_its_tap needs ["tcpdump"],
        forwarded_egress_without_scatter_gather_is_a_blocker needs ["ethtool"],
        veth_to_the_peer_address_is_local_delivery,
        container_macvlan_over_a_host_lower_with_a_tap needs ["ethtool", "tcpdump"],
        vxlan_underlay_with_a_tap_or_without_checksum needs ["ethtool", "tcpdump"],
        unprivileged_run_says_where_the_path_stops,
        netns_option_diagnoses_inside_another_namespace,
        bridge_tap_counts_only_on_the_port_the_fdb_uses needs ["tcpdump"],
    ]
);
