//! Tunnels against `ip -j -d link show`, and a vxlan whose underlay is in another namespace.

use std::os::fd::AsFd;

use crate::common::Netns;
use crate::{ifindex_of, in_ns, ip, json};
use zcdoctor::probe::netlink;

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

crate::cases!(
    privileged: [
        tunnels_match_ip_link,
        moved_vxlan_names_its_underlay_namespace,
    ]
);
