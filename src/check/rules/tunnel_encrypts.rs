//! `tunnel-encrypts`: a WireGuard device on the path encrypts every packet in place, after
//! making its data private: the user's pages are copied before any zerocopy could reach the
//! wire.
//!
//! Reads the device kinds of every hop of the path (`links`, `path`).
//! Explanation and fix text: checks/findings/tunnel-encrypts.toml

use serde_json::json;

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::hops::with_toward;
use crate::evidence::DeviceKind;

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    if !matches!(at, Step::Path) {
        return;
    }
    for hop in &cx.hops {
        for dev in hop.stack.iter().filter(|d| d.kind == DeviceKind::Wireguard) {
            let mut evidence =
                json!({"device": dev.name, "kind": dev.kind.as_str(), "hop": hop.index + 1});
            with_toward(&mut evidence, hop.toward);
            out.raise(
                Code::TunnelEncrypts,
                format!(
                    "{} is a WireGuard device{}: it encrypts each packet in place after skb_cow_data() has made the data its own, so every zerocopy send is copied",
                    dev.name,
                    hop.whereabouts()
                ),
                evidence,
                vec![
                    format!(
                        "Do not use MSG_ZEROCOPY for traffic through {}: encryption copies it anyway, and the notifications only add cost.",
                        dev.name
                    ),
                    "Where the data must be encrypted and zerocopy matters, use a NIC with inline IPsec or TLS offload (ESP or kTLS device offload) instead of a software tunnel.".to_string(),
                ],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};
    use crate::evidence::DeviceKind;

    #[test]
    fn a_wireguard_device_on_the_path_copies() {
        let mut ev = fixture("clean-nic");
        assert!(raised(&ev, Code::TunnelEncrypts).is_empty());
        ev.stack[0].kind = DeviceKind::Wireguard;
        let f = &raised(&ev, Code::TunnelEncrypts)[0];
        assert_eq!(f.evidence["hop"], 1);
        assert!(f.summary.contains("is a WireGuard device"), "{}", f.summary);
    }
}
