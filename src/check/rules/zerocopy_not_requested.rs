//! `zerocopy-not-requested`: a process diagnosed by pid none of whose sockets has SO_ZEROCOPY,
//! so MSG_ZEROCOPY on them is silently ignored (an io_uring user is `io-uring-in-use`'s).
//!
//! Reads the process's TCP/UDP sockets and their SO_ZEROCOPY (`process`).
//! Explanation and fix text: checks/findings/zerocopy-not-requested.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::process::all_read;
use crate::evidence::ProcessEvidence;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    if let Step::Process(s) = at {
        not_requested(s.p, &s.who, s.qemu, out);
    }
}

fn not_requested(p: &ProcessEvidence, who: &str, qemu: bool, out: &mut Findings) {
    // io_uring SEND_ZC needs no SO_ZEROCOPY: io-uring-in-use speaks for such a process.
    if p.zerocopy_sockets().next().is_some() || !all_read(p) || !p.io_urings.is_empty() {
        return;
    }
    let n = p.sockets.len();
    let summary = if n == 0 {
        format!(
            "{who} has no TCP or UDP socket open, so none with SO_ZEROCOPY: it is not sending with zerocopy now"
        )
    } else {
        let list: Vec<String> = p
            .sockets
            .iter()
            .take(4)
            .map(|s| format!("fd {} {} {}", s.fd, s.protocol, s.endpoints()))
            .collect();
        let more = if n > 4 {
            format!(" and {} more", n - 4)
        } else {
            String::new()
        };
        format!(
            "None of the {n} TCP/UDP socket(s) of {who} has SO_ZEROCOPY ({}{more}): MSG_ZEROCOPY on them is silently ignored, with no error and no notification",
            list.join(", ")
        )
    };
    let mut fix = Vec::new();
    if qemu {
        fix.push(format!("QEMU pid {}: before migrating, enable multifd and the capability over QMP: `{{\"execute\":\"migrate-set-capabilities\",\"arguments\":{{\"capabilities\":[{{\"capability\":\"multifd\",\"state\":true}},{{\"capability\":\"zero-copy-send\",\"state\":true}}]}}}}` (QEMU 7.1+); with libvirt: `virsh migrate --parallel --zerocopy`.", p.pid));
        fix.push(
            "Then watch `query-migrate`: ram.dirty-sync-missed-zero-copy should stay 0."
                .to_string(),
        );
    } else {
        fix.push(format!(
            "In the application (pid {}): setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) on each sending socket before sending with MSG_ZEROCOPY, or turn on its own zerocopy option.",
            p.pid
        ));
    }
    if let Some(unit) = p.unit.as_deref().filter(|u| u.ends_with(".service")) {
        fix.push(format!(
            "If that is a configuration change, apply it with `systemctl restart {unit}`."
        ));
    }
    out.raise(
        Code::ZerocopyNotRequested,
        summary,
        json!({
            "pids": [p.pid],
            "comm": p.comm,
            "unit": p.unit,
            "container": p.container,
            "sockets": n,
        }),
        fix,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::process::{process, run, socket};

    #[test]
    fn no_zerocopy_socket_is_named() {
        let out = run(process("app", vec![socket(3, false, 0, None)]));
        assert_eq!(out.codes_where(|_| true), [Code::ZerocopyNotRequested]);
        let f = &out.findings[0];
        assert!(
            f.summary.contains("app (pid 4242, app.service)"),
            "{}",
            f.summary
        );
        assert!(
            f.summary
                .contains("fd 3 udp 198.18.0.1:40003 (unconnected)")
        );
        assert!(f.remediation[0].contains("SO_ZEROCOPY"));
        assert!(f.remediation[1].contains("systemctl restart app.service"));
        // Unreadable sockets: no claim.
        let mut p = process("app", vec![socket(3, false, 0, None)]);
        p.sockets_unreadable = 1;
        let out = run(p);
        assert!(out.findings.is_empty());
        assert!(out.passed[0].detail.contains("1 socket(s) not read"));
    }
}
