//! `--format prometheus` in Prometheus's own tools: `promtool check metrics` on every fixture's
//! output and on live runs, a real `prometheus-node-exporter` textfile collector serving them,
//! and `promtool check rules` on the alert rules.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{KillOnDrop, Netns};
use crate::{TmpDir, fixture_evidence, live_snapshot, root, text, tool, zcdoctor};

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

fn live_prometheus_passes_promtool_and_node_exporter_serves_it() {
    let (promtool, exporter) = (tool("promtool"), tool("prometheus-node-exporter"));
    let ns = Netns::new("prom");
    let dir = TmpDir::new("textfile");
    let ev = live_snapshot(&ns, &dir.0);
    let textdir = dir.0.join("textfile");
    std::fs::create_dir_all(&textdir).expect("mkdir");
    textfile_of_the_snapshot_passes_promtool(&promtool, &ev, &textdir);
    direct_live_run_passes_promtool_and_leaves_nothing(&promtool, &ns, &textdir);
    let (mut child, port) = start_node_exporter(&exporter, &textdir);
    let _kill = KillOnDrop(vec![child.id()]);
    let body = scrape_textfile_metrics(port);
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
    let _ = child.kill();
    let _ = child.wait();
}

/// `check --from` the snapshot `--format prometheus --output` a file in `textdir`: nothing on
/// stdout, and the file passes promtool with the live copied ratio.
fn textfile_of_the_snapshot_passes_promtool(promtool: &Path, ev: &str, textdir: &Path) {
    let prom = textdir.join("zcdoctor.prom").to_string_lossy().into_owned();
    let out = zcdoctor(&[
        "check",
        "--from",
        ev,
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
    promtool_ok(promtool, &metrics, "a live report");
    assert!(
        metrics.contains("zcdoctor_live_copied_ratio{interface=\"ifbz\",protocol=\"udp\"} 0\n"),
        "{metrics}"
    );
}

/// A direct live run writes the same families (its own temp file, renamed); it is removed
/// again, and no temporary file is left beside the snapshot's.
fn direct_live_run_passes_promtool_and_leaves_nothing(promtool: &Path, ns: &Netns, textdir: &Path) {
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
    promtool_ok(promtool, &direct, "a direct live run");
    // Two files with the same series would be a collector error: keep one.
    std::fs::remove_file(&live).expect("rm");
    let leftovers: Vec<_> = std::fs::read_dir(textdir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
}

/// node_exporter on a free 127.0.0.1 port, textfile collector only, reading `textdir`.
fn start_node_exporter(exporter: &Path, textdir: &Path) -> (Child, u16) {
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
    (child, port)
}

/// `GET /metrics` from node_exporter on `port` until it answers with its textfile collector's
/// families (at most 15 s).
fn scrape_textfile_metrics(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut body = String::new();
            if s.read_to_string(&mut body).is_ok() && body.contains("node_textfile_scrape_error") {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node_exporter did not serve metrics on 127.0.0.1:{port}"
        );
        // Pacing of the poll for the metrics, bounded by the deadline above.
        std::thread::sleep(Duration::from_millis(100));
    }
}

crate::cases!(
    privileged: [
        live_prometheus_passes_promtool_and_node_exporter_serves_it
            needs ["promtool", "prometheus-node-exporter"],
    ],
    plain: [
        prometheus_output_of_every_fixture_passes_promtool needs ["promtool"],
        alert_rules_pass_promtool needs ["promtool"],
    ]
);
