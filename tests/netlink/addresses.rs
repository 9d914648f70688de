//! The facts of the next hop: addresses against `ip addr`, neighbours against `ip neigh`, the
//! bridge FDB against `bridge fdb show`.

use std::net::IpAddr;

use crate::common::Netns;
use crate::{ifindex_of, in_ns, ip, json};
use zcdoctor::probe::netlink;

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn addresses_match_ip_addr() {
    let ns = Netns::new("npaddr");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("addr add 198.18.0.9/32 dev ifbz");
    ns.ip("addr add 198.18.5.1 peer 198.18.5.2/32 dev ifbz");
    ns.ip("addr add 2001:db8::1/64 dev ifbz nodad");
    ns.ip("addr add 2001:db8:5::1 peer 2001:db8:5::2/128 dev ifbz nodad");
    ns.ifb("ifby", "198.19.0.1/16");
    let mut ours = in_ns(&ns, netlink::addresses).expect("addresses");
    let mut theirs = Vec::new();
    for link in json(ns.ip("-j addr show")).as_array().expect("array") {
        let ifindex = link["ifindex"].as_u64().expect("ifindex") as u32;
        for a in link["addr_info"].as_array().expect("addr_info") {
            let prefix_len = a["prefixlen"].as_u64().expect("prefixlen") as u8;
            let local = ip(a["local"].as_str().expect("local"));
            theirs.push(netlink::Address {
                ifindex,
                addr: local,
                prefix_len,
                local: true,
            });
            if let Some(peer) = a["address"].as_str() {
                theirs.push(netlink::Address {
                    ifindex,
                    addr: ip(peer),
                    prefix_len,
                    local: false,
                });
            }
        }
    }
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    let ifbz = ifindex_of(&ns, "ifbz");
    for (addr, local) in [
        ("198.18.5.1", true),
        ("198.18.5.2", false),
        ("2001:db8:5::1", true),
        ("2001:db8:5::2", false),
        ("198.18.0.9", true),
    ] {
        assert!(
            ours.iter()
                .any(|a| a.ifindex == ifbz && a.addr == ip(addr) && a.local == local),
            "{addr} local={local} in {ours:?}"
        );
    }
}

/// `ip neigh` state words of `NUD_*` bits.
fn nud_names(state: u16) -> Vec<String> {
    let names = [
        (libc::NUD_INCOMPLETE, "INCOMPLETE"),
        (libc::NUD_REACHABLE, "REACHABLE"),
        (libc::NUD_STALE, "STALE"),
        (libc::NUD_DELAY, "DELAY"),
        (libc::NUD_PROBE, "PROBE"),
        (libc::NUD_FAILED, "FAILED"),
        (libc::NUD_NOARP, "NOARP"),
        (libc::NUD_PERMANENT, "PERMANENT"),
    ];
    let mut out: Vec<String> = names
        .iter()
        .filter(|(bit, _)| state & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    if out.is_empty() {
        out.push("NONE".to_string());
    }
    out.sort();
    out
}

fn neighbours_match_ip_neigh() {
    let ns = Netns::new("npneigh");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("addr add 2001:db8::1/64 dev ifbz nodad");
    ns.ip("neigh add 198.18.0.2 lladdr 02:00:00:00:00:02 dev ifbz nud permanent");
    ns.ip("neigh add 198.18.0.3 lladdr 02:00:00:00:00:03 dev ifbz nud stale");
    ns.ip("neigh add 198.18.0.4 dev ifbz nud incomplete");
    ns.ip("neigh add 2001:db8::2 lladdr 02:00:00:00:00:12 dev ifbz nud reachable");
    let ours = in_ns(&ns, netlink::neighbours).expect("neighbours");
    let mut ours: Vec<(u32, IpAddr, Option<String>, Vec<String>)> = ours
        .iter()
        .map(|n| {
            (
                n.ifindex,
                n.addr,
                n.lladdr.as_ref().map(mac_text),
                nud_names(n.state),
            )
        })
        .collect();
    let mut theirs = Vec::new();
    for n in json(ns.ip("-j neigh show nud all"))
        .as_array()
        .expect("array")
    {
        let mut state: Vec<String> = n["state"]
            .as_array()
            .expect("state")
            .iter()
            .map(|s| s.as_str().expect("word").to_string())
            .collect();
        state.sort();
        theirs.push((
            ifindex_of(&ns, n["dev"].as_str().expect("dev")),
            ip(n["dst"].as_str().expect("dst")),
            n["lladdr"].as_str().map(str::to_string),
            state,
        ));
    }
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    let ifbz = ifindex_of(&ns, "ifbz");
    assert!(ours.contains(&(
        ifbz,
        ip("198.18.0.2"),
        Some("02:00:00:00:00:02".to_string()),
        vec!["PERMANENT".to_string()]
    )));
}

fn bridge_fdb_matches_bridge_fdb_show() {
    let ns = Netns::new("npfdb");
    ns.ip("link add br0 type bridge");
    ns.ip("link add br1 type bridge");
    for (port, br) in [("ifb1", "br0"), ("ifb2", "br0"), ("ifb3", "br1")] {
        ns.ip(&format!("link add {port} type ifb"));
        ns.ip(&format!("link set {port} master {br}"));
        ns.ip(&format!("link set {port} up"));
    }
    ns.ip("link set br0 up");
    for (mac, port) in [
        ("02:00:00:00:00:02", "ifb1"),
        ("02:00:00:00:00:03", "ifb2"),
        ("02:00:00:00:00:33", "ifb3"),
    ] {
        ns.exec_ok(&["bridge", "fdb", "add", mac, "dev", port, "master", "static"]);
    }
    for br in ["br0", "br1"] {
        let index = ifindex_of(&ns, br);
        let mut ours = in_ns(&ns, move || netlink::bridge_fdb(index)).expect("bridge_fdb");
        let shown = json(ns.exec_ok(&["bridge", "-j", "fdb", "show", "br", br]));
        let mut theirs = Vec::new();
        for e in shown.as_array().expect("array") {
            if e["master"].as_str() != Some(br) {
                continue; // `self` entries: device address lists, not the bridge's table
            }
            let state = e["state"].as_str().unwrap_or("");
            let mac: Vec<u8> = e["mac"]
                .as_str()
                .expect("mac")
                .split(':')
                .map(|b| u8::from_str_radix(b, 16).expect("hex"))
                .collect();
            theirs.push(netlink::FdbEntry {
                port_ifindex: ifindex_of(&ns, e["ifname"].as_str().expect("ifname")),
                mac: mac.try_into().expect("6 bytes"),
                vlan: e["vlan"].as_u64().map(|v| v as u16),
                local: state == "permanent",
                is_static: state == "static",
            });
        }
        let key = |e: &netlink::FdbEntry| (e.port_ifindex, e.mac, e.vlan);
        ours.sort_by_key(key);
        theirs.sort_by_key(key);
        assert_eq!(ours, theirs, "{br}");
        assert!(!ours.is_empty(), "{br}: {ours:?}");
    }
    let br0 = ifindex_of(&ns, "br0");
    let ifb1 = ifindex_of(&ns, "ifb1");
    let fdb = in_ns(&ns, move || netlink::bridge_fdb(br0)).expect("bridge_fdb");
    assert!(fdb.contains(&netlink::FdbEntry {
        port_ifindex: ifb1,
        mac: [2, 0, 0, 0, 0, 2],
        vlan: None,
        local: false,
        is_static: true,
    }));
    assert!(
        fdb.iter().all(|e| e.mac != [2, 0, 0, 0, 0, 0x33]),
        "br1's entry"
    );
    // The ports' own MACs are local entries of the bridge.
    assert!(fdb.iter().any(|e| e.port_ifindex == ifb1 && e.local));
    // An ifindex that is no bridge has no table.
    let ifbz = ifindex_of(&ns, "ifb1");
    assert_eq!(
        in_ns(&ns, move || netlink::bridge_fdb(ifbz)).expect("fdb"),
        []
    );
}

crate::cases!(
    privileged: [
        addresses_match_ip_addr,
        neighbours_match_ip_neigh,
        bridge_fdb_matches_bridge_fdb_show,
    ]
);
