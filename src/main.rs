//! zcdoctor command line. Exit status, first that applies: 2 usage or runtime error (never a
//! panic or a backtrace), 1 a finding at or above --fail-on, 3 --target was given and the live
//! probe did not prove the verdict (the monitoring-plugins UNKNOWN), 0 otherwise. Every message
//! on stderr is one line, with untrusted text escaped (`render::escape`).

mod cli;

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use clap::CommandFactory;

use cli::args::{
    CheckArgs, Cli, ColorChoice, Command, FailOn, FleetArgs, Format, OutputArgs, ProbeArgs,
    SinkArgs, SnapshotArgs, WatchArgs,
};
use cli::usage::ParseError;
use zcdoctor::check::{self, Code};
use zcdoctor::evidence::{Evidence, validate};
use zcdoctor::knowledge::Knowledge;
use zcdoctor::probe::request::{Request, gather_request};
use zcdoctor::probe::{self, GatherOptions, LiveRequest};
use zcdoctor::render::{self, escape, nagios};
use zcdoctor::report::Basis;
use zcdoctor::vocab::Severity;

/// `--target` was given and the live probe proved nothing (monitoring-plugins UNKNOWN).
const EXIT_UNPROVEN: u8 = 3;

/// The largest recording `check --from` reads: real ones are tens of KiB.
const MAX_RECORDING: u64 = 8 << 20;

fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    }
}

fn known_tap_daemons() -> Vec<String> {
    Knowledge::builtin()
        .daemons
        .iter()
        .flat_map(|d| d.names.iter().cloned())
        .collect()
}

fn gather(args: &ProbeArgs) -> Result<Evidence> {
    if let Some(why) = args.vsock_conflict() {
        bail!("{why}");
    }
    let opts = GatherOptions {
        iface: args.iface.clone(),
        selection: args.selection(),
        live: args.target.clone().map(|target| LiveRequest {
            target,
            protocol: args.protocol.protocol(),
            duration: args.duration,
            byte_cap: args.byte_cap,
            oversize: args.oversize,
            max_run_time: args.max_run_time,
            api: args.api.request(),
            uring_fixed_buffers: args.uring_fixed_buffers,
            timestamping: args.timestamping,
            vsock_buffer: args.vsock_buffer,
        }),
        pids: args.pids.clone(),
        path_target: None,
        path_routing: Default::default(),
        prefetched: Vec::new(),
        known_tap_daemons: known_tap_daemons(),
    };
    gather_with(opts, args.netns.clone())
}

fn gather_with(opts: GatherOptions, netns: Option<String>) -> Result<Evidence> {
    let request = Request { opts, netns };
    let stop = cli::signals::stop_flag();
    let mut progress = cli::progress::ProgressLine::stderr(std::io::stderr().is_terminal());
    let evidence = gather_request(&request, &stop, &mut |tick| progress.tick(tick));
    progress.clear();
    Ok(evidence?)
}

/// What a path names, for the refusal of anything but a regular file.
fn file_kind(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads at most [`MAX_RECORDING`] bytes of `input`; more is an error naming the limit.
fn read_capped(input: impl Read, name: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input
        .take(MAX_RECORDING + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {name}"))?;
    if bytes.len() as u64 > MAX_RECORDING {
        bail!("{name} is over the 8 MiB limit of a recording");
    }
    Ok(bytes)
}

/// The bytes of a recording: a regular file of at most 8 MiB, or stdin (`-`) up to the same
/// limit. Opened with O_NONBLOCK, so a FIFO without a writer cannot block the open, and
/// refused unless fstat says regular file.
fn read_recording(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        return read_capped(std::io::stdin().lock(), "stdin");
    }
    let name = path.display().to_string();
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("cannot open {name}"))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot stat {name}"))?;
    if !meta.file_type().is_file() {
        bail!(
            "{name} is {}: a recording is a regular file, or `-` for stdin",
            file_kind(meta.file_type())
        );
    }
    if meta.len() > MAX_RECORDING {
        bail!(
            "{name} is {} bytes, over the 8 MiB limit of a recording",
            meta.len()
        );
    }
    read_capped(file, &name)
}

/// A recording, parsed and validated before anything diagnoses it.
fn load(path: &Path) -> Result<Evidence> {
    let bytes = read_recording(path)?;
    let name = if path.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        path.display().to_string()
    };
    let evidence: Evidence = serde_json::from_slice(&bytes).with_context(|| {
        format!("{name} is not a zcdoctor recording (make one with `zcdoctor snapshot`)")
    })?;
    validate::validate(&evidence)
        .with_context(|| format!("{name} is not a valid zcdoctor recording"))?;
    Ok(evidence)
}

/// Runs a command; `Ok(code)` is the exit status, `Err` becomes exit 2. Standard output is
/// buffered and flushed once at the end.
fn run(cli: Cli) -> Result<u8> {
    let mut stdout = BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let code = dispatch(cli, &mut stdout)?;
    stdout.flush()?;
    Ok(code)
}

fn dispatch(cli: Cli, stdout: &mut dyn Write) -> Result<u8> {
    match cli.command {
        Command::Check(args) => check(&args, stdout),
        Command::Snapshot(args) => snapshot(&args, stdout),
        Command::Watch(args) => watch(&args, stdout),
        Command::Explain { code, out, color } => explain(&code, &out, color, stdout),
        Command::Checks { out, color } => checks(&out, color, stdout),
        Command::Probes { out } => probes(&out, stdout),
        Command::Fleet(args) => fleet(&args, stdout),
        Command::Schema => {
            serde_json::to_writer_pretty(&mut *stdout, &zcdoctor::report::json_schema())?;
            writeln!(stdout)?;
            Ok(0)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "zcdoctor", stdout);
            Ok(0)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(stdout)?;
            Ok(0)
        }
        Command::Sink(args) => sink(&args),
    }
}

/// Writes a command's whole output where `--output` says (atomically), or to standard output.
fn emit(out: &OutputArgs, text: &[u8], stdout: &mut dyn Write) -> Result<()> {
    match &out.output {
        Some(path) => cli::output::write_atomic(path, text)?,
        None => stdout.write_all(text)?,
    }
    Ok(())
}

/// Color only for a terminal: never into --output unless asked with --color always.
fn color_for(out: &OutputArgs, color: ColorChoice) -> bool {
    match out.output {
        Some(_) => matches!(color, ColorChoice::Always),
        None => use_color(color),
    }
}

fn snapshot(args: &SnapshotArgs, stdout: &mut dyn Write) -> Result<u8> {
    let evidence = gather(&args.probe)?;
    let text = serde_json::to_string_pretty(&evidence)?;
    if args.output.as_os_str() == "-" {
        writeln!(stdout, "{text}")?;
    } else {
        cli::output::write_atomic(&args.output, (text + "\n").as_bytes())?;
        let path = args.output.display().to_string();
        let what = match &evidence.vsock {
            Some(v) => v.target(),
            None if evidence.interface.is_empty() => "the processes".to_string(),
            None => evidence.interface.clone(),
        };
        eprintln!(
            "zcdoctor: recorded {} to {} (diagnose it with `zcdoctor check --from {}`)",
            escape::field(&what),
            escape::field(&path),
            escape::field(&path)
        );
    }
    Ok(0)
}

fn explain(code: &str, out: &OutputArgs, color: ColorChoice, stdout: &mut dyn Write) -> Result<u8> {
    let kb = Knowledge::builtin();
    match code.parse::<Code>().ok().and_then(|c| kb.entry(c)) {
        Some(entry) => {
            let mut text = Vec::with_capacity(4 << 10);
            match out.format() {
                Format::Json => {
                    serde_json::to_writer_pretty(&mut text, entry)?;
                    text.push(b'\n');
                }
                _ => render::explain(entry, color_for(out, color), &mut text)?,
            }
            emit(out, &text, stdout)?;
            Ok(0)
        }
        None => {
            let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
            bail!(
                "unknown finding code {code:?}; known codes: {}",
                codes.join(", ")
            )
        }
    }
}

fn checks(out: &OutputArgs, color: ColorChoice, stdout: &mut dyn Write) -> Result<u8> {
    let entries = &Knowledge::builtin().entries;
    let mut text = Vec::with_capacity(8 << 10);
    match out.format() {
        Format::Json => render::list_json(entries, &mut text)?,
        Format::Markdown => render::list_markdown(entries, &mut text)?,
        _ => render::list(entries, color_for(out, color), &mut text)?,
    }
    emit(out, &text, stdout)?;
    Ok(0)
}

fn probes(out: &OutputArgs, stdout: &mut dyn Write) -> Result<u8> {
    let watch = &zcdoctor::probe::watch::ABOUT;
    let rows: Vec<(&str, &str, &str, bool)> = probe::REGISTRY
        .iter()
        .map(|p| (p.name().as_str(), p.reads(), p.privileges(), p.required()))
        .chain([(watch.name, watch.reads, watch.privileges, false)])
        .collect();
    let mut text = Vec::with_capacity(4 << 10);
    if matches!(out.format(), Format::Json) {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, reads, privileges, required)| {
                serde_json::json!({"name": name, "reads": reads,
                    "privileges": privileges, "required": required})
            })
            .collect();
        serde_json::to_writer_pretty(&mut text, &list)?;
        text.push(b'\n');
    } else {
        for (name, reads, privileges, required) in rows {
            writeln!(
                text,
                "{name:<9} {reads}{}\n          privileges: {privileges}",
                if required { " (required)" } else { "" },
            )?;
        }
    }
    emit(out, &text, stdout)?;
    Ok(0)
}

fn sink(args: &SinkArgs) -> Result<u8> {
    zcdoctor::sink::run(
        args.listen,
        zcdoctor::sink::SinkOptions {
            max_conns: args.max_conns,
            idle_timeout: args.idle_timeout,
            duration: args.duration,
            min_rate: args.min_rate,
            max_conn_time: args.max_conn_time,
        },
        &cli::signals::stop_flag(),
    )?;
    Ok(0)
}

/// `zcdoctor check`. With `--format nagios` an error is a status line too (UNKNOWN, exit 3):
/// a monitoring engine reads exit 2 as CRITICAL.
fn check(args: &CheckArgs, stdout: &mut dyn Write) -> Result<u8> {
    let result = check_inner(args, stdout);
    match (result, args.out.format()) {
        (Err(e), Format::Nagios) if !is_broken_pipe(&e) => {
            error_line(&format!("{e:#}"));
            let line = nagios::error_line(&format!("{e:#}"));
            emit(&args.out, line.as_bytes(), stdout)?;
            Ok(nagios::Status::Unknown.exit_code())
        }
        (result, _) => result,
    }
}

fn check_inner(args: &CheckArgs, stdout: &mut dyn Write) -> Result<u8> {
    let evidence = match &args.from {
        Some(path) => {
            let e = load(path)?;
            if let Some(iface) = &args.probe.iface {
                if iface != &e.interface {
                    bail!(
                        "{} records interface {}, not {}",
                        path.display(),
                        escape::field(&e.interface),
                        escape::field(iface)
                    );
                }
            }
            e
        }
        None => gather(&args.probe)?,
    };
    let report = check::diagnose(
        &evidence,
        args.probe.protocol.protocol(),
        Knowledge::builtin(),
    );
    let format = args.out.format();
    let mut text: Vec<u8> = Vec::with_capacity(16 << 10);
    match format {
        Format::Json => render::json(&report, &mut text)?,
        Format::Prometheus => {
            render::prometheus::write(&report, std::time::SystemTime::now(), &mut text)?
        }
        Format::Nagios => nagios::write(&report, &mut text)?,
        // Markdown is refused while parsing (`OutputArgs::refusal`).
        Format::Human | Format::Markdown => {
            render::human(&report, color_for(&args.out, args.color), &mut text)?
        }
    }
    emit(&args.out, &text, stdout)?;
    if matches!(format, Format::Nagios) {
        return Ok(nagios::status(&report).exit_code());
    }
    let threshold = match args.fail_on {
        FailOn::Blocker => Some(Severity::Blocker),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Never => None,
    };
    let failed = threshold.is_some_and(|t| report.worst().is_some_and(|w| w >= t));
    // A proof was asked for (--target, or a recording of a probe) and not obtained.
    let unproven = report.verdict.basis == Basis::Unproven
        || (args.probe.target.is_some() && report.verdict.basis != Basis::Live);
    Ok(if failed {
        1
    } else if unproven {
        EXIT_UNPROVEN
    } else {
        0
    })
}

/// The static diagnosis beside a watch: IFACE's or the processes' (as `check`), or without
/// either and without a default route, only the host and kernel.
fn watch_static(args: &WatchArgs) -> Result<Evidence> {
    let mut selection = probe::Selection::All;
    if args.no_taps {
        selection =
            probe::Selection::Skip([zcdoctor::evidence::ProbeName::Taps].into_iter().collect());
    }
    let opts = GatherOptions {
        iface: args.iface.clone(),
        selection,
        live: None,
        pids: args.pids.clone(),
        path_target: None,
        path_routing: Default::default(),
        prefetched: Vec::new(),
        known_tap_daemons: known_tap_daemons(),
    };
    Ok(match gather_with(opts, args.netns.clone()) {
        Ok(e) => e,
        // Without IFACE the static diagnosis is a bonus: no default route is no reason not
        // to watch.
        Err(e) if args.iface.is_none() && args.pids.is_empty() => {
            eprintln!(
                "zcdoctor: no static diagnosis beside the watch: {}",
                escape::text(&format!("{e:#}"))
            );
            probe::bare_evidence()
        }
        Err(e) => return Err(e),
    })
}

/// The window's counts into `evidence.watch`; `false` when watch cannot run here (the one
/// line saying why is printed, and recorded as `watch.refused`).
fn watch_counts(args: &WatchArgs, evidence: &mut Evidence) -> bool {
    let request = zcdoctor::probe::watch::WatchRequest {
        duration: args.duration,
        pids: args.pids.clone(),
    };
    let duration = humantime::format_duration(args.duration).to_string();
    let mut announce = |functions: &[&str]| {
        eprintln!(
            "zcdoctor: watching {} for {duration} (Ctrl-C ends early)",
            functions.join(", ")
        );
    };
    let stop = cli::signals::stop_flag();
    match zcdoctor::probe::watch::run(&request, &stop, &mut announce) {
        Ok(mut w) => {
            w.iface = args.iface.clone();
            evidence.watch = Some(w);
            true
        }
        Err(why) => {
            eprintln!(
                "zcdoctor: watch cannot run here: {}",
                escape::text(&why.to_string())
            );
            evidence.watch = Some(zcdoctor::evidence::watch::WatchEvidence {
                refused: Some(why.to_string()),
                iface: args.iface.clone(),
                pids: args.pids.clone(),
                ..Default::default()
            });
            false
        }
    }
}

/// `zcdoctor watch`: the static diagnosis of IFACE / `--pid` (as `check`), then the kernel's
/// counts over the window. Exit 1 when a copy was seen in scope, 0 when none, 3 when watch
/// cannot run here (one line on stderr says what is missing; the static report still prints).
fn watch(args: &WatchArgs, stdout: &mut dyn Write) -> Result<u8> {
    let mut evidence = watch_static(args)?;
    let ran = watch_counts(args, &mut evidence);
    if let Some(path) = &args.record {
        let json = serde_json::to_vec_pretty(&evidence)?;
        cli::output::write_atomic(path, &json)
            .with_context(|| format!("cannot record the evidence to {}", path.display()))?;
    }
    let report = check::diagnose(
        &evidence,
        zcdoctor::evidence::Protocol::Udp,
        Knowledge::builtin(),
    );
    let mut text: Vec<u8> = Vec::with_capacity(16 << 10);
    match args.out.format() {
        Format::Json => render::json(&report, &mut text)?,
        Format::Prometheus => {
            render::prometheus::write(&report, std::time::SystemTime::now(), &mut text)?
        }
        _ => render::human(&report, color_for(&args.out, args.color), &mut text)?,
    }
    emit(&args.out, &text, stdout)?;
    if !ran {
        return Ok(EXIT_UNPROVEN);
    }
    let copied = report.watch.as_ref().is_some_and(|w| {
        w.reported_copies + w.silent_copies > 0 || w.senders.iter().any(|s| s.copied_sends > 0)
    });
    Ok(u8::from(copied))
}

/// `zcdoctor fleet`: unreadable reports are named in the view, never fatal.
fn fleet(args: &FleetArgs, stdout: &mut dyn Write) -> Result<u8> {
    let mut f = zcdoctor::fleet::Fleet::new(args.max_hosts);
    for path in &args.reports {
        if path.as_os_str() == "-" {
            f.add_lines(&mut std::io::stdin().lock(), "stdin");
        } else {
            f.add_path(path);
        }
    }
    let summary = f.summary();
    let mut text = Vec::with_capacity(16 << 10);
    match args.out.format() {
        Format::Json => zcdoctor::fleet::render::json(&summary, &mut text)?,
        Format::Markdown => text.extend(zcdoctor::fleet::render::markdown(&summary).bytes()),
        // Prometheus and nagios are refused while parsing (`OutputArgs::refusal`).
        _ => text.extend(zcdoctor::fleet::render::human(&summary).bytes()),
    }
    emit(&args.out, &text, stdout)?;
    Ok(0)
}

/// `check --format nagios` (or `--format=nagios`) on a command line clap refused.
fn asks_nagios(args: &[std::ffi::OsString]) -> bool {
    args.get(1).is_some_and(|a| a == "check")
        && (args
            .windows(2)
            .any(|w| w[0] == "--format" && w[1] == "nagios")
            || args.iter().any(|a| a == "--format=nagios"))
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// One line on stderr, untrusted text escaped and bounded.
fn error_line(message: &str) {
    eprintln!("zcdoctor: error: {}", escape::text(message));
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match cli::usage::parse_from(argv.iter().cloned()) {
        Ok(cli) => cli,
        Err(ParseError::Display(e)) => {
            // --help and --version, as clap prints them.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(ParseError::Usage { message, command }) => {
            let message = format!("{message} (see {command} --help)");
            error_line(&message);
            if asks_nagios(&argv) {
                print!("{}", nagios::error_line(&message));
                return ExitCode::from(nagios::Status::Unknown.exit_code());
            }
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            error_line(&format!("{e:#}"));
            ExitCode::from(2)
        }
    }
}
