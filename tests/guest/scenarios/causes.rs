//! Causes of issue #18 that this machine's kernel cannot show (no `tls` module here): each
//! built for real in the guest, the kernel's answer read, and zcdoctor's finding judged against
//! it, with the same feature present but harmless beside it.

use std::process::Command;

use serde_json::Value;

use super::watch::sink;
use crate::common::{Netns, finding, pids, python};
use crate::harness::{Kernel, Outcome, Scenario, prove};

const ZC_COUNT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/zc_count.py");
const KTLS_SENDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/ktls_sender.py");

/// A kTLS sender (TLS 1.2, AES-GCM-128 TX) in `a`, connected to the sink: what its two sends
/// got, and `check --pid` of it while it holds the socket.
fn ktls_sender(a: &Netns, zerocopy: bool) -> (Value, Value) {
    let mut cmd = vec![python(), KTLS_SENDER];
    if zerocopy {
        cmd.push("--zerocopy");
    }
    a.check_sender(&cmd, &["va"])
}

/// kTLS with SO_ZEROCOPY: the kernel refuses every MSG_ZEROCOPY send (EOPNOTSUPP) while a plain
/// send works, and `check --pid` names the socket; the same kTLS socket without SO_ZEROCOPY is
/// not a blocker.
fn ktls_refuses_zerocopy(k: &Kernel) -> Outcome {
    let tls = Command::new("modprobe").arg("tls").output();
    if !tls.is_ok_and(|o| o.status.success()) {
        return Outcome::Cannot(format!(
            "{} has no kTLS (Debian builds 5.10 without CONFIG_TLS)",
            k.release
        ));
    }
    let a = Netns::new("gcka");
    let b = Netns::new("gckb");
    a.veth_to(&b);
    let _sink = sink(&b);
    let (sent, doc) = ktls_sender(&a, true);
    assert_eq!(
        sent["zerocopy_send"], "EOPNOTSUPP",
        "the kernel's answer: {sent}"
    );
    assert_eq!(sent["plain_send"], "ok", "{sent}");
    let f =
        finding(&doc, "ktls-refuses-zerocopy").unwrap_or_else(|| panic!("{:#}", doc["findings"]));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(pids(f), vec![sent["pid"].as_u64().unwrap_or(0)], "{f:#}");
    let fd = sent["fd"].as_u64().unwrap_or(0);
    assert!(
        f["summary"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("fd {fd} "))),
        "{f:#}"
    );
    prove("ktls-refuses-zerocopy");
    let (plain, doc) = ktls_sender(&a, false);
    assert!(
        finding(&doc, "ktls-refuses-zerocopy").is_none(),
        "{:#}",
        doc["findings"]
    );
    Outcome::Ran(format!(
        "SO_ZEROCOPY on a kTLS socket: MSG_ZEROCOPY send {}, plain send {}, finding raised; without SO_ZEROCOPY: MSG_ZEROCOPY send {}, no finding",
        sent["zerocopy_send"], sent["plain_send"], plain["zerocopy_send"]
    ))
}

pub const KTLS_REFUSES_ZEROCOPY: Scenario = Scenario {
    name: "ktls_refuses_zerocopy",
    run: ktls_refuses_zerocopy,
};

/// A UDP sender with SO_ZEROCOPY and transmit timestamps (TX_SOFTWARE, no OPT_TSONLY) through
/// a clean black-hole NIC: its own error queue says every send was copied, and `check --pid`
/// raises `tx-timestamp-copies` naming it. Twin: the same with OPT_TSONLY: nothing copied, no
/// finding.
fn tx_timestamp_copies(_: &Kernel) -> Outcome {
    let a = Netns::new("gcts");
    a.dummy("d0", Some("198.18.0.1/24"));
    a.ip("neigh add 198.18.0.2 lladdr 02:00:00:00:00:02 dev d0");
    let sender = |extra: &[&str]| {
        let mut cmd = vec![
            python(),
            ZC_COUNT,
            "--hold",
            "--count",
            "2000",
            "--timestamping",
        ];
        cmd.extend_from_slice(extra);
        a.check_sender(&cmd, &["d0"])
    };
    let (sent, doc) = sender(&[]);
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
    assert!(n(&sent, "sends") > 0, "{sent}");
    assert_eq!(n(&sent, "copied"), n(&sent, "completions"), "{sent}");
    let f = finding(&doc, "tx-timestamp-copies")
        .unwrap_or_else(|| panic!("{:?}", crate::common::codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(pids(f), vec![n(&sent, "pid")], "{f:#}");
    prove("tx-timestamp-copies");
    let (tsonly, twin) = sender(&["--tsonly"]);
    assert!(n(&tsonly, "completions") > 0, "{tsonly}");
    assert_eq!(n(&tsonly, "copied"), 0, "{tsonly}");
    assert!(
        finding(&twin, "tx-timestamp-copies").is_none(),
        "{:?}",
        crate::common::codes(&twin)
    );
    Outcome::Ran(format!(
        "TX_SOFTWARE without OPT_TSONLY: {} of {} copied, finding raised; with OPT_TSONLY: 0 of {}, none",
        n(&sent, "copied"),
        n(&sent, "completions"),
        n(&tsonly, "completions")
    ))
}

pub const TX_TIMESTAMP_COPIES: Scenario = Scenario {
    name: "tx_timestamp_copies",
    run: tx_timestamp_copies,
};
