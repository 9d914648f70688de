//! Recorded hosts in `fixtures/<area>/<name>/`: each `evidence.json` is diagnosed and must give
//! exactly the findings (code, severity, and where given the device and pid) and the verdict of
//! its `expect.toml`, and render exactly the recorded reports `report.json` and `report.txt`
//! (human, no color). Each fixture is its own test case (`fixture::NAME`); every finding code
//! fires in at least one. Pure logic: no privileges, no host access.
//!
//! After an intended change of the output, `ZCDOCTOR_BLESS=1 cargo test --profile fast --test
//! fixtures` rewrites the recorded reports; review the diff before committing it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use zcdoctor::check::{Protocol, diagnose};
use zcdoctor::evidence::Evidence;
use zcdoctor::render;
use zcdoctor::report::{Report, Zerocopy};
use zcdoctor::vocab::Finding;

use common::fixtures;

#[derive(Deserialize)]
struct Expect {
    description: String,
    protocol: String,
    verdict: String,
    #[serde(default)]
    finding: Vec<ExpectedFinding>,
    /// A recording of `zcdoctor watch --record`: the copies per cause and the COPIED sends per
    /// sender pid that its attribution must give.
    #[serde(default)]
    watch: Option<ExpectedWatch>,
}

#[derive(Deserialize, Debug)]
struct ExpectedWatch {
    /// cause → skbs copied.
    copies: std::collections::BTreeMap<String, u64>,
    /// `[pid, sends, copied_sends]` per sender.
    #[serde(default)]
    senders: Vec<[u64; 3]>,
}

/// The watch attribution of a recording against its `[watch]` expectation.
fn check_watch(name: &str, report: &Report, want: &ExpectedWatch) -> Result<(), String> {
    let w = report
        .watch
        .as_ref()
        .ok_or_else(|| format!("{name}: no watch in the report"))?;
    let mut got: std::collections::BTreeMap<String, u64> = Default::default();
    for c in &w.copies {
        *got.entry(c.cause.as_str().to_string()).or_default() += c.count;
    }
    if got != want.copies {
        return Err(format!(
            "{name}: watch copies {got:?}, expected {:?}",
            want.copies
        ));
    }
    for [pid, sends, copied] in &want.senders {
        let s = w
            .senders
            .iter()
            .find(|s| s.sender.pid.map(u64::from) == Some(*pid))
            .ok_or_else(|| format!("{name}: no watch sender with pid {pid}"))?;
        if (s.sends, s.copied_sends) != (*sends, *copied) {
            return Err(format!(
                "{name}: pid {pid} {} sends {} COPIED, expected {sends} {copied}",
                s.sends, s.copied_sends
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize, Debug)]
struct ExpectedFinding {
    code: String,
    severity: String,
    device: Option<String>,
    pid: Option<u32>,
    /// The other destination of `check --pid` whose way the finding is on (`evidence.toward`).
    toward: Option<String>,
}

impl ExpectedFinding {
    fn matches(&self, f: &Finding) -> bool {
        f.code.as_str() == self.code
            && f.severity.as_str() == self.severity
            && self.device.as_ref().is_none_or(|d| {
                f.evidence.get("device").and_then(Value::as_str) == Some(d)
                    || f.evidence
                        .get("devices")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(d)))
            })
            && self.pid.is_none_or(|pid| {
                f.evidence
                    .get("pids")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|p| p.as_u64() == Some(u64::from(pid))))
            })
            && self
                .toward
                .as_deref()
                .is_none_or(|t| f.evidence.get("toward").and_then(Value::as_str) == Some(t))
    }
}

/// A fixture's name, its expectations and the report diagnosed from its recording.
fn diagnose_fixture(dir: &Path) -> Result<(String, Expect, Report), String> {
    let name = fixtures::name(dir);
    let expect_path = dir.join("expect.toml");
    let expect: Expect =
        toml::from_str(&std::fs::read_to_string(&expect_path).map_err(|e| e.to_string())?)
            .map_err(|e| format!("{}: {e}", expect_path.display()))?;
    let evidence_path = dir.join("evidence.json");
    let evidence: Evidence = serde_json::from_str(
        &std::fs::read_to_string(&evidence_path).map_err(|e| format!("{name}: {e}"))?,
    )
    .map_err(|e| format!("{}: {e}", evidence_path.display()))?;
    let protocol = match expect.protocol.as_str() {
        "tcp" => Protocol::Tcp,
        _ => Protocol::Udp,
    };
    let report = diagnose(
        &evidence,
        protocol,
        zcdoctor::knowledge::Knowledge::builtin(),
    );
    Ok((name, expect, report))
}

fn check_fixture(dir: &Path) -> Result<(), String> {
    let (name, expect, report) = diagnose_fixture(dir)?;
    let got: Vec<String> = report
        .findings
        .iter()
        .map(|f| format!("{} {} {}", f.severity.as_str(), f.code, f.summary))
        .collect();
    let mut unmatched: Vec<&Finding> = report.findings.iter().collect();
    for want in &expect.finding {
        match unmatched.iter().position(|f| want.matches(f)) {
            Some(i) => {
                unmatched.remove(i);
            }
            None => {
                return Err(format!(
                    "{name} ({}): expected {want:?}, got:\n  {}",
                    expect.description,
                    got.join("\n  ")
                ));
            }
        }
    }
    if !unmatched.is_empty() {
        return Err(format!(
            "{name}: unexpected findings:\n  {}",
            unmatched
                .iter()
                .map(|f| format!("{} {}: {}", f.severity.as_str(), f.code, f.summary))
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    let verdict = match report.verdict.zerocopy {
        Zerocopy::Yes => "yes",
        Zerocopy::No => "no",
        Zerocopy::Unknown => "unknown",
    };
    if verdict != expect.verdict {
        return Err(format!(
            "{name}: verdict {verdict} ({}), expected {}",
            report.verdict.summary, expect.verdict
        ));
    }
    if let Some(want) = &expect.watch {
        check_watch(&name, &report, want)?;
    }
    check_rendered(dir, &report)
}

/// Compares `got` with the recorded `path`, or records it when `ZCDOCTOR_BLESS=1`.
fn compare_recorded(path: &Path, got: &[u8]) -> Result<(), String> {
    if std::env::var("ZCDOCTOR_BLESS").as_deref() == Ok("1") {
        return std::fs::write(path, got).map_err(|e| format!("{}: {e}", path.display()));
    }
    let want = std::fs::read(path)
        .map_err(|e| format!("{}: {e} (record it with ZCDOCTOR_BLESS=1)", path.display()))?;
    if want == got {
        return Ok(());
    }
    let (want, got) = (String::from_utf8_lossy(&want), String::from_utf8_lossy(got));
    let line = want
        .lines()
        .zip(got.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| want.lines().count().min(got.lines().count()));
    Err(format!(
        "{} differs from the report rendered now, first at line {}:\n  recorded: {}\n  now:      {}",
        path.display(),
        line + 1,
        want.lines().nth(line).unwrap_or("(end)"),
        got.lines().nth(line).unwrap_or("(end)")
    ))
}

/// The JSON and human reports of a fixture are exactly the recorded ones.
fn check_rendered(dir: &Path, report: &Report) -> Result<(), String> {
    let mut json = Vec::new();
    render::json(report, &mut json).map_err(|e| e.to_string())?;
    compare_recorded(&dir.join("report.json"), &json)?;
    let mut text = Vec::new();
    render::human(report, false, &mut text).map_err(|e| e.to_string())?;
    compare_recorded(&dir.join("report.txt"), &text)
}

fn plain(name: &str, f: fn()) -> libtest_mimic::Trial {
    libtest_mimic::Trial::test(name, move || {
        f();
        Ok(())
    })
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let all = fixtures::dirs();
    assert!(all.len() >= 10, "fixtures missing: {}", all.len());
    let mut trials: Vec<libtest_mimic::Trial> = all
        .into_iter()
        .map(|dir| {
            libtest_mimic::Trial::test(format!("fixture::{}", fixtures::name(&dir)), move || {
                check_fixture(&dir).map_err(Into::into)
            })
        })
        .collect();
    trials.push(plain(
        "remediation_names_the_actual_device_and_pid",
        remediation_names_the_actual_device_and_pid,
    ));
    trials.push(plain(
        "recordings_round_trip_through_json",
        recordings_round_trip_through_json,
    ));
    trials.push(plain(
        "hostile_names_reach_the_terminal_escaped",
        hostile_names_reach_the_terminal_escaped,
    ));
    trials.push(plain(
        "every_fixture_is_a_valid_recording",
        every_fixture_is_a_valid_recording,
    ));
    trials.push(plain(
        "every_finding_code_fires_in_a_fixture",
        every_finding_code_fires_in_a_fixture,
    ));
    libtest_mimic::run(&args, trials).exit()
}

fn remediation_names_the_actual_device_and_pid() {
    let path = fixtures::dir("seed-bond1-lldpd-dhclient").join("evidence.json");
    let evidence: Evidence = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let report = diagnose(
        &evidence,
        Protocol::Tcp,
        zcdoctor::knowledge::Knowledge::builtin(),
    );
    let dhclient = report
        .findings
        .iter()
        .find(|f| f.code.as_str() == "tap-forces-copy" && f.summary.contains("dhclient"))
        .expect("dhclient finding");
    let fix = dhclient.remediation.join("\n");
    assert!(
        fix.contains("1402") || fix.contains("NetworkManager.service"),
        "{fix}"
    );
    assert!(!fix.contains('{'), "unfilled placeholder: {fix}");
}

fn recordings_round_trip_through_json() {
    for dir in fixtures::dirs() {
        let ev = dir.join("evidence.json");
        let e: Evidence = serde_json::from_str(&std::fs::read_to_string(&ev).unwrap()).unwrap();
        let again: Evidence = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(e, again, "{}", ev.display());
    }
}

/// Every code of the knowledge base is produced by at least one fixture, and no fixture
/// produces a code the knowledge base does not know: each code's behaviour is documented by a
/// recorded host.
fn every_finding_code_fires_in_a_fixture() {
    let known: BTreeSet<String> = zcdoctor::vocab::Code::ALL
        .iter()
        .map(|c| c.to_string())
        .collect();

    let mut fired: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for dir in fixtures::dirs() {
        let (name, _, report) = diagnose_fixture(&dir).unwrap_or_else(|e| panic!("{e}"));
        for f in report.findings {
            let by = fired.entry(f.code.to_string()).or_default();
            if !by.contains(&name) {
                by.push(name.clone());
            }
        }
    }
    let missing: Vec<&str> = known
        .iter()
        .filter(|c| !fired.contains_key(*c))
        .map(String::as_str)
        .collect();
    let unknown: Vec<String> = fired
        .iter()
        .filter(|(c, _)| !known.contains(*c))
        .map(|(c, by)| format!("{c} (in {})", by.join(", ")))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "the codes fired across fixtures/ differ from checks/findings/:\n  fired by no fixture: {}\n  fired but not in checks/findings/: {}",
        if missing.is_empty() {
            "-".to_string()
        } else {
            missing.join(", ")
        },
        if unknown.is_empty() {
            "-".to_string()
        } else {
            unknown.join(", ")
        },
    );
}

/// The raw control, C1 and bidi characters in `bytes`, as (offset, character); with `color`,
/// the renderer's own SGR sequences (`ESC [ digits;… m`) are allowed.
fn raw_unsafe(bytes: &[u8], color: bool) -> Vec<(usize, char)> {
    let text = std::str::from_utf8(bytes).expect("human output is UTF-8");
    let mut bad = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if color && c == '\x1b' {
            let mut sgr = String::new();
            while let Some(&(_, n)) = chars.peek() {
                chars.next();
                sgr.push(n);
                if n.is_ascii_alphabetic() {
                    break;
                }
            }
            let ok = sgr.starts_with('[')
                && sgr.ends_with('m')
                && sgr[1..sgr.len() - 1]
                    .chars()
                    .all(|d| d.is_ascii_digit() || d == ';');
            if !ok {
                bad.push((at, c));
            }
            continue;
        }
        let unsafe_char = (c.is_control() && c != '\n')
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if unsafe_char {
            bad.push((at, c));
        }
    }
    bad
}

/// A recording whose hostname, interface, device names and a tap owner's comm hold ESC
/// sequences (CSI, OSC 0, an OSC 8 link), C1 CSI and bidi overrides renders none of them raw,
/// with color off and on; the escapes are visible instead.
fn hostile_names_reach_the_terminal_escaped() {
    let (_, _, report) =
        diagnose_fixture(&fixtures::dir("hostile-names")).unwrap_or_else(|e| panic!("{e}"));
    let hostile = [
        &report.host.hostname,
        &report.interface,
        &report.stack[1].name,
        &report.stack[2].name,
    ];
    assert!(
        hostile.iter().all(|s| s
            .chars()
            .any(|c| c.is_control() || ('\u{2066}'..='\u{2069}').contains(&c) || c == '\u{200f}')),
        "the fixture lost its hostile names: {hostile:?}"
    );
    for color in [false, true] {
        let mut out = Vec::new();
        render::human(&report, color, &mut out).expect("render");
        let bad = raw_unsafe(&out, color);
        assert!(bad.is_empty(), "color {color}: raw characters at {bad:?}");
        let text = String::from_utf8_lossy(&out);
        for shown in [
            "kvm\\x1b]0;pwned\\x07-01\\u{200f}\\x7f",
            "bond\\x1b[2J\\x1b[31m1",
            "eth\\u{9b}31m0",
            "eth1\\u{202e}\\u{2066}x",
            "lldpd\\x1b]8;;https://evil.example/\\x1b\\click",
        ] {
            assert!(
                text.contains(shown),
                "color {color}: {shown} not shown in\n{text}"
            );
        }
    }
    // Without color, the renderer writes no ESC at all.
    let mut out = Vec::new();
    render::human(&report, false, &mut out).expect("render");
    assert!(!out.contains(&0x1b));
    assert!(!out.windows(2).any(|w| w == [0xc2, 0x9b]), "raw U+009B");
}

/// Every recording in fixtures/ passes the validation `check --from` applies.
fn every_fixture_is_a_valid_recording() {
    for dir in fixtures::dirs() {
        let ev = dir.join("evidence.json");
        let e: Evidence = serde_json::from_str(&std::fs::read_to_string(&ev).unwrap()).unwrap();
        if let Err(err) = zcdoctor::evidence::validate::validate(&e) {
            panic!("{}: {err}", ev.display());
        }
    }
}
