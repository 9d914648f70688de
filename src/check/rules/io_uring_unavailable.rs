//! `io-uring-unavailable`: `--api io_uring` (or `both`) was asked for and io_uring cannot run
//! or cannot report copies: what the kernel lacks or forbids (a sysctl, seccomp, no SEND_ZC, no
//! copy reports).
//!
//! Reads the live probe's io_uring facts (set-up errors, `kernel.io_uring_disabled`) and the
//! kernel release.
//! Explanation and fix text: checks/findings/io-uring-unavailable.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::evidence::{Evidence, LiveProbe, UringUnavailable};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if let Step::LiveStart(m) = at {
        io_uring_unavailable(cx.ev, m.live, out);
    }
}

/// `--api io_uring` or `both` was asked for and io_uring cannot run or cannot report copies:
/// what is missing, from the probe's facts and the kernel version.
fn io_uring_unavailable(ev: &Evidence, live: &LiveProbe, out: &mut Findings) {
    let Some(s) = &live.io_uring else {
        return;
    };
    let Some(why) = &s.unavailable else {
        return;
    };
    let kernel = ev
        .kernel
        .version
        .map_or_else(|| "this kernel".to_string(), |v| format!("Linux {v}"));
    let err = |e: &Option<crate::evidence::OsError>| {
        e.as_ref().map_or(String::new(), |e| format!(" ({e})"))
    };
    let (summary, fix) = match why {
        UringUnavailable::DisabledBySysctl { value } => (
            format!(
                "io_uring is disabled by kernel.io_uring_disabled = {value}{}: {}",
                err(&s.setup_error),
                if *value >= 2 {
                    "no process may create a ring"
                } else {
                    "only members of kernel.io_uring_group and CAP_SYS_ADMIN may create a ring"
                }
            ),
            format!(
                "sysctl -w kernel.io_uring_disabled=0{}, if io_uring is wanted on this host; otherwise prove the path with `--api sendmsg`.",
                if *value == 1 {
                    " (or add the prober to the group in kernel.io_uring_group)"
                } else {
                    ""
                }
            ),
        ),
        UringUnavailable::Blocked => (
            format!(
                "io_uring_setup was refused{} although kernel.io_uring_disabled is {}: a seccomp filter (container runtimes block io_uring by default) or an LSM blocks it",
                err(&s.setup_error),
                s.disabled_sysctl.map_or("absent".to_string(), |v| v.to_string())
            ),
            "Run the probe outside the container, or with a seccomp profile that allows io_uring_setup, io_uring_enter and io_uring_register (e.g. `docker run --security-opt seccomp=PROFILE`).".to_string(),
        ),
        UringUnavailable::NoSyscall => (
            format!("{kernel} has no io_uring_setup{} (CONFIG_IO_URING off, or a filter answering ENOSYS)", err(&s.setup_error)),
            "Use a kernel built with CONFIG_IO_URING (6.2+ for copy reports); prove the path with `--api sendmsg` meanwhile.".to_string(),
        ),
        UringUnavailable::SetupFailed
            if s.setup_error.as_ref().map(|e| e.errno()) == Some(nix::errno::Errno::ENOMEM) =>
        {
            (
                format!(
                    "io_uring_setup failed{}: the ring's memory counts against RLIMIT_MEMLOCK of processes without CAP_IPC_LOCK",
                    err(&s.setup_error)
                ),
                "Raise the prober's locked-memory limit (`ulimit -l unlimited`) or run it with CAP_IPC_LOCK, then probe again.".to_string(),
            )
        }
        UringUnavailable::SetupFailed => (
            format!("io_uring_setup failed{}", err(&s.setup_error)),
            "Fix what the error names, then probe again.".to_string(),
        ),
        UringUnavailable::NoSendZc => (
            format!("{kernel} has no IORING_OP_SEND_ZC (added in Linux 6.0): io_uring applications cannot send zerocopy here"),
            "Run Linux 6.2 or newer for io_uring zerocopy with copy reports.".to_string(),
        ),
        UringUnavailable::NoReportUsage => (
            format!(
                "{kernel} has IORING_OP_SEND_ZC but refuses IORING_SEND_ZC_REPORT_USAGE{} (added in Linux 6.2): nobody can see whether io_uring zerocopy sends are copied",
                err(&s.report_usage_error)
            ),
            "Run Linux 6.2 or newer to see io_uring copies; the sendmsg probe (`--api sendmsg`) shows the same path's copies meanwhile.".to_string(),
        ),
    };
    out.raise(
        Code::IoUringUnavailable,
        summary,
        json!({"cause": why, "io_uring": s, "kernel": ev.kernel.version.map(|v| v.to_string()), "api": live.api}),
        vec![fix],
    );
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, run};
    use crate::evidence::{Protocol, UringUnavailable};

    fn unavailable(why: UringUnavailable) -> crate::vocab::Finding {
        let mut ev = fixture("live-uring-disabled-sysctl");
        let live = ev.live.as_mut().expect("live");
        if let Some(s) = live.io_uring.as_mut() {
            s.unavailable = Some(why);
        }
        let out = run(&ev, Protocol::Udp);
        assert!(!out.has(Code::LiveProbeNotRun));
        out.findings
            .into_iter()
            .find(|f| f.code == Code::IoUringUnavailable)
            .expect("io-uring-unavailable")
    }

    #[test]
    fn each_io_uring_cause_is_said() {
        let f = unavailable(UringUnavailable::DisabledBySysctl { value: 2 });
        assert!(
            f.summary.contains("kernel.io_uring_disabled = 2"),
            "{}",
            f.summary
        );
        assert!(f.remediation[0].starts_with("sysctl -w kernel.io_uring_disabled=0"));
        let f = unavailable(UringUnavailable::DisabledBySysctl { value: 1 });
        assert!(f.summary.contains("kernel.io_uring_group"), "{}", f.summary);
        let f = unavailable(UringUnavailable::Blocked);
        assert!(f.summary.contains("seccomp"), "{}", f.summary);
        let f = unavailable(UringUnavailable::NoSendZc);
        assert!(
            f.summary.contains("Linux 6.18 has no IORING_OP_SEND_ZC"),
            "{}",
            f.summary
        );
        let f = unavailable(UringUnavailable::NoReportUsage);
        assert!(f.summary.contains("(added in Linux 6.2)"), "{}", f.summary);
        let f = unavailable(UringUnavailable::NoSyscall);
        assert!(f.summary.contains("no io_uring_setup"), "{}", f.summary);
    }
}
