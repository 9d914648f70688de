//! zcdoctor against the engines fleets run, for real: `promtool check metrics` and a real
//! `prometheus-node-exporter` textfile collector for `--format prometheus`; the monitoring-plugins
//! convention for `--format nagios` (clean, tap, unprivileged); `zcdoctor fleet`; `promtool
//! check rules` on the alert rules; `systemd-analyze verify` on the units; `man -l` on the man
//! page; `ansible-playbook` over an inventory of local hosts, each in its own namespace.
//!
//! Outside tools (Debian packages prometheus, prometheus-node-exporter, ansible-core, man-db,
//! systemd; cargo-deb) are installed by `bash tests/run`; where one is missing its case is
//! reported ignored with the reason, and fails under ZCDOCTOR_REQUIRE_PRIV=1 (CI). Traffic goes
//! only to 198.18.0.0/15 inside namespaces the tests create, and node_exporter listens on
//! 127.0.0.1.
//! - `prometheus`: promtool, node_exporter, the alert rules; `nagios`: the plugin convention;
//!   `fleet`: `zcdoctor fleet`; `ansible`: the playbook; `packaging`: systemd units, man page,
//!   completions, the .deb; `schema`: the report schema.

#[path = "../common/mod.rs"]
mod common;

mod ansible;
mod fleet;
mod nagios;
mod packaging;
mod prometheus;
mod schema;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Netns, ZCDOCTOR};

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

harness_modules!(prometheus, nagios, fleet, ansible, packaging, schema);
