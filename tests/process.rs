//! Privileged end-to-end tests of `zcdoctor check --pid`: real sender processes of our own
//! (tests/senders/zc_sender.py) in throwaway namespaces with an ifb black hole, each ended by
//! its pid on drop. The kernel's own numbers (SO_MEMINFO optmem at ENOBUFS, VmPin) are printed
//! with `--nocapture`.

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Culprit, Netns, TmpFiles, ZCDOCTOR, codes, finding, pids, python, tmp_path};
use serde_json::Value;

const SENDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/zc_sender.py");
const WAIT: Duration = Duration::from_secs(20);

/// A namespace with the ifb black hole 198.18.0.1/24 (target 198.18.0.2:9).
fn black_hole(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ifb("ifbz", "198.18.0.1/24");
    ns
}

/// A sender started in `ns` (through `prefix`, e.g. prlimit, which execs it), waited for until
/// its status file holds `ready`.
struct Sender {
    culprit: Culprit,
    status: String,
    _files: TmpFiles,
}

impl Sender {
    fn start(ns: &Netns, prefix: &[&str], args: &[&str], ready: &str) -> Sender {
        Sender::start_with(ns, prefix, python(), args, ready)
    }

    /// As [`Sender::start`], with `interpreter` run for python (a link to it under another
    /// name gives the process that comm).
    fn start_with(
        ns: &Netns,
        prefix: &[&str],
        interpreter: &str,
        args: &[&str],
        ready: &str,
    ) -> Sender {
        let status = tmp_path("status");
        let files = TmpFiles(vec![status.clone()]);
        let mut cmd: Vec<&str> = prefix.to_vec();
        cmd.extend([interpreter, SENDER, "--status", &status]);
        cmd.extend(args);
        let mut culprit = ns.spawn(&cmd);
        let s = status.clone();
        let want = ready.to_string();
        culprit.wait_until(ready, WAIT, move || {
            std::fs::read_to_string(&s).is_ok_and(|t| t.contains(&want))
        });
        Sender {
            culprit,
            status,
            _files: files,
        }
    }

    fn pid(&self) -> u32 {
        self.culprit.pid()
    }

    fn status(&self) -> String {
        std::fs::read_to_string(&self.status).unwrap_or_default()
    }
}

/// `zcdoctor check ifbz --pid PID --json` inside `ns` (taps are not this test's business).
fn check_pid(ns: &Netns, pid: u32) -> Value {
    let pid = pid.to_string();
    let (code, doc) = ns.check_json(&["ifbz", "--skip", "taps", "--pid", &pid]);
    assert_eq!(code, 0, "--fail-on never");
    doc
}

fn the_process(doc: &Value) -> &Value {
    let procs = doc["processes"]
        .as_array()
        .expect("processes in the report");
    assert_eq!(procs.len(), 1);
    &procs[0]
}

fn zerocopy_on_and_draining_is_not_flagged() {
    let ns = black_hole("pron");
    let s = Sender::start(&ns, &[], &["--zerocopy", "on", "--drain", "yes"], "READY");
    let doc = check_pid(&ns, s.pid());
    assert!(
        finding(&doc, "zerocopy-not-requested").is_none(),
        "{:?}",
        codes(&doc)
    );
    assert!(finding(&doc, "errqueue-not-drained").is_none());
    let p = the_process(&doc);
    assert_eq!(p["pid"], s.pid());
    let sock = &p["sockets"][0];
    assert_eq!(sock["protocol"], "udp");
    assert_eq!(sock["zerocopy"]["read"], true);
    println!(
        "(a) draining sender pid {}: socket {} optmem {}; passed: {}",
        s.pid(),
        sock["local"]["read"],
        sock["meminfo"]["read"]["optmem"],
        doc["passed"]
    );
    let line = doc["passed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["check"] == "process")
        .expect("a passing line for the process");
    assert!(
        line["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", s.pid()))
    );
}

fn zerocopy_off_is_named_with_its_pid() {
    let ns = black_hole("proff");
    let s = Sender::start(&ns, &[], &["--zerocopy", "off"], "READY");
    let doc = check_pid(&ns, s.pid());
    let f = finding(&doc, "zerocopy-not-requested").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "warning");
    assert_eq!(pids(f), [u64::from(s.pid())]);
    let summary = f["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("pid {}", s.pid())), "{summary}");
    assert_eq!(the_process(&doc)["sockets"][0]["zerocopy"]["read"], false);
    println!("(b) {summary}");
}

fn undrained_error_queue_fills_option_memory() {
    let ns = black_hole("prfull");
    // A second, slow path: every other datagram waits in a tbf queue, so completions arrive out
    // of order and cannot be merged into one notification.
    ns.ifb("ifby", "198.18.1.1/24");
    ns.exec_ok(&[
        "tc", "qdisc", "add", "dev", "ifby", "root", "tbf", "rate", "1mbit", "burst", "10k",
        "latency", "10s",
    ]);
    let s = Sender::start(
        &ns,
        &[],
        &[
            "--drain",
            "no",
            "--size",
            "100",
            "--alternate",
            "198.18.1.2",
        ],
        "ENOBUFS",
    );
    // Once the slow queue is empty, what is left in optmem is unread notifications.
    common::wait_for("the tbf queue on ifby drains", WAIT, || {
        let out = ns.exec_ok(&["tc", "-s", "qdisc", "show", "dev", "ifby"]);
        String::from_utf8_lossy(&out.stdout).contains("backlog 0b 0p")
    });
    let doc = check_pid(&ns, s.pid());
    let f = finding(&doc, "errqueue-not-drained").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(f), [u64::from(s.pid())]);
    let sock = &f["evidence"]["sockets"][0];
    let (optmem, max) = (
        sock["optmem"].as_u64().unwrap(),
        sock["optmem_max"].as_u64().unwrap(),
    );
    assert!(optmem * 4 >= max * 3, "{optmem} of {max}");
    println!(
        "(c) sender: {}; zcdoctor: severity {}, optmem {optmem} of optmem_max {max}, wmem_alloc {}; {}",
        s.status().trim(),
        f["severity"],
        sock["wmem_alloc"],
        f["summary"]
    );
    assert!(
        f["summary"]
            .as_str()
            .unwrap()
            .contains(&format!("fd {}", sock["fd"]))
    );
}

fn a_process_in_another_namespace_is_read_from_the_host() {
    let ns = black_hole("prns");
    let s = Sender::start(&ns, &[], &["--zerocopy", "on", "--drain", "yes"], "READY");
    let ino = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .expect("named namespace")
        .ino();
    // zcdoctor in the host namespace; its interface is lo (the host's default route may be
    // anything).
    let out = Command::new(ZCDOCTOR)
        .args([
            "check",
            "lo",
            "--json",
            "--fail-on",
            "never",
            "--skip",
            "taps",
        ])
        .args(["--pid", &s.pid().to_string()])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run zcdoctor");
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let p = the_process(&doc);
    assert_eq!(p["netns"]["read"]["inode"], ino);
    assert_eq!(p["netns"]["read"]["name"], ns.name.as_str());
    assert_eq!(p["namespaces"][0]["netns"]["inode"], ino);
    let optmem_max = &p["namespaces"][0]["optmem_max"];
    assert!(optmem_max["read"].is_u64(), "{optmem_max}");
    let sock = &p["sockets"][0];
    assert_eq!(sock["netns"]["read"], ino);
    assert!(
        sock["local"]["read"]
            .as_str()
            .unwrap()
            .starts_with("0.0.0.0:")
            || sock["local"]["read"]
                .as_str()
                .unwrap()
                .starts_with("198.18.0.1:"),
        "{sock}"
    );
    println!(
        "(d) pid {} in {} (net:[{ino}]) read from the host: optmem_max {}, socket {}",
        s.pid(),
        ns.name,
        optmem_max,
        sock["local"]
    );
}

fn a_missing_pid_is_a_one_line_error() {
    let out = Command::new(ZCDOCTOR)
        .args(["check", "lo", "--skip", "taps", "--pid", "4000000000"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run zcdoctor");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--pid 4000000000: no such process"), "{err}");
    assert!(out.stdout.is_empty());
}

fn a_small_memlock_limit_is_named() {
    let ns = black_hole("prmem");
    // Root would be exempt through CAP_IPC_LOCK: drop it from the bounding set, so the exec'd
    // python has neither it nor a way back.
    let s = Sender::start(
        &ns,
        &[
            "prlimit",
            "--memlock=65536:65536",
            "setpriv",
            "--bounding-set",
            "-ipc_lock",
        ],
        &["--zerocopy", "on", "--drain", "yes"],
        "READY",
    );
    let doc = check_pid(&ns, s.pid());
    let f = finding(&doc, "process-memlock-limit").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(f), [u64::from(s.pid())]);
    assert_eq!(f["evidence"]["memlock_soft"], 65536);
    let fix = f["remediation"].to_string();
    assert!(
        fix.contains(&format!("prlimit --pid {} --memlock=", s.pid())),
        "{fix}"
    );
    println!(
        "(f) {}; VmPin {} VmLck {}",
        f["summary"], f["evidence"]["vm_pin"], f["evidence"]["vm_lck"]
    );
}

/// The report's notes on `pid`: (about, text) each.
fn notes_on(doc: &Value, pid: u32) -> Vec<(String, String)> {
    doc["process_notes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|n| n["pid"] == pid)
        .map(|n| {
            (
                n["about"].as_str().unwrap().into(),
                n["text"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// The human report of `check ifbz --pid PID`, its words joined by single spaces (so a
/// command wrapped over two lines is found whole).
fn human_words(ns: &Netns, pid: u32) -> String {
    let pid = pid.to_string();
    let out = ns.zcdoctor(&[
        "check",
        "ifbz",
        "--skip",
        "taps",
        "--fail-on",
        "never",
        "--pid",
        &pid,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A QEMU nothing flags (our draining sender, exec'd through a link named `qemu-system-zcd…`:
/// comm `qemu-system-zcd`) is still named as QEMU, told where QEMU counts its copies, and
/// pointed at `watch` by its pid, in the JSON and the human report.
fn a_qemu_nothing_flags_still_gets_its_notes() {
    let ns = black_hole("qemuok");
    let link = format!("/tmp/qemu-system-zcd-{}-{}", std::process::id(), ns.name);
    std::os::unix::fs::symlink(python(), &link).expect("link to python");
    let _link = TmpFiles(vec![link.clone()]);
    let s = Sender::start_with(
        &ns,
        &[],
        &link,
        &["--zerocopy", "on", "--drain", "yes"],
        "READY",
    );
    let pid = s.pid();
    let doc = check_pid(&ns, pid);
    assert_eq!(the_process(&doc)["comm"], "qemu-system-zcd");
    // Only the tap scan this test skips is reported: nothing about the process.
    assert_eq!(codes(&doc), ["taps-not-checked"]);
    let notes = notes_on(&doc, pid);
    let about: Vec<&str> = notes.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(about, ["qemu", "qemu", "watch"], "{notes:?}");
    assert!(
        notes[0].1.contains(&format!("(pid {pid}")),
        "{}",
        notes[0].1
    );
    assert!(
        notes[0]
            .1
            .contains("is QEMU. It has no connected TCP socket")
    );
    assert!(
        notes[1]
            .1
            .contains("`query-migrate` (ram.dirty-sync-missed-zero-copy, QEMU 7.1+)")
    );
    assert!(
        notes[1]
            .1
            .contains("virsh qemu-monitor-command DOMAIN --pretty")
    );
    let watch = format!("`zcdoctor watch --pid {pid}`");
    assert!(notes[2].1.contains(&watch), "{}", notes[2].1);
    let human = human_words(&ns, pid);
    assert!(human.contains("Notes:"), "{human}");
    assert!(
        human.contains(&watch) && human.contains("is QEMU"),
        "{human}"
    );
    println!("(g) pid {pid}: {}", notes[2].1);
}

/// A real QEMU (`-machine none`, paused, no migration): no socket, so `zerocopy-not-requested`,
/// and beside it the QEMU notes; no zerocopy socket, so no `watch` note.
fn a_real_qemu_is_named_as_qemu() {
    let ns = black_hole("qemu");
    let mut qemu = ns.spawn(&[
        "qemu-system-x86_64",
        "-machine",
        "none",
        "-accel",
        "tcg",
        "-display",
        "none",
        "-nodefaults",
        "-S",
        "-monitor",
        "none",
        "-serial",
        "none",
    ]);
    let pid = qemu.pid();
    let comm = format!("/proc/{pid}/comm");
    qemu.wait_until("QEMU running", WAIT, move || {
        std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "qemu-system-x86")
    });
    let doc = check_pid(&ns, pid);
    let f = finding(&doc, "zerocopy-not-requested").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(pids(f), [u64::from(pid)]);
    let notes = notes_on(&doc, pid);
    let about: Vec<&str> = notes.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(about, ["qemu", "qemu"], "{notes:?}");
    assert!(
        notes[0].1.contains(&format!("qemu-system-x86 (pid {pid}")),
        "{}",
        notes[0].1
    );
    assert!(notes[1].1.contains("dirty-sync-missed-zero-copy"));
    println!("(h) QEMU pid {pid}: {}", notes[0].1);
}

const COUNTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/zc_count.py");

/// Namespace A sending through a veth to a forwarding namespace B and out of B's ifb
/// (198.18.2.2): zerocopy survives forwarding (6.17+), and veth takes software TX timestamps
/// (`skb_tx_timestamp`), which an ifb does not.
fn forwarding_to_ifb(tag: &str) -> (Netns, Netns) {
    let (a, b) = (
        Netns::new(&format!("{tag}a")),
        Netns::new(&format!("{tag}b")),
    );
    a.veth_to(&b);
    b.ifb("ifbz", "198.18.2.1/24");
    b.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    a.ip("route add 198.18.2.0/24 via 198.18.1.2");
    (a, b)
}

/// tests/senders/zc_count.py in `ns`, held open after its sends (`--hold`): its pid and its
/// own count of COPIED completions (JSON). Ended by its pid on drop.
struct Counted {
    child: std::process::Child,
    out: Value,
}

impl Counted {
    fn start(ns: &Netns, args: &[&str]) -> Counted {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, python(), COUNTER])
            .args(["--target", "198.18.2.2", "--count", "2000", "--hold"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start zc_count.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read its count");
        let out = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        Counted { child, out }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The descriptor of its socket (`socket` is the inode it printed).
    fn fd(&self) -> i32 {
        let want = format!("socket:[{}]", self.out["socket"]);
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("its fds")
            .flatten()
            .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy() == want))
            .and_then(|e| e.file_name().to_str()?.parse().ok())
            .expect("the socket's fd")
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// `check va --pid PID` in the sender's namespace.
fn check_sender(ns: &Netns, pid: u32) -> Value {
    let pid = pid.to_string();
    let (code, doc) = ns.check_json(&["va", "--skip", "taps", "--pid", &pid]);
    assert_eq!(code, 0, "--fail-on never");
    doc
}

/// SO_TIMESTAMPING TX_SOFTWARE without OPT_TSONLY: the kernel copies every send (the sender's
/// own COPIED count) and `check --pid` names the pid, the fd and the flags read.
fn transmit_timestamps_without_tsonly_are_named() {
    let (a, _b) = forwarding_to_ifb("tspid");
    let s = Counted::start(&a, &["--timestamping"]);
    let (copied, sends) = (&s.out["copied"], &s.out["sends"]);
    assert!(sends.as_u64() > Some(0) && copied == sends, "{}", s.out);
    let doc = check_sender(&a, s.pid());
    let f = finding(&doc, "tx-timestamp-copies").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "blocker");
    assert_eq!(pids(f), [u64::from(s.pid())]);
    let fd = s.fd();
    let sock = &f["evidence"]["sockets"][0];
    assert_eq!(
        (sock["fd"].as_i64(), &sock["inode"]),
        (Some(i64::from(fd)), &s.out["socket"])
    );
    assert_eq!(sock["timestamping_flags"], "TX_SOFTWARE|SOFTWARE|OPT_ID");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("pid {}", s.pid())) && summary.contains(&format!("fd {fd} ")),
        "{summary}"
    );
    let fix = f["remediation"][0].as_str().unwrap();
    assert!(
        fix.contains(&format!(
            "(pid {}, fd {fd}, now TX_SOFTWARE|SOFTWARE|OPT_ID)",
            s.pid()
        )),
        "{fix}"
    );
    assert!(fix.contains("OPT_TSONLY = 0x892"), "{fix}");
    println!("(i) kernel: {copied} of {sends} copied; zcdoctor: {summary}");
}

/// The same sender with OPT_TSONLY: the kernel copies nothing, and nothing is raised; the pass
/// line says why its timestamps are harmless.
fn transmit_timestamps_with_tsonly_are_harmless() {
    let (a, _b) = forwarding_to_ifb("tsonly");
    let s = Counted::start(&a, &["--timestamping", "--tsonly"]);
    assert!(
        s.out["completions"].as_u64() > Some(0) && s.out["copied"] == 0,
        "{}",
        s.out
    );
    let doc = check_sender(&a, s.pid());
    assert!(
        finding(&doc, "tx-timestamp-copies").is_none(),
        "{:?}",
        codes(&doc)
    );
    let sock = &the_process(&doc)["sockets"][0];
    assert_eq!(sock["timestamping"]["read"], 0x892);
    let line = doc["passed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["check"] == "process")
        .unwrap_or_else(|| panic!("no pass line: {:?}", codes(&doc)));
    let detail = line["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "fd {} timestamps with TX_SOFTWARE|SOFTWARE|OPT_ID|OPT_TSONLY",
            s.fd()
        )),
        "{detail}"
    );
    println!(
        "(j) kernel: {} of {} copied; zcdoctor: {detail}",
        s.out["copied"], s.out["sends"]
    );
}

harness_main!(
    privileged: [
        transmit_timestamps_without_tsonly_are_named needs ["python3"],
        transmit_timestamps_with_tsonly_are_harmless needs ["python3"],
        zerocopy_on_and_draining_is_not_flagged needs ["python3"],
        zerocopy_off_is_named_with_its_pid needs ["python3"],
        undrained_error_queue_fills_option_memory needs ["python3"],
        a_process_in_another_namespace_is_read_from_the_host needs ["python3"],
        a_missing_pid_is_a_one_line_error,
        a_small_memlock_limit_is_named needs ["python3"],
        a_qemu_nothing_flags_still_gets_its_notes needs ["python3"],
        a_real_qemu_is_named_as_qemu needs ["qemu-system-x86_64"],
    ]
);
