//! Privileged end-to-end tests of `zcdoctor check IFACE --target ADDR --api io_uring|both`:
//! io_uring `SEND_ZC` with `IORING_SEND_ZC_REPORT_USAGE` proves the same verdicts as
//! `sendmsg(MSG_ZEROCOPY)`, and names the same culprits; its failures are attributed from
//! evidence. Traffic goes only to 198.18.0.0/15 addresses inside namespaces these tests create.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{Netns, ZCDOCTOR, codes, finding};
use serde_json::Value;

const SHORT: &str = "200ms";

fn black_hole(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ifb("ifbz", "198.18.0.1/24");
    ns
}

fn uring_check(ns: &Netns, api: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "ifbz",
        "--target",
        "198.18.0.2",
        "--duration",
        SHORT,
        "--api",
        api,
    ];
    args.extend_from_slice(extra);
    ns.check_json(&args).1
}

/// (copied, completions, errors by name summed) of the runs of one API.
fn totals(doc: &Value, api: &str) -> (u64, u64, u64) {
    let runs = doc["live_probe"]["runs"].as_array().expect("runs");
    let of_api: Vec<&Value> = runs
        .iter()
        .filter(|r| r["api"].as_str().unwrap_or("sendmsg") == api)
        .collect();
    assert!(!of_api.is_empty(), "no {api} runs: {doc:#}");
    let sum = |k: &str| of_api.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
    (sum("copied"), sum("completions"), sum("enobufs"))
}

fn explained_by(doc: &Value) -> Vec<String> {
    let f = finding(doc, "live-copied").unwrap_or_else(|| panic!("{:?}", codes(doc)));
    f["evidence"]["explained_by"]
        .as_array()
        .expect("explained_by")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Both APIs saw every completion copied.
fn all_copied_by_both(doc: &Value) {
    for api in ["sendmsg", "io_uring"] {
        let (copied, completions, _) = totals(doc, api);
        assert!(
            completions > 0 && copied == completions,
            "{api}: {copied} of {completions}"
        );
    }
    assert_eq!(doc["verdict"]["zerocopy"], "no");
    assert_eq!(doc["verdict"]["basis"], "live");
    assert!(
        finding(doc, "copies-unexplained").is_none(),
        "{:?}",
        codes(doc)
    );
}

fn clean_ifb_is_proven_by_io_uring() {
    let ns = black_hole("urclean");
    let doc = uring_check(&ns, "io_uring", &[]);
    assert_eq!(doc["verdict"]["basis"], "live", "{doc:#}");
    assert_eq!(doc["verdict"]["zerocopy"], "yes", "{:?}", codes(&doc));
    let live = &doc["live_probe"];
    assert_eq!(live["api"], "io_uring");
    assert_eq!(live["io_uring"]["op_send_zc"], true);
    assert_eq!(live["io_uring"]["report_usage"], true);
    assert!(live["io_uring"]["unavailable"].is_null());
    let runs = live["runs"].as_array().expect("runs");
    let patterns: Vec<&str> = runs.iter().filter_map(|r| r["pattern"].as_str()).collect();
    assert_eq!(patterns, ["datagram", "gso"]);
    for r in runs {
        assert_eq!(r["api"], "io_uring");
        assert!(r["copy_phase"]["bytes"].as_u64().unwrap_or(0) > 0, "{r:#}");
        assert!(
            r["zerocopy_phase"]["bytes"].as_u64().unwrap_or(0) > 0,
            "{r:#}"
        );
        // One notification CQE per send, all read.
        assert_eq!(r["notifications"], r["sends"], "{r:#}");
        assert_eq!(r["missing"], 0);
    }
    let (copied, completions, _) = totals(&doc, "io_uring");
    assert_eq!(copied, 0);
    assert!(completions >= 100);
    assert!(finding(&doc, "live-copied").is_none());
    // The text table shows the api column.
    let out = ns.zcdoctor(&[
        "check",
        "ifbz",
        "--target",
        "198.18.0.2",
        "--duration",
        SHORT,
        "--api",
        "io_uring",
        "--no-taps",
        "--fail-on",
        "never",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("api      pattern"), "{text}");
    assert!(text.contains("io_uring datagram"), "{text}");
}

fn fixed_buffers_are_registered() {
    let ns = black_hole("urfixed");
    let doc = uring_check(&ns, "io_uring", &["--uring-fixed-buffers"]);
    assert_eq!(doc["verdict"]["zerocopy"], "yes", "{:?}", codes(&doc));
    for r in doc["live_probe"]["runs"].as_array().expect("runs") {
        assert_eq!(r["fixed_buffers"], true, "{r:#}");
    }
    assert_eq!(totals(&doc, "io_uring").0, 0);
}

fn a_tap_is_seen_by_both_apis() {
    let ns = black_hole("urtap");
    let _tcpdump = ns.tcpdump(&["-i", "ifbz", "udp", "port", "67"]);
    let doc = uring_check(&ns, "both", &[]);
    all_copied_by_both(&doc);
    assert_eq!(explained_by(&doc), ["tap-forces-copy"]);
    let summary = finding(&doc, "live-copied").expect("live-copied")["summary"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        summary.contains("sendmsg: ") && summary.contains("io_uring: "),
        "{summary}"
    );
}

fn sg_off_is_seen_by_both_apis() {
    let ns = black_hole("ursg");
    ns.ethtool_k("ifbz", "sg", "off");
    let doc = uring_check(&ns, "both", &["--no-taps"]);
    all_copied_by_both(&doc);
    assert!(
        explained_by(&doc).contains(&"no-scatter-gather".to_string()),
        "{:?}",
        explained_by(&doc)
    );
}

/// UDP to an address of the veth peer's namespace: delivered to a socket there (or to no
/// socket: the skb is still delivered locally), so every send is copied, by both APIs.
fn local_delivery_in_the_peer_is_seen_by_both_apis() {
    let a = Netns::new("urla");
    let b = Netns::new("urlb");
    a.veth_to(&b);
    let (_, doc) = a.check_json(&[
        "va",
        "--target",
        "198.18.1.2",
        "--duration",
        SHORT,
        "--api",
        "both",
        "--no-taps",
    ]);
    all_copied_by_both(&doc);
    // The path probe sees the target is an address of the peer's namespace: the culprit.
    assert!(
        explained_by(&doc).contains(&"local-delivery".to_string()),
        "{:?}",
        explained_by(&doc)
    );
}

fn tcp_to_a_sink_through_io_uring() {
    let a = Netns::new("urta");
    let b = Netns::new("urtb");
    a.veth_to(&b);
    let mut sink = b.spawn(&[
        ZCDOCTOR,
        "sink",
        "--listen",
        "198.18.1.2:5201",
        "--duration",
        "30s",
    ]);
    sink.wait_until("the sink listens", Duration::from_secs(10), || {
        !b.exec(&["ss", "-Htln", "sport", "= :5201"])
            .stdout
            .is_empty()
    });
    let (_, doc) = a.check_json(&[
        "va",
        "--target",
        "198.18.1.2:5201",
        "--protocol",
        "tcp",
        "--duration",
        SHORT,
        "--api",
        "both",
        "--no-taps",
    ]);
    assert_eq!(doc["live_probe"]["protocol"], "tcp");
    all_copied_by_both(&doc);
    // The path probe sees the target is an address of the peer's namespace: the culprit.
    assert!(
        explained_by(&doc).contains(&"local-delivery".to_string()),
        "{:?}",
        explained_by(&doc)
    );
}

/// Option memory: MSG_ZEROCOPY notifications are skbs charged to it, io_uring's are not
/// (measured on 6.18: 0 ENOBUFS for io_uring where sendmsg gets one per send).
fn tiny_optmem_stops_sendmsg_but_not_io_uring() {
    let ns = black_hole("uropt");
    ns.exec_ok(&["sysctl", "-q", "-w", "net.core.optmem_max=1000"]);
    let doc = uring_check(&ns, "both", &["--no-taps"]);
    let (_, _, sendmsg_enobufs) = totals(&doc, "sendmsg");
    let (copied, completions, uring_enobufs) = totals(&doc, "io_uring");
    assert!(sendmsg_enobufs > 0, "{doc:#}");
    assert_eq!(uring_enobufs, 0, "{doc:#}");
    assert!(
        completions >= 100 && copied == 0,
        "{copied} of {completions}"
    );
    let f = finding(&doc, "zerocopy-enobufs").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["limit"], "net.core.optmem_max");
    assert!(finding(&doc, "zerocopy-enomem").is_none());
}

/// `zcdoctor check ARGS --json` with RLIMIT_MEMLOCK `limit` and no CAP_IPC_LOCK (dropped from
/// the bounding set, so the exec'd zcdoctor cannot have it).
fn check_with_memlock(ns: &Netns, limit: &str, api: &str) -> Value {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args([
            "prlimit",
            &format!("--memlock={limit}:{limit}"),
            "setpriv",
            "--bounding-set",
            "-ipc_lock",
            ZCDOCTOR,
            "check",
            "--json",
            "--fail-on",
            "never",
            "ifbz",
            "--target",
            "198.18.0.2",
            "--duration",
            SHORT,
            "--no-taps",
            "--api",
            api,
        ])
        .output()
        .expect("run zcdoctor");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

/// A small RLIMIT_MEMLOCK without CAP_IPC_LOCK: io_uring SEND_ZC fails with ENOMEM (sendmsg
/// would say ENOBUFS), attributed to the limit.
fn small_memlock_is_enomem_and_named() {
    let ns = black_hole("urmem");
    let doc = check_with_memlock(&ns, "262144", "io_uring");
    let runs = doc["live_probe"]["runs"].as_array().expect("runs");
    let enomem: u64 = runs
        .iter()
        .filter_map(|r| r["errors"]["ENOMEM"].as_u64())
        .sum();
    assert!(enomem > 0, "{doc:#}");
    let f = finding(&doc, "zerocopy-enomem").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["limit"], "RLIMIT_MEMLOCK");
    assert_eq!(f["severity"], "blocker");
    let m = finding(&doc, "memlock-limit").expect("memlock-limit");
    assert_eq!(m["severity"], "blocker");
    assert_eq!(doc["verdict"]["zerocopy"], "no");
    // Notifications of failed sends say COPIED (nothing went zerocopy): not counted as copies.
    assert!(finding(&doc, "live-copied").is_none(), "{:?}", codes(&doc));
    // Below the ring's own size, the ring cannot even be set up (6.x charges it to the limit).
    let doc = check_with_memlock(&ns, "4096", "io_uring");
    let f = finding(&doc, "io-uring-unavailable").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["evidence"]["cause"]["kind"], "setup-failed");
    assert!(
        finding(&doc, "zerocopy-enomem").is_some(),
        "{:?}",
        codes(&doc)
    );
}

/// Sets `kernel.io_uring_disabled` and puts the old value back on drop. The sysctl is global;
/// 1 only affects unprivileged processes outside `kernel.io_uring_group`, which no other test
/// runs io_uring as.
struct Sysctl {
    old: String,
}

const DISABLED: &str = "/proc/sys/kernel/io_uring_disabled";

impl Sysctl {
    fn set(value: &str) -> Option<Sysctl> {
        let old = std::fs::read_to_string(DISABLED).ok()?;
        std::fs::write(DISABLED, value).ok()?;
        Some(Sysctl {
            old: old.trim().to_string(),
        })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(DISABLED, &self.old);
    }
}

/// `kernel.io_uring_disabled = 1` and an unprivileged prober: io_uring_setup says EPERM, and
/// the finding names the sysctl; nothing crashes, nothing is proven (exit 3).
fn disabled_io_uring_is_named() {
    let ns = black_hole("urdis");
    let Some(_guard) = Sysctl::set("1") else {
        eprintln!("kernel.io_uring_disabled cannot be set here: skipped");
        return;
    };
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            ZCDOCTOR,
            "check",
            "--json",
            "--fail-on",
            "never",
            "ifbz",
            "--target",
            "198.18.0.2",
            "--duration",
            SHORT,
            "--no-taps",
            "--api",
            "io_uring",
        ])
        .output()
        .expect("run zcdoctor");
    drop(_guard);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let live = &doc["live_probe"];
    assert_eq!(live["not_run_cause"]["kind"], "io-uring-unavailable");
    assert_eq!(live["io_uring"]["disabled_sysctl"], 1);
    assert_eq!(live["io_uring"]["setup_error"]["errno"], libc::EPERM);
    let f = finding(&doc, "io-uring-unavailable").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "warning");
    assert_eq!(
        f["evidence"]["cause"],
        serde_json::json!({"kind": "disabled-by-sysctl", "value": 1})
    );
    assert!(
        f["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("kernel.io_uring_disabled = 1"),
        "{f:#}"
    );
    assert!(finding(&doc, "live-probe-not-run").is_none());
}

crate::cases!(
    privileged: [
        clean_ifb_is_proven_by_io_uring,
        fixed_buffers_are_registered,
        a_tap_is_seen_by_both_apis needs ["tcpdump"],
        sg_off_is_seen_by_both_apis needs ["ethtool"],
        local_delivery_in_the_peer_is_seen_by_both_apis,
        tcp_to_a_sink_through_io_uring,
        tiny_optmem_stops_sendmsg_but_not_io_uring,
        small_memlock_is_enomem_and_named,
        disabled_io_uring_is_named,
    ]
);
