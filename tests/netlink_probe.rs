//! The netlink probes against the kernel's own tools, in network namespaces built per test:
//! `dump_links()` vs `ip -j -d link show`, `features()` vs `ethtool -k`, `route_get()` and
//! `route_lookup()` vs `ip -j route get`, `default_routes()` vs `ip -j route show default`.
//!
//! The probes run in a thread of this process that entered the test namespace (`setns` is per
//! thread), as the CLI runs inside one. Addresses are in 198.18.0.0/15 and 2001:db8::/32.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::Netns;
use serde_json::Value;
use zcdoctor::evidence::{FeatureState, Features, RouteType};
use zcdoctor::probe::netlink::{self, RouteQuery};

/// Runs `f` on a thread that entered `ns`'s network namespace.
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in netns panicked")
}

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
/// fwmark rule to table 100 whose route leaves through ifb `ifbm`.
fn route_ns() -> Netns {
    let ns = Netns::new("nlroute");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("addr add 2001:db8::1/64 dev ifbz nodad");
    ns.ifb("ifbm", "198.18.3.1/24");
    ns.ip("route add 198.18.64.0/24 via 198.18.0.254 mtu 1400");
    ns.ip("rule add fwmark 0x2a table 100");
    ns.ip("route add 198.18.70.0/24 via 198.18.3.254 dev ifbm table 100");
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

harness_main!(
    privileged: [
        links_match_ip_link,
        features_match_ethtool_k,
        bridge_with_a_port_without_sg_reads_requested_on,
        missing_device_is_enodev_in_that_namespace,
        route_get_matches_ip_route_get,
        route_lookup_honours_mark_source_and_oif,
        no_route_keeps_enetunreach,
        default_routes_match_ip_route_show,
    ]
);
