//! zcdoctor command line. Exit status: 0 no finding at or above --fail-on, 1 there is one,
//! 2 usage or runtime error (never a panic or a backtrace).

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use zcdoctor::check::{self, Protocol};
use zcdoctor::evidence::Evidence;
use zcdoctor::knowledge::Knowledge;
use zcdoctor::probe::{self, GatherOptions, LiveRequest, TargetSpec};
use zcdoctor::render;
use zcdoctor::report::Severity;

mod cli;

#[derive(Parser)]
#[command(
    name = "zcdoctor",
    version,
    about = "Tells why MSG_ZEROCOPY sends are copied (zc=n), proves it live, and says how to fix it",
    after_help = "Exit status: 0 nothing at or above --fail-on, 1 a finding at or above it, 2 error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Diagnose an interface (default: the device of the default route).
    Check(CheckArgs),
    /// Record the evidence of an interface to a file, to diagnose elsewhere with `check --from`.
    Snapshot(SnapshotArgs),
    /// Explain a finding code: what it means, why it copies, how to fix it.
    Explain {
        /// A finding code, e.g. tap-forces-copy (see `zcdoctor checks`).
        code: String,
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
    },
    /// List every finding code with its usual severity.
    Checks {
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
    },
    /// Receive and discard live-probe traffic (TCP and UDP) on ADDR:PORT.
    Sink(SinkArgs),
}

#[derive(Args, Clone)]
struct ProbeArgs {
    /// Interface to diagnose; default: the device of the default route.
    iface: Option<String>,
    /// Send a short, bounded burst of MSG_ZEROCOPY traffic to ADDR[:PORT] (or `gateway[:PORT]`,
    /// the interface's default gateway) and read every completion: proves the verdict.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_target)]
    target: Option<TargetSpec>,
    /// Traffic the diagnosis is for, and the live probe sends.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Udp)]
    protocol: ProtocolArg,
    /// Length of each live-probe phase (copy, then zerocopy), e.g. 1s, 500ms.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    duration: Duration,
    /// Most bytes one live-probe phase may send.
    #[arg(long, default_value_t = 8 << 30)]
    byte_cap: u64,
    /// Live probe, UDP: also send datagrams one byte over the path MTU without UDP_SEGMENT,
    /// to show what IP fragmentation costs.
    #[arg(long)]
    oversize: bool,
    /// Do not scan packet taps.
    #[arg(long)]
    no_taps: bool,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    probe: ProbeArgs,
    /// Print one JSON document (same as --format json).
    #[arg(long)]
    json: bool,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Color: auto means only on a terminal and when NO_COLOR is unset.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = FailOn::Blocker)]
    fail_on: FailOn,
    /// Diagnose a recording made by `zcdoctor snapshot` instead of this host.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
}

#[derive(Args)]
struct SnapshotArgs {
    #[command(flatten)]
    probe: ProbeArgs,
    /// Where to write the evidence (`-` for stdout).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Args)]
struct SinkArgs {
    /// Address and port to listen on (TCP and UDP).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Most concurrent TCP connections.
    #[arg(long, default_value_t = 16)]
    max_conns: usize,
    /// Close a connection idle this long.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    idle_timeout: Duration,
    /// Exit after this long (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
enum FailOn {
    Blocker,
    Warning,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Udp,
    Tcp,
}

impl ProtocolArg {
    fn protocol(self) -> Protocol {
        match self {
            ProtocolArg::Udp => Protocol::Udp,
            ProtocolArg::Tcp => Protocol::Tcp,
        }
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT`, `gateway`, `gateway:PORT`; the port defaults to 9 (discard).
fn parse_target(s: &str) -> Result<TargetSpec, String> {
    const DISCARD: u16 = 9;
    let bad =
        || format!("{s:?} is not an address: use ADDR, ADDR:PORT, [IPV6]:PORT or gateway[:PORT]");
    if let Some(rest) = s.strip_prefix("gateway") {
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if rest.is_empty() => DISCARD,
            None => return Err(bad()),
        };
        return Ok(TargetSpec::Gateway { port });
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(TargetSpec::Addr(SocketAddr::new(ip, DISCARD)));
    }
    s.parse::<SocketAddr>()
        .map(TargetSpec::Addr)
        .map_err(|_| bad())
}

/// `1s`, `500ms`, `2m`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration: use e.g. 500ms, 1s, 2m");
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return Err(format!(
            "{s:?}: a duration must be over 0 and at most 1 hour"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

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
        taps: !args.no_taps,
        live: args.target.clone().map(|target| LiveRequest {
            target,
            protocol: args.protocol.protocol(),
            duration: args.duration,
            byte_cap: args.byte_cap,
            oversize: args.oversize,
        }),
    };
    let stop = cli::install_interrupt_handler();
    let mut progress = cli::progress::ProgressLine::stderr(std::io::stderr().is_terminal());
    let evidence = probe::gather(&opts, stop, &mut |tick| progress.tick(tick));
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
            Ok(u8::from(failed))
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
            match kb.entry(&code) {
                Some(entry) => {
                    render::explain(entry, use_color(color), &mut stdout)?;
                    Ok(0)
                }
                None => {
                    let codes: Vec<&str> = kb.entries.iter().map(|e| e.code.as_str()).collect();
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
        Command::Sink(args) => {
            zcdoctor::sink::run(
                args.listen,
                zcdoctor::sink::SinkOptions {
                    max_conns: args.max_conns,
                    idle_timeout: args.idle_timeout,
                    duration: args.duration,
                },
                cli::install_interrupt_handler(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            parse_target("198.18.0.2"),
            Ok(TargetSpec::Addr("198.18.0.2:9".parse().unwrap()))
        );
        assert_eq!(
            parse_target("198.18.0.2:5201"),
            Ok(TargetSpec::Addr("198.18.0.2:5201".parse().unwrap()))
        );
        assert_eq!(
            parse_target("[2001:db8::2]:7"),
            Ok(TargetSpec::Addr("[2001:db8::2]:7".parse().unwrap()))
        );
        assert_eq!(
            parse_target("2001:db8::2"),
            Ok(TargetSpec::Addr("[2001:db8::2]:9".parse().unwrap()))
        );
        assert_eq!(parse_target("gateway"), Ok(TargetSpec::Gateway { port: 9 }));
        assert_eq!(
            parse_target("gateway:80"),
            Ok(TargetSpec::Gateway { port: 80 })
        );
        assert!(parse_target("gatewayx").is_err());
        assert!(parse_target("198.18.0.300").is_err());
        assert!(parse_target("host.example").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1h").is_err());
        assert!(parse_duration("fast").is_err());
    }
}
