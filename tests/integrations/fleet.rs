//! `zcdoctor fleet` over the fixtures' reports and over JSON lines on stdin.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::{self, ZCDOCTOR};
use crate::{fixture_evidence, text, zcdoctor};
use serde_json::Value;

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

crate::cases!(privileged: [], plain: [fleet_over_the_fixture_reports]);
