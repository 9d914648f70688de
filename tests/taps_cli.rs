//! Privileged end-to-end tests of tap diagnosis: real culprits (tcpdump, dhclient, lldpd) and
//! sockets held by this test process, in throwaway namespaces; `zcdoctor check` must name every
//! tap that forces copies on the path, with its pid, and say nothing alarming about the rest.

mod common;

use std::time::Duration;

use common::{Netns, codes, finding, pid_holds_packet_socket, pids};

const WAIT: Duration = Duration::from_secs(10);

fn tcpdump_on_the_lower_device_of_a_macvlan_forces_copies() {
    let ns = Netns::new("ctd");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("link add mv0 link ifbz type macvlan mode bridge");
    ns.ip("link set mv0 up");
    let mut tcpdump = ns.spawn(&["tcpdump", "-i", "ifbz", "-n", "-Q", "in", "-w", "/dev/null"]);
    let pid = tcpdump.pid();
    tcpdump.wait_until("tcpdump opens its socket", WAIT, || {
        pid_holds_packet_socket(pid)
    });

    let (code, doc) = ns.check_json(&["mv0"]);
    assert_eq!(code, 0, "--fail-on never");
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(pids(f), [u64::from(pid)]);
    assert_eq!(f["evidence"]["device"], "ifbz");
    assert_eq!(f["evidence"]["owners"][0]["comm"], "tcpdump");
    let fix = f["remediation"].to_string();
    assert!(fix.contains(&format!("kill {pid}")), "{fix}");
    assert_eq!(doc["verdict"]["zerocopy"], "no");
    // Default --fail-on blocker exits 1.
    assert_eq!(ns.zcdoctor(&["check", "mv0"]).status.code(), Some(1));

    drop(tcpdump);
    let (_, after) = ns.check_json(&["mv0"]);
    assert!(
        finding(&after, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&after)
    );
    assert_eq!(after["verdict"]["zerocopy"], "yes");
}

fn own_sockets_bound_unbound_and_ignoring_outgoing() {
    let me = u64::from(std::process::id());
    let ns = Netns::new("cown");
    ns.ifb("ifbz", "198.18.0.1/24");
    ns.ip("link add ifbq type ifb");
    ns.ip("link set ifbq up");

    // Harmless: bound to an unrelated device, or ignoring outgoing packets.
    let unrelated = ns.tap_socket(Some("ifbq"), false);
    let ignoring = ns.tap_socket(Some("ifbz"), true);
    let (_, doc) = ns.check_json(&["ifbz"]);
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );
    let info = finding(&doc, "tap-ignores-outgoing").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(info["severity"], "info");
    assert_eq!(info["evidence"]["inodes"][0], ignoring.inode());
    assert_eq!(doc["verdict"]["zerocopy"], "yes");
    // The unrelated tap is only in the evidence, not a finding.
    let listed = doc["taps"]["sockets"].as_array().unwrap();
    assert!(listed.iter().any(|s| s["inode"] == unrelated.inode()));

    // Bound to the device without the option: a blocker naming this process.
    let bound = ns.tap_socket(Some("ifbz"), false);
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(f), [me]);
    assert_eq!(f["evidence"]["inodes"][0], bound.inode());
    drop(bound);

    // Unbound in the same namespace: sees every device, so it is on the path too.
    let unbound = ns.tap_socket(None, false);
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["inodes"][0], unbound.inode());
    assert!(f["summary"].as_str().unwrap().contains("unbound"));
}

fn unbound_tap_in_another_namespace_is_not_on_the_path() {
    let ns = Netns::new("cns1");
    ns.ifb("ifbz", "198.18.0.1/24");
    let other = Netns::new("cns2");
    other.ifb("ifbz", "198.18.0.1/24");
    let elsewhere = other.tap_socket(None, false);
    let (_, doc) = ns.check_json(&["ifbz"]);
    // Linux 6.15+ keeps unbound taps per namespace: nothing to report.
    let kernel = doc["host"]["kernel"].as_str().unwrap().to_string();
    let v: Vec<u32> = kernel
        .split(['.', '-'])
        .take(2)
        .filter_map(|p| p.parse().ok())
        .collect();
    if v >= vec![6, 15] {
        assert!(
            finding(&doc, "tap-forces-copy").is_none(),
            "{:?}",
            codes(&doc)
        );
    } else {
        let f = finding(&doc, "tap-forces-copy").expect("pre-6.15: global tap");
        assert_eq!(f["evidence"]["inodes"][0], elsewhere.inode());
    }
}

fn taps_on_a_bridge_port_and_on_the_bridge() {
    let ns = Netns::new("cbr");
    ns.ip("link add br0 type bridge");
    ns.ip("link add ifb2 type ifb");
    ns.ip("link set ifb2 master br0");
    ns.ip("link set ifb2 up");
    ns.ip("link set br0 up");
    let on_port = ns.tap_socket(Some("ifb2"), false);
    let (_, doc) = ns.check_json(&["br0"]);
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "ifb2");
    assert!(f["summary"].as_str().unwrap().contains("below br0"));
    drop(on_port);

    let _on_bridge = ns.tap_socket(Some("br0"), false);
    let (_, doc) = ns.check_json(&["br0"]);
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["device"], "br0");
}

fn dhclient_is_named_with_a_dhcp_specific_fix() {
    let ns = Netns::new("cdh");
    ns.ifb("ifbz", "198.18.0.1/24");
    let dhclient = ns.start_dhclient("ifbz");
    let pid = dhclient.culprit.pid();
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(f), [u64::from(pid)]);
    assert_eq!(f["evidence"]["owners"][0]["comm"], "dhclient");
    let fix = f["remediation"].to_string();
    assert!(
        fix.contains("systemd-networkd") && fix.contains(&pid.to_string()),
        "{fix}"
    );
    assert!(f["notes"].to_string().contains("dhclient") || f["notes"].to_string().contains("DHCP"));
}

/// Debian 12's lldpd 1.0.16 sets PACKET_IGNORE_OUTGOING: its tap must be reported harmless,
/// read from the socket its unprivileged child holds.
fn lldpd_tap_is_read_from_the_socket_and_harmless() {
    let ns = Netns::new("cll");
    ns.ifb("ifbz", "198.18.0.1/24");
    let lldpd = ns.start_lldpd("ifbz");
    let (_, doc) = ns.check_json(&["ifbz"]);
    let f = finding(&doc, "tap-ignores-outgoing").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["owners"][0]["comm"], "lldpd");
    assert_eq!(f["evidence"]["read_from_socket"]["state"], "set");
    assert!(
        finding(&doc, "tap-forces-copy").is_none(),
        "{:?}",
        codes(&doc)
    );
    assert_eq!(doc["verdict"]["zerocopy"], "yes");
    drop(lldpd);
}

harness_main!(
    privileged: [tcpdump_on_the_lower_device_of_a_macvlan_forces_copies, own_sockets_bound_unbound_and_ignoring_outgoing, unbound_tap_in_another_namespace_is_not_on_the_path, taps_on_a_bridge_port_and_on_the_bridge, dhclient_is_named_with_a_dhcp_specific_fix, lldpd_tap_is_read_from_the_socket_and_harmless]
);
