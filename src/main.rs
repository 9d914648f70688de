//! zcdoctor command line. Exit status, first that applies: 2 usage or runtime error (never a
//! panic or a backtrace), 1 a finding at or above --fail-on, 3 --target was given and the live
//! probe did not prove the verdict (the monitoring-plugins UNKNOWN), 0 otherwise.

mod cli;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;

use cli::args::{Cli, ColorChoice, Command, FailOn, Format, ProbeArgs};
use zcdoctor::check::{self, Code};
use zcdoctor::evidence::Evidence;
use zcdoctor::knowledge::Knowledge;
use zcdoctor::probe::{self, GatherOptions, LiveRequest};
use zcdoctor::render;
use zcdoctor::report::{Basis, Severity};

/// `--target` was given and the live probe proved nothing (monitoring-plugins UNKNOWN).
const EXIT_UNPROVEN: u8 = 3;

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

fn gather(args: &ProbeArgs) -> Result<Evidence> {
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
        }),
        pids: args.pids.clone(),
    };
    let stop = cli::signals::stop_flag();
    let mut progress = cli::progress::ProgressLine::stderr(std::io::stderr().is_terminal());
    let evidence = probe::gather(&opts, &stop, &mut |tick| progress.tick(tick));
    progress.clear();
    Ok(evidence?)
}

fn load(path: &PathBuf) -> Result<Evidence> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a zcdoctor recording (make one with `zcdoctor snapshot`)",
            path.display()
        )
    })
}

/// Runs a command; `Ok(code)` is the exit status, `Err` becomes exit 2.
fn run(cli: Cli) -> Result<u8> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Check(args) => {
            let evidence = match &args.from {
                Some(path) => {
                    let e = load(path)?;
                    if let Some(iface) = &args.probe.iface {
                        if iface != &e.interface {
                            bail!(
                                "{} records interface {}, not {iface}",
                                path.display(),
                                e.interface
                            );
                        }
                    }
                    e
                }
                None => gather(&args.probe)?,
            };
            let report = check::diagnose(&evidence, args.probe.protocol.protocol());
            match (args.json, args.format) {
                (true, _) | (false, Format::Json) => render::json(&report, &mut stdout)?,
                (false, Format::Human) => {
                    render::human(&report, use_color(args.color), &mut stdout)?
                }
            }
            stdout.flush()?;
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
        Command::Snapshot(args) => {
            let evidence = gather(&args.probe)?;
            let text = serde_json::to_string_pretty(&evidence)?;
            if args.output.as_os_str() == "-" {
                writeln!(stdout, "{text}")?;
            } else {
                std::fs::write(&args.output, text + "\n")
                    .with_context(|| format!("cannot write {}", args.output.display()))?;
                eprintln!(
                    "zcdoctor: recorded {} to {} (diagnose it with `zcdoctor check --from {}`)",
                    evidence.interface,
                    args.output.display(),
                    args.output.display()
                );
            }
            Ok(0)
        }
        Command::Explain { code, color } => {
            let kb = Knowledge::get();
            match code.parse::<Code>().ok().and_then(|c| kb.entry(c)) {
                Some(entry) => {
                    render::explain(entry, use_color(color), &mut stdout)?;
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
        Command::Checks { color } => {
            render::list(&Knowledge::get().entries, use_color(color), &mut stdout)?;
            Ok(0)
        }
        Command::Probes => {
            for p in probe::REGISTRY {
                writeln!(
                    stdout,
                    "{:<9} {}{}\n          privileges: {}",
                    p.name(),
                    p.reads(),
                    if p.required() { " (required)" } else { "" },
                    p.privileges()
                )?;
            }
            Ok(0)
        }
        Command::Sink(args) => {
            zcdoctor::sink::run(
                args.listen,
                zcdoctor::sink::SinkOptions {
                    max_conns: args.max_conns,
                    idle_timeout: args.idle_timeout,
                    duration: args.duration,
                },
                &cli::signals::stop_flag(),
            )?;
            Ok(0)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zcdoctor: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
