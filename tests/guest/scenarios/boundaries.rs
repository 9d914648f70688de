//! The version boundaries the knowledge base states, on kernels on each side of them.

use super::{blockers, explains, live, summary};
use crate::common::path::{every_send_copied, forwarding_pair, no_send_copied};
use crate::common::{Netns, codes, finding};
use crate::harness::{Kernel, Outcome, Scenario, prove};

/// Before 6.15 unbound taps lived on one host-wide list: a tap in any namespace copies.
fn unbound_tap_in_another_namespace(k: &Kernel) -> Outcome {
    let a = Netns::new("gbnsa");
    a.dummy("d0", Some("198.18.0.1/24"));
    let b = Netns::new("gbnsb");
    let _tap = b.tap_socket(None, false);
    let (_, doc) = live(&a, "d0", "198.18.0.2");
    if k.at_least(6, 15) {
        no_send_copied(&doc);
        assert!(blockers(&doc).is_empty(), "{:?}", codes(&doc));
    } else {
        every_send_copied(&doc);
        let tap = finding(&doc, "tap-forces-copy").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
        assert_eq!(tap["severity"], "blocker", "{tap:#}");
        prove("tap-forces-copy");
    }
    Outcome::Ran(summary(&doc))
}

/// Before 6.17 traffic arriving through a veth was copied even when forwarded out of a NIC.
fn forwarded_from_a_veth(k: &Kernel) -> Outcome {
    let (a, b) = forwarding_pair();
    b.ip("neigh replace 198.18.2.2 lladdr 02:00:00:00:00:02 dev ifbz nud permanent");
    let (_, doc) = live(&a, "va", "198.18.2.2");
    if k.at_least(6, 17) {
        no_send_copied(&doc);
    } else {
        every_send_copied(&doc);
        let f = finding(&doc, "veth-path").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
        assert_eq!(f["severity"], "blocker", "{f:#}");
        prove("veth-path");
    }
    assert!(
        finding(&doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(&doc)
    );
    Outcome::Ran(summary(&doc))
}

/// MSG_ZEROCOPY for TCP (4.14) and UDP (5.0): both complete on every kernel of the tier. A TCP
/// receiver is a local delivery wherever it runs on this host, so every TCP send is copied and
/// reported as such: the completions prove the feature, and the cause is named.
fn tcp_and_udp_to_a_local_receiver(_: &Kernel) -> Outcome {
    let a = Netns::new("gbtcpa");
    let b = Netns::new("gbtcpb");
    a.veth_to(&b);
    let mut sink = b.spawn(&[
        crate::common::ZCDOCTOR,
        "sink",
        "--listen",
        "198.18.1.2:5201",
    ]);
    let ns = b.name.clone();
    sink.wait_until(
        "the sink listens",
        std::time::Duration::from_secs(20),
        || {
            std::process::Command::new("ip")
                .args(["netns", "exec", &ns, "ss", "-Hltn", "sport", "= :5201"])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        },
    );
    let mut line = Vec::new();
    for (protocol, target) in [("udp", "198.18.1.2"), ("tcp", "198.18.1.2:5201")] {
        let (_, doc) = a.check_json(&[
            "va",
            "--protocol",
            protocol,
            "--target",
            target,
            "--duration",
            super::PHASE,
        ]);
        every_send_copied(&doc);
        let f = finding(&doc, "local-delivery")
            .unwrap_or_else(|| panic!("{protocol}: {:?}", codes(&doc)));
        assert_eq!(f["severity"], "blocker", "{f:#}");
        prove("local-delivery");
        line.push(format!("{protocol}: {}", summary(&doc)));
    }
    Outcome::Ran(line.join("; "))
}

pub const TCP_AND_UDP_TO_A_LOCAL_RECEIVER: Scenario = Scenario {
    name: "boundary_tcp_and_udp_to_a_local_receiver",
    run: tcp_and_udp_to_a_local_receiver,
};
pub const UNBOUND_TAP_IN_ANOTHER_NAMESPACE: Scenario = Scenario {
    name: "boundary_unbound_tap_in_another_namespace",
    run: unbound_tap_in_another_namespace,
};
pub const FORWARDED_FROM_A_VETH: Scenario = Scenario {
    name: "boundary_forwarded_from_a_veth",
    run: forwarded_from_a_veth,
};

/// io_uring `SEND_ZC` came in 6.0 and its usage report (`IORING_SEND_ZC_REPORT_USAGE`) in 6.2;
/// Debian's 6.1 carries the report as a backport: zcdoctor probes the kernel, not its version.
fn io_uring_send_zc_with_a_tap(k: &Kernel) -> Outcome {
    let ns = Netns::new("gbur");
    ns.dummy("d0", Some("198.18.0.1/24"));
    let _dump = ns.tcpdump(&["-i", "d0"]);
    let (_, doc) = ns.check_json(&[
        "d0",
        "--target",
        "198.18.0.2",
        "--duration",
        super::PHASE,
        "--api",
        "io_uring",
    ]);
    if k.at_least(6, 0) {
        let runs = doc["live_probe"]["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let uring: Vec<&serde_json::Value> =
            runs.iter().filter(|r| r["api"] == "io_uring").collect();
        let sum = |key: &str| uring.iter().filter_map(|r| r[key].as_u64()).sum::<u64>();
        let (copied, completions) = (sum("copied"), sum("completions"));
        assert!(
            completions > 0 && copied == completions,
            "io_uring: {copied} of {completions} copied: {:?}",
            codes(&doc)
        );
        explains(&doc, "tap-forces-copy");
        // Upstream 6.2's copy report, carried by Debian's 6.1: asked of the kernel.
        let report = doc["kernel_features"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["id"] == "io-uring-zc-copied-report"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(report["present"], true, "{report:#}");
        assert_eq!(report["probed"], true, "{report:#}");
        Outcome::Ran(format!(
            "io_uring SEND_ZC with usage reports: copied {copied} of {completions}; findings {:?}",
            codes(&doc)
        ))
    } else {
        let f = finding(&doc, "io-uring-unavailable")
            .unwrap_or_else(|| panic!("{:?} {:#}", codes(&doc), doc["live_probe"]));
        assert!(
            doc["live_probe"]["runs"]
                .as_array()
                .is_none_or(Vec::is_empty)
        );
        prove("io-uring-unavailable");
        Outcome::Ran(format!(
            "no SEND_ZC: {}; findings {:?}",
            f["summary"].as_str().unwrap_or_default(),
            codes(&doc)
        ))
    }
}

pub const IO_URING_SEND_ZC_WITH_A_TAP: Scenario = Scenario {
    name: "boundary_io_uring_send_zc_with_a_tap",
    run: io_uring_send_zc_with_a_tap,
};
