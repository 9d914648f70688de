//! The report in the Prometheus text exposition format (version 0.0.4), for node_exporter's
//! textfile collector: every family has HELP and TYPE, names carry the `zcdoctor_` prefix and a
//! base unit, `_total` is never used (each value is a measurement of one run, not a counter), no
//! sample has a timestamp, and the only labels are bounded ones: interface, kernel and version,
//! verdict state and basis, finding code and severity, live-probe pattern and phase.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::report::watch::WatchSummary;
use crate::report::{Basis, LiveSummary, Report, Zerocopy};
use crate::vocab::Severity;

/// A label value as the format requires: `\` as `\\`, `"` as `\"`, a line feed as `\n`.
pub fn label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A number as the format writes it: `NaN`, `+Inf`, `-Inf`, or Rust's shortest round trip.
fn number(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{x}")
    }
}

struct Exposition {
    text: String,
}

impl Exposition {
    /// HELP and TYPE of a family (HELP text is ours: no `\` or line feed to escape).
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", label_value(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// The metrics of `report`; `now` is the time of the run (`zcdoctor_last_run_timestamp_seconds`).
pub fn render(report: &Report, now: SystemTime) -> String {
    let mut e = Exposition {
        text: String::with_capacity(4096),
    };
    let iface = report.interface.as_str();
    info(&mut e, report);
    verdict(&mut e, report, iface);
    findings(&mut e, report, iface);
    if let Some(s) = &report.live_summary {
        let proto = report
            .live_probe
            .as_ref()
            .map_or(report.protocol.as_str(), |l| l.protocol.as_str());
        let base = [("interface", iface), ("protocol", proto)];
        live_counts(&mut e, s, &base);
        live_ratios(&mut e, s, &base);
        live_patterns(&mut e, s, &base);
    }
    if let Some(w) = &report.watch {
        watch(&mut e, w);
    }
    last_run(&mut e, iface, now);
    e.text
}

/// `zcdoctor watch`: copies by cause, place and sender's command; sends and copied sends per
/// command; what the watch cost. Rows that share their labels are summed (no pid label).
fn watch(e: &mut Exposition, w: &WatchSummary) {
    e.family(
        "zcdoctor_watch_ran",
        "gauge",
        "1 when the watch's kernel probes ran, 0 when watch could not run on this host.",
    );
    e.sample("zcdoctor_watch_ran", &[], flag(w.refused.is_none()));
    if w.refused.is_some() {
        return;
    }
    e.family(
        "zcdoctor_watch_copies",
        "gauge",
        "skbs of zerocopy data the kernel copied during the watch window, by cause, device and sender command.",
    );
    let mut copies: BTreeMap<[String; 5], u64> = BTreeMap::new();
    for c in &w.copies {
        let dev = c.device.as_ref();
        let key = [
            c.cause.as_str().to_string(),
            c.reported.to_string(),
            dev.and_then(|d| d.name.clone()).unwrap_or_default(),
            dev.and_then(|d| d.netns.clone()).unwrap_or_default(),
            c.sender.comm.clone().unwrap_or_default(),
        ];
        *copies.entry(key).or_default() += c.count;
    }
    for ([cause, reported, device, netns, comm], n) in &copies {
        let labels = [
            ("cause", cause.as_str()),
            ("reported", reported.as_str()),
            ("device", device.as_str()),
            ("netns", netns.as_str()),
            ("sender", comm.as_str()),
        ];
        e.sample("zcdoctor_watch_copies", &labels, *n as f64);
    }
    e.family(
        "zcdoctor_watch_sends",
        "gauge",
        "MSG_ZEROCOPY sends completed during the watch window by sender command, split by whether the completion reported a copy.",
    );
    let mut sends: BTreeMap<(String, &str), u64> = BTreeMap::new();
    for s in &w.senders {
        let comm = s.sender.comm.clone().unwrap_or_default();
        *sends.entry((comm.clone(), "false")).or_default() +=
            s.sends.saturating_sub(s.copied_sends);
        *sends.entry((comm, "true")).or_default() += s.copied_sends;
    }
    for ((comm, copied), n) in &sends {
        let labels = [("sender", comm.as_str()), ("copied", *copied)];
        e.sample("zcdoctor_watch_sends", &labels, *n as f64);
    }
    e.family(
        "zcdoctor_watch_window_seconds",
        "gauge",
        "Length of the watch window.",
    );
    e.sample(
        "zcdoctor_watch_window_seconds",
        &[],
        w.duration_ms as f64 / 1000.0,
    );
    e.family(
        "zcdoctor_watch_probe_cpu_ratio",
        "gauge",
        "Time the watch's kernel programs ran, as a share of the CPUs' time in the window.",
    );
    e.sample("zcdoctor_watch_probe_cpu_ratio", &[], w.overhead.cpu_share);
}

/// `zcdoctor_info`: the tool's version and the kernel.
fn info(e: &mut Exposition, report: &Report) {
    e.family(
        "zcdoctor_info",
        "gauge",
        "zcdoctor's version and the kernel release it diagnosed; always 1.",
    );
    e.sample(
        "zcdoctor_info",
        &[
            ("version", &report.tool.version),
            ("kernel", &report.host.kernel),
        ],
        1.0,
    );
}

/// The verdict: one series per zerocopy state and per basis, 1 for the report's.
fn verdict(e: &mut Exposition, report: &Report, iface: &str) {
    e.family(
        "zcdoctor_zerocopy",
        "gauge",
        "Whether MSG_ZEROCOPY sends through the interface avoid the copy: 1 for the state of the verdict (yes, no, unknown), 0 for the others.",
    );
    for (state, z) in [
        ("yes", Zerocopy::Yes),
        ("no", Zerocopy::No),
        ("unknown", Zerocopy::Unknown),
    ] {
        e.sample(
            "zcdoctor_zerocopy",
            &[("interface", iface), ("state", state)],
            flag(report.verdict.zerocopy == z),
        );
    }

    e.family(
        "zcdoctor_verdict_basis",
        "gauge",
        "What the verdict rests on: 1 for its basis (predicted from the findings, proven live, or unproven: a live probe was asked for and proved nothing), 0 for the others.",
    );
    for (basis, b) in [
        ("predicted", Basis::Predicted),
        ("live", Basis::Live),
        ("unproven", Basis::Unproven),
    ] {
        e.sample(
            "zcdoctor_verdict_basis",
            &[("interface", iface), ("basis", basis)],
            flag(report.verdict.basis == b),
        );
    }
}

/// The findings: how many of each severity, and one series per distinct code.
fn findings(e: &mut Exposition, report: &Report, iface: &str) {
    e.family(
        "zcdoctor_findings",
        "gauge",
        "Number of findings of the diagnosis by severity.",
    );
    for sev in [Severity::Blocker, Severity::Warning, Severity::Info] {
        let n = report.findings.iter().filter(|f| f.severity == sev).count();
        e.sample(
            "zcdoctor_findings",
            &[("interface", iface), ("severity", sev.as_str())],
            n as f64,
        );
    }

    // One series per distinct (code, severity): a code raised for two devices is one series.
    let found: BTreeSet<(&str, &str)> = report
        .findings
        .iter()
        .map(|f| (f.code.as_str(), f.severity.as_str()))
        .collect();
    e.family(
        "zcdoctor_finding",
        "gauge",
        "A finding of the diagnosis (see `zcdoctor explain CODE`); 1 while it holds, absent otherwise.",
    );
    for (code, severity) in &found {
        e.sample(
            "zcdoctor_finding",
            &[("interface", iface), ("code", code), ("severity", severity)],
            1.0,
        );
    }
}

/// The live probe's counts: sends, completions, copied, missing, ENOBUFS.
fn live_counts(e: &mut Exposition, s: &LiveSummary, base: &[(&str, &str)]) {
    let counts = [
        (
            "zcdoctor_live_sends",
            "Zerocopy sends the kernel accepted during the last live probe (primary patterns).",
            s.sends,
        ),
        (
            "zcdoctor_live_completions",
            "Zerocopy completions received during the last live probe (primary patterns).",
            s.completions,
        ),
        (
            "zcdoctor_live_copied_completions",
            "Completions of the last live probe that the kernel marked COPIED (primary patterns).",
            s.copied,
        ),
        (
            "zcdoctor_live_missing_completions",
            "Sends of the last live probe still without a completion after the grace period.",
            s.missing,
        ),
        (
            "zcdoctor_live_enobufs_sends",
            "Zerocopy sends of the last live probe refused with ENOBUFS.",
            s.enobufs,
        ),
    ];
    for (name, help, v) in counts {
        e.family(name, "gauge", help);
        e.sample(name, base, v as f64);
    }
}

/// The live probe's ratios, those it could measure: copied share, throughput and CPU gains.
fn live_ratios(e: &mut Exposition, s: &LiveSummary, base: &[(&str, &str)]) {
    if let Some(r) = s.copied_ratio {
        e.family(
            "zcdoctor_live_copied_ratio",
            "gauge",
            "Share of the last live probe's completions that were copied, 0 to 1.",
        );
        e.sample("zcdoctor_live_copied_ratio", base, r);
    }
    if let Some(g) = s.gain {
        e.family(
            "zcdoctor_live_gain_ratio",
            "gauge",
            "Zerocopy throughput over copy throughput in the last live probe, all timed primary patterns together.",
        );
        e.sample("zcdoctor_live_gain_ratio", base, g);
    }
    if let Some(g) = s.cpu_gain {
        e.family(
            "zcdoctor_live_cpu_gain_ratio",
            "gauge",
            "Zerocopy bytes per CPU-second over copy bytes per CPU-second in the last live probe.",
        );
        e.sample("zcdoctor_live_cpu_gain_ratio", base, g);
    }
}

/// Per pattern of the live probe (a pattern appears at most once per probe): its gain, and the
/// rate and CPU time of each of its phases.
fn live_patterns(e: &mut Exposition, s: &LiveSummary, base: &[(&str, &str)]) {
    let runs_with_gain: Vec<_> = s.runs.iter().filter(|r| r.gain.is_some()).collect();
    if !runs_with_gain.is_empty() {
        e.family(
            "zcdoctor_live_run_gain_ratio",
            "gauge",
            "Zerocopy throughput over copy throughput of one traffic pattern of the last live probe.",
        );
        for r in &runs_with_gain {
            let mut l = base.to_vec();
            l.push(("pattern", r.pattern.as_str()));
            e.sample("zcdoctor_live_run_gain_ratio", &l, r.gain.unwrap_or(0.0));
        }
    }
    let phases: Vec<_> = s
        .runs
        .iter()
        .flat_map(|r| {
            [("copy", &r.copy_phase), ("zerocopy", &r.zerocopy_phase)]
                .into_iter()
                .filter_map(move |(name, p)| p.as_ref().map(|p| (r.pattern, name, p)))
        })
        .collect();
    if phases.is_empty() {
        return;
    }
    e.family(
        "zcdoctor_live_phase_bytes_per_second",
        "gauge",
        "Bytes sent per second in one phase (copy or zerocopy) of one pattern of the last live probe.",
    );
    for (pattern, phase, p) in &phases {
        let mut l = base.to_vec();
        l.extend([("pattern", pattern.as_str()), ("phase", *phase)]);
        e.sample("zcdoctor_live_phase_bytes_per_second", &l, p.bytes_per_sec);
    }
    e.family(
        "zcdoctor_live_phase_cpu_seconds",
        "gauge",
        "CPU time (system and user) of the sending thread in one phase of one pattern of the last live probe.",
    );
    for (pattern, phase, p) in &phases {
        let mut l = base.to_vec();
        l.extend([("pattern", pattern.as_str()), ("phase", *phase)]);
        e.sample("zcdoctor_live_phase_cpu_seconds", &l, p.cpu_seconds);
    }
}

/// `zcdoctor_last_run_timestamp_seconds`: when the report was written (to the millisecond).
fn last_run(e: &mut Exposition, iface: &str, now: SystemTime) {
    e.family(
        "zcdoctor_last_run_timestamp_seconds",
        "gauge",
        "When zcdoctor wrote this report, in seconds since the Unix epoch.",
    );
    let ts = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    e.sample(
        "zcdoctor_last_run_timestamp_seconds",
        &[("interface", iface)],
        (ts * 1000.0).round() / 1000.0,
    );
}

pub fn write(report: &Report, now: SystemTime, out: &mut dyn Write) -> io::Result<()> {
    out.write_all(render(report, now).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::diagnose;
    use crate::evidence::{Evidence, Protocol};
    use std::time::Duration;

    /// A recording of `fixtures/`, by `area/name`.
    fn fixture(name: &str) -> Report {
        let path = format!(
            "{}/fixtures/{name}/evidence.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("fixture");
        let ev: Evidence = serde_json::from_str(&text).expect("evidence");
        diagnose(&ev, Protocol::Udp, crate::knowledge::Knowledge::builtin())
    }

    const T: Duration = Duration::from_millis(1_700_000_000_250);

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(label_value("x\ny"), "x\\ny");
        assert_eq!(label_value("plain"), "plain");
    }

    #[test]
    fn every_family_has_help_and_type_and_no_timestamps() {
        for name in [
            "live/live-clean",
            "live/live-tap-copied",
            "taps/clean-nic",
            "render/hostile-names",
        ] {
            let text = render(&fixture(name), UNIX_EPOCH + T);
            let mut declared = BTreeSet::new();
            let mut typed = BTreeSet::new();
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("# HELP ") {
                    declared.insert(rest.split(' ').next().unwrap_or("").to_string());
                } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                    let mut it = rest.split(' ');
                    let n = it.next().unwrap_or("").to_string();
                    assert_eq!(it.next(), Some("gauge"), "{line}");
                    typed.insert(n);
                } else {
                    let metric = line.split(['{', ' ']).next().unwrap_or("");
                    assert!(metric.starts_with("zcdoctor_"), "{line}");
                    assert!(!metric.ends_with("_total"), "{line}");
                    assert!(typed.contains(metric), "{line} before its TYPE");
                    // name{labels} value — no third field (timestamp).
                    let value = line.rsplit_once("} ").map(|(_, v)| v);
                    assert!(value.is_some_and(|v| !v.contains(' ')), "{line}");
                    assert!(!line.contains("pid"), "{line}");
                }
            }
            assert_eq!(declared, typed, "{name}");
        }
    }

    #[test]
    fn verdict_findings_and_live_series() {
        let text = render(&fixture("live/live-tap-copied"), UNIX_EPOCH + T);
        assert!(text.contains("zcdoctor_info{version=\""), "{text}");
        assert!(text.contains("zcdoctor_zerocopy{interface=\""), "{text}");
        assert!(text.contains(",state=\"no\"} 1\n"), "{text}");
        assert!(text.contains(",state=\"yes\"} 0\n"), "{text}");
        assert!(text.contains(",basis=\"live\"} 1\n"), "{text}");
        assert!(
            text.contains(",code=\"tap-forces-copy\",severity=\"blocker\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("zcdoctor_live_copied_ratio{"), "{text}");
        assert!(
            text.contains("zcdoctor_last_run_timestamp_seconds{interface=\""),
            "{text}"
        );
        assert!(text.contains("} 1700000000.25\n"), "{text}");
        let clean = render(&fixture("live/live-clean"), UNIX_EPOCH + T);
        assert!(
            clean.contains("zcdoctor_live_gain_ratio{interface=\"ifbz\",protocol=\"udp\"} 1.76")
        );
        assert!(clean.contains("zcdoctor_live_run_gain_ratio{interface=\"ifbz\",protocol=\"udp\",pattern=\"gso\"} 1.857"));
        let predicted = render(&fixture("taps/clean-nic"), UNIX_EPOCH + T);
        assert!(!predicted.contains("zcdoctor_live_"), "{predicted}");
    }

    #[test]
    fn hostile_names_stay_inside_their_label() {
        let report = fixture("render/hostile-names");
        let text = render(&report, UNIX_EPOCH + T);
        // Every sample line is name{...} value: a quote or line feed in a name cannot end the
        // label or the line early.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.ends_with(|c: char| c.is_ascii_digit()), "{line:?}");
        }
        assert!(text.contains(&label_value(&report.interface)));
    }
}
