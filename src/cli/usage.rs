//! Parsing the command line into [`Cli`], with the refusals clap's attributes cannot say, and
//! clap's errors as one line naming the `--help` to read.

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches};

use super::args::{ApiArg, Cli, Command, Format, ProtocolArg};

/// A command line clap accepted but zcdoctor refuses, or clap's own error, as one line.
#[derive(Debug)]
pub enum ParseError {
    /// `--help` or `--version`: clap prints it, and the exit status is 0.
    Display(clap::Error),
    /// A usage error: `message` is one line; `command` names what `--help` to see.
    Usage { message: String, command: String },
}

/// `Cli::try_parse_from`, plus the refusals clap's attributes cannot say: `--json` beside
/// another `--format`, a format the command cannot print, `--oversize` with `--protocol tcp`.
pub fn parse_from<I, T>(args: I) -> Result<Cli, ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    // The subcommand named on the line, for the hint when clap's error has no usage.
    let named = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .find(|name| args.iter().skip(1).any(|a| a.as_os_str() == name.as_str()));
    let from_clap = |e| from_clap(e, named.as_deref());
    let matches = Cli::command()
        .try_get_matches_from(&args)
        .map_err(from_clap)?;
    let cli = Cli::from_arg_matches(&matches).map_err(from_clap)?;
    if let Some((name, _)) = matches.subcommand()
        && let Some(message) = refused(&cli)
    {
        return Err(ParseError::Usage {
            message,
            command: format!("zcdoctor {name}"),
        });
    }
    Ok(cli)
}

fn refused(cli: &Cli) -> Option<String> {
    use Format::{Human, Json, Markdown, Nagios, Prometheus};
    let probe = match &cli.command {
        Command::Check(args) => {
            if let Some(why) = args
                .out
                .refusal("check", &[Human, Json, Prometheus, Nagios])
            {
                return Some(why);
            }
            &args.probe
        }
        Command::Fleet(args) => return args.out.refusal("fleet", &[Human, Json, Markdown]),
        Command::Checks { out, .. } => return out.refusal("checks", &[Human, Json, Markdown]),
        Command::Explain { out, .. } => return out.refusal("explain", &[Human, Json]),
        Command::Probes { out } => return out.refusal("probes", &[Human, Json]),
        Command::Watch(args) => {
            return args.out.refusal("watch", &[Human, Json, Prometheus]);
        }
        Command::Snapshot(args) => &args.probe,
        _ => return None,
    };
    if probe.uring_fixed_buffers && matches!(probe.api, ApiArg::Sendmsg) {
        return Some(
            "the argument '--uring-fixed-buffers' cannot be used with '--api sendmsg' (add --api io_uring or --api both)"
                .to_string(),
        );
    }
    (probe.oversize && matches!(probe.protocol, ProtocolArg::Tcp)).then(|| {
        "the argument '--oversize' cannot be used with '--protocol tcp' (it sends UDP datagrams)"
            .to_string()
    })
}

fn from_clap(e: clap::Error, named: Option<&str>) -> ParseError {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => return ParseError::Display(e),
        _ => {}
    }
    // The rendered error without styles: `error: MESSAGE`, then tips and usage.
    let rendered = e.render().to_string();
    let message = match e.kind() {
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            "a command is required".to_string()
        }
        // The first paragraph, folded: `the following required arguments were not provided:`
        // is followed by the arguments on lines of their own.
        _ => {
            let message = rendered
                .lines()
                .map(str::trim)
                .skip_while(|l| l.is_empty())
                .take_while(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            match message.strip_prefix("error: ") {
                Some(m) => m.to_string(),
                None if message.is_empty() => e.kind().to_string(),
                None => message,
            }
        }
    };
    // `Usage: zcdoctor check [OPTIONS] [IFACE]`: the words before the first placeholder.
    let command = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| {
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| c.contains(' '))
        .or_else(|| named.map(|n| format!("zcdoctor {n}")))
        .unwrap_or_else(|| "zcdoctor".to_string());
    ParseError::Usage { message, command }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(args: &[&str]) -> String {
        match parse_from(args) {
            Err(ParseError::Usage { message, command }) => format!("{message} | {command}"),
            Err(ParseError::Display(e)) => panic!("display: {e}"),
            Ok(_) => panic!("accepted: {args:?}"),
        }
    }

    #[test]
    fn conflicting_options_are_refused() {
        for extra in [
            &["--target", "198.18.0.2"][..],
            &["--skip", "taps"],
            &["--only", "taps"],
            &["--no-taps"],
        ] {
            let mut args = vec!["zcdoctor", "check", "--from", "x.json"];
            args.extend_from_slice(extra);
            let u = usage(&args);
            assert!(u.contains("--from"), "{u}");
            assert!(u.ends_with("| zcdoctor check"), "{u}");
        }
        for opt in [
            &["--duration", "2s"][..],
            &["--byte-cap", "10"],
            &["--oversize"],
            &["--api", "io_uring"],
            &["--api", "both"],
            &["--uring-fixed-buffers"],
        ] {
            let mut args = vec!["zcdoctor", "check"];
            args.extend_from_slice(opt);
            assert!(usage(&args).contains("--target"), "{args:?}");
        }
        let u = usage(&[
            "zcdoctor",
            "snapshot",
            "-o",
            "-",
            "--target",
            "198.18.0.2",
            "--protocol",
            "tcp",
            "--oversize",
        ]);
        assert!(
            u.contains("--oversize") && u.ends_with("| zcdoctor snapshot"),
            "{u}"
        );
        assert!(
            parse_from([
                "zcdoctor",
                "check",
                "--target",
                "198.18.0.2",
                "--duration",
                "2s"
            ])
            .is_ok()
        );
        let u = usage(&[
            "zcdoctor",
            "check",
            "--target",
            "198.18.0.2",
            "--uring-fixed-buffers",
        ]);
        assert!(u.contains("--api sendmsg"), "{u}");
        for api in ["io_uring", "io-uring", "both", "sendmsg"] {
            assert!(
                parse_from(["zcdoctor", "check", "--target", "198.18.0.2", "--api", api]).is_ok(),
                "{api}"
            );
        }
        assert!(
            parse_from([
                "zcdoctor",
                "check",
                "--target",
                "198.18.0.2",
                "--api",
                "io_uring",
                "--uring-fixed-buffers"
            ])
            .is_ok()
        );
    }

    /// One spelling per option: `check`, `fleet` and `checks` take the same --format, --json
    /// and --output; each refuses a format it cannot print, and --json beside another format.

    #[test]
    fn output_options_are_shared() {
        for (cmd, offers, refuses) in [
            (
                "check",
                &["human", "json", "prometheus", "nagios"][..],
                &["markdown"][..],
            ),
            (
                "fleet",
                &["human", "json", "markdown"],
                &["prometheus", "nagios"],
            ),
            (
                "checks",
                &["human", "json", "markdown"],
                &["prometheus", "nagios"],
            ),
            ("explain", &["human", "json"], &["markdown", "nagios"]),
            ("probes", &["human", "json"], &["markdown", "prometheus"]),
        ] {
            let line = |extra: &[&'static str]| {
                let mut args = vec!["zcdoctor", cmd];
                match cmd {
                    "fleet" => args.push("r.json"),
                    "explain" => args.push("optmem-low"),
                    _ => {}
                }
                args.extend_from_slice(extra);
                args
            };
            for f in offers {
                assert!(
                    parse_from(line(&["--format", f, "-o", "out"])).is_ok(),
                    "{cmd} {f}"
                );
            }
            for f in refuses {
                let u = usage(&line(&["--format", f]));
                assert!(u.contains(&format!("not --format {f}")), "{u}");
            }
            assert!(parse_from(line(&["--json", "--output", "out"])).is_ok());
            assert!(parse_from(line(&["--json", "--format", "json"])).is_ok());
            assert!(usage(&line(&["--json", "--format", "human"])).contains("'--json'"));
        }
        assert!(parse_from(["zcdoctor", "check", "--from", "x.json", "--json"]).is_ok());
    }

    #[test]
    fn usage_errors_are_one_line() {
        let u = usage(&["zcdoctor", "check", "--bogus"]);
        assert_eq!(u, "unexpected argument '--bogus' found | zcdoctor check");
        assert_eq!(usage(&["zcdoctor"]), "a command is required | zcdoctor");
        assert!(matches!(
            parse_from(["zcdoctor", "--help"]),
            Err(ParseError::Display(_))
        ));
        assert!(matches!(
            parse_from(["zcdoctor", "--version"]),
            Err(ParseError::Display(_))
        ));
    }
}
