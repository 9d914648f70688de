//! `dump_links()` against `ip -j -d link show`: kinds, lower devices, peers and lower
//! devices in other namespaces.

use crate::common::{Netns, in_netns};
use crate::json;
use zcdoctor::probe::netlink;

/// `ns`: lo, ifb `ifbz` (up), a macvlan `mv0` on it, a bridge `br0` with port `ifb2`, a veth
/// `va` whose peer is in `other`, and a macvlan `mvx` whose lower device `ifbl` is in `other`.
pub(crate) fn link_zoo() -> (Netns, Netns) {
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

crate::cases!(privileged: [links_match_ip_link]);
