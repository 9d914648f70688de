//! Both sides of the guest tier: booting a kernel with the selected scenarios (host) and running
//! them, one results line each (guest).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Set inside the guest: where to append the results (one JSON line per scenario).
pub const RESULTS_ENV: &str = "ZCDOCTOR_GUEST_RESULTS";
/// Set inside the guest: a file of the shared directory naming the scenarios to run, one a line.
const ONLY_ENV: &str = "ZCDOCTOR_GUEST_ONLY";
/// The last line of a guest that ran to its end.
const DONE: &str = "__done__";

/// The kernels of the tier, by label and release (`tests/guest/kernels.txt`, read by setup.sh).
const KERNELS: &str = include_str!("kernels.txt");

/// The kernel a scenario runs on.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub release: String,
    pub version: (u32, u32),
}

impl Kernel {
    pub fn parse(release: &str) -> Kernel {
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse::<u32>().ok());
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        Kernel {
            release: release.to_string(),
            version: (major, minor),
        }
    }

    pub fn running() -> Kernel {
        Kernel::parse(&nix::sys::utsname::uname().map_or_else(
            |_| String::new(),
            |u| u.release().to_string_lossy().into_owned(),
        ))
    }

    /// Release `major.minor` or newer.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.version >= (major, minor)
    }
}

/// What a scenario did on a kernel that could build it: a one-line summary of the kernel's
/// count and zcdoctor's verdict. A failed expectation panics.
pub enum Outcome {
    Ran(String),
    /// This kernel cannot build the shape (reported as ignored, with the reason).
    Cannot(String),
}

pub struct Scenario {
    pub name: &'static str,
    pub run: fn(&Kernel) -> Outcome,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    name: String,
    status: Status,
    detail: String,
    seconds: f64,
    /// The finding codes whose behaviour the scenario proved ([`prove`]).
    #[serde(default)]
    proved: Vec<String>,
}

thread_local! {
    static PROVED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records that the running scenario proved `code`'s behaviour on this kernel: it asserted the
/// finding against what the kernel did. Counted only when the scenario passes.
pub fn prove(code: &str) {
    PROVED.with(|p| {
        let mut p = p.borrow_mut();
        if !p.iter().any(|c| c == code) {
            p.push(code.to_string());
        }
    });
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Status {
    Passed,
    Failed,
    Ignored,
}

/// Guest side: runs the scenarios named in ONLY_ENV, one results line each, then DONE.
pub fn inside_guest(all: &[Scenario]) -> ! {
    let path = std::env::var(RESULTS_ENV).unwrap_or_default();
    // The names come in a file of the shared directory: on the kernel command line (where
    // virtme-ng passes the command) 33 names passed its 2,048-byte limit and the guest hung.
    let only = std::env::var(ONLY_ENV)
        .ok()
        .and_then(|file| std::fs::read_to_string(file).ok())
        .unwrap_or_default();
    let kernel = Kernel::running();
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    for name in only.lines().filter(|n| !n.is_empty()) {
        let Some(scenario) = all.iter().find(|s| s.name == name) else {
            continue;
        };
        println!("=== {name} on {}", kernel.release);
        let start = Instant::now();
        let (status, detail) =
            match std::panic::catch_unwind(AssertUnwindSafe(|| (scenario.run)(&kernel))) {
                Ok(Outcome::Ran(summary)) => (Status::Passed, summary),
                Ok(Outcome::Cannot(why)) => (Status::Ignored, why),
                Err(payload) => (Status::Failed, panic_message(payload.as_ref())),
            };
        println!("=== {name}: {status:?}: {detail}");
        let proved = match status {
            Status::Passed => PROVED.with(|p| p.borrow().clone()),
            _ => Vec::new(),
        };
        let record = Record {
            name: name.to_string(),
            status,
            detail,
            seconds: start.elapsed().as_secs_f64(),
            proved,
        };
        let line = serde_json::to_string(&record).unwrap_or_default();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    let _ = writeln!(out, "{{\"name\":\"{DONE}\"}}");
    std::process::exit(0)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".to_string())
}

/// Where tests/guest/setup.sh keeps the kernels.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ZCDOCTOR_GUEST_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    base.join("zcdoctor/guest")
}

/// The tier's kernels: (label, release).
fn kernels() -> Vec<(String, String)> {
    KERNELS
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

fn selected(args: &libtest_mimic::Arguments, full: &str) -> bool {
    let matches = |f: &str| {
        if args.exact {
            full == f
        } else {
            full.contains(f)
        }
    };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|s| matches(s))
}

/// What booting one kernel gave: each scenario's record, or why the guest gave none.
type Booted = Result<BTreeMap<String, Record>, String>;

/// Host side: boots each kernel with its selected scenarios, then reports one case each.
pub fn on_host(all: &[Scenario]) -> ! {
    let args = libtest_mimic::Arguments::from_args();
    let required = std::env::var("ZCDOCTOR_REQUIRE_PRIV").as_deref() == Ok("1");
    let mut trials = Vec::new();
    let mut table = Vec::new();
    // What the passing scenarios proved, by code: the kernels (`6.1`).
    let mut proved: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut whole_tier = args.filter.is_none() && args.skip.is_empty() && !args.list;
    for (label, release) in kernels() {
        let names: Vec<&str> = all
            .iter()
            .map(|s| s.name)
            .filter(|n| selected(&args, &format!("{label}::{n}")))
            .collect();
        let names: Vec<&str> = if args.list { Vec::new() } else { names };
        let booted: Booted = if names.is_empty() {
            Ok(BTreeMap::new())
        } else {
            eprintln!("guest {release}: booting for {} scenario(s)", names.len());
            let start = Instant::now();
            let r = boot(&label, &release, &names);
            eprintln!(
                "guest {release}: done in {:.0} s",
                start.elapsed().as_secs_f64()
            );
            r
        };
        match &booted {
            Ok(records) => {
                let k = Kernel::parse(&release);
                let short = format!("{}.{}", k.version.0, k.version.1);
                for r in records.values().filter(|r| r.status == Status::Passed) {
                    for code in &r.proved {
                        proved
                            .entry(code.clone())
                            .or_default()
                            .insert(short.clone());
                    }
                }
            }
            Err(_) => whole_tier = false,
        }
        for s in all {
            let full = format!("{label}::{}", s.name);
            if !names.contains(&s.name) {
                // Filtered out (libtest-mimic drops it too) or listed only: never passed.
                trials.push(libtest_mimic::Trial::test(full, || Err("not run".into())));
                continue;
            }
            let (trial, row) = trial_of(&full, s.name, &booted, required);
            if let Some(row) = row {
                table.push(format!("{full}: {row}"));
            }
            trials.push(trial);
        }
    }
    trials.push(proven_on_trial(whole_tier, proved));
    let conclusion = libtest_mimic::run(&args, trials);
    if !table.is_empty() {
        println!("\nguest tier, each scenario on each kernel:");
        for row in &table {
            println!("  {row}");
        }
    }
    conclusion.exit()
}

/// `knowledge::proven_on_matches_the_tier`: each file of checks/findings/ names exactly
/// the tier's kernels on which a passing scenario proved it (ignored unless the whole tier ran).
fn proven_on_trial(
    whole_tier: bool,
    proved: BTreeMap<String, BTreeSet<String>>,
) -> libtest_mimic::Trial {
    let name = "knowledge::proven_on_matches_the_tier";
    if !whole_tier {
        return libtest_mimic::Trial::test(name, || Ok(())).with_ignored_flag(true);
    }
    libtest_mimic::Trial::test(name, move || {
        let mut wrong = Vec::new();
        for entry in &zcdoctor::knowledge::Knowledge::builtin().entries {
            let code = entry.code.as_str();
            let declared: BTreeSet<String> = entry.proven_on.iter().cloned().collect();
            let got = proved.get(code).cloned().unwrap_or_default();
            if declared != got {
                wrong.push(format!(
                    "{code}: proven_on = {declared:?} in checks/findings/{code}.toml, proven by the tier on {got:?}"
                ));
            }
        }
        for code in proved.keys() {
            if !zcdoctor::knowledge::Knowledge::builtin()
                .entries
                .iter()
                .any(|e| e.code.as_str() == code)
            {
                wrong.push(format!(
                    "{code}: proved by a scenario but not a finding code"
                ));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(wrong.join("\n").into())
        }
    })
}

fn trial_of(
    full: &str,
    name: &str,
    booted: &Booted,
    required: bool,
) -> (libtest_mimic::Trial, Option<String>) {
    let fail = |msg: String| libtest_mimic::Trial::test(full, move || Err(msg.into()));
    match booted {
        Err(why) if required => (
            fail(format!(
                "guest tier cannot run ({why}) and ZCDOCTOR_REQUIRE_PRIV=1"
            )),
            Some(format!("NOT RUN: {why}")),
        ),
        Err(why) => (
            libtest_mimic::Trial::test(full, || Ok(())).with_ignored_flag(true),
            Some(format!("ignored: guest tier cannot run: {why}")),
        ),
        Ok(records) => match records.get(name) {
            None => (
                fail("the guest did not report this scenario (it died or timed out first)".into()),
                Some("NOT RUN".into()),
            ),
            Some(r) => {
                let row = format!("{:?} in {:.0} s: {}", r.status, r.seconds, r.detail);
                let trial = match r.status {
                    Status::Passed => libtest_mimic::Trial::test(full, || Ok(())),
                    Status::Ignored => {
                        libtest_mimic::Trial::test(full, || Ok(())).with_ignored_flag(true)
                    }
                    Status::Failed => fail(r.detail.clone()),
                };
                (trial, Some(row))
            }
        },
    }
}

/// Boots `release` under QEMU (TCG: KVM does not work on this machine kind) with the host's
/// root file system, runs this test binary inside with `names`, and reads its results.
fn boot(label: &str, release: &str, names: &[&str]) -> Booted {
    let vmlinuz = cache_dir().join(format!("boot/vmlinuz-{release}"));
    if !vmlinuz.exists() {
        return Err(format!(
            "{} missing: run `bash tests/guest/setup.sh`",
            vmlinuz.display()
        ));
    }
    if !Path::new(&format!("/lib/modules/{release}/modules.dep")).exists() {
        return Err(format!(
            "/lib/modules/{release} missing: run `bash tests/guest/setup.sh`"
        ));
    }
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("guest-{label}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let results = dir.join("results.jsonl");
    let log = dir.join("guest.log");
    let only = dir.join("scenarios.txt");
    std::fs::write(&only, names.join("\n")).map_err(|e| format!("{}: {e}", only.display()))?;
    let inner = format!(
        "{RESULTS_ENV}={} {ONLY_ENV}={} ZCDOCTOR_REQUIRE_PRIV=1 NO_COLOR=1 {} > {} 2>&1",
        results.display(),
        only.display(),
        exe.display(),
        log.display()
    );
    // Boot ~20-30 s under TCG, then the scenarios: a bound that a wedged guest cannot pass.
    let limit = (90 + 60 * names.len()).min(1200);
    let console = std::fs::File::create(dir.join("console.log")).map_err(|e| e.to_string())?;
    let status = Command::new("timeout")
        .args(["-k", "10", &limit.to_string(), "vng", "-r"])
        .arg(&vmlinuz)
        .args(["--disable-kvm", "--memory", "2G", "--cpus", "2", "--rwdir"])
        .arg(&dir)
        .args(["--exec", &inner])
        .stdin(Stdio::null())
        .stdout(console.try_clone().map_err(|e| e.to_string())?)
        .stderr(console)
        .status()
        .map_err(|e| format!("cannot run vng (virtme-ng): {e}; run `bash tests/guest/setup.sh`"))?;
    let text = std::fs::read_to_string(&results).unwrap_or_default();
    let mut records = BTreeMap::new();
    let mut done = false;
    for line in text.lines() {
        if let Ok(r) = serde_json::from_str::<Record>(line) {
            records.insert(r.name.clone(), r);
        } else if line.contains(DONE) {
            done = true;
        }
    }
    if records.is_empty() && !done {
        let tail = |p: PathBuf| {
            let t = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        return Err(format!(
            "the {release} guest reported nothing (vng {status}, limit {limit} s); guest log:\n{}\nconsole:\n{}",
            tail(log),
            tail(dir.join("console.log"))
        ));
    }
    Ok(records)
}
