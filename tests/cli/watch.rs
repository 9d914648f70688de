//! `zcdoctor watch` on this host. Its kernel has no kprobe PMU (and refuses BPF tracing), so
//! this is where the refusal is tested: one line on stderr naming what is missing, exit 3, and
//! the static diagnosis still printed (human, JSON with `watch.refused`, Prometheus with
//! `zcdoctor_watch_ran 0`). The counting itself is tested in the guest tier
//! (tests/guest/scenarios/watch.rs). Also its usage errors.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{Netns, ZCDOCTOR};

const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe/type";

fn watch(ns: &Netns, args: &[&str]) -> Output {
    Command::new(ZCDOCTOR)
        .args(["watch", "zcdwa0", "--netns", &ns.name, "--duration", "1s"])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run zcdoctor watch")
}

/// Where watch cannot run: exit 3, one stderr line saying why, the static report on stdout in
/// every format.
fn watch_refuses_in_one_line_and_still_diagnoses() {
    let ns = Netns::new("wa");
    ns.ifb("zcdwa0", "198.18.0.1/24");
    let human = watch(&ns, &[]);
    let err = String::from_utf8_lossy(&human.stderr).to_string();
    let text = String::from_utf8_lossy(&human.stdout).to_string();
    if Path::new(KPROBE_PMU).exists() {
        // A kernel with kprobes: watch runs (this machine kind has none; see the guest tier).
        assert!(matches!(human.status.code(), Some(0 | 1)), "{err}\n{text}");
        assert!(err.contains("zcdoctor: watching skb_copy_ubufs"), "{err}");
        return;
    }
    assert_eq!(human.status.code(), Some(3), "{err}\n{text}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(
        err.starts_with("zcdoctor: watch cannot run here: no kprobe PMU (/sys/bus/event_source/devices/kprobe/type: ENOENT"),
        "{err}"
    );
    assert!(
        text.contains("zcdoctor watch: cannot run here: no kprobe PMU"),
        "{text}"
    );
    assert!(
        text.contains("Interface zcdwa0"),
        "the static diagnosis follows: {text}"
    );
    let json = watch(&ns, &["--json"]);
    assert_eq!(json.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&json.stdout).expect("a JSON report");
    assert!(
        doc["watch"]["refused"]
            .as_str()
            .is_some_and(|r| r.starts_with("no kprobe PMU")),
        "{:#}",
        doc["watch"]
    );
    assert_eq!(doc["interface"], "zcdwa0");
    let prom = watch(&ns, &["--format", "prometheus"]);
    assert_eq!(prom.status.code(), Some(3));
    let metrics = String::from_utf8_lossy(&prom.stdout);
    assert!(metrics.contains("\nzcdoctor_watch_ran 0\n"), "{metrics}");
    assert!(!metrics.contains("zcdoctor_watch_copies"), "{metrics}");
}

fn one_line(args: &[&str], wants: &str) {
    let out = Command::new(ZCDOCTOR)
        .args(args)
        .output()
        .expect("run zcdoctor");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains(wants), "{args:?}: {err:?} lacks {wants:?}");
}

/// A window of nothing or over an hour, and formats watch has no renderer for.
fn watch_usage_errors_are_one_line() {
    one_line(
        &["watch", "--duration", "0s"],
        "a duration must be over 0 and at most 1 hour",
    );
    one_line(
        &["watch", "--duration", "61m"],
        "a duration must be over 0 and at most 1 hour",
    );
    one_line(&["watch", "--format", "nagios"], "watch");
    one_line(&["watch", "--duration", "soon"], "invalid value 'soon'");
}

crate::cases!(
    privileged: [watch_refuses_in_one_line_and_still_diagnoses],
    plain: [watch_usage_errors_are_one_line]
);
