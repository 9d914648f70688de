//! `kernel-too-old`: this kernel release has no MSG_ZEROCOPY for the protocol at all.
//!
//! Reads the kernel release (`kernel` probe) and the protocol diagnosed.
//! Explanation and fix text: checks/findings/kernel-too-old.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::evidence::Protocol;
use crate::kernel::{TCP_ZEROCOPY, UDP_ZEROCOPY};

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if !matches!(at, Step::Host) {
        return;
    }
    let (ev, protocol) = (cx.ev, cx.protocol);
    let needs = match protocol {
        Protocol::Udp => UDP_ZEROCOPY,
        Protocol::Tcp => TCP_ZEROCOPY,
    };
    let proto = protocol.as_str().to_uppercase();
    match ev.kernel.version {
        Some(v) if !v.at_least(needs) => {
            out.raise(
                Code::KernelTooOld,
                format!("Linux {v} has no MSG_ZEROCOPY for {proto}: it needs {needs} or newer"),
                json!({"release": ev.kernel.release, "protocol": protocol.as_str(), "needs": needs.to_string()}),
                vec![format!(
                    "Upgrade the kernel to {needs} or newer; until then turn zerocopy off in the application."
                )],
            );
        }
        Some(v) => out.pass(
            "kernel",
            format!("Linux {v} has MSG_ZEROCOPY for {proto} (since {needs})"),
        ),
        None => out.pass(
            "kernel",
            format!(
                "kernel release {:?} not parsed; version checks skipped",
                ev.kernel.release
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{evidence_with_kernel, run};
    use crate::evidence::Protocol;

    #[test]
    fn udp_needs_5_0_and_tcp_4_14() {
        let ev = evidence_with_kernel("4.18.0-553.el8_10.x86_64");
        assert!(run(&ev, Protocol::Udp).has(Code::KernelTooOld));
        let out = run(&ev, Protocol::Tcp);
        assert!(!out.has(Code::KernelTooOld));
        assert_eq!(
            out.passed[0].detail,
            "Linux 4.18 has MSG_ZEROCOPY for TCP (since 4.14)"
        );
    }

    #[test]
    fn unparsed_release_is_not_a_finding() {
        let ev = evidence_with_kernel("custom");
        let out = run(&ev, Protocol::Udp);
        assert!(!out.has(Code::KernelTooOld));
        assert!(out.passed[0].detail.contains("not parsed"));
    }
}
