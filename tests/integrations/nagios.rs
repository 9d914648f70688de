//! `--format nagios` by the monitoring-plugins development guidelines: usage errors are
//! UNKNOWN; real runs clean, with a tap, and unprivileged give the right state and perfdata.

use crate::common::{self, Netns, ZCDOCTOR};
use crate::{text, zcdoctor};

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
    let (state, line) = run(&common::AS_NOBODY, &[]);
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
        let (state, line) = run(&common::AS_NOBODY, &[]);
        assert_eq!(state, "UNKNOWN", "{line}");
        let (state, line) = run(&common::AS_NOBODY, &live);
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

crate::cases!(
    privileged: [nagios_states_on_real_runs],
    plain: [nagios_usage_errors_are_unknown]
);
