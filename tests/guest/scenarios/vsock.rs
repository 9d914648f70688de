//! vsock (issue #18): MSG_ZEROCOPY over AF_VSOCK with the loopback transport, judged against
//! the kernel's own answers: whether it takes SO_ZEROCOPY on a vsock socket (6.7+), and which
//! send sizes its completions flag COPIED. The vsock live probe (`--target vsock:1:PORT`) and
//! `check --pid` of a real vsock peer, each with a harmless twin.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Culprit, Netns, codes, finding, python};
use crate::harness::{Kernel, Outcome, Scenario, prove};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/vsock_peer.py");

/// A listener on vsock port `port` in `ns` that reads and discards; `buffer`: its receive
/// buffer (0: the default, 256 KiB).
fn listener(ns: &Netns, port: u32, buffer: u64) -> Culprit {
    let (port_s, buffer_s) = (port.to_string(), buffer.to_string());
    let ready = std::env::temp_dir().join(format!("zcd-vsock-{port}.ready"));
    let _ = std::fs::remove_file(&ready);
    let ready_s = ready.display().to_string();
    let mut cmd = vec![python(), PEER, "--listen", &port_s, "--ready", &ready_s];
    if buffer > 0 {
        cmd.extend(["--buffer", &buffer_s]);
    }
    let mut l = ns.spawn(&cmd);
    l.wait_until("the vsock listener", Duration::from_secs(30), || {
        ready.exists()
    });
    l
}

/// `zcdoctor check --target vsock:1:PORT` (the loopback CID) and `more` options.
fn probe(ns: &Netns, port: u32, more: &[&str]) -> Value {
    let target = format!("vsock:1:{port}");
    let mut args = vec!["--target", &target, "--duration", "300ms"];
    args.extend_from_slice(more);
    let (code, doc) = ns.check_json(&args);
    println!(
        "check --target {target}: exit {code}; verdict {}; findings {:?}; runs {}",
        doc["verdict"]["summary"],
        codes(&doc),
        doc["vsock_probe"]["runs"]
    );
    doc
}

/// A vsock peer connected to `port` (SO_ZEROCOPY asked for when `zerocopy`): its answer, and
/// `check --pid` of it while it holds the socket.
fn peer_and_check(ns: &Netns, port: u32, zerocopy: bool) -> (Value, Value) {
    let spec = format!("1:{port}");
    let mut cmd = vec![python(), PEER, "--connect", &spec];
    if zerocopy {
        cmd.push("--zerocopy");
    }
    ns.check_sender(&cmd, &[])
}

fn run_of(doc: &Value, message: u64) -> Value {
    doc["vsock_probe"]["runs"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["message"] == message).cloned())
        .unwrap_or(Value::Null)
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// 6.7+: the probe's small sends complete as zerocopy and its 1 MiB sends as COPIED (larger
/// than the 256 KiB credit): `vsock-send-over-credit`, a warning naming the limit. Twin: the
/// fix, proven: 4 MiB buffers on both sides (`--vsock-buffer`; the kernel caps a sender's
/// credit at its own buffer too): the 1 MiB sends are not all copied and no finding says so.
fn supported(a: &Netns) -> String {
    let _l = listener(a, 5201, 0);
    let doc = probe(a, 5201, &[]);
    let (small, big) = (run_of(&doc, 65536), run_of(&doc, 1048576));
    assert!(
        num(&small, "completions") > 0 && num(&small, "copied") == 0,
        "{small}"
    );
    assert!(num(&big, "completions") > 0, "{big}");
    assert_eq!(num(&big, "copied"), num(&big, "completions"), "{big}");
    let f =
        finding(&doc, "vsock-send-over-credit").unwrap_or_else(|| panic!("{:#}", doc["findings"]));
    assert_eq!(f["severity"], "warning", "{f:#}");
    let limit = f["evidence"]["largest_zerocopy_send"].as_u64().unwrap_or(0);
    assert!(limit >= 65536, "{f:#}");
    assert_eq!(doc["verdict"]["zerocopy"], "yes", "{}", doc["verdict"]);
    prove("vsock-send-over-credit");
    let _big = listener(a, 5202, 4 << 20);
    let twin = probe(a, 5202, &["--vsock-buffer", "4194304"]);
    let twin_big = run_of(&twin, 1048576);
    assert!(num(&twin_big, "completions") > 0, "{twin_big}");
    assert!(
        num(&twin_big, "copied") < num(&twin_big, "completions"),
        "{twin_big}"
    );
    let (said, pid_doc) = peer_and_check(a, 5201, true);
    assert_eq!(said["so_zerocopy"], "ok", "{said}");
    let s = &pid_doc["processes"][0]["vsock_sockets"][0];
    assert_eq!(s["zerocopy"]["read"], true, "{s}");
    assert!(
        codes(&pid_doc).iter().all(|c| !c.starts_with("vsock")),
        "{:?}",
        codes(&pid_doc)
    );
    format!(
        "1 MiB sends: {} of {} copied; 64 KiB: {} completions, none copied; 4 MiB buffers on both sides, 1 MiB: {} completions, {} copied; check --pid lists the vsock socket with SO_ZEROCOPY, no finding",
        num(&big, "copied"),
        num(&big, "completions"),
        num(&small, "completions"),
        num(&twin_big, "completions"),
        num(&twin_big, "copied"),
    )
}

/// Before 6.7: SO_ZEROCOPY on vsock is refused (EOPNOTSUPP) and the sends complete nothing:
/// `vsock-zerocopy-unsupported`, a blocker. Twin: `check --pid` of a vsock peer that did not
/// ask for zerocopy: a note, no finding.
fn unsupported(a: &Netns) -> String {
    let _l = listener(a, 5201, 0);
    let doc = probe(a, 5201, &[]);
    // EOPNOTSUPP (95) on 6.1; the kernel-internal ENOTSUPP (524) leaks out of 5.10.
    let refused = doc["vsock_probe"]["so_zerocopy"]["failed"]["errno"].clone();
    assert!(
        refused == libc::EOPNOTSUPP || refused == 524,
        "{}",
        doc["vsock_probe"]
    );
    let sent: u64 = doc["vsock_probe"]["runs"]
        .as_array()
        .map(|r| r.iter().map(|r| num(r, "messages")).sum())
        .unwrap_or(0);
    let done: u64 = doc["vsock_probe"]["runs"]
        .as_array()
        .map(|r| r.iter().map(|r| num(r, "completions")).sum())
        .unwrap_or(0);
    assert!(sent > 0 && done == 0, "sent {sent}, completions {done}");
    let f = finding(&doc, "vsock-zerocopy-unsupported")
        .unwrap_or_else(|| panic!("{:#}", doc["findings"]));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(doc["verdict"]["zerocopy"], "no", "{}", doc["verdict"]);
    prove("vsock-zerocopy-unsupported");
    let (said, pid_doc) = peer_and_check(a, 5201, true);
    // The peer's own setsockopt got the same answer as the probe's.
    assert_eq!(said["so_zerocopy"], refused, "{said}");
    let p = &pid_doc["processes"][0];
    assert_eq!(p["vsock_zerocopy"]["result"], "refused", "{p}");
    assert!(
        codes(&pid_doc).iter().all(|c| !c.starts_with("vsock")),
        "{:?}",
        codes(&pid_doc)
    );
    format!(
        "SO_ZEROCOPY refused (errno {refused}); {sent} MSG_ZEROCOPY sends, 0 completions; check --pid notes the refusal, no finding"
    )
}

fn vsock_zerocopy(k: &Kernel) -> Outcome {
    let loaded = Command::new("modprobe").arg("vsock_loopback").output();
    if !loaded.is_ok_and(|o| o.status.success()) {
        return Outcome::Cannot(format!("{} has no vsock_loopback", k.release));
    }
    let _ = Command::new("modprobe").arg("vsock_diag").output();
    let a = Netns::new("gcvs");
    // vsock is not per namespace: the probe, the peers and the listeners meet on CID 1.
    let supports = k.at_least(6, 7);
    Outcome::Ran(if supports {
        supported(&a)
    } else {
        unsupported(&a)
    })
}

pub const VSOCK_ZEROCOPY: Scenario = Scenario {
    name: "vsock_zerocopy",
    run: vsock_zerocopy,
};
