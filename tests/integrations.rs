//! zcdoctor against the engines fleets run, for real: `promtool check metrics` and a real
//! `prometheus-node-exporter` textfile collector for `--format prometheus`; the monitoring-plugins
//! convention for `--format nagios` (clean, tap, unprivileged); `zcdoctor fleet`; `promtool
//! check rules` on the alert rules; `systemd-analyze verify` on the units; `man -l` on the man
//! page; `ansible-playbook` over an inventory of local hosts, each in its own namespace.
//!
//! Outside tools (Debian packages prometheus, prometheus-node-exporter, ansible-core, man-db,
//! systemd; cargo-deb) are installed by `bash tests/run`; where one is missing its case is
//! reported ignored with the reason, and fails under ZCDOCTOR_REQUIRE_PRIV=1 (CI). Traffic goes only to
//! 198.18.0.0/15 inside namespaces the tests create, and node_exporter listens on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, Netns, ZCDOCTOR};
use serde_json::Value;

/// An outside tool: the harness has checked it is installed (`Case::Needs`).
fn tool(name: &str) -> PathBuf {
    common::on_path(name).unwrap_or_else(|| panic!("{name} is not installed"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory, removed on drop.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new(tag: &str) -> TmpDir {
        let p = PathBuf::from(common::tmp_path(tag));
        std::fs::create_dir_all(&p).expect("create tmp dir");
        TmpDir(p)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn zcdoctor(args: &[&str]) -> Output {
    Command::new(ZCDOCTOR)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run zcdoctor")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture_evidence() -> Vec<PathBuf> {
    common::fixtures::dirs()
        .into_iter()
        .map(|d| d.join("evidence.json"))
        .collect()
}

/// `promtool check metrics` on `metrics`: passes with no lint message.
fn promtool_ok(promtool: &Path, metrics: &str, what: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics on {what}: {}{}\n{metrics}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

// ---- plain ----

fn prometheus_output_of_every_fixture_passes_promtool() {
    let promtool = tool("promtool");
    for ev in fixture_evidence() {
        let path = ev.to_string_lossy().into_owned();
        let out = zcdoctor(&["check", "--from", &path, "--format", "prometheus"]);
        assert!(
            matches!(out.status.code(), Some(0..=3)),
            "{path}: {}",
            text(&out.stderr)
        );
        promtool_ok(&promtool, &text(&out.stdout), &path);
    }
}

fn alert_rules_pass_promtool() {
    let promtool = tool("promtool");
    let rules = root().join("contrib/prometheus/zcdoctor.rules.yml");
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool");
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        out.status.success() && all.contains("SUCCESS: 3 rules found"),
        "{all}"
    );
}

fn systemd_units_verify() {
    let analyze = tool("systemd-analyze");
    // The units name /usr/bin/zcdoctor, which verify requires to exist: check copies that name
    // the binary under test instead.
    let dir = TmpDir::new("units");
    for name in ["zcdoctor-textfile.service", "zcdoctor-textfile.timer"] {
        let unit =
            std::fs::read_to_string(root().join("contrib/systemd").join(name)).expect("unit");
        assert!(
            !unit.contains("--target"),
            "{name}: the timer must never send traffic"
        );
        std::fs::write(
            dir.0.join(name),
            unit.replace("/usr/bin/zcdoctor", ZCDOCTOR),
        )
        .expect("write");
    }
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(dir.0.join("zcdoctor-textfile.service"))
        .arg(dir.0.join("zcdoctor-textfile.timer"))
        .output()
        .expect("systemd-analyze");
    let all = text(&out.stdout) + &text(&out.stderr);
    if !out.status.success() && all.contains("Failed to") && all.contains("bus") {
        eprintln!("note: skipped: systemd-analyze cannot run here: {all}");
        return;
    }
    assert!(
        out.status.success() && all.trim().is_empty(),
        "systemd-analyze verify: {all}"
    );
    let timer = std::fs::read_to_string(root().join("contrib/systemd/zcdoctor-textfile.timer"))
        .expect("timer");
    assert!(timer.contains("OnCalendar=*:0/15"), "{timer}");
}

fn man_page_renders() {
    let man = tool("man");
    let dir = TmpDir::new("man");
    let page = dir.0.join("zcdoctor.1");
    let out = zcdoctor(&["man"]);
    assert!(out.status.success());
    std::fs::write(&page, &out.stdout).expect("write");
    let out = Command::new(man)
        .args(["--warnings", "-l"])
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .expect("man");
    let page = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "man warnings: {}", text(&out.stderr));
    for word in ["zcdoctor", "SYNOPSIS", "fleet", "completions"] {
        assert!(page.contains(word), "{word} not in:\n{page}");
    }
}

fn completions_generate() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = zcdoctor(&["completions", shell]);
        assert!(out.status.success() && out.stdout.len() > 500, "{shell}");
        assert!(text(&out.stdout).contains("fleet"), "{shell}");
    }
    let out = zcdoctor(&["completions", "bash"]);
    let dir = TmpDir::new("compl");
    let f = dir.0.join("zcdoctor.bash");
    std::fs::write(&f, &out.stdout).expect("write");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&f)
        .output()
        .expect("bash");
    assert!(syntax.status.success(), "{}", text(&syntax.stderr));
    let bad = zcdoctor(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

fn schema_command_prints_the_committed_schema() {
    let out = zcdoctor(&["schema"]);
    assert!(out.status.success());
    let committed = std::fs::read(root().join("schema/report.schema.json")).expect("schema");
    assert_eq!(text(&out.stdout), text(&committed));
}

fn fleet_over_the_fixture_reports() {
    // Every fixture's directory: its report.json, and its evidence.json that is no report.
    let dirs: Vec<String> = common::fixtures::dirs()
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    let fleet = |args: &[&str]| {
        let mut all: Vec<&str> = vec!["fleet"];
        all.extend(dirs.iter().map(String::as_str));
        all.extend(args);
        zcdoctor(&all)
    };
    let out = fleet(&["--format", "json", "--max-hosts", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s: Value = serde_json::from_slice(&out.stdout).expect("json");
    let reports = fixture_evidence().len() as u64;
    assert_eq!(s["reports"], reports, "{s:#}");
    // The evidence files in the same directory are not reports: named, never fatal.
    assert_eq!(s["unreadable_count"], reports, "{s:#}");
    let findings = s["findings"].as_array().expect("findings");
    assert_eq!(findings[0]["severity"], "blocker");
    assert!(
        findings
            .iter()
            .all(|f| f["hosts"].as_array().is_some_and(|h| h.len() <= 3))
    );
    let contradicting = s["contradictions"]["count"].as_u64().unwrap_or(0);
    assert!(contradicting >= 1, "{s:#}");
    for format in ["human", "markdown"] {
        let out = fleet(&["--format", format]);
        assert!(out.status.success());
        let t = text(&out.stdout);
        assert!(t.contains("tap-forces-copy") && t.contains("more"), "{t}");
        assert!(!t.contains('\x1b'), "{t}");
    }
    // JSON lines on stdin, and an unreadable line named by its number.
    let mut lines = String::new();
    for name in ["live-clean", "clean-nic"] {
        let r = std::fs::read_to_string(common::fixtures::dir(name).join("report.json"))
            .expect("report");
        let v: Value = serde_json::from_str(&r).expect("json");
        lines.push_str(&v.to_string());
        lines.push('\n');
    }
    lines.push_str("{broken\n");
    let mut child = Command::new(ZCDOCTOR)
        .args(["fleet", "-", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("fleet");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("fleet");
    let s: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(s["reports"], 2);
    assert_eq!(s["unreadable"][0]["source"], "stdin:3");
}

fn nagios_usage_errors_are_unknown() {
    let out = zcdoctor(&["check", "--format", "nagios", "--bogus"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stdout).starts_with("ZCDOCTOR UNKNOWN - "),
        "{}",
        text(&out.stdout)
    );
    let out = zcdoctor(&["check", "--format", "nagios", "--from", "/nonexistent.json"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stdout).starts_with("ZCDOCTOR UNKNOWN - cannot open"));
}

fn deb_builds_when_cargo_deb_is_present() {
    let out = Command::new("bash")
        .arg(root().join("contrib/deb/build.sh"))
        .current_dir(root())
        .output()
        .expect("build.sh");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let deb = text(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();
    let list = Command::new("dpkg-deb")
        .args(["-c", &deb])
        .output()
        .expect("dpkg-deb");
    let files = text(&list.stdout);
    for want in [
        "./usr/bin/zcdoctor",
        "./usr/share/man/man1/zcdoctor.1.gz",
        "./usr/share/bash-completion/completions/zcdoctor",
        "./lib/systemd/system/zcdoctor-textfile.timer",
    ] {
        assert!(files.contains(want), "{want} not in {deb}:\n{files}");
    }
}

// ---- privileged ----

/// An ifb namespace and a snapshot of a live probe of it (`check --from` then renders it in
/// every format, as the live run would).
fn live_snapshot(ns: &Netns, dir: &Path) -> String {
    ns.ifb("ifbz", "198.18.0.1/24");
    let ev = dir
        .join("live.evidence.json")
        .to_string_lossy()
        .into_owned();
    let out = ns.zcdoctor(&[
        "snapshot",
        "ifbz",
        "--target",
        "198.18.0.2",
        "--duration",
        "200ms",
        "-o",
        &ev,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    ev
}

fn live_report_validates_against_the_schema() {
    let ns = Netns::new("schema");
    let dir = TmpDir::new("schema");
    let ev = live_snapshot(&ns, &dir.0);
    let out = zcdoctor(&["check", "--from", &ev, "--json", "--fail-on", "never"]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["verdict"]["basis"], "live", "{doc:#}");
    let s = &doc["live_summary"];
    assert!(s["completions"].as_u64().unwrap_or(0) > 0, "{s:#}");
    assert_eq!(
        s["runs"].as_array().map(Vec::len),
        doc["live_probe"]["runs"].as_array().map(Vec::len)
    );
    assert!(
        s["runs"][0]["zerocopy_phase"]["bytes_per_sec"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    let schema: Value = serde_json::from_slice(&zcdoctor(&["schema"]).stdout).expect("schema");
    let v = jsonschema::validator_for(&schema).expect("compiles");
    let errors: Vec<String> = v
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

fn live_prometheus_passes_promtool_and_node_exporter_serves_it() {
    let (promtool, exporter) = (tool("promtool"), tool("prometheus-node-exporter"));
    let ns = Netns::new("prom");
    let dir = TmpDir::new("textfile");
    let ev = live_snapshot(&ns, &dir.0);
    let textdir = dir.0.join("textfile");
    std::fs::create_dir_all(&textdir).expect("mkdir");
    let prom = textdir.join("zcdoctor.prom").to_string_lossy().into_owned();
    let out = zcdoctor(&[
        "check",
        "--from",
        &ev,
        "--format",
        "prometheus",
        "--output",
        &prom,
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let metrics = std::fs::read_to_string(&prom).expect("metrics");
    promtool_ok(&promtool, &metrics, "a live report");
    assert!(
        metrics.contains("zcdoctor_live_copied_ratio{interface=\"ifbz\",protocol=\"udp\"} 0\n"),
        "{metrics}"
    );
    // A direct live run writes the same families (its own temp file, renamed).
    let live = textdir.join("direct.prom").to_string_lossy().into_owned();
    let out = ns.zcdoctor(&[
        "check",
        "ifbz",
        "--target",
        "198.18.0.2",
        "--duration",
        "200ms",
        "--format",
        "prometheus",
        "--output",
        &live,
    ]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    let direct = std::fs::read_to_string(&live).expect("direct");
    promtool_ok(&promtool, &direct, "a direct live run");
    // Two files with the same series would be a collector error: keep one.
    std::fs::remove_file(&live).expect("rm");
    let leftovers: Vec<_> = std::fs::read_dir(&textdir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");

    // node_exporter on a free 127.0.0.1 port, textfile collector only.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new(exporter)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .arg(format!(
            "--collector.textfile.directory={}",
            textdir.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node exporter");
    let _kill = KillOnDrop(vec![child.id()]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let body = loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut body = String::new();
            if s.read_to_string(&mut body).is_ok() && body.contains("node_textfile_scrape_error") {
                break body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node_exporter did not serve metrics on 127.0.0.1:{port}"
        );
        // Pacing of the poll for the metrics, bounded by the deadline above.
        std::thread::sleep(Duration::from_millis(100));
    };
    for want in [
        "node_textfile_scrape_error 0",
        "zcdoctor_zerocopy{interface=\"ifbz\",state=\"yes\"} 1",
        "zcdoctor_verdict_basis{basis=\"live\",interface=\"ifbz\"} 1",
        "zcdoctor_live_completions{",
        "zcdoctor_last_run_timestamp_seconds{interface=\"ifbz\"}",
        "zcdoctor_info{kernel=",
    ] {
        assert!(body.contains(want), "{want} not served:\n{body}");
    }
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
}

/// The status line's shape and perfdata, per the monitoring-plugins development guidelines.
fn assert_plugin_output(stdout: &str, code: Option<i32>) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout:?}");
    let line = lines[0];
    let state = line
        .strip_prefix("ZCDOCTOR ")
        .and_then(|r| r.split(" - ").next())
        .unwrap_or("");
    let want = match state {
        "OK" => 0,
        "WARNING" => 1,
        "CRITICAL" => 2,
        "UNKNOWN" => 3,
        _ => panic!("no state in {line:?}"),
    };
    assert_eq!(code, Some(want), "{line}");
    let (_, perf) = line.split_once(" | ").expect("perfdata");
    // 'label'=value[UOM];[warn];[crit];[min];[max], space-separated.
    let item = regex_lite_perf();
    for p in split_perf(perf) {
        assert!(item(&p), "perfdata {p:?} in {line}");
    }
    state.to_string()
}

/// Splits perfdata on spaces outside single-quoted labels.
fn split_perf(perf: &str) -> Vec<String> {
    let (mut items, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in perf.chars() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == ' ' && !quoted {
            if !cur.is_empty() {
                items.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        items.push(cur);
    }
    items
}

/// The guidelines' grammar as a matcher: label (quoted if it has spaces, `'` doubled inside),
/// `=`, a number `[-0-9.]+`, a UOM from (none, s, ms, us, %, B, KB, MB, TB, c), then up to four
/// `;`-separated fields, each empty or a range `[@][~|-?[0-9.]+][:[-?[0-9.]+]]` (min and max
/// plain numbers).
fn regex_lite_perf() -> impl Fn(&str) -> bool {
    |p: &str| {
        let (label, rest) = if let Some(q) = p.strip_prefix('\'') {
            let mut end = None;
            let b = q.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    end = Some(i);
                    break;
                }
                i += 1;
            }
            match end {
                Some(e) => (&q[..e], &q[e + 1..]),
                None => return false,
            }
        } else {
            match p.split_once('=') {
                Some((l, _)) if !l.contains(' ') => (l, &p[l.len()..]),
                _ => return false,
            }
        };
        let Some(rest) = rest.strip_prefix('=') else {
            return false;
        };
        if label.is_empty() || label.contains('=') {
            return false;
        }
        let fields: Vec<&str> = rest.split(';').collect();
        if fields.len() > 5 {
            return false;
        }
        let num = |s: &str| {
            let s = s.strip_prefix('-').unwrap_or(s);
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_digit() || c == '.')
                && s.matches('.').count() <= 1
        };
        let v = fields[0].trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
        let uom = &fields[0][v.len()..];
        let range = |s: &str| {
            if s.is_empty() {
                return true;
            }
            let s = s.strip_prefix('@').unwrap_or(s);
            match s.split_once(':') {
                Some((lo, hi)) => {
                    (lo.is_empty() || lo == "~" || num(lo)) && (hi.is_empty() || num(hi))
                }
                None => num(s),
            }
        };
        num(v)
            && ["", "s", "ms", "us", "%", "B", "KB", "MB", "TB", "c"].contains(&uom)
            && fields.get(1).is_none_or(|f| range(f))
            && fields.get(2).is_none_or(|f| range(f))
            && fields.get(3).is_none_or(|f| f.is_empty() || num(f))
            && fields.get(4).is_none_or(|f| f.is_empty() || num(f))
    }
}

const NOBODY: [&str; 5] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
];

fn nagios_states_on_real_runs() {
    let ns = Netns::new("nag");
    ns.ifb("ifbz", "198.18.0.1/24");
    let run = |prefix: &[&str], extra: &[&str]| {
        let mut cmd: Vec<&str> = prefix.to_vec();
        cmd.push(ZCDOCTOR);
        cmd.extend(["check", "ifbz", "--format", "nagios"]);
        cmd.extend_from_slice(extra);
        let out = ns.exec(&cmd);
        assert!(out.stderr.is_empty() || !text(&out.stderr).contains("panicked"));
        (
            assert_plugin_output(&text(&out.stdout), out.status.code()),
            text(&out.stdout),
        )
    };
    let live = ["--target", "198.18.0.2", "--duration", "200ms"];
    // Clean: OK, predicted and live (a live run may warn, e.g. zerocopy-slower on small sends).
    let (state, line) = run(&[], &[]);
    assert_eq!(state, "OK", "{line}");
    let (state, line) = run(&[], &live);
    assert!(state == "OK" || state == "WARNING", "{line}");
    assert!(
        line.contains("zerocopy yes (live)") && line.contains("copied_ratio=0;;;0;1"),
        "{line}"
    );
    // --fail-on does not change the plugin's status.
    let (state, _) = run(&[], &["--fail-on", "never"]);
    assert_eq!(state, "OK");
    // Unprivileged, clean: still a plugin answer, never zcdoctor's exit 2.
    let (state, line) = run(&NOBODY, &[]);
    assert!(
        state == "OK" || state == "UNKNOWN" || state == "WARNING",
        "{line}"
    );
    {
        // A tap on the device: CRITICAL, statically and live.
        let _tap = ns.tap_socket(Some("ifbz"), false);
        let (state, line) = run(&[], &[]);
        assert_eq!(state, "CRITICAL", "{line}");
        assert!(
            line.contains("tap-forces-copy") && line.contains("blockers=1;;0;0;"),
            "{line}"
        );
        let (state, line) = run(&[], &live);
        assert_eq!(state, "CRITICAL", "{line}");
        assert!(line.contains("copied_ratio=1;;;0;1"), "{line}");
        // Unprivileged, the tap's setting cannot be read: UNKNOWN statically; live, the
        // copies are proven whatever the privileges.
        let (state, line) = run(&NOBODY, &[]);
        assert_eq!(state, "UNKNOWN", "{line}");
        let (state, line) = run(&NOBODY, &live);
        assert_eq!(state, "CRITICAL", "{line}");
    }
    // A live probe that cannot send (its own address): unproven, and the local delivery it
    // found is a blocker: CRITICAL (a known blocker outranks "could not decide").
    let (state, line) = run(&[], &["--target", "198.18.0.1", "--duration", "200ms"]);
    assert_eq!(state, "CRITICAL", "{line}");
    assert!(
        line.contains("(unproven)") && line.contains("local-delivery"),
        "{line}"
    );
}

fn ansible_playbook_over_local_hosts() {
    let playbook = tool("ansible-playbook");
    let started = Instant::now();
    let dir = TmpDir::new("ansible");
    let clean = Netns::new("ansa");
    clean.ifb("ifbz", "198.18.0.1/24");
    let tapped = Netns::new("ansb");
    tapped.ifb("ifbz", "198.18.0.1/24");
    let _tap = tapped.tap_socket(Some("ifbz"), false);
    let d = dir.0.display();
    let inventory = format!(
        "[probe]\n\
         zcdhosta zcdoctor_netns={} zcdoctor_fact_path={d}/facts-a zcdoctor_remote_report={d}/remote-a.json\n\
         zcdhostb zcdoctor_netns={} zcdoctor_fact_path={d}/facts-b zcdoctor_remote_report={d}/remote-b.json\n\
         [probe:vars]\n\
         ansible_connection=local\n\
         ansible_python_interpreter=/usr/bin/python3\n\
         zcdoctor_interface=ifbz\n\
         zcdoctor_bin={ZCDOCTOR}\n",
        clean.name, tapped.name
    );
    let inv = dir.0.join("inventory.ini");
    std::fs::write(&inv, inventory).expect("inventory");
    let out = Command::new(playbook)
        .arg("-i")
        .arg(&inv)
        .arg(root().join("contrib/ansible/zcdoctor.yml"))
        .arg("-e")
        .arg(format!(
            "zcdoctor_reports_dir={d}/reports zcdoctor_controller_bin={ZCDOCTOR}"
        ))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCAL_TEMP", dir.0.join("tmp-local"))
        .env("ANSIBLE_REMOTE_TEMP", dir.0.join("tmp-remote"))
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_LOCALHOST_WARNING", "0")
        .env("HOME", &dir.0)
        .output()
        .expect("ansible-playbook");
    let log = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "ansible-playbook failed:\n{log}");
    let fleet = std::fs::read_to_string(dir.0.join("reports/FLEET.md")).expect("FLEET.md");
    assert!(fleet.contains("2 reports read, 0 unreadable"), "{fleet}");
    assert!(
        fleet.contains("| zerocopy yes (predicted) | 1 |"),
        "{fleet}"
    );
    assert!(fleet.contains("| zerocopy no (predicted) | 1 |"), "{fleet}");
    assert!(
        fleet.contains("| blocker | `tap-forces-copy` | 1 |"),
        "{fleet}"
    );
    for h in ["zcdhosta", "zcdhostb"] {
        let r: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.0.join(format!("reports/{h}.json"))).expect("report"),
        )
        .expect("json");
        assert_eq!(r["interface"], "ifbz");
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// Each case with the outside programs it needs (checked before it runs: a missing one makes
/// the case ignored with the reason, or failed under `ZCDOCTOR_REQUIRE_PRIV=1`).
fn main() {
    use common::Case;
    let needs = |name, tools, privileged, f| Case::Needs {
        name,
        tools,
        privileged,
        f,
    };
    common::run_cases(vec![
        Case::Privileged(
            "live_report_validates_against_the_schema",
            live_report_validates_against_the_schema,
        ),
        needs(
            "live_prometheus_passes_promtool_and_node_exporter_serves_it",
            &["promtool", "prometheus-node-exporter"],
            true,
            live_prometheus_passes_promtool_and_node_exporter_serves_it,
        ),
        Case::Privileged("nagios_states_on_real_runs", nagios_states_on_real_runs),
        needs(
            "ansible_playbook_over_local_hosts",
            &["ansible-playbook"],
            true,
            ansible_playbook_over_local_hosts,
        ),
        needs(
            "prometheus_output_of_every_fixture_passes_promtool",
            &["promtool"],
            false,
            prometheus_output_of_every_fixture_passes_promtool,
        ),
        needs(
            "alert_rules_pass_promtool",
            &["promtool"],
            false,
            alert_rules_pass_promtool,
        ),
        needs(
            "systemd_units_verify",
            &["systemd-analyze"],
            false,
            systemd_units_verify,
        ),
        needs("man_page_renders", &["man"], false, man_page_renders),
        Case::Plain("completions_generate", completions_generate),
        Case::Plain(
            "schema_command_prints_the_committed_schema",
            schema_command_prints_the_committed_schema,
        ),
        Case::Plain(
            "fleet_over_the_fixture_reports",
            fleet_over_the_fixture_reports,
        ),
        Case::Plain(
            "nagios_usage_errors_are_unknown",
            nagios_usage_errors_are_unknown,
        ),
        needs(
            "deb_builds_when_cargo_deb_is_present",
            &["cargo-deb"],
            false,
            deb_builds_when_cargo_deb_is_present,
        ),
    ])
}
