//! Namespace handles: nsids against `ip netns list-id`, named namespaces and a pid's namespace
//! against `ip netns list` and /proc.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::common::{self, Netns};
use crate::{in_ns, json};
use zcdoctor::probe::netlink;
use zcdoctor::probe::netns;

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

crate::cases!(
    privileged: [
        nsids_match_ip_netns_list_id,
        named_netns_and_pids_are_handles,
    ]
);
