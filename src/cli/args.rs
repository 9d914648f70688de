//! The command line: options, their parsing, and what they select.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use super::parse::{parse_duration, parse_target};
use clap::{Args, Parser, Subcommand, ValueEnum};

use zcdoctor::evidence::{ApiRequest, ProbeName, Protocol};
use zcdoctor::probe::{Selection, TargetSpec};

#[derive(Parser)]
#[command(
    name = "zcdoctor",
    version,
    about = "Tells why MSG_ZEROCOPY sends are copied (zc=n), proves it live, and says how to fix it",
    after_help = "Exit status: 0 nothing at or above --fail-on, 1 a finding at or above it, 2 error, 3 --target given and the live probe proved nothing. With --format nagios: the plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."
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
    /// Count, in the kernel, every copy of the host's real zerocopy traffic for a while and
    /// attribute each to its cause and sender (needs root, kprobes and BPF).
    Watch(WatchArgs),
    /// Explain a finding code: what it means, why it copies, how to fix it.
    Explain {
        /// A finding code, e.g. tap-forces-copy (see `zcdoctor checks`).
        code: String,
        #[command(flatten)]
        out: OutputArgs,
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
    },
    /// List every finding code with its usual severity (human, json or markdown).
    Checks {
        #[command(flatten)]
        out: OutputArgs,
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
    },
    /// List the probes: what each reads and the privileges it needs (select with --skip/--only).
    Probes {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Receive and discard live-probe traffic (TCP and UDP) on ADDR:PORT.
    Sink(SinkArgs),
    /// Summarize many JSON reports (files, directories of *.json, or `-` for JSON lines on
    /// stdin): hosts per verdict, findings with their hosts, contradictions, unreadable reports.
    Fleet(FleetArgs),
    /// Print the JSON Schema of `check --json` reports.
    Schema,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[derive(Args)]
pub struct FleetArgs {
    /// Reports: JSON files, directories (their *.json files), or `-` (JSON lines on stdin).
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Most hosts named per verdict and per finding ("and N more" after them).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_hosts: usize,
}

/// The output options of every command that prints a report or a listing (`check`, `fleet`,
/// `checks`): one spelling each.
#[derive(Args, Clone)]
pub struct OutputArgs {
    /// Print one JSON document (same as --format json).
    #[arg(long)]
    pub json: bool,
    /// Output: human (the default), json, markdown (fleet, checks), prometheus (check: text
    /// exposition for node_exporter's textfile collector) or nagios (check: a monitoring-plugin
    /// status line; the exit status then follows the plugin convention: 0 OK, 1 WARNING, 2
    /// CRITICAL, 3 UNKNOWN).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the output to FILE atomically (a temporary file in the same directory, synced,
    /// then renamed over FILE) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl OutputArgs {
    /// The format asked for: `--json` is `--format json`; human by default.
    pub fn format(&self) -> Format {
        match (self.json, self.format) {
            (true, _) => Format::Json,
            (false, Some(f)) => f,
            (false, None) => Format::Human,
        }
    }

    /// Why `command` cannot print what was asked: `--json` beside another `--format`, or a
    /// format the command has no renderer for.
    pub(super) fn refusal(&self, command: &str, offers: &[Format]) -> Option<String> {
        let name = |f: Format| {
            f.to_possible_value()
                .map_or(String::new(), |v| v.get_name().to_string())
        };
        if let (true, Some(f)) = (self.json, self.format)
            && !matches!(f, Format::Json)
        {
            return Some(format!(
                "the argument '--json' cannot be used with '--format {}'",
                name(f)
            ));
        }
        let f = self.format();
        (!offers.contains(&f)).then(|| {
            let names: Vec<String> = offers.iter().map(|f| name(*f)).collect();
            let (last, first) = names.split_last().unwrap_or((&names[0], &[]));
            format!(
                "`zcdoctor {command}` prints {} or {last}, not --format {}",
                first.join(", "),
                name(f)
            )
        })
    }
}

#[derive(Args, Clone)]
pub struct ProbeArgs {
    /// Interface to diagnose; default: the device of the default route.
    pub iface: Option<String>,
    /// Send a short, bounded burst of MSG_ZEROCOPY traffic to ADDR[:PORT] (or `gateway[:PORT]`,
    /// the interface's default gateway) and read every completion: proves the verdict. Or
    /// `vsock:CID:PORT` (CID a number, `local` or `host`): MSG_ZEROCOPY sends of 4 KiB to
    /// 1 MiB over one vsock stream to a listener that reads and discards.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = parse_target)]
    pub target: Option<TargetSpec>,
    /// Traffic the diagnosis is for, and the live probe sends.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Udp)]
    pub protocol: ProtocolArg,
    /// Length of each live-probe phase (copy, then zerocopy), e.g. 1s, 500ms. Under 100ms
    /// the probe proves nothing (exit 3).
    #[arg(long, value_parser = parse_duration, default_value = "1s", requires = "target")]
    pub duration: Duration,
    /// Bound on the whole live probe (every pattern and phase), at most 1h; when reached the
    /// probe stops, reports `max_run_time` as the phase's end and proves nothing (exit 3).
    #[arg(long, value_parser = parse_duration, default_value = "10m", requires = "target")]
    pub max_run_time: Duration,
    /// Most bytes one live-probe phase may send.
    #[arg(long, default_value_t = 8 << 30, requires = "target")]
    pub byte_cap: u64,
    /// Live probe, UDP: also send datagrams one byte over the path MTU without UDP_SEGMENT,
    /// to show what IP fragmentation costs.
    #[arg(long, requires = "target")]
    pub oversize: bool,
    /// Live probe: send with sendmsg(MSG_ZEROCOPY), with io_uring (IORING_OP_SEND_ZC and
    /// IORING_SEND_ZC_REPORT_USAGE, Linux 6.2+), or both in turn.
    #[arg(long, value_enum, default_value_t = ApiArg::Sendmsg, requires = "target")]
    pub api: ApiArg,
    /// Live probe, io_uring: send the zerocopy phase from a registered buffer
    /// (IORING_RECVSEND_FIXED_BUF), as fast io_uring senders do.
    #[arg(long, requires = "target")]
    pub uring_fixed_buffers: bool,
    /// Live probe: ask for transmit timestamps on its sockets (SO_TIMESTAMPING TX_SCHED,
    /// TX_SOFTWARE, SOFTWARE, OPT_ID, without OPT_TSONLY), as an application that timestamps
    /// its sends does, to measure what that costs: the timestamps are read and dropped.
    #[arg(long, requires = "target")]
    pub timestamping: bool,
    /// vsock probe: set its socket's SO_VM_SOCKETS_BUFFER_SIZE (and maximum) to BYTES before
    /// connecting, as an application that raised it does; proves a larger buffer before the
    /// application changes (Linux caps a sender's credit at its own buffer too).
    #[arg(long, value_name = "BYTES", requires = "target")]
    pub vsock_buffer: Option<u64>,
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
    /// memory, its memlock limit, its io_uring instances (repeatable). Without IFACE and
    /// --target: every way out of its connected zerocopy sockets, from their namespace, routed
    /// as the kernel routes them.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Diagnose inside another network namespace: a NAME under /run/netns, a PATH to a
    /// namespace file, or the PID of a process living there (no `ip netns exec` needed).
    #[arg(long, value_name = "NAME|PATH|PID")]
    pub netns: Option<String>,
}

impl ProbeArgs {
    /// Why these options cannot go together around a vsock target (`--target vsock:…`
    /// diagnoses no IP path and sends only with sendmsg; `--vsock-buffer` needs it).
    pub fn vsock_conflict(&self) -> Option<String> {
        let vsock = self.target.as_ref().is_some_and(TargetSpec::is_vsock);
        if !vsock {
            return self.vsock_buffer.map(|_| {
                "--vsock-buffer sizes the vsock probe's socket: it needs --target vsock:CID:PORT"
                    .to_string()
            });
        }
        [
            (self.iface.is_some(), "an interface"),
            (self.netns.is_some(), "--netns"),
            (self.oversize, "--oversize"),
            (self.timestamping, "--timestamping"),
            (self.uring_fixed_buffers, "--uring-fixed-buffers"),
            (!self.api.request().is_sendmsg(), "--api io_uring"),
            (self.protocol.protocol() != Protocol::Udp, "--protocol tcp"),
        ]
        .into_iter()
        .find_map(|(given, what)| given.then_some(what))
        .map(|what| format!("--target vsock:… cannot be combined with {what}: a vsock stream has no IP path, and the vsock probe sends with sendmsg(MSG_ZEROCOPY)"))
    }
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
    #[command(flatten)]
    pub out: OutputArgs,
    /// Color: auto means only on a terminal and when NO_COLOR is unset.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Exit 1 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = FailOn::Blocker)]
    pub fail_on: FailOn,
    /// Diagnose a recording made by `zcdoctor snapshot` instead of this host (`-`: stdin; at
    /// most 8 MiB, a regular file or stdin).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["target", "skip", "only", "no_taps", "duration", "byte_cap", "oversize", "pids", "max_run_time", "netns", "api", "uring_fixed_buffers", "timestamping"]
    )]
    pub from: Option<PathBuf>,
}

#[derive(Args)]
pub struct WatchArgs {
    /// Report only copies on the devices of this interface's path (default: every device).
    pub iface: Option<String>,
    /// Report only this process's sockets (repeatable); its static diagnosis is `check --pid`'s.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,
    /// Diagnose IFACE in this network namespace (a name under /run/netns, a path or a pid).
    #[arg(long, value_name = "NAME|PATH|PID")]
    pub netns: Option<String>,
    /// How long to count (at most 1h); Ctrl-C ends the window early and reports.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Do not scan packet taps (the tap culprits of tap copies are then not named).
    #[arg(long)]
    pub no_taps: bool,
    /// Also record the evidence, the window's counts included, to FILE (for `check --from`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
    /// Color: auto means only on a terminal and when NO_COLOR is unset.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
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
    /// Close a TCP connection that sends fewer bytes a second than this, averaged over 3 s
    /// (slow-drip and silent peers cannot hold the slots); 0: no minimum.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub min_rate: u64,
    /// Close a TCP connection open this long (raise it for live probes with a long --duration).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    pub max_conn_time: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Markdown,
    Prometheus,
    Nagios,
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
pub enum ApiArg {
    Sendmsg,
    #[value(name = "io_uring", alias = "io-uring")]
    IoUring,
    Both,
}

impl ApiArg {
    pub fn request(self) -> ApiRequest {
        match self {
            ApiArg::Sendmsg => ApiRequest::Sendmsg,
            ApiArg::IoUring => ApiRequest::IoUring,
            ApiArg::Both => ApiRequest::Both,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV6;

    #[test]
    fn port_zero_is_refused() {
        for s in [
            "198.18.0.2:0",
            "[2001:db8::2]:0",
            "gateway:0",
            "[fe80::1%1]:0",
        ] {
            let e = parse_target(s).expect_err(s);
            assert!(e.contains("port 0"), "{s}: {e}");
        }
    }

    #[test]
    fn scoped_link_local_targets_parse() {
        let want = |port, scope| {
            Ok(TargetSpec::Addr(SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().unwrap(),
                port,
                0,
                scope,
            ))))
        };
        assert_eq!(parse_target("[fe80::1%3]:7"), want(7, 3));
        assert_eq!(parse_target("fe80::1%3"), want(9, 3));
        assert_eq!(parse_target("[fe80::1%3]"), want(9, 3));
        // A name is resolved by the live probe, in the namespace it runs in.
        let named = |port| {
            Ok(TargetSpec::ScopedByName {
                ip: "fe80::1".parse().unwrap(),
                port,
                iface: "lo".to_string(),
            })
        };
        assert_eq!(parse_target("[fe80::1%lo]:9"), named(9));
        assert_eq!(parse_target("fe80::1%lo"), named(9));
        assert!(parse_target("[fe80::1%]:9").is_err());
        assert!(parse_target("[fe80::1%0]:9").is_err());
        assert!(parse_target("[fe80::1%a-name-over-15-bytes]:9").is_err());
        assert!(parse_target("[fe80::1%a/b]:9").is_err());
        assert!(parse_target("198.18.0.2%lo").is_err());
        assert!(parse_target("[fe80::1%lo]x").is_err());
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
}
