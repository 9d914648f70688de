//! `vsock-send-over-credit`: the vsock live probe's larger MSG_ZEROCOPY sends were copied
//! (the virtio transport copies a send larger than the peer's free credit, or resumed in the
//! middle of the buffer); the smaller ones were not. A blocker when every size was copied.
//! Its pass line when no run copied.
//!
//! Reads the vsock probe's runs (message size, completions, copied).
//! Explanation and fix text: checks/findings/vsock-send-over-credit.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::evidence::{VsockProbe, VsockRun};
use crate::vocab::Severity;

pub fn check(_: &Context, at: &Step, out: &mut Findings) {
    if let Step::Vsock(v) = at {
        judged(v, out);
    }
}

/// The sizes sent without a copy and those copied, in the probe's order (smallest first).
pub fn split(v: &VsockProbe) -> (Vec<&VsockRun>, Vec<&VsockRun>) {
    v.runs
        .iter()
        .filter(|r| r.completions > 0)
        .partition(|r| r.copied == 0)
}

fn judged(v: &VsockProbe, out: &mut Findings) {
    if v.refused().is_some() {
        return;
    }
    let (clean, copied) = split(v);
    if copied.is_empty() {
        if !clean.is_empty() {
            let n: u64 = clean.iter().map(|r| r.completions).sum();
            out.pass(
                "vsock",
                format!(
                    "vsock probe: {n} zerocopy completions to {} for sends of {} bytes, none copied",
                    v.target(),
                    sizes(&clean)
                ),
            );
        }
        return;
    }
    let largest_clean = clean
        .iter()
        .map(|r| r.message)
        .filter(|m| copied.iter().all(|c| c.message > *m))
        .max();
    let severity = match largest_clean {
        Some(_) => Severity::Warning,
        None => Severity::Blocker,
    };
    let counts: Vec<String> = copied
        .iter()
        .map(|r| {
            format!(
                "{} bytes: {} of {} notifications copied",
                r.message, r.copied, r.completions
            )
        })
        .collect();
    let buffer = v
        .buffer_size
        .map(|b| format!(" (this side's is {b})"))
        .unwrap_or_default();
    let clean_part = match largest_clean {
        Some(m) => format!("; sends of up to {m} bytes were not"),
        None => "; every size was".to_string(),
    };
    out.raise_as(
        Code::VsockSendOverCredit,
        severity,
        format!(
            "MSG_ZEROCOPY sends to {} were copied ({}){clean_part}: the virtio transport copies a send larger than the peer's free credit, its receive buffer{buffer} minus what it has not read",
            v.target(),
            counts.join(", "),
        ),
        json!({
            "target": v.target(),
            "copied": copied.iter().map(|r| json!({"message": r.message, "completions": r.completions, "copied": r.copied})).collect::<Vec<_>>(),
            "largest_zerocopy_send": largest_clean,
            "buffer_size": v.buffer_size,
        }),
        remediation(largest_clean),
    );
}

fn remediation(largest_clean: Option<u64>) -> Vec<String> {
    let mut r = Vec::new();
    if let Some(m) = largest_clean {
        r.push(format!(
            "In the application: send at most {m} bytes per MSG_ZEROCOPY call on this vsock connection (split larger buffers), and keep the peer reading."
        ));
    }
    r.push("To allow larger zerocopy sends, raise the buffer on both sockets before connecting, the receiver's and the sender's (the kernel caps the sender's credit at its own buffer too): setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, N) then SO_VM_SOCKETS_BUFFER_SIZE, N; prove it first with this probe and --vsock-buffer N against a peer with that buffer.".to_string());
    r
}

fn sizes(runs: &[&VsockRun]) -> String {
    let s: Vec<String> = runs.iter().map(|r| r.message.to_string()).collect();
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::vsock::{all, probe, raised, run};

    #[test]
    fn large_sends_copied_small_not_is_a_warning_naming_the_limit() {
        let p = probe(vec![
            run(4096, 100, 100, 0),
            run(65536, 100, 100, 0),
            run(262144, 100, 204, 193),
            run(1048576, 100, 785, 785),
        ]);
        let f = raised(p, Code::VsockSendOverCredit);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].summary.contains("up to 65536 bytes"), "{}", f[0].summary);
        assert!(f[0].summary.contains("262144 bytes: 193 of 204"), "{}", f[0].summary);
        assert!(f[0].remediation[0].contains("at most 65536 bytes"));
    }

    #[test]
    fn every_size_copied_is_a_blocker_and_none_is_a_pass() {
        let p = probe(vec![run(4096, 10, 10, 10), run(65536, 10, 10, 10)]);
        let f = raised(p, Code::VsockSendOverCredit);
        assert_eq!(f[0].severity, Severity::Blocker);
        let out = all(probe(vec![run(4096, 10, 10, 0), run(65536, 10, 10, 0)]));
        assert!(out.findings.is_empty());
        assert!(out.passed.iter().any(|p| p.detail.contains("20 zerocopy completions")));
    }
}
