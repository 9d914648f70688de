//! `io-uring-in-use`: a process with io_uring instances, whose SEND_ZC needs no SO_ZEROCOPY
//! and reports copies only when asked to (Linux 6.2+).
//!
//! Reads the process's io_uring instances and their fdinfo (`process`), and the kernel release.
//! Explanation and fix text: checks/findings/io-uring-in-use.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::evidence::{Evidence, KernelVersion, ProcessEvidence};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if let Step::Process(s) = at {
        io_uring(cx.ev, s.p, &s.who, out);
    }
}

/// Kernel that reports SEND_ZC copies (IORING_SEND_ZC_REPORT_USAGE).
const SEND_ZC_REPORT_USAGE: KernelVersion = KernelVersion::new(6, 2);

fn io_uring(ev: &Evidence, p: &ProcessEvidence, who: &str, out: &mut Findings) {
    if p.io_urings.is_empty() {
        return;
    }
    let opt = |v: Option<u64>| v.map_or("?".to_string(), |n| n.to_string());
    let rings: Vec<String> = p
        .io_urings
        .iter()
        .take(4)
        .map(|u| match &u.fdinfo_error {
            Some(e) => format!("fd {} (fdinfo unreadable: {e})", u.fd),
            None => format!(
                "fd {} ({} SQ / {} CQ entries, {}, {} registered buffer(s), {} registered file(s))",
                u.fd,
                opt(u.sq_entries),
                opt(u.cq_entries),
                match u.sq_thread {
                    Some(t) if t >= 0 => format!("SQPOLL thread {t}"),
                    Some(_) => "no SQPOLL".to_string(),
                    None => "SQPOLL unknown".to_string(),
                },
                opt(u.user_bufs),
                opt(u.user_files)
            ),
        })
        .collect();
    let more = if p.io_urings.len() > 4 {
        format!(" and {} more", p.io_urings.len() - 4)
    } else {
        String::new()
    };
    let kernel = match ev.kernel.version {
        Some(v) if v.at_least(SEND_ZC_REPORT_USAGE) => format!("Linux {v} has it"),
        Some(v) => format!("Linux {v} lacks it (6.2+), so copies cannot be seen at all"),
        None => "whether this kernel has it is unknown".to_string(),
    };
    let summary = format!(
        "{who} has {} io_uring instance(s): {}{more}. IORING_OP_SEND_ZC needs no SO_ZEROCOPY on the socket, and reports copies only with IORING_SEND_ZC_REPORT_USAGE ({kernel}); zcdoctor cannot see which operations it submits",
        p.io_urings.len(),
        rings.join(", ")
    );
    out.raise(
        Code::IoUringInUse,
        summary,
        json!({
            "pids": [p.pid],
            "comm": p.comm,
            "io_urings": p.io_urings,
        }),
        vec![
            format!("In the application (pid {}): set IORING_SEND_ZC_REPORT_USAGE in sqe->ioprio of each SEND_ZC / SENDMSG_ZC and count notification CQEs whose res has IORING_NOTIF_USAGE_ZC_COPIED.", p.pid),
            "A SEND_ZC memlock failure is ENOMEM in the CQE, not ENOBUFS.".to_string(),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::process::{process, run, socket};
    use crate::evidence::IoUring;
    use crate::vocab::Severity;

    #[test]
    fn io_uring_is_reported_with_its_fdinfo() {
        // Sockets without SO_ZEROCOPY: SEND_ZC does not need it, so no zerocopy-not-requested.
        let mut p = process("app", vec![socket(3, false, 0, None)]);
        p.io_urings = vec![IoUring {
            fd: 5,
            sq_entries: Some(256),
            cq_entries: Some(512),
            sq_thread: Some(-1),
            user_files: Some(0),
            user_bufs: Some(4),
            fdinfo_error: None,
        }];
        let out = run(p);
        assert_eq!(out.codes_where(|_| true), [Code::IoUringInUse]);
        let f = &out.findings[0];
        assert_eq!((f.code, f.severity), (Code::IoUringInUse, Severity::Info));
        assert!(f.summary.contains("fd 5 (256 SQ / 512 CQ entries, no SQPOLL, 4 registered buffer(s), 0 registered file(s))"), "{}", f.summary);
        assert!(f.summary.contains("Linux 6.18 has it"));
    }
}
