//! `zcdoctor fleet`: many reports in, one fleet view out. Streams: each report is read into a
//! reused buffer, parsed into the few fields the view needs, folded into [`Fleet`] and dropped.
//! Memory is bounded by the number of distinct finding codes (at most [`MAX_CODES`]) times the
//! host list kept per code (`max_hosts`), whatever the number of reports.

pub mod render;

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::report::{Basis, SCHEMA_VERSION, Zerocopy};
use crate::vocab::Code;
use crate::vocab::Severity;

/// The largest report read (real ones are tens of KiB): a file or one line of stdin.
pub const MAX_REPORT: usize = 8 << 20;
/// Most distinct finding codes tracked (known ones and those of newer versions); more are
/// counted in [`Fleet::codes_dropped`].
pub const MAX_CODES: usize = 256;
/// Most characters of a host, interface or code name kept.
const MAX_NAME: usize = 256;
/// Most characters of an unreadable report's reason kept.
const MAX_REASON: usize = 512;

/// The fields of a report the fleet view uses; serde skips the rest without building it.
#[derive(Deserialize)]
struct Slim {
    schema_version: u32,
    host: SlimHost,
    interface: String,
    verdict: SlimVerdict,
    findings: Vec<SlimFinding>,
}

#[derive(Deserialize)]
struct SlimHost {
    hostname: String,
}

#[derive(Deserialize)]
struct SlimVerdict {
    zerocopy: Zerocopy,
    basis: Basis,
}

#[derive(Deserialize)]
struct SlimFinding {
    code: String,
    severity: Severity,
}

/// A host, as reports name it: hostname and the diagnosed interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRef {
    pub host: String,
    pub interface: String,
}

/// A count with the first `max_hosts` hosts it counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Hosts {
    pub count: u64,
    pub hosts: Vec<HostRef>,
    /// Hosts counted but not listed (`count - hosts.len()`).
    pub more: u64,
}

impl Hosts {
    fn add(&mut self, h: &HostRef, max: usize) {
        self.count += 1;
        if self.hosts.len() < max {
            self.hosts.push(h.clone());
        } else {
            self.more += 1;
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerdictGroup {
    pub zerocopy: Zerocopy,
    pub basis: Basis,
    #[serde(flatten)]
    pub hosts: Hosts,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CodeGroup {
    pub code: String,
    /// The worst severity the code was raised with.
    pub severity: Severity,
    #[serde(flatten)]
    pub hosts: Hosts,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Unreadable {
    /// The file, or `stdin:LINE`.
    pub source: String,
    pub error: String,
}

/// The fleet view, as `--format json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Reports read and counted.
    pub reports: u64,
    /// Hosts per verdict (state and basis), most hosts first.
    pub verdicts: Vec<VerdictGroup>,
    /// Each finding code with the hosts that have it: worst severity first, then most hosts.
    pub findings: Vec<CodeGroup>,
    /// Hosts whose live probe contradicts the prediction (`live-contradicts-prediction`:
    /// no copies although a static check predicted them; `copies-unexplained`: copies that no
    /// static check predicted).
    pub contradictions: Hosts,
    /// Reports that could not be read, named; never fatal.
    pub unreadable_count: u64,
    pub unreadable: Vec<Unreadable>,
    pub unreadable_more: u64,
    /// Distinct codes over [`MAX_CODES`], not tracked.
    pub codes_dropped: u64,
}

/// The running aggregate.
pub struct Fleet {
    max_hosts: usize,
    reports: u64,
    verdicts: BTreeMap<(u8, u8), Hosts>,
    codes: BTreeMap<String, (Severity, Hosts)>,
    contradictions: Hosts,
    unreadable_count: u64,
    unreadable: Vec<Unreadable>,
    codes_dropped: u64,
    buf: Vec<u8>,
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn zc_key(z: Zerocopy) -> u8 {
    match z {
        Zerocopy::No => 0,
        Zerocopy::Unknown => 1,
        Zerocopy::Yes => 2,
    }
}

fn basis_key(b: Basis) -> u8 {
    match b {
        Basis::Live => 0,
        Basis::Unproven => 1,
        Basis::Predicted => 2,
    }
}

fn from_keys(z: u8, b: u8) -> (Zerocopy, Basis) {
    let zc = match z {
        0 => Zerocopy::No,
        1 => Zerocopy::Unknown,
        _ => Zerocopy::Yes,
    };
    let basis = match b {
        0 => Basis::Live,
        1 => Basis::Unproven,
        _ => Basis::Predicted,
    };
    (zc, basis)
}

impl Fleet {
    pub fn new(max_hosts: usize) -> Fleet {
        Fleet {
            max_hosts,
            reports: 0,
            verdicts: BTreeMap::new(),
            codes: BTreeMap::new(),
            contradictions: Hosts::default(),
            unreadable_count: 0,
            unreadable: Vec::new(),
            codes_dropped: 0,
            buf: Vec::with_capacity(64 << 10),
        }
    }

    /// Names a report that could not be read (the first `max_hosts` of them are kept).
    pub fn unreadable(&mut self, source: &str, error: &str) {
        self.unreadable_count += 1;
        if self.unreadable.len() < self.max_hosts {
            self.unreadable.push(Unreadable {
                source: cut(source, MAX_NAME),
                error: cut(error, MAX_REASON),
            });
        }
    }

    /// Folds one report's bytes in; a report that does not parse is named as unreadable.
    pub fn add_bytes(&mut self, source: &str, bytes: &[u8]) {
        let slim: Slim = match serde_json::from_slice(bytes) {
            Ok(s) => s,
            Err(e) => {
                // Another schema version says so, rather than which field it lacks.
                #[derive(Deserialize)]
                struct Version {
                    schema_version: u32,
                }
                let why = match serde_json::from_slice::<Version>(bytes) {
                    Ok(v) if v.schema_version != SCHEMA_VERSION => format!(
                        "schema_version {} (this zcdoctor reads {SCHEMA_VERSION})",
                        v.schema_version
                    ),
                    _ => format!("not a zcdoctor report: {e}"),
                };
                return self.unreadable(source, &why);
            }
        };
        if slim.schema_version != SCHEMA_VERSION {
            return self.unreadable(
                source,
                &format!(
                    "schema_version {} (this zcdoctor reads {SCHEMA_VERSION})",
                    slim.schema_version
                ),
            );
        }
        self.reports += 1;
        let host = HostRef {
            host: cut(&slim.host.hostname, MAX_NAME),
            interface: cut(&slim.interface, MAX_NAME),
        };
        let max = self.max_hosts;
        self.verdicts
            .entry((zc_key(slim.verdict.zerocopy), basis_key(slim.verdict.basis)))
            .or_default()
            .add(&host, max);
        let mut contradicts = false;
        // A code raised twice in one report (two devices) counts the host once.
        let mut seen: Vec<&str> = Vec::new();
        for f in &slim.findings {
            if seen.contains(&f.code.as_str()) {
                continue;
            }
            seen.push(&f.code);
            contradicts |= f
                .code
                .parse::<Code>()
                .is_ok_and(Code::contradicts_prediction);
            let code = cut(&f.code, MAX_NAME);
            if !self.codes.contains_key(&code) && self.codes.len() >= MAX_CODES {
                self.codes_dropped += 1;
                continue;
            }
            let entry = self
                .codes
                .entry(code)
                .or_insert_with(|| (f.severity, Hosts::default()));
            entry.0 = entry.0.max(f.severity);
            entry.1.add(&host, max);
        }
        if contradicts {
            self.contradictions.add(&host, max);
        }
    }

    /// Reads one report file (at most [`MAX_REPORT`] bytes, a regular file).
    pub fn add_file(&mut self, path: &Path) {
        let source = path.display().to_string();
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        match read_bounded(path, &mut buf) {
            Ok(()) => self.add_bytes(&source, &buf),
            Err(e) => self.unreadable(&source, &e),
        }
        self.buf = buf;
    }

    /// A file, or each `*.json` file of a directory (not recursive), in name order.
    pub fn add_path(&mut self, path: &Path) {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                let entries = match std::fs::read_dir(path) {
                    Ok(e) => e,
                    Err(e) => return self.unreadable(&path.display().to_string(), &e.to_string()),
                };
                // Names only (bounded by the directory), to read in a stable order.
                let mut names: Vec<std::path::PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect();
                names.sort();
                for p in names {
                    self.add_file(&p);
                }
            }
            Ok(_) => self.add_file(path),
            Err(e) => self.unreadable(&path.display().to_string(), &e.to_string()),
        }
    }

    /// JSON lines: one report per line, each at most [`MAX_REPORT`] bytes; blank lines skipped.
    pub fn add_lines(&mut self, input: &mut dyn BufRead, name: &str) {
        let mut buf = std::mem::take(&mut self.buf);
        let mut line_no = 0u64;
        loop {
            buf.clear();
            line_no += 1;
            match read_line_bounded(input, &mut buf, MAX_REPORT) {
                Ok(LineRead::Eof) => break,
                Ok(LineRead::Line) => {
                    if buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    self.add_bytes(&format!("{name}:{line_no}"), &buf);
                }
                Ok(LineRead::TooLong) => self.unreadable(
                    &format!("{name}:{line_no}"),
                    "over the 8 MiB limit of a report",
                ),
                Err(e) => {
                    self.unreadable(&format!("{name}:{line_no}"), &e.to_string());
                    break;
                }
            }
        }
        self.buf = buf;
    }

    pub fn summary(&self) -> Summary {
        let mut verdicts: Vec<VerdictGroup> = self
            .verdicts
            .iter()
            .map(|(&(z, b), hosts)| {
                let (zerocopy, basis) = from_keys(z, b);
                VerdictGroup {
                    zerocopy,
                    basis,
                    hosts: hosts.clone(),
                }
            })
            .collect();
        verdicts.sort_by_key(|v| std::cmp::Reverse(v.hosts.count));
        let mut findings: Vec<CodeGroup> = self
            .codes
            .iter()
            .map(|(code, (severity, hosts))| CodeGroup {
                code: code.clone(),
                severity: *severity,
                hosts: hosts.clone(),
            })
            .collect();
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.hosts.count.cmp(&a.hosts.count))
                .then(a.code.cmp(&b.code))
        });
        Summary {
            reports: self.reports,
            verdicts,
            findings,
            contradictions: self.contradictions.clone(),
            unreadable_count: self.unreadable_count,
            unreadable: self.unreadable.clone(),
            unreadable_more: self.unreadable_count - self.unreadable.len() as u64,
            codes_dropped: self.codes_dropped,
        }
    }
}

/// A regular file of at most [`MAX_REPORT`] bytes into `buf`; the error is a sentence.
fn read_bounded(path: &Path, buf: &mut Vec<u8>) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    file.take(MAX_REPORT as u64 + 1)
        .read_to_end(buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() > MAX_REPORT {
        return Err("over the 8 MiB limit of a report".to_string());
    }
    Ok(())
}

enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// One line into `buf` (without its `\n`), keeping at most `max` bytes; a longer line is read
/// to its end and dropped.
fn read_line_bounded(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<LineRead> {
    let (mut any, mut too_long) = (false, false);
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => LineRead::Eof,
                (true, true) => LineRead::TooLong,
                (true, false) => LineRead::Line,
            });
        }
        any = true;
        let (part, found) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if !too_long {
            if buf.len() + part.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        let used = found.unwrap_or(chunk.len());
        input.consume(used);
        if found.is_some() {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str, zc: &str, basis: &str, codes: &[(&str, &str)]) -> String {
        let findings: Vec<String> = codes
            .iter()
            .map(|(c, s)| {
                format!(r#"{{"code":"{c}","severity":"{s}","title":"t","evidence":{{}}}}"#)
            })
            .collect();
        format!(
            r#"{{"schema_version":1,"host":{{"hostname":"{host}","kernel":"6.1"}},"interface":"eth0","verdict":{{"zerocopy":"{zc}","basis":"{basis}","summary":"s"}},"findings":[{}],"extra":[1,2,3]}}"#,
            findings.join(",")
        )
    }

    #[test]
    fn aggregates_verdicts_codes_and_contradictions() {
        let mut f = Fleet::new(2);
        f.add_bytes(
            "a",
            report(
                "a",
                "no",
                "live",
                &[
                    ("tap-forces-copy", "blocker"),
                    ("tap-forces-copy", "blocker"),
                ],
            )
            .as_bytes(),
        );
        f.add_bytes(
            "b",
            report(
                "b",
                "no",
                "predicted",
                &[("tap-forces-copy", "blocker"), ("optmem-low", "warning")],
            )
            .as_bytes(),
        );
        f.add_bytes(
            "c",
            report(
                "c",
                "yes",
                "live",
                &[("live-contradicts-prediction", "warning")],
            )
            .as_bytes(),
        );
        f.add_bytes(
            "d",
            report("d", "no", "live", &[("tap-forces-copy", "blocker")]).as_bytes(),
        );
        f.add_bytes("e", b"{not json");
        f.add_bytes("g", br#"{"schema_version":2}"#);
        let s = f.summary();
        assert_eq!(s.reports, 4);
        assert_eq!(s.unreadable_count, 2);
        assert!(s.unreadable[1].error.contains("schema_version 2"));
        assert_eq!(s.verdicts[0].hosts.count, 2); // no/live: a, d
        assert_eq!(
            (s.verdicts[0].zerocopy, s.verdicts[0].basis),
            (Zerocopy::No, Basis::Live)
        );
        let tap = &s.findings[0];
        assert_eq!(
            (tap.code.as_str(), tap.hosts.count, tap.hosts.more),
            ("tap-forces-copy", 3, 1)
        );
        assert_eq!(tap.hosts.hosts.len(), 2);
        assert_eq!(
            s.findings.last().map(|c| c.severity),
            Some(Severity::Warning)
        );
        assert_eq!(s.contradictions.count, 1);
        assert_eq!(s.contradictions.hosts[0].host, "c");
    }

    #[test]
    fn memory_is_bounded_by_codes_and_host_lists() {
        let mut f = Fleet::new(3);
        for i in 0..2000 {
            let code = format!("future-code-{}", i % 400);
            f.add_bytes(
                "x",
                report(&format!("h{i}"), "unknown", "predicted", &[(&code, "info")]).as_bytes(),
            );
        }
        let s = f.summary();
        assert_eq!(s.reports, 2000);
        assert_eq!(s.findings.len(), MAX_CODES);
        assert!(s.codes_dropped > 0);
        assert!(s.findings.iter().all(|c| c.hosts.hosts.len() <= 3));
        assert!(s.verdicts.iter().all(|v| v.hosts.hosts.len() <= 3));
    }

    #[test]
    fn json_lines_are_bounded_and_blank_lines_skipped() {
        let text = format!(
            "{}\n\n{}\n{}\n",
            report("a", "yes", "live", &[]),
            "x".repeat(100),
            report("b", "yes", "live", &[])
        );
        let mut input = std::io::BufReader::with_capacity(16, text.as_bytes());
        let mut f = Fleet::new(10);
        f.add_lines(&mut input, "stdin");
        let s = f.summary();
        assert_eq!(s.reports, 2);
        assert_eq!(s.unreadable_count, 1);
        assert_eq!(s.unreadable[0].source, "stdin:3");
        // Over the limit: named, not parsed.
        let mut buf = Vec::new();
        let mut long = std::io::BufReader::with_capacity(4, "abcdefgh\nok\n".as_bytes());
        assert!(matches!(
            read_line_bounded(&mut long, &mut buf, 5),
            Ok(LineRead::TooLong)
        ));
        buf.clear();
        assert!(matches!(
            read_line_bounded(&mut long, &mut buf, 5),
            Ok(LineRead::Line)
        ));
        assert_eq!(buf, b"ok");
        buf.clear();
        assert!(matches!(
            read_line_bounded(&mut long, &mut buf, 5),
            Ok(LineRead::Eof)
        ));
    }

    #[test]
    fn files_and_directories() {
        let dir = std::env::temp_dir().join(format!("zcd-fleet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.json"), report("a", "yes", "live", &[])).unwrap();
        std::fs::write(dir.join("b.json"), "garbage").unwrap();
        std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let mut f = Fleet::new(10);
        f.add_path(&dir);
        f.add_path(&dir.join("missing.json"));
        let s = f.summary();
        assert_eq!((s.reports, s.unreadable_count), (1, 2));
        assert!(s.unreadable[0].source.ends_with("b.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
