//! Kernel: does this release have MSG_ZEROCOPY for the protocol at all.

use serde_json::json;

use super::findings::{Code, Findings};
use crate::evidence::{Evidence, Protocol};
use crate::kernel::{TCP_ZEROCOPY, UDP_ZEROCOPY};

pub fn check(ev: &Evidence, protocol: Protocol, out: &mut Findings) {
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
    use super::*;
    use crate::check::testing::evidence_with_kernel;

    #[test]
    fn udp_needs_5_0_and_tcp_4_14() {
        let ev = evidence_with_kernel("4.18.0-553.el8_10.x86_64");
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, Protocol::Udp, &mut out);
        assert!(out.has(Code::KernelTooOld));
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, Protocol::Tcp, &mut out);
        assert!(!out.has(Code::KernelTooOld));
        assert_eq!(
            out.passed[0].detail,
            "Linux 4.18 has MSG_ZEROCOPY for TCP (since 4.14)"
        );
    }

    #[test]
    fn unparsed_release_is_not_a_finding() {
        let ev = evidence_with_kernel("custom");
        let mut out = Findings::new(crate::knowledge::Knowledge::builtin());
        check(&ev, Protocol::Udp, &mut out);
        assert!(out.findings.is_empty());
        assert!(out.passed[0].detail.contains("not parsed"));
    }
}
