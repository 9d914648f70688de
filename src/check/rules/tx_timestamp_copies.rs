//! `tx-timestamp-copies`: a process's zerocopy sockets that ask for transmit timestamps
//! without `SOF_TIMESTAMPING_OPT_TSONLY`, so each timestamp is looped back on a clone of the
//! sent skb and `__skb_tstamp_tx` copies the clone's zerocopy pages: every send copied.
//!
//! Reads the process's zerocopy sockets and their `SO_TIMESTAMPING` flags (`process`); and
//! the live probe's own flags (`--timestamping`), whose copies it then explains (info).
//! Explanation and fix text: checks/findings/tx-timestamp-copies.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::process::socket_evidence;
use crate::evidence::{InetSocket, LiveProbe, ProcessEvidence, TimestampingFlags};
use crate::vocab::Severity;

/// `SOF_TIMESTAMPING_OPT_CMSG`: needs the payload back, so OPT_TSONLY turns it off.
const OPT_CMSG: u32 = 1 << 10;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    match at {
        Step::Process(s) => timestamps_copy(s.p, &s.who, out),
        Step::LiveStart(m) if m.live.not_run.is_none() => probe_timestamps(m.live, out),
        _ => {}
    }
}

/// The live probe asked for transmit timestamps itself: its copies are their cost.
fn probe_timestamps(live: &LiveProbe, out: &mut Findings) {
    let Some(flags) = live.timestamping.filter(|f| f.copies_zerocopy()) else {
        return;
    };
    let timestamps: u64 = live.runs.iter().filter_map(|r| r.timestamps).sum();
    out.raise_as(
        Code::TxTimestampCopies,
        Severity::Info,
        format!(
            "the live probe asked for transmit timestamps itself (--timestamping): SO_TIMESTAMPING = {} ({:#x}), without OPT_TSONLY; {timestamps} timestamps came back on the error queue with their payload, so the copies it measured are what timestamping costs",
            flags.names(),
            flags.0
        ),
        json!({ "live_probe": true, "timestamping": flags.0, "timestamping_flags": flags.names(), "timestamps": timestamps }),
        vec![
            "Run the probe without --timestamping to see what the path itself does.".to_string(),
            "In an application that timestamps its zerocopy sends, add SOF_TIMESTAMPING_OPT_TSONLY (check it with --pid PID).".to_string(),
        ],
    );
}

/// A zerocopy socket and the flags that make its sends copied.
struct Stamped<'a> {
    s: &'a InetSocket,
    flags: TimestampingFlags,
}

impl Stamped<'_> {
    /// `fd 3 (udp 198.18.0.1:40000 → 198.18.0.2:9) has SO_TIMESTAMPING = TX_SCHED|… (0x112)`.
    fn describe(&self) -> String {
        format!(
            "fd {} ({} {}) has SO_TIMESTAMPING = {} ({:#x})",
            self.s.fd,
            self.s.protocol,
            self.s.endpoints(),
            self.flags.names(),
            self.flags.0
        )
    }

    /// The same flags with OPT_TSONLY (and without OPT_CMSG, which OPT_TSONLY disables).
    fn fixed(&self) -> TimestampingFlags {
        TimestampingFlags((self.flags.0 | TimestampingFlags::OPT_TSONLY) & !OPT_CMSG)
    }

    fn evidence(&self) -> serde_json::Value {
        let mut v = socket_evidence(self.s);
        v["timestamping"] = json!(self.flags.0);
        v["timestamping_flags"] = json!(self.flags.names());
        v
    }
}

/// The process's zerocopy sockets whose timestamping flags copy every send.
fn stamped(p: &ProcessEvidence) -> Vec<Stamped<'_>> {
    p.zerocopy_sockets()
        .filter_map(|s| {
            let flags = *s.timestamping.as_ref()?.value()?;
            flags.copies_zerocopy().then_some(Stamped { s, flags })
        })
        .collect()
}

fn timestamps_copy(p: &ProcessEvidence, who: &str, out: &mut Findings) {
    let found = stamped(p);
    let Some(first) = found.first() else {
        return;
    };
    let parts: Vec<String> = found.iter().take(4).map(Stamped::describe).collect();
    let more = if found.len() > 4 {
        format!(" and {} more socket(s)", found.len() - 4)
    } else {
        String::new()
    };
    let summary = format!(
        "{who}: transmit timestamps without OPT_TSONLY on a zerocopy socket: {}{more}. Each timestamp comes back on a clone of the packet whose zerocopy data the kernel copies (__skb_tstamp_tx), so every MSG_ZEROCOPY send of it is copied",
        parts.join("; ")
    );
    let sockets: Vec<serde_json::Value> = found.iter().map(Stamped::evidence).collect();
    out.raise(
        Code::TxTimestampCopies,
        summary,
        json!({ "pids": [p.pid], "comm": p.comm, "unit": p.unit, "sockets": sockets }),
        remediation(p, first),
    );
}

/// Add OPT_TSONLY with the flags to set; or timestamp a sample of messages per sendmsg.
fn remediation(p: &ProcessEvidence, first: &Stamped) -> Vec<String> {
    let fixed = first.fixed();
    let report = TimestampingFlags(first.flags.0 & !TimestampingFlags::TX);
    vec![
        format!(
            "In the application (pid {}, fd {}, now {}): add SOF_TIMESTAMPING_OPT_TSONLY, setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, {} = {:#x}); the timestamp then comes back on an empty packet (OPT_ID's counter in ee_data matches it to its send) and the send stays zerocopy.",
            p.pid,
            first.s.fd,
            first.flags.names(),
            fixed.names(),
            fixed.0
        ),
        format!(
            "If it needs the payload or OPT_CMSG back, timestamp fewer packets: set only the reporting flags on the socket ({} = {:#x}) and ask for a timestamp per sendmsg with a SOL_SOCKET/SO_TIMESTAMPING cmsg holding the TX flags (Linux 4.7+) on a sample of messages; only those are copied.",
            report.names(),
            report.0
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::process::{process, run, socket};
    use crate::evidence::Fact;

    fn stamped_socket(fd: i32, zerocopy: bool, flags: u32) -> InetSocket {
        let mut s = socket(fd, zerocopy, 0, None);
        s.timestamping = Some(Fact::Read(TimestampingFlags(flags)));
        s
    }

    #[test]
    fn transmit_timestamps_without_tsonly_are_a_blocker_with_pid_fd_and_flags() {
        // TX_SOFTWARE|SOFTWARE|OPT_ID, as zc_count.py --timestamping sets it.
        let out = run(process("app", vec![stamped_socket(5, true, 0x92)]));
        let f = out
            .findings
            .iter()
            .find(|f| f.code == Code::TxTimestampCopies)
            .expect("raised");
        assert_eq!(f.severity, Severity::Blocker);
        assert!(
            f.summary.contains("app (pid 4242, app.service): transmit timestamps without OPT_TSONLY on a zerocopy socket: fd 5 (udp 198.18.0.1:40005 (unconnected)) has SO_TIMESTAMPING = TX_SOFTWARE|SOFTWARE|OPT_ID (0x92)"),
            "{}",
            f.summary
        );
        assert_eq!(f.evidence["pids"], json!([4242]));
        assert_eq!(f.evidence["sockets"][0]["timestamping"], 0x92);
        let fix = f.remediation.join(" ");
        assert!(
            fix.contains("(pid 4242, fd 5, now TX_SOFTWARE|SOFTWARE|OPT_ID)"),
            "{fix}"
        );
        assert!(
            fix.contains("TX_SOFTWARE|SOFTWARE|OPT_ID|OPT_TSONLY = 0x892"),
            "{fix}"
        );
        assert!(fix.contains("(SOFTWARE|OPT_ID = 0x90)"), "{fix}");
    }

    #[test]
    fn tsonly_receive_only_unread_and_non_zerocopy_sockets_are_harmless() {
        for (zerocopy, flags) in [
            (true, 0x892),           // OPT_TSONLY added
            (true, (1 << 3) | 0x10), // RX_SOFTWARE|SOFTWARE
            (true, 0),               // nothing
            (false, 0x112),          // TX_SCHED, but no SO_ZEROCOPY
        ] {
            let out = run(process("app", vec![stamped_socket(5, zerocopy, flags)]));
            assert!(
                out.findings
                    .iter()
                    .all(|f| f.code != Code::TxTimestampCopies),
                "{flags:#x}"
            );
        }
        // Nothing else flags the process (CAP_IPC_LOCK): its pass line says why the flags
        // are harmless.
        let mut p = process("app", vec![stamped_socket(5, true, 0x892)]);
        p.capeff = Fact::Read(1 << ProcessEvidence::CAP_IPC_LOCK);
        let out = run(p);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
        let line = &out
            .passed
            .iter()
            .find(|l| l.check == "process")
            .unwrap()
            .detail;
        assert!(
            line.contains("fd 5 timestamps with TX_SOFTWARE|SOFTWARE|OPT_ID|OPT_TSONLY (OPT_TSONLY: timestamps come back without the payload, no copy)"),
            "{line}"
        );
        // An older recording (no flags read) and a refused read raise nothing.
        let mut s = socket(5, true, 0, None);
        s.timestamping = None;
        let out = run(process("app", vec![s.clone()]));
        assert!(
            out.findings
                .iter()
                .all(|f| f.code != Code::TxTimestampCopies)
        );
        s.timestamping = Some(Fact::Malformed("x".into()));
        let out = run(process("app", vec![s]));
        assert!(
            out.findings
                .iter()
                .all(|f| f.code != Code::TxTimestampCopies)
        );
    }

    #[test]
    fn opt_cmsg_is_dropped_from_the_fix() {
        // TX_SCHED|SOFTWARE|OPT_ID|OPT_CMSG.
        let out = run(process("app", vec![stamped_socket(3, true, 0x590)]));
        let f = &out.findings[0];
        assert_eq!(f.code, Code::TxTimestampCopies);
        assert!(
            f.remediation[0].contains("SOFTWARE|OPT_ID|TX_SCHED|OPT_TSONLY = 0x990"),
            "{}",
            f.remediation[0]
        );
    }
}
