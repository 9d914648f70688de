//! Tunnels over a dummy underlay: the encapsulated packets leave by the underlay device, where
//! a tap copies them.

use super::{blockers, live, summary};
use crate::common::path::{every_send_copied, no_send_copied};
use crate::common::{Netns, codes, finding, pids};
use crate::harness::{Kernel, Outcome, Scenario, prove};

/// A namespace with the underlay dummy `u0` (198.18.5.1/24, neighbour 198.18.5.2 static).
fn underlay(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.dummy("u0", Some("198.18.5.1/24"));
    ns.ip("neigh replace 198.18.5.2 lladdr 02:00:00:00:00:05 dev u0 nud permanent");
    ns
}

fn geneve_tap_on_underlay(_: &Kernel) -> Outcome {
    let ns = underlay("gtgen");
    ns.ip("link add gn0 type geneve id 5 remote 198.18.5.2");
    ns.ip("link set gn0 mtu 1400");
    ns.ip("addr add 198.18.6.1/24 dev gn0");
    ns.ip("link set gn0 up");
    ns.ip("neigh replace 198.18.6.2 lladdr 02:00:00:00:00:06 dev gn0 nud permanent");
    let (_, doc) = live(&ns, "gn0", "198.18.6.2");
    no_send_copied(&doc);
    assert!(blockers(&doc).is_empty(), "{:?}", codes(&doc));
    let clean = summary(&doc);
    let dump = ns.tcpdump(&["-i", "u0"]);
    let (_, doc) = live(&ns, "gn0", "198.18.6.2");
    every_send_copied(&doc);
    let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(tap), [u64::from(dump.pid())], "{tap:#}");
    prove("tap-forces-copy");
    Outcome::Ran(format!("clean: {clean}; tap on u0: {}", summary(&doc)))
}

/// `gre0` is the fallback device ip_gre creates in every namespace: the test's is gre1.
fn gre_clean(_: &Kernel) -> Outcome {
    let ns = underlay("gtgre");
    ns.ip("link add gre1 type gre local 198.18.5.1 remote 198.18.5.2");
    ns.ip("addr add 198.18.7.1/24 dev gre1");
    ns.ip("link set gre1 up");
    let (_, doc) = live(&ns, "gre1", "198.18.7.2");
    no_send_copied(&doc);
    assert!(blockers(&doc).is_empty(), "{:?}", codes(&doc));
    Outcome::Ran(summary(&doc))
}

/// ipip, sit (IPv6 in IPv4), gretap and ip6gre over the dummy underlay, each with a tap on it.
fn ip_tunnels_tap_on_underlay(_: &Kernel) -> Outcome {
    let ns = underlay("gtip");
    ns.ip("addr add 2001:db8:5::1/64 dev u0 nodad");
    ns.ip("neigh replace 2001:db8:5::2 lladdr 02:00:00:00:00:05 dev u0 nud permanent");
    let dump = ns.tcpdump(&["-i", "u0"]);
    let shapes = [
        (
            "ipip1",
            "type ipip local 198.18.5.1 remote 198.18.5.2",
            "198.18.8.1/24",
            "198.18.8.2",
            false,
        ),
        (
            "sit1",
            "type sit local 198.18.5.1 remote 198.18.5.2",
            "2001:db8:8::1/64",
            "2001:db8:8::2",
            false,
        ),
        (
            "gtap1",
            "type gretap local 198.18.5.1 remote 198.18.5.2",
            "198.18.9.1/24",
            "198.18.9.2",
            true,
        ),
        (
            "g6re1",
            "type ip6gre local 2001:db8:5::1 remote 2001:db8:5::2",
            "198.18.10.1/24",
            "198.18.10.2",
            false,
        ),
    ];
    let mut line = Vec::new();
    for (dev, spec, addr, target, ethernet) in shapes {
        ns.ip(&format!("link add {dev} {spec}"));
        ns.ip(&format!("addr add {addr} dev {dev} nodad"));
        ns.ip(&format!("link set {dev} up"));
        if ethernet {
            ns.ip(&format!(
                "neigh replace {target} lladdr 02:00:00:00:00:07 dev {dev} nud permanent"
            ));
        }
        let (_, doc) = live(&ns, dev, target);
        every_send_copied(&doc);
        let tap = finding(&doc, "tap-forces-copy")
            .unwrap_or_else(|| panic!("{dev}: {:?} {:#}", codes(&doc), doc["path"]));
        assert_eq!(pids(tap), [u64::from(dump.pid())], "{dev}: {tap:#}");
        assert_eq!(
            doc["path"]["segments"][0]["stack"][0]["name"], "u0",
            "{dev}"
        );
        prove("tap-forces-copy");
        line.push(format!("{dev}: {}", summary(&doc)));
    }
    Outcome::Ran(line.join("; "))
}

/// WireGuard with a real peer across a veth: it encrypts in place after skb_cow_data(), so
/// every send is copied (or refused with ENOBUFS).
/// A WireGuard key pair made by `wg` in `ns`: (private, public).
fn wg_keypair(ns: &Netns) -> (String, String) {
    let private = String::from_utf8_lossy(&ns.exec_ok(&["wg", "genkey"]).stdout)
        .trim()
        .to_string();
    let out = std::process::Command::new("wg")
        .arg("pubkey")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().map(|mut i| i.write_all(private.as_bytes()));
            c.wait_with_output()
        })
        .expect("wg pubkey");
    (
        private,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// One end of the WireGuard pair: `wg0` in `ns` with `private`, address `me`, and the peer
/// `peer` (public key) for `other`, reached at `endpoint` over the veth.
struct WgEnd<'a> {
    ns: &'a Netns,
    private: &'a str,
    peer: &'a str,
    me: &'a str,
    other: &'a str,
    endpoint: &'a str,
}

/// Creates and configures `wg0` of one end, up.
fn wg_link_up(end: &WgEnd) {
    let file = crate::common::tmp_path("key");
    let _files = crate::common::TmpFiles(vec![file.clone()]);
    std::fs::write(&file, end.private).expect("key file");
    end.ns.ip("link add wg0 type wireguard");
    end.ns.exec_ok(&[
        "wg",
        "set",
        "wg0",
        "listen-port",
        "51820",
        "private-key",
        &file,
        "peer",
        end.peer,
        "allowed-ips",
        end.other,
        "endpoint",
        end.endpoint,
    ]);
    end.ns.ip(&format!("addr add {} dev wg0", end.me));
    end.ns.ip("link set wg0 up");
}

/// Sends one datagram from `a` to the peer and waits for the handshake it starts.
fn wg_handshake(a: &Netns) {
    // The first packets wait for the handshake in a queue of 128, which drops the oldest:
    // a dropped packet is freed uncopied and completes as "zerocopy". Handshake first.
    a.exec_ok(&[
        crate::common::python(),
        "-c",
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('198.18.11.2', 9))",
    ]);
    let mut handshake = false;
    for _ in 0..100 {
        let out = a.exec_ok(&["wg", "show", "wg0", "latest-handshakes"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.split_whitespace().nth(1).is_some_and(|t| t != "0") {
            handshake = true;
            break;
        }
        // Pacing of the poll for the handshake, bounded by the 100 rounds.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(handshake, "no WireGuard handshake between the namespaces");
}

/// The live report over WireGuard: `tunnel-encrypts` a blocker, nothing unexplained, and
/// (almost) every send copied.
fn assert_encryption_copies(doc: &serde_json::Value) {
    let f = finding(doc, "tunnel-encrypts").unwrap_or_else(|| panic!("{:?}", codes(doc)));
    assert_eq!(f["severity"], "blocker", "{f:#}");
    assert!(
        finding(doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(doc)
    );
    let (copied, completions) = crate::common::path::copied_and_completions(doc);
    // Every packet WireGuard encrypts is copied; the few it drops under the probe's load (its
    // queues are bounded) are freed uncopied and complete as zerocopy, or ENOBUFS stops sends.
    let enobufs = finding(doc, "zerocopy-enobufs").is_some();
    assert!(
        (completions > 0 && copied * 10 >= completions * 9) || enobufs,
        "{copied} of {completions} copied, findings {:?}",
        codes(doc)
    );
}

fn wireguard_with_a_real_peer(_: &Kernel) -> Outcome {
    let a = Netns::new("gtwga");
    let b = Netns::new("gtwgb");
    a.veth_to(&b);
    let (ka, pa) = wg_keypair(&a);
    let (kb, pb) = wg_keypair(&b);
    wg_link_up(&WgEnd {
        ns: &a,
        private: &ka,
        peer: &pb,
        me: "198.18.11.1/24",
        other: "198.18.11.2/32",
        endpoint: "198.18.1.2:51820",
    });
    wg_link_up(&WgEnd {
        ns: &b,
        private: &kb,
        peer: &pa,
        me: "198.18.11.2/24",
        other: "198.18.11.1/32",
        endpoint: "198.18.1.1:51820",
    });
    wg_handshake(&a);
    let (_, doc) = live(&a, "wg0", "198.18.11.2");
    assert_encryption_copies(&doc);
    prove("tunnel-encrypts");
    Outcome::Ran(summary(&doc))
}

/// Software macsec has no checksum offload: UDP falls back to a copy at send time.
fn macsec_without_checksum_offload(_: &Kernel) -> Outcome {
    let ns = underlay("gtmacsec");
    ns.ip("link add link u0 macsec0 type macsec encrypt on");
    ns.ip("macsec add macsec0 tx sa 0 pn 1 on key 01 81818181818181818181818181818181");
    ns.ip("addr add 198.18.12.1/24 dev macsec0");
    ns.ip("link set macsec0 up");
    ns.ip("neigh replace 198.18.12.2 lladdr 02:00:00:00:00:0c dev macsec0 nud permanent");
    let (_, doc) = live(&ns, "macsec0", "198.18.12.2");
    every_send_copied(&doc);
    let f = finding(&doc, "no-tx-checksum").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "macsec0", "{f:#}");
    assert_eq!(f["severity"], "blocker", "{f:#}");
    prove("no-tx-checksum");
    assert!(
        finding(&doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(&doc)
    );
    Outcome::Ran(summary(&doc))
}

pub const IP_TUNNELS_TAP_ON_UNDERLAY: Scenario = Scenario {
    name: "tunnel_ipip_sit_gretap_ip6gre_tap_on_underlay",
    run: ip_tunnels_tap_on_underlay,
};
pub const WIREGUARD_WITH_A_REAL_PEER: Scenario = Scenario {
    name: "tunnel_wireguard_with_a_real_peer",
    run: wireguard_with_a_real_peer,
};
pub const MACSEC_WITHOUT_CHECKSUM_OFFLOAD: Scenario = Scenario {
    name: "tunnel_macsec_without_checksum_offload",
    run: macsec_without_checksum_offload,
};
pub const GENEVE_TAP_ON_UNDERLAY: Scenario = Scenario {
    name: "tunnel_geneve_tap_on_underlay",
    run: geneve_tap_on_underlay,
};
pub const GRE_CLEAN: Scenario = Scenario {
    name: "tunnel_gre_clean",
    run: gre_clean,
};
