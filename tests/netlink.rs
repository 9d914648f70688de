//! The netlink probes against the kernel's own tools, in network namespaces built per test:
//! `dump_links()` vs `ip -j -d link show`, `features()` vs `ethtool -k`, `route_get()` and
//! `route_lookup()` vs `ip -j route get`, `default_routes()` vs `ip -j route show default`.
//!
//! The probes run in a thread of this process that entered the test namespace (`setns` is per
//! thread), as the CLI runs inside one. Addresses are in 198.18.0.0/15 and 2001:db8::/32.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::{Netns, in_netns};
use serde_json::Value;
use zcdoctor::evidence::{FeatureState, Features, RouteType};
use zcdoctor::probe::netlink::{self, RouteQuery};
use zcdoctor::probe::netns;

fn json(out: std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

// ---------------------------------------------------------------------------------------------
// Links

/// `ns`: lo, ifb `ifbz` (up), a macvlan `mv0` on it, a bridge `br0` with port `ifb2`, a veth
/// `va` whose peer is in `other`, and a macvlan `mvx` whose lower device `ifbl` is in `other`.
fn link_zoo() -> (Netns, Netns) {
    let ns = Netns::new("nllink");
    let other = Netns::new("nlpeer");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("link add mv0 link ifbz type macvlan mode bridge");
    ns.ip("link set mv0 up");
    ns.ip("link add br0 type bridge");
    ns.ip("link add ifb2 type ifb");
    ns.ip("link set ifb2 master br0");
    ns.ip("link set ifb2 mtu 1400");
    ns.ip(&format!(
        "link add va type veth peer name vb netns {}",
        other.name
    ));
    other.ip("link add ifbl type ifb");
    other.ip("link set ifbl up");
    other.ip("link add mvx link ifbl type macvlan mode bridge");
    other.ip(&format!("link set mvx netns {}", ns.name));
    (ns, other)
}

fn links_match_ip_link() {
    let (ns, _other) = link_zoo();
    let links = in_netns(&ns, netlink::dump_links).expect("dump_links");
    let ip = json(ns.ip("-j -d link show"));
    let ip = ip.as_array().expect("array");
    let index_of = |name: &str| {
        ip.iter()
            .find(|l| l["ifname"] == name)
            .and_then(|l| l["ifindex"].as_u64())
            .unwrap_or_else(|| panic!("{name} in ip link")) as u32
    };
    assert_eq!(links.len(), ip.len(), "{links:#?}");
    for l in ip {
        let name = l["ifname"].as_str().expect("ifname");
        let ours = links
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("{name} missing from dump_links"));
        assert_eq!(u64::from(ours.ifindex), l["ifindex"], "{name} ifindex");
        assert_eq!(u64::from(ours.mtu), l["mtu"], "{name} mtu");
        assert_eq!(
            ours.oper_state,
            l["operstate"].as_str().expect("operstate").to_lowercase(),
            "{name} operstate"
        );
        assert_eq!(
            ours.link_kind.as_deref(),
            l["linkinfo"]["info_kind"].as_str(),
            "{name} kind"
        );
        assert_eq!(
            ours.master,
            l["master"].as_str().map(index_of),
            "{name} master"
        );
        // `ip` prints a parent in this namespace by name, one elsewhere by index + netnsid.
        let link = match (l["link"].as_str(), l["link_index"].as_u64()) {
            (Some(parent), _) => Some(index_of(parent)),
            (None, Some(index)) => Some(index as u32),
            (None, None) => None,
        };
        assert_eq!(ours.link, link, "{name} link");
        assert_eq!(
            ours.link_netnsid.map(i64::from),
            l["link_netnsid"].as_i64(),
            "{name} link_netnsid"
        );
    }
    let mvx = links.iter().find(|l| l.name == "mvx").expect("mvx");
    assert_eq!(mvx.link_kind.as_deref(), Some("macvlan"));
    assert!(mvx.link_netnsid.is_some(), "{mvx:?}");
    let port = links.iter().find(|l| l.name == "ifb2").expect("ifb2");
    assert_eq!((port.master, port.mtu), (Some(index_of("br0")), 1400));
}

// ---------------------------------------------------------------------------------------------
// Features

/// `ethtool -k` names a few kernel features by their legacy names.
const LEGACY: [(&str, &str); 8] = [
    ("rx-checksumming", "rx-checksum"),
    ("generic-segmentation-offload", "tx-generic-segmentation"),
    ("generic-receive-offload", "rx-gro"),
    ("large-receive-offload", "rx-lro"),
    ("rx-vlan-offload", "rx-vlan-hw-parse"),
    ("tx-vlan-offload", "tx-vlan-hw-insert"),
    ("ntuple-filters", "rx-ntuple-filter"),
    ("receive-hashing", "rx-hashing"),
];

/// `ethtool -k` summary lines over several features, not features themselves.
const SUMMARIES: [&str; 4] = [
    "tx-checksumming",
    "scatter-gather",
    "tcp-segmentation-offload",
    "udp-fragmentation-offload",
];

/// One `ethtool -k` line: active, fixed, and `wanted` when ethtool shows it (it does not for
/// fixed features).
#[derive(Debug)]
struct EthtoolLine {
    active: bool,
    fixed: bool,
    wanted: Option<bool>,
}

fn ethtool_k(ns: &Netns, dev: &str) -> BTreeMap<String, EthtoolLine> {
    let out = ns.exec_ok(&["ethtool", "-k", dev]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut map = BTreeMap::new();
    for line in text.lines().skip(1) {
        let (name, rest) = line.trim().split_once(": ").expect("name: value");
        if SUMMARIES.contains(&name) {
            continue;
        }
        let name = LEGACY
            .iter()
            .find(|(legacy, _)| *legacy == name)
            .map_or(name, |(_, kernel)| kernel);
        let active = rest.starts_with("on");
        let fixed = rest.contains("[fixed]");
        let wanted = if rest.contains("[requested on]") {
            Some(true)
        } else if rest.contains("[requested off]") {
            Some(false)
        } else if fixed {
            None
        } else {
            Some(active)
        };
        map.insert(
            name.to_string(),
            EthtoolLine {
                active,
                fixed,
                wanted,
            },
        );
    }
    map
}

/// Every feature of `features()` equals its `ethtool -k` line, and ethtool shows no feature
/// that `features()` lacks.
fn assert_features_match(ns: &Netns, dev: &str) -> Features {
    let name = dev.to_string();
    let ours = in_netns(ns, move || netlink::features(&name)).expect("features");
    let theirs = ethtool_k(ns, dev);
    for (feature, line) in &theirs {
        let state = ours
            .get(feature)
            .unwrap_or_else(|| panic!("{dev}: ethtool shows {feature}, features() lacks it"));
        assert_eq!(state.active, line.active, "{dev} {feature} active");
        assert_eq!(state.fixed, line.fixed, "{dev} {feature} fixed");
        if let Some(wanted) = line.wanted {
            assert_eq!(state.wanted, wanted, "{dev} {feature} wanted");
        }
    }
    let unshown: Vec<&String> = ours.0.keys().filter(|k| !theirs.contains_key(*k)).collect();
    assert!(
        unshown.is_empty(),
        "{dev}: ethtool does not show {unshown:?}"
    );
    ours
}

fn features_match_ethtool_k() {
    let (ns, _other) = link_zoo();
    ns.ip("link add vc type veth peer name vd");
    for dev in ["lo", "ifbz", "mv0", "br0", "ifb2", "va", "vc", "mvx"] {
        assert_features_match(&ns, dev);
    }

    // After `ethtool -K ifbz sg off`.
    ns.ethtool_k("ifbz", "sg", "off");
    let f = assert_features_match(&ns, "ifbz");
    assert_eq!(
        f.get("tx-scatter-gather").copied(),
        Some(FeatureState {
            active: false,
            wanted: false,
            fixed: false
        })
    );
    assert_features_match(&ns, "mv0");
}

fn bridge_with_a_port_without_sg_reads_requested_on() {
    let ns = Netns::new("nlbr");
    ns.ip("link add br0 type bridge");
    ns.ip("link add ifb2 type ifb");
    ns.ethtool_k("ifb2", "sg", "off");
    ns.ip("link set ifb2 master br0");
    let line = String::from_utf8_lossy(&ns.exec_ok(&["ethtool", "-k", "br0"]).stdout)
        .lines()
        .find(|l| l.trim().starts_with("tx-scatter-gather:"))
        .map(|l| l.trim().to_string());
    assert_eq!(
        line.as_deref(),
        Some("tx-scatter-gather: off [requested on]")
    );
    let f = assert_features_match(&ns, "br0");
    assert_eq!(
        f.get("tx-scatter-gather").copied(),
        Some(FeatureState {
            active: false,
            wanted: true,
            fixed: false
        })
    );
}

fn missing_device_is_enodev_in_that_namespace() {
    let ns = Netns::new("nlnodev");
    let e = in_netns(&ns, || netlink::features("ifbz")).expect_err("no ifbz here");
    assert_eq!(e.errno(), Some(nix::errno::Errno::ENODEV));
    assert!(
        e.to_string()
            .contains("no device named \"ifbz\" in this network namespace"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// Routes

/// `ns` with ifb `ifbz` 198.18.0.1/24 + 2001:db8::1/64, a gateway route with MTU 1400, and a
/// fwmark rule to table 100 and a uidrange rule to table 101 whose routes leave through ifb
/// `ifbm`.
fn route_ns() -> Netns {
    let ns = Netns::new("nlroute");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("addr add 2001:db8::1/64 dev ifbz nodad");
    ns.ifb("ifbm", "198.18.3.1/24");
    ns.ip("route add 198.18.64.0/24 via 198.18.0.254 mtu 1400");
    ns.ip("rule add fwmark 0x2a table 100");
    ns.ip("route add 198.18.70.0/24 via 198.18.3.254 dev ifbm table 100");
    ns.ip("rule add uidrange 4242-4242 table 101");
    ns.ip("route add 198.18.71.0/24 via 198.18.3.254 dev ifbm table 101");
    ns
}

/// `ip -j route get ARGS` as the fields of `RouteInfo`.
fn ip_route_get(ns: &Netns, args: &str) -> Value {
    let v = json(ns.ip(&format!("-j route get {args}")));
    v[0].clone()
}

fn assert_route_matches(ns: &Netns, query: RouteQuery, args: &str) {
    let r = in_netns(ns, move || netlink::route_lookup(&query)).expect("route_lookup");
    let ip = ip_route_get(ns, args);
    assert_eq!(r.device.as_deref(), ip["dev"].as_str(), "{args}: dev {ip}");
    assert_eq!(
        r.source.as_deref(),
        ip["prefsrc"].as_str(),
        "{args}: prefsrc"
    );
    assert_eq!(
        r.gateway.as_deref(),
        ip["gateway"].as_str(),
        "{args}: gateway"
    );
    let route_type = ip["type"].as_str().unwrap_or("unicast");
    assert_eq!(r.route_type.to_string(), route_type, "{args}: type");
    assert_eq!(
        r.mtu.map(u64::from),
        ip["metrics"][0]["mtu"].as_u64(),
        "{args}: mtu"
    );
    let index = ip["dev"]
        .as_str()
        .map(|dev| json(ns.ip(&format!("-j link show {dev}")))[0]["ifindex"].clone());
    assert_eq!(r.ifindex.map(u64::from), index.and_then(|i| i.as_u64()));
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

fn route_get_matches_ip_route_get() {
    let ns = route_ns();
    for (dst, args) in [
        ("198.18.0.9", "198.18.0.9"),
        ("198.18.0.1", "198.18.0.1"),
        ("198.18.64.7", "198.18.64.7"),
        ("2001:db8::9", "2001:db8::9"),
        ("2001:db8::1", "2001:db8::1"),
    ] {
        assert_route_matches(&ns, RouteQuery::to(ip(dst)), args);
        // route_get is route_lookup of the destination alone.
        let d = ip(dst);
        let via_get = in_netns(&ns, move || netlink::route_get(d)).expect("route_get");
        let via_lookup =
            in_netns(&ns, move || netlink::route_lookup(&RouteQuery::to(d))).expect("lookup");
        assert_eq!(via_get, via_lookup);
    }
    let local = in_netns(&ns, || netlink::route_get(ip("198.18.0.1"))).expect("local");
    assert_eq!(local.route_type, RouteType::Local);
    let mtu = in_netns(&ns, || netlink::route_get(ip("198.18.64.7"))).expect("mtu");
    assert_eq!(mtu.mtu, Some(1400));
}

fn route_lookup_honours_mark_source_and_oif() {
    let ns = route_ns();
    let ifbm = json(ns.ip("-j link show ifbm"))[0]["ifindex"]
        .as_u64()
        .expect("ifindex") as u32;
    let marked = RouteQuery {
        mark: Some(0x2a),
        ..RouteQuery::to(ip("198.18.70.5"))
    };
    assert_route_matches(&ns, marked, "198.18.70.5 mark 0x2a");
    let from = RouteQuery {
        src: Some(ip("198.18.3.1")),
        ..RouteQuery::to(ip("198.18.0.9"))
    };
    assert_route_matches(&ns, from, "198.18.0.9 from 198.18.3.1");
    let oif = RouteQuery {
        oif: Some(ifbm),
        ..RouteQuery::to(ip("198.18.3.9"))
    };
    assert_route_matches(&ns, oif, "198.18.3.9 oif ifbm");
    // A socket owned by uid 4242 is routed by its `uidrange` rule; asked without RTA_UID the
    // kernel uses the asker's uid (root here), and finds no route.
    let owned = RouteQuery {
        uid: Some(4242),
        ..RouteQuery::to(ip("198.18.71.5"))
    };
    assert_route_matches(&ns, owned, "198.18.71.5 uid 4242");
    let e = in_netns(&ns, || netlink::route_get(ip("198.18.71.5"))).expect_err("as root");
    assert_eq!(e.errno(), Some(nix::errno::Errno::ENETUNREACH));
    // Without the mark, 198.18.70.5 has no route here.
    let e = in_netns(&ns, || netlink::route_get(ip("198.18.70.5"))).expect_err("unmarked");
    assert_eq!(e.errno(), Some(nix::errno::Errno::ENETUNREACH));
}

fn no_route_keeps_enetunreach() {
    let ns = route_ns();
    let out = ns.exec(&["ip", "route", "get", "198.19.9.9"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Network is unreachable"),
        "{out:?}"
    );
    let e = in_netns(&ns, || netlink::route_get(ip("198.19.9.9"))).expect_err("no route");
    assert_eq!(e.errno(), Some(nix::errno::Errno::ENETUNREACH));
    assert_eq!(
        e.to_string(),
        "route get: no route to 198.19.9.9: Network is unreachable"
    );
    let os = e.to_os_error().expect("errno");
    assert_eq!((os.op.as_str(), os.errno), ("route get", libc::ENETUNREACH));
}

fn default_routes_match_ip_route_show() {
    let ns = Netns::new("nldflt");
    ns.ifb("ifb1", "198.18.1.1/24");
    ns.ifb("ifb2", "198.18.2.1/24");
    ns.ip("addr add 2001:db8:1::1/64 dev ifb1 nodad");
    ns.ip(
        "route add default metric 100 nexthop via 198.18.1.254 dev ifb1 \
         nexthop via 198.18.2.254 dev ifb2 weight 2",
    );
    ns.ip("route add default via 198.18.2.253 dev ifb2 metric 50");
    ns.ip("route add default via 2001:db8:1::fe dev ifb1 metric 300");
    // Not in the main table, not listed.
    ns.ip("route add default via 198.18.1.253 dev ifb1 table 100");

    let index = |dev: &str| {
        json(ns.ip(&format!("-j link show {dev}")))[0]["ifindex"]
            .as_u64()
            .expect("ifindex") as u32
    };
    for v6 in [false, true] {
        let ours = in_netns(&ns, move || netlink::default_routes(v6)).expect("default routes");
        let family = if v6 { "-6" } else { "-4" };
        let shown = json(ns.ip(&format!("{family} -j route show default")));
        let mut expected = Vec::new();
        for r in shown.as_array().expect("array") {
            let metric = r["metric"].as_u64().unwrap_or(0) as u32;
            let hops = match r["nexthops"].as_array() {
                Some(hops) => hops.clone(),
                None => vec![r.clone()],
            };
            for hop in hops {
                expected.push(netlink::DefaultRoute {
                    ifindex: index(hop["dev"].as_str().expect("dev")),
                    gateway: hop["gateway"].as_str().map(ip),
                    metric,
                });
            }
        }
        expected.sort_by_key(|r| r.metric);
        assert_eq!(ours, expected, "v6={v6}");
    }
    let v4 = in_netns(&ns, || netlink::default_routes(false)).expect("v4");
    assert_eq!(v4.len(), 3, "{v4:?}");
    assert_eq!(v4[0].metric, 50);
    assert_eq!(v4[1].gateway, Some(ip("198.18.1.254")));
    assert_eq!(v4[2].gateway, Some(ip("198.18.2.254")));
}

// ---------------------------------------------------------------------------------------------
// Path facts: addresses, neighbours, bridge FDB, tunnels, nsids, namespace handles

/// Runs `f` in `ns` through the library's own `in_netns` (scoped thread, `setns`).
fn in_ns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(format!("/run/netns/{}", ns.name)).expect("open netns file");
    netns::in_netns(&file, f).expect("setns")
}

fn ifindex_of(ns: &Netns, dev: &str) -> u32 {
    json(ns.ip(&format!("-j link show {dev}")))[0]["ifindex"]
        .as_u64()
        .unwrap_or_else(|| panic!("ifindex of {dev}")) as u32
}

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

/// `ip -j -d link show DEV`'s linkinfo as a `Tunnel` (fields `ip` prints).
fn assert_tunnel_matches(ns: &Netns, dev: &str) -> netlink::Tunnel {
    let index = ifindex_of(ns, dev);
    let t = in_ns(ns, move || netlink::tunnel(index))
        .expect("tunnel")
        .unwrap_or_else(|| panic!("{dev} is a tunnel"));
    let l = json(ns.ip(&format!("-j -d link show {dev}")))[0].clone();
    let info = &l["linkinfo"]["info_data"];
    assert_eq!(t.kind, l["linkinfo"]["info_kind"], "{dev} kind");
    // IPv6 endpoints are printed as `remote6`, `local6`, `group6`.
    let addr = |k: &str| {
        info[k]
            .as_str()
            .or_else(|| info[format!("{k}6")].as_str())
            .filter(|s| *s != "any")
            .map(ip)
    };
    // ip prints a vxlan group as "group", a unicast one as "remote".
    assert_eq!(t.remote, addr("remote"), "{dev} remote {info}");
    assert_eq!(t.group, addr("group"), "{dev} group");
    assert_eq!(t.local, addr("local"), "{dev} local");
    assert_eq!(t.port.map(u64::from), info["port"].as_u64(), "{dev} port");
    // A link in another namespace is printed as `ifN`.
    let link = info["link"].as_str().map(|d| match t.link_netnsid {
        Some(_) => d
            .strip_prefix("if")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{dev}: link {d}")),
        None => ifindex_of(ns, d),
    });
    assert_eq!(t.link, link, "{dev} link");
    assert_eq!(
        t.link_netnsid.map(i64::from),
        l["link_netnsid"].as_i64(),
        "{dev} link_netnsid"
    );
    t
}

fn tunnels_match_ip_link() {
    let ns = Netns::new("nptun");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("addr add 2001:db8::1/64 dev ifbz nodad");
    ns.ip(
        "link add vxlan0 type vxlan id 42 remote 198.18.0.2 local 198.18.0.1 dev ifbz \
         dstport 4789",
    );
    ns.ip("link add vxm type vxlan id 43 group 239.1.1.1 dev ifbz dstport 4789");
    ns.ip("link add vx6 type vxlan id 44 remote 2001:db8::2 local 2001:db8::1 dstport 4790");
    let t = assert_tunnel_matches(&ns, "vxlan0");
    assert_eq!(
        (t.remote, t.local, t.port, t.link),
        (
            Some(ip("198.18.0.2")),
            Some(ip("198.18.0.1")),
            Some(4789),
            Some(ifindex_of(&ns, "ifbz"))
        )
    );
    let t = assert_tunnel_matches(&ns, "vxm");
    assert_eq!((t.group, t.remote), (Some(ip("239.1.1.1")), None));
    assert_tunnel_matches(&ns, "vx6");
    // Kinds whose module this kernel may lack.
    for (dev, args) in [
        (
            "gt0",
            "type gretap remote 198.18.0.2 local 198.18.0.1 dev ifbz",
        ),
        (
            "gre0x",
            "type gre remote 198.18.0.2 local 198.18.0.1 dev ifbz",
        ),
        (
            "ipip0x",
            "type ipip remote 198.18.0.2 local 198.18.0.1 dev ifbz",
        ),
        ("gn0", "type geneve id 5 remote 198.18.0.2"),
    ] {
        let mut cmd = vec!["ip", "link", "add", dev];
        cmd.extend(args.split_whitespace());
        let out = ns.exec(&cmd);
        if out.status.success() {
            assert_tunnel_matches(&ns, dev);
        } else {
            eprintln!(
                "note: {dev} ({args}) not tested: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    // Not a tunnel; not a link.
    let ifbz = ifindex_of(&ns, "ifbz");
    assert_eq!(
        in_ns(&ns, move || netlink::tunnel(ifbz)).expect("ifbz"),
        None
    );
    let e = in_ns(&ns, || netlink::tunnel(9999)).expect_err("no such link");
    assert_eq!(e.errno(), Some(nix::errno::Errno::ENODEV));
}

/// A vxlan created in `under` and moved to `over`: its underlay is in another namespace, named
/// by `IFLA_LINK_NETNSID`, which `nsid_of` maps back to `under`'s file.
fn moved_vxlan_names_its_underlay_namespace() {
    let under = Netns::new("npunder");
    let over = Netns::new("npover");
    under.ifb("ifbz", "198.18.0.1/24");
    under.ip(
        "link add vxlan1 type vxlan id 7 remote 198.18.0.2 local 198.18.0.1 dev ifbz \
         dstport 4789",
    );
    under.ip(&format!("link set vxlan1 netns {}", over.name));
    let t = assert_tunnel_matches(&over, "vxlan1");
    let id = t.link_netnsid.expect("the underlay is elsewhere");
    let under_file = std::fs::File::open(format!("/run/netns/{}", under.name)).expect("under file");
    let nsid = in_ns(&over, || netlink::nsid_of(under_file.as_fd())).expect("nsid_of");
    assert_eq!(nsid, Some(id));
    // The link is an ifindex of the underlay namespace.
    assert_eq!(t.link, Some(ifindex_of(&under, "ifbz")));
}

/// `ip netns list-id` of `ns`: nsid → namespace name.
fn list_id(ns: &Netns) -> BTreeMap<i32, String> {
    json(ns.ip("-j netns list-id"))
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| Some((e["nsid"].as_i64()? as i32, e["name"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn nsids_match_ip_netns_list_id() {
    let a = Netns::new("npnsa");
    let b = Netns::new("npnsb");
    let c = Netns::new("npnsc");
    a.ip(&format!(
        "link add va type veth peer name vb netns {}",
        b.name
    ));
    let file =
        |ns: &Netns| std::fs::File::open(format!("/run/netns/{}", ns.name)).expect("netns file");
    let (fb, fc) = (file(&b), file(&c));
    // c is unknown to a until `ip netns set c auto` (run in a).
    assert_eq!(
        in_ns(&a, || netlink::nsid_of(fc.as_fd())).expect("nsid_of c"),
        None
    );
    a.exec_ok(&["ip", "netns", "set", &c.name, "auto"]);
    let ids = list_id(&a);
    for (ns, f) in [(&b, &fb), (&c, &fc)] {
        let nsid = in_ns(&a, || netlink::nsid_of(f.as_fd()))
            .expect("nsid_of")
            .unwrap_or_else(|| panic!("{} has an nsid in a", ns.name));
        assert_eq!(ids.get(&nsid), Some(&ns.name), "{ids:?}");
    }
    // va's peer is in b: IFLA_LINK_NETNSID maps back to b's file.
    let links = in_ns(&a, netlink::dump_links).expect("links");
    let va = links.iter().find(|l| l.name == "va").expect("va");
    let peer_ns = va.link_netnsid.expect("peer elsewhere");
    assert_eq!(
        in_ns(&a, || netlink::nsid_of(fb.as_fd())).expect("nsid_of b"),
        Some(peer_ns)
    );
    // From b, a gets an id once the kernel reports vb's peer (it allocates one on demand).
    let links = in_ns(&b, netlink::dump_links).expect("links of b");
    let vb = links.iter().find(|l| l.name == "vb").expect("vb");
    let fa = file(&a);
    let in_b = in_ns(&b, || netlink::nsid_of(fa.as_fd()))
        .expect("nsid_of a")
        .expect("assigned");
    assert_eq!(Some(in_b), vb.link_netnsid);
    assert_eq!(list_id(&b).get(&in_b), Some(&a.name));
}

fn named_netns_and_pids_are_handles() {
    let ns = Netns::new("nphandle");
    let inode = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .expect("stat")
        .ino();
    let named = netns::named_netns();
    let mine = named
        .iter()
        .find(|n| n.name.as_deref() == Some(ns.name.as_str()))
        .expect("listed");
    assert_eq!(mine.inode, inode);
    assert_eq!(
        mine.path,
        std::path::PathBuf::from(format!("/run/netns/{}", ns.name))
    );
    // ip netns list names the same set (those that are nsfs mounts).
    let listed = String::from_utf8_lossy(&common::run(&["ip", "netns", "list"]).stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|n| n == &ns.name)
        .count();
    assert_eq!(listed, 1);
    let mut sleeper = ns.spawn(&["sleep", "30"]);
    let pid = sleeper.pid();
    sleeper.wait_until(
        "sleep entered the namespace",
        Duration::from_secs(5),
        || std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == inode),
    );
    let h = netns::netns_of_pid(pid).expect("netns of pid");
    assert_eq!(
        (h.inode, h.name.as_deref()),
        (inode, Some(ns.name.as_str()))
    );
    // in_netns really runs there: the link table is the namespace's (only lo).
    let f = h.open().expect("open");
    let links = netns::in_netns(&f, netlink::dump_links)
        .expect("setns")
        .expect("links");
    assert_eq!(
        links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        ["lo"]
    );
}

harness_main!(
    privileged: [
        links_match_ip_link,
        features_match_ethtool_k needs ["ethtool"],
        bridge_with_a_port_without_sg_reads_requested_on needs ["ethtool"],
        missing_device_is_enodev_in_that_namespace,
        route_get_matches_ip_route_get,
        route_lookup_honours_mark_source_and_oif,
        no_route_keeps_enetunreach,
        default_routes_match_ip_route_show,
        addresses_match_ip_addr,
        neighbours_match_ip_neigh,
        bridge_fdb_matches_bridge_fdb_show,
        tunnels_match_ip_link,
        moved_vxlan_names_its_underlay_namespace,
        nsids_match_ip_netns_list_id,
        named_netns_and_pids_are_handles,
    ]
);
