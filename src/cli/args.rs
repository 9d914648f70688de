//! The command line: options, their parsing, and what they select.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use zcdoctor::evidence::{ProbeName, Protocol};
use zcdoctor::probe::{Selection, TargetSpec};

#[derive(Parser)]
#[command(
    name = "zcdoctor",
    version,
    about = "Tells why MSG_ZEROCOPY sends are copied (zc=n), proves it live, and says how to fix it",
    after_help = "Exit status: 0 nothing at or above --fail-on, 1 a finding at or above it, 2 error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// List the probes: what each reads and the privileges it needs (select with --skip/--only).
    Probes,
    /// Receive and discard live-probe traffic (TCP and UDP) on ADDR:PORT.
    Sink(SinkArgs),
}

#[derive(Args, Clone)]
pub struct ProbeArgs {
    /// Interface to diagnose; default: the device of the default route.
    pub iface: Option<String>,
    /// Send a short, bounded burst of MSG_ZEROCOPY traffic to ADDR[:PORT] (or `gateway[:PORT]`,
    /// the interface's default gateway) and read every completion: proves the verdict.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_target)]
    pub target: Option<TargetSpec>,
    /// Traffic the diagnosis is for, and the live probe sends.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Udp)]
    pub protocol: ProtocolArg,
    /// Length of each live-probe phase (copy, then zerocopy), e.g. 1s, 500ms. Under 100ms
    /// the probe proves nothing (exit 3).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub duration: Duration,
    /// Bound on the whole live probe (every pattern and phase), at most 1h; when reached the
    /// probe stops, reports `max_run_time` as the phase's end and proves nothing (exit 3).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub max_run_time: Duration,
    /// Most bytes one live-probe phase may send.
    #[arg(long, default_value_t = 8 << 30)]
    pub byte_cap: u64,
    /// Live probe, UDP: also send datagrams one byte over the path MTU without UDP_SEGMENT,
    /// to show what IP fragmentation costs.
    #[arg(long)]
    pub oversize: bool,
    /// Do not run probe NAME (repeatable; see `zcdoctor probes`).
    #[arg(long, value_name = "NAME", conflicts_with = "only")]
    pub skip: Vec<ProbeName>,
    /// Run only probe NAME and the required ones (repeatable).
    #[arg(long, value_name = "NAME")]
    pub only: Vec<ProbeName>,
    /// Do not scan packet taps (same as --skip taps).
    #[arg(long, conflicts_with = "only")]
    pub no_taps: bool,
    /// Also diagnose the application with process id PID: its sockets' SO_ZEROCOPY and option
    /// memory, its memlock limit, its io_uring instances (repeatable).
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
}

impl ProbeArgs {
    pub fn selection(&self) -> Selection {
        if !self.only.is_empty() {
            return Selection::Only(self.only.iter().copied().collect());
        }
        let mut skip: BTreeSet<ProbeName> = self.skip.iter().copied().collect();
        if self.no_taps {
            skip.insert(ProbeName::Taps);
        }
        if skip.is_empty() {
            Selection::All
        } else {
            Selection::Skip(skip)
        }
    }
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Print one JSON document (same as --format json).
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Color: auto means only on a terminal and when NO_COLOR is unset.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = FailOn::Blocker)]
    pub fail_on: FailOn,
    /// Diagnose a recording made by `zcdoctor snapshot` instead of this host.
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
}

#[derive(Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Where to write the evidence (`-` for stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Args)]
pub struct SinkArgs {
    /// Address and port to listen on (TCP and UDP).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Most concurrent TCP connections.
    #[arg(long, default_value_t = 16)]
    pub max_conns: usize,
    /// Close a connection idle this long.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub idle_timeout: Duration,
    /// Exit after this long (default: until Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FailOn {
    Blocker,
    Warning,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ProtocolArg {
    Udp,
    Tcp,
}

impl ProtocolArg {
    pub fn protocol(self) -> Protocol {
        match self {
            ProtocolArg::Udp => Protocol::Udp,
            ProtocolArg::Tcp => Protocol::Tcp,
        }
    }
}

/// `ADDR`, `ADDR:PORT`, `[V6]:PORT`, `gateway`, `gateway:PORT`; the port defaults to 9 (discard).
pub fn parse_target(s: &str) -> Result<TargetSpec, String> {
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

/// `1s`, `500ms`, `2m`, `1m30s` (humantime), or a bare number of seconds; over 0, at most 1 hour.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs <= 3600.0 => {
            Duration::from_secs_f64(secs)
        }
        Ok(_) => {
            return Err(format!(
                "{s:?}: a duration must be over 0 and at most 1 hour"
            ));
        }
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?} is not a duration ({e}): use e.g. 500ms, 1s, 2m"))?,
    };
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err(format!(
            "{s:?}: a duration must be over 0 and at most 1 hour"
        ));
    }
    Ok(d)
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
    fn probe_selection() {
        let cli = Cli::parse_from(["zcdoctor", "check", "--skip", "taps", "--skip", "sysctls"]);
        let Command::Check(args) = cli.command else {
            panic!("check");
        };
        assert_eq!(
            args.probe.selection(),
            Selection::Skip(BTreeSet::from([ProbeName::Taps, ProbeName::Sysctls]))
        );
        let cli = Cli::parse_from(["zcdoctor", "check", "--no-taps"]);
        let Command::Check(args) = cli.command else {
            panic!("check");
        };
        assert_eq!(
            args.probe.selection(),
            Selection::Skip(BTreeSet::from([ProbeName::Taps]))
        );
        assert!(
            Cli::try_parse_from(["zcdoctor", "check", "--only", "taps", "--skip", "live"]).is_err()
        );
        assert!(Cli::try_parse_from(["zcdoctor", "check", "--skip", "nonsense"]).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("NaN").is_err());
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("61m").is_err());
        assert!(parse_duration("fast").is_err());
    }
}
