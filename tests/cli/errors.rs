//! The command line's refusals: usage errors, bounded and validated recordings, escaped error
//! messages, buffered output. Each runs the built binary; no privileges, no host probing (every
//! `check` here reads a recording).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_zcdoctor");

/// The recording of fixture `name`.
fn fixture(name: &str) -> PathBuf {
    crate::common::fixtures::dir(name).join("evidence.json")
}

/// A fresh directory of this test process.
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "zcdoctor-cli-errors-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs the binary with a 20 s bound (a hang fails the test instead of blocking it).
fn run_with(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zcdoctor");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        // The binary may stop reading at its cap: a broken pipe here is expected.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("zcdoctor {args:?} did not finish in 20 s");
        }
        // Pacing of the poll for the exit, bounded by the 20 s above.
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

fn run(args: &[&str]) -> Output {
    run_with(args, None)
}

/// Exit 2 and exactly one line on stderr, `zcdoctor: error: …`; returns that line.
fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("zcdoctor: error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    err.trim_end().to_string()
}

fn refused(args: &[&str], wants: &[&str]) -> String {
    let line = one_line_error(&run(args));
    for w in wants {
        assert!(line.contains(w), "{args:?}: {line:?} lacks {w:?}");
    }
    line
}

// --- usage errors -------------------------------------------------------------------------

fn unknown_option_is_one_line_with_a_hint() {
    let line = refused(&["check", "--bogus"], &[]);
    assert_eq!(
        line,
        "zcdoctor: error: unexpected argument '--bogus' found (see zcdoctor check --help)"
    );
    refused(&[], &["a command is required", "(see zcdoctor --help)"]);
    refused(&["frobnicate"], &["frobnicate", "(see zcdoctor --help)"]);
    refused(&["explain"], &["<CODE>", "(see zcdoctor explain --help)"]);
}

fn help_and_version_still_print_and_exit_0() {
    let help = run(&["check", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: zcdoctor check"), "{text}");
    assert!(text.contains("--from <FILE>"), "{text}");
    let version = run(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("zcdoctor "));
}

fn from_conflicts_with_every_probe_option() {
    let from = fixture("clean-nic");
    let from = from.to_str().expect("utf-8 path");
    for extra in [
        &["--target", "198.18.0.2"][..],
        &["--skip", "taps"],
        &["--only", "taps"],
        &["--no-taps"],
        &["--target", "198.18.0.2", "--duration", "2s"],
        &["--target", "198.18.0.2", "--byte-cap", "1000"],
        &["--target", "198.18.0.2", "--oversize"],
    ] {
        let mut args = vec!["check", "--from", from];
        args.extend_from_slice(extra);
        refused(
            &args,
            &[
                "--from",
                "cannot be used with",
                "(see zcdoctor check --help)",
            ],
        );
    }
}

fn live_options_need_a_target() {
    for opt in [
        &["--duration", "2s"][..],
        &["--byte-cap", "1000"],
        &["--oversize"],
    ] {
        let mut args = vec!["check"];
        args.extend_from_slice(opt);
        refused(&args, &["--target", "(see zcdoctor check --help)"]);
        let mut args = vec!["snapshot", "-o", "-"];
        args.extend_from_slice(opt);
        refused(&args, &["--target", "(see zcdoctor snapshot --help)"]);
    }
}

/// A vsock target has no IP path: what reads or sends on one is refused, in one line, before
/// anything is probed; so are malformed vsock addresses and a buffer without a vsock target.
fn vsock_target_refuses_ip_options_and_bad_addresses() {
    for (extra, wants) in [
        (&["lo"][..], "an interface"),
        (&["--protocol", "tcp"], "--protocol tcp"),
        (&["--api", "io_uring"], "--api io_uring"),
        (&["--oversize"], "--oversize"),
        (&["--timestamping"], "--timestamping"),
    ] {
        let mut args = vec!["check", "--target", "vsock:1:5201"];
        args.extend_from_slice(extra);
        refused(&args, &["cannot be combined with", wants]);
    }
    for bad in [
        "vsock:1",
        "vsock:x:1",
        "vsock:1:y",
        "vsock:4294967295:1",
        "vsock:1:4294967295",
    ] {
        refused(&["check", "--target", bad], &["vsock"]);
    }
    refused(
        &["check", "--target", "198.18.0.2", "--vsock-buffer", "1"],
        &["--vsock-buffer", "vsock:CID:PORT"],
    );
}

fn json_with_format_human_and_oversize_with_tcp_are_refused() {
    refused(
        &["check", "--json", "--format", "human"],
        &["'--json'", "'--format human'"],
    );
    refused(
        &[
            "check",
            "--target",
            "198.18.0.2",
            "--protocol",
            "tcp",
            "--oversize",
        ],
        &["'--oversize'", "'--protocol tcp'"],
    );
    // Agreeing options are fine.
    let ok = run(&[
        "check",
        "--from",
        fixture("clean-nic").to_str().expect("utf-8"),
        "--json",
        "--format",
        "json",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
}

fn port_0_and_unknown_scopes_are_refused() {
    refused(&["check", "--target", "198.18.0.2:0"], &["port 0"]);
    refused(&["check", "--target", "[2001:db8::1]:0"], &["port 0"]);
    refused(&["check", "--target", "gateway:0"], &["port 0"]);
    refused(
        &["check", "--target", "[fe80::1%nosuchif9]:9"],
        &["no interface named", "nosuchif9"],
    );
}

// --- escaped messages -------------------------------------------------------------------

/// The interface named on the command line is echoed escaped in the error.
fn unknown_interface_error_is_escaped() {
    let from = fixture("clean-nic");
    let out = run(&[
        "check",
        "--from",
        from.to_str().expect("utf-8"),
        "eth\x1b[2J\u{9b}0\u{202e}",
    ]);
    let line = one_line_error(&out);
    assert!(!out.stderr.contains(&0x1b), "raw ESC: {line:?}");
    assert!(
        !line.contains('\u{9b}') && !line.contains('\u{202e}'),
        "{line:?}"
    );
    assert!(
        line.contains("not eth\\x1b[2J\\u{9b}0\\u{202e}"),
        "{line:?}"
    );
}

/// The hostile fixture through the binary: human output without a raw ESC, C1 or bidi byte.
fn hostile_recording_renders_escaped() {
    let out = run(&[
        "check",
        "--from",
        fixture("hostile-names").to_str().expect("utf-8"),
        "--color",
        "never",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(!text.contains('\x1b'));
    for c in [
        '\u{9b}', '\u{7f}', '\u{7}', '\u{202e}', '\u{2066}', '\u{200f}',
    ] {
        assert!(!text.contains(c), "raw {c:?}");
    }
    assert!(text.contains("host kvm\\x1b]0;pwned\\x07-01"), "{text}");
}

// --- bounded input ----------------------------------------------------------------------

fn dev_zero_is_refused_at_once() {
    let start = Instant::now();
    refused(
        &["check", "--from", "/dev/zero"],
        &["/dev/zero", "character device"],
    );
    assert!(start.elapsed() < Duration::from_secs(5));
}

fn fifo_without_writer_is_refused_without_blocking() {
    let dir = scratch();
    let fifo = dir.join("recording.json");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .expect("mkfifo");
    let start = Instant::now();
    refused(
        &["check", "--from", fifo.to_str().expect("utf-8")],
        &["a FIFO"],
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    refused(
        &["check", "--from", dir.to_str().expect("utf-8")],
        &["a directory"],
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn recordings_over_8_mib_are_refused() {
    let dir = scratch();
    // 200 MB, sparse: refused from its size, never read.
    let big = dir.join("big.json");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(200 << 20))
        .expect("sparse file");
    let start = Instant::now();
    refused(
        &["check", "--from", big.to_str().expect("utf-8")],
        &["209715200 bytes", "8 MiB"],
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    // A valid recording padded with whitespace past the cap: refused too.
    let mut padded = std::fs::read(fixture("clean-nic")).expect("fixture");
    padded.resize((8 << 20) + 1, b' ');
    let path = dir.join("padded.json");
    std::fs::write(&path, &padded).expect("write");
    refused(
        &["check", "--from", path.to_str().expect("utf-8")],
        &["8 MiB"],
    );
    // Exactly at the cap is fine.
    padded.truncate(8 << 20);
    std::fs::write(&path, &padded).expect("write");
    let ok = run(&["check", "--from", path.to_str().expect("utf-8"), "--json"]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let _ = std::fs::remove_dir_all(dir);
}

fn stdin_recordings_work_and_are_capped() {
    let recording = std::fs::read(fixture("clean-nic")).expect("fixture");
    let out = run_with(&["check", "--from", "-", "--json"], Some(&recording));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["interface"], "eth0");
    // 9 MiB of spaces: refused at the cap, not read to the end.
    let flood = vec![b' '; 9 << 20];
    let line = one_line_error(&run_with(&["check", "--from", "-"], Some(&flood)));
    assert!(line.contains("stdin") && line.contains("8 MiB"), "{line}");
}

// --- validated recordings ---------------------------------------------------------------

/// Writes `edit` applied to fixture `name` and runs `check --from` on it.
fn check_edited(name: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut ev: Value =
        serde_json::from_slice(&std::fs::read(fixture(name)).expect("fixture")).expect("json");
    edit(&mut ev);
    let dir = scratch();
    let path = dir.join(format!("{name}.evidence.json"));
    std::fs::write(&path, serde_json::to_vec(&ev).expect("json")).expect("write");
    let line = one_line_error(&run(&["check", "--from", path.to_str().expect("utf-8")]));
    let _ = std::fs::remove_dir_all(dir);
    assert!(line.contains("is not a valid zcdoctor recording"), "{line}");
    line
}

fn newer_evidence_version_is_refused() {
    let line = check_edited("clean-nic", |ev| ev["evidence_version"] = 99.into());
    assert!(line.contains("evidence_version: 99 is newer"), "{line}");
}

fn copied_over_completions_is_refused() {
    let line = check_edited("live-clean", |ev| {
        ev["live"]["runs"][1]["copied"] = 1_890_001.into();
    });
    assert!(
        line.contains("live.runs[1].copied: 1890001 copied of 1890000"),
        "{line}"
    );
}

fn completions_over_sends_is_refused() {
    let line = check_edited("live-clean", |ev| {
        ev["live"]["runs"][0]["completions"] = 2_900_001.into();
    });
    assert!(
        line.contains("live.runs[0].completions: 2900001 completions of 2900000 sends"),
        "{line}"
    );
}

fn empty_stack_is_refused() {
    let line = check_edited("clean-nic", |ev| ev["stack"] = Value::Array(vec![]));
    assert!(line.contains("stack: empty"), "{line}");
}

fn interface_other_than_first_device_is_refused() {
    let line = check_edited("seed-bond1-lldpd-dhclient", |ev| {
        ev["interface"] = "eth0".into()
    });
    assert!(
        line.contains("interface: \"eth0\" is not the first device of the stack (\"bond1\")"),
        "{line}"
    );
}

fn empty_feature_map_is_refused() {
    let line = check_edited("seed-bond1-lldpd-dhclient", |ev| {
        ev["stack"][1]["features"] = Value::Object(Default::default());
    });
    assert!(
        line.contains("stack[1].features: present but empty for \"eth0\""),
        "{line}"
    );
}

fn duplicate_ifindex_is_refused() {
    let line = check_edited("seed-bond1-lldpd-dhclient", |ev| {
        ev["stack"][2]["ifindex"] = ev["stack"][1]["ifindex"].clone();
    });
    assert!(line.contains("stack[2].ifindex: 2"), "{line}");
}

fn lower_outside_the_stack_is_refused() {
    let line = check_edited("seed-bond1-lldpd-dhclient", |ev| {
        ev["stack"][0]["lowers"][1] = "eth9".into();
    });
    assert!(
        line.contains("stack[0].lowers[1]: \"eth9\" (below \"bond1\") is not a device"),
        "{line}"
    );
}

// --- buffered output --------------------------------------------------------------------

/// A JSON report leaves in a few `write` calls, not one per token. Needs strace (skipped,
/// with a note, where it is missing or ptrace is not allowed).
fn json_report_is_written_in_few_writes() {
    let dir = scratch();
    let trace = dir.join("strace.txt");
    let from = fixture("seed-bond1-lldpd-dhclient");
    let status = Command::new("strace")
        .args(["-f", "-c", "-e", "trace=write", "-o"])
        .arg(&trace)
        .args([BIN, "check", "--json", "--from"])
        .arg(&from)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output();
    let Ok(out) = status else {
        eprintln!("strace not installed: write count not measured");
        return;
    };
    let summary = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_dir_all(dir);
    if out.status.code() != Some(1) || !summary.contains("write") {
        eprintln!(
            "strace could not trace here ({:?}): write count not measured",
            out.status
        );
        return;
    }
    assert!(out.stdout.len() > 12_000, "{} bytes", out.stdout.len());
    // `% time seconds usecs/call calls [errors] syscall`: calls is the 4th column.
    let calls: u64 = summary
        .lines()
        .find(|l| l.trim_end().ends_with(" write"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no write line in {summary}"));
    assert!(
        calls <= 4,
        "{calls} write calls for {} bytes",
        out.stdout.len()
    );
}

crate::cases!(
    privileged: [],
    plain: [
        unknown_option_is_one_line_with_a_hint,
        help_and_version_still_print_and_exit_0,
        from_conflicts_with_every_probe_option,
        live_options_need_a_target,
        vsock_target_refuses_ip_options_and_bad_addresses,
        json_with_format_human_and_oversize_with_tcp_are_refused,
        port_0_and_unknown_scopes_are_refused,
        unknown_interface_error_is_escaped,
        hostile_recording_renders_escaped,
        dev_zero_is_refused_at_once,
        fifo_without_writer_is_refused_without_blocking,
        recordings_over_8_mib_are_refused,
        stdin_recordings_work_and_are_capped,
        newer_evidence_version_is_refused,
        copied_over_completions_is_refused,
        completions_over_sends_is_refused,
        empty_stack_is_refused,
        interface_other_than_first_device_is_refused,
        empty_feature_map_is_refused,
        duplicate_ifindex_is_refused,
        lower_outside_the_stack_is_refused,
        json_report_is_written_in_few_writes,
    ]
);
