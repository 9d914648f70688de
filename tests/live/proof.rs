//! Privileged end-to-end tests of what a live proof needs: a requested probe that proves
//! nothing exits 3 (never 0), a tiny or cut-short sample is not a proof, sends that never leave
//! the device are not a "yes", concurrent probes see each other, SIGTERM and --max-run-time
//! stop the probe promptly with the report printed. Traffic goes only to 198.18.0.0/15
//! addresses inside namespaces these tests create.

use crate::common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Netns, ZCDOCTOR, codes, finding};
use serde_json::Value;

/// `zcdoctor check --json ARGS` (default --fail-on) in `ns`: exit status and report.
fn check(ns: &Netns, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["check", "--json"];
    all.extend_from_slice(args);
    let out = ns.zcdoctor(&all);
    let code = out.status.code().unwrap_or(-1);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{all:?}: no JSON ({e}), exit {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, doc)
}

fn ifb_ns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ifb("ifbz", "198.18.0.1/24");
    ns
}

fn assert_unproven(what: &str, code: i32, doc: &Value) {
    assert_eq!(
        code,
        3,
        "{what}: exit {code}, {:?}: {}",
        codes(doc),
        doc["verdict"]
    );
    assert_eq!(
        doc["verdict"]["basis"], "unproven",
        "{what}: {}",
        doc["verdict"]
    );
    assert_ne!(doc["verdict"]["zerocopy"], "yes", "{what}");
    let summary = doc["verdict"]["summary"].as_str().unwrap_or_default();
    assert!(
        !summary.contains("prove it with --target"),
        "{what}: {summary}"
    );
}

fn requested_proofs_not_obtained_exit_3() {
    let ns = ifb_ns("lpun");
    // Multicast, broadcast, no route, nothing sent (byte cap 0).
    for (what, args) in [
        ("multicast", vec!["ifbz", "--target", "224.0.0.9"]),
        ("broadcast", vec!["ifbz", "--target", "198.18.0.255"]),
        ("unreachable", vec!["ifbz", "--target", "198.19.7.7"]),
        (
            "byte cap 0",
            vec!["ifbz", "--target", "198.18.0.2", "--byte-cap", "0"],
        ),
    ] {
        let (code, doc) = check(&ns, &args);
        assert_unproven(what, code, &doc);
        eprintln!("{what}: exit {code}, {}", doc["verdict"]["summary"]);
        if what != "byte cap 0" {
            let f = finding(&doc, "live-probe-not-run")
                .unwrap_or_else(|| panic!("{what}: {:?}", codes(&doc)));
            assert_eq!(f["severity"], "warning", "{what}");
            assert!(!f["evidence"]["cause"].is_null(), "{what}: {f}");
        }
    }
    // TCP with no sink: the ifb drops the SYN, the connection times out.
    let (code, doc) = check(
        &ns,
        &["ifbz", "--target", "198.18.0.2:5201", "--protocol", "tcp"],
    );
    assert_unproven("tcp without a sink", code, &doc);
    assert!(finding(&doc, "live-probe-not-run").is_some());
    // Precedence: a blocker (local delivery to our own address) gives 1, not 3.
    let (code, doc) = check(&ns, &["ifbz", "--target", "198.18.0.1"]);
    assert_eq!(code, 1, "{:?}", codes(&doc));
    assert_eq!(doc["verdict"]["basis"], "unproven");
    // ... and with --fail-on never, 3.
    let (code, _) = check(
        &ns,
        &["ifbz", "--target", "198.18.0.1", "--fail-on", "never"],
    );
    assert_eq!(code, 3);
}

fn a_clean_proof_exits_0() {
    let ns = ifb_ns("lpok");
    let (code, doc) = check(
        &ns,
        &["ifbz", "--target", "198.18.0.2", "--duration", "300ms"],
    );
    assert_eq!(doc["verdict"]["basis"], "live", "{}", doc["verdict"]);
    assert_eq!(doc["verdict"]["zerocopy"], "yes");
    assert_eq!(code, 0, "{:?}", codes(&doc));
    let run = &doc["live_probe"]["runs"][0];
    let c = &run["device_counters"];
    assert_eq!(c["kind"], "ifb");
    let handled =
        c["after"]["rx_packets"].as_u64().unwrap() - c["before"]["rx_packets"].as_u64().unwrap();
    assert!(handled >= run["sends"].as_u64().unwrap(), "{run}");
    assert!(finding(&doc, "live-nothing-transmitted").is_none());
}

fn tiny_samples_are_not_a_proof() {
    let ns = ifb_ns("lpsm");
    for (what, args) in [
        ("byte cap 1472", vec!["--byte-cap", "1472"]),
        ("50us phases", vec!["--duration", "50us"]),
    ] {
        let mut all = vec!["ifbz", "--target", "198.18.0.2"];
        all.extend_from_slice(&args);
        let (code, doc) = check(&ns, &all);
        assert_unproven(what, code, &doc);
        let f = finding(&doc, "live-sample-too-small")
            .unwrap_or_else(|| panic!("{what}: {:?}", codes(&doc)));
        assert_eq!(f["severity"], "warning");
        for r in doc["live_probe"]["runs"].as_array().unwrap() {
            assert!(r.get("gain").is_none());
        }
        assert!(finding(&doc, "zerocopy-slower").is_none(), "{what}");
        eprintln!("{what}: exit {code}: {}", f["summary"]);
    }
}

fn unresolved_neighbour_is_not_a_yes() {
    let a = Netns::new("lpna");
    let b = Netns::new("lpnb");
    // The peer is up but has no address: 198.18.0.2 never answers ARP.
    a.ip(&format!(
        "link add va type veth peer name vb netns {}",
        b.name
    ));
    a.ip("addr add 198.18.0.1/24 dev va");
    a.ip("link set va up");
    b.ip("link set vb up");
    let (code, doc) = check(&a, &["va", "--target", "198.18.0.2", "--duration", "200ms"]);
    assert_unproven("unresolved neighbour", code, &doc);
    let f =
        finding(&doc, "live-nothing-transmitted").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains("198.18.0.2") && summary.contains("va"),
        "{summary}"
    );
    assert_eq!(f["remediation"][0], "ip neigh show 198.18.0.2 dev va");
    let mut total_sends = 0;
    for r in doc["live_probe"]["runs"].as_array().unwrap() {
        let c = &r["device_counters"];
        let tx = c["after"]["tx_packets"].as_u64().unwrap()
            - c["before"]["tx_packets"].as_u64().unwrap();
        let sends = r["sends"].as_u64().unwrap();
        eprintln!(
            "{}: {sends} sends, {} completions, {} copied, {tx} packets transmitted",
            r["pattern"], r["completions"], r["copied"]
        );
        assert_eq!(r["copied"], 0, "the kernel flags nothing COPIED: {r}");
        assert!(tx * 2 < sends.max(1), "{r}");
        total_sends += sends;
    }
    assert!(total_sends > 0);
    let neigh = a.exec_ok(&["ip", "neigh", "show", "198.18.0.2", "dev", "va"]);
    eprintln!(
        "neighbour: {}",
        String::from_utf8_lossy(&neigh.stdout).trim()
    );
}

/// `zcdoctor check --json ARGS` started in `ns` with its output piped; its pid is zcdoctor's
/// own (`ip netns exec` execs).
fn spawn_check(ns: &Netns, args: &[&str]) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, ZCDOCTOR, "check", "--json"])
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zcdoctor")
}

/// Waits for `child` (at most `limit`), returning the time it took, its exit and its JSON.
fn finish(
    mut child: std::process::Child,
    since: Instant,
    limit: Duration,
) -> (Duration, i32, Value) {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let took = since.elapsed();
            let mut out = Vec::new();
            child
                .stdout
                .take()
                .expect("stdout")
                .read_to_end(&mut out)
                .expect("read");
            let doc = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out)));
            return (took, status.code().unwrap_or(-1), doc);
        }
        if since.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zcdoctor still running after {limit:?}");
        }
        // Pacing of the poll for the exit, bounded by `limit` above.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long a probe may take to begin (its process started, the lock file written).
const WAIT: Duration = Duration::from_secs(10);

/// True when `pid` is in the host-wide lock file of live probes (it holds the lock, or told the
/// holder it runs beside it): its probe has begun, with its signal handlers set.
fn probe_registered(pid: u32) -> bool {
    std::fs::read_to_string("/run/zcdoctor.live.lock")
        .is_ok_and(|t| t.lines().any(|l| l.trim() == pid.to_string()))
}

fn concurrent_probes_see_each_other() {
    // The lock is host-wide and the other tests of this file probe in parallel: a round in
    // which a third probe held the lock first proves nothing either way, so it is run again.
    for round in 1..=4 {
        if concurrent_round(round == 4) {
            return;
        }
        eprintln!("round {round}: another test's probe held the lock; again");
    }
}

/// One round of two overlapping probes; `false` when a third probe interfered (and `last` is
/// not set), a failed assertion otherwise.
fn concurrent_round(last: bool) -> bool {
    let ns = ifb_ns("lpcc");
    let first = spawn_check(
        &ns,
        &["ifbz", "--target", "198.18.0.2", "--duration", "600ms"],
    );
    let first_pid = first.id();
    common::wait_for("the first probe takes the lock", WAIT, || {
        probe_registered(first_pid)
    });
    let second = spawn_check(
        &ns,
        &["ifbz", "--target", "198.18.0.2", "--duration", "200ms"],
    );
    let second_pid = second.id();
    let start = Instant::now();
    let (_, _, doc2) = finish(second, start, Duration::from_secs(20));
    let (_, _, doc1) = finish(first, start, Duration::from_secs(20));
    let others = |doc: &Value| -> Vec<u64> {
        doc["live_probe"]["contention"]["other_probes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    eprintln!(
        "first {first_pid}: {}\nsecond {second_pid}: {}",
        doc1["live_probe"]["contention"], doc2["live_probe"]["contention"]
    );
    let ours = [u64::from(first_pid), u64::from(second_pid)];
    let interfered = others(&doc1)
        .iter()
        .chain(others(&doc2).iter())
        .any(|p| !ours.contains(p));
    if interfered && !last {
        return false;
    }
    assert!(
        others(&doc2).contains(&u64::from(first_pid)),
        "{:?}",
        others(&doc2)
    );
    assert!(
        others(&doc1).contains(&u64::from(second_pid)),
        "{:?}",
        others(&doc1)
    );
    for doc in [&doc1, &doc2] {
        let f =
            finding(doc, "live-timing-unreliable").unwrap_or_else(|| panic!("{:?}", codes(doc)));
        assert!(
            f["summary"]
                .as_str()
                .unwrap()
                .contains("another zcdoctor live probe")
        );
        assert!(finding(doc, "zerocopy-slower").is_none());
    }
    true
}

fn sigterm_stops_the_probe_within_a_second() {
    let ns = ifb_ns("lpst");
    let child = spawn_check(
        &ns,
        &["ifbz", "--target", "198.18.0.2", "--duration", "30s"],
    );
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    common::wait_for("the probe takes the lock", WAIT, || {
        probe_registered(child.id())
    });
    let sent = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM our child");
    let (took, code, doc) = finish(child, sent, Duration::from_secs(5));
    eprintln!("stopped {took:?} after SIGTERM, exit {code}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(doc["live_probe"]["interrupted"], true);
    assert_unproven("SIGTERM", code, &doc);
    let f = finding(&doc, "live-sample-too-small").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert!(f["summary"].as_str().unwrap().contains("interrupted"));
}

fn max_run_time_bounds_the_whole_run() {
    let ns = ifb_ns("lpmx");
    let start = Instant::now();
    let child = spawn_check(
        &ns,
        &[
            "ifbz",
            "--target",
            "198.18.0.2",
            "--duration",
            "30s",
            "--max-run-time",
            "400ms",
        ],
    );
    let (took, code, doc) = finish(child, start, Duration::from_secs(10));
    eprintln!("--max-run-time 400ms: done in {took:?}, exit {code}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let ends: Vec<&str> = doc["live_probe"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| [&r["copy_phase"], &r["zerocopy_phase"]])
        .filter_map(|p| p["ended_by"].as_str())
        .collect();
    assert!(ends.contains(&"max_run_time"), "{ends:?}");
    assert_unproven("max run time", code, &doc);
    let help = Command::new(ZCDOCTOR)
        .args(["check", "--help"])
        .output()
        .expect("help");
    assert!(String::from_utf8_lossy(&help.stdout).contains("--max-run-time"));
}

crate::cases!(
    privileged: [
        requested_proofs_not_obtained_exit_3,
        a_clean_proof_exits_0,
        tiny_samples_are_not_a_proof,
        unresolved_neighbour_is_not_a_yes,
        concurrent_probes_see_each_other,
        sigterm_stops_the_probe_within_a_second,
        max_run_time_bounds_the_whole_run,
    ]
);
