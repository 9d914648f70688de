//! `route_get()` and `route_lookup()` against `ip -j route get`, `default_routes()` against
//! `ip -j route show default`: MTU, policy rules (mark, uid), source and oif.

use crate::common::{Netns, in_netns};
use crate::{ip, json};
use serde_json::Value;
use zcdoctor::evidence::RouteType;
use zcdoctor::probe::netlink::{self, RouteQuery};

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

crate::cases!(
    privileged: [
        route_get_matches_ip_route_get,
        route_lookup_honours_mark_source_and_oif,
        no_route_keeps_enetunreach,
        default_routes_match_ip_route_show,
    ]
);
