//! `no-tx-checksum`: a device the traffic is transmitted through has no TX checksum offload for
//! the traffic's address family; without it the kernel computes the checksum over the data,
//! which copies. IPv6 matters for IPv4-only traffic too, as a lesser gap (a warning), unless
//! the probe showed the traffic is IPv4.
//!
//! Reads the offload features of every transmitting device (`features`) and the families of
//! the ways crossing each device, through the offload analysis of `check/offloads.rs`.
//! Explanation and fix text: checks/findings/no-tx-checksum.toml

use crate::check::context::{Context, Step};
use crate::check::findings::{Code, Findings};
use crate::check::offloads::{CSUM_V4, CSUM_V6, raise};
use crate::vocab::Severity;

pub fn check(cx: &Context, at: &Step, out: &mut Findings) {
    let c = &cx.carriers;
    if !matches!(at, Step::Devices) || c.all.is_empty() {
        return;
    }
    if !c.v6.is_empty() {
        raise(&c.v6, cx.protocol, &CSUM_V6, None, out);
    }
    if !c.v4.is_empty() {
        raise(&c.v4, cx.protocol, &CSUM_V4, None, out);
        // IPv6 matters too unless the probe showed the traffic is IPv4; a gap there is lesser.
        if !out.has(Code::NoTxChecksum) && !c.v4_only.is_empty() {
            raise(
                &c.v4_only,
                cx.protocol,
                &CSUM_V6,
                Some(Severity::Warning),
                out,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::check::findings::Code;
    use crate::check::testing::{fixture, raised};
    use crate::evidence::{Device, FeatureState};
    use crate::vocab::Severity;

    /// Checksum offload for IPv4 only, as some NICs have it.
    fn ipv4_checksum_only(d: &mut Device) {
        let f = d.features.as_mut().expect("features");
        for (name, active) in [
            ("tx-checksum-ip-generic", false),
            ("tx-checksum-ipv4", true),
            ("tx-checksum-ipv6", false),
        ] {
            f.0.insert(
                name.to_string(),
                FeatureState {
                    active,
                    wanted: active,
                    fixed: false,
                },
            );
        }
    }

    /// The process's main way is IPv4; another way, to an IPv6 peer, crosses the same veth.
    /// The veth's missing IPv6 checksum copies that way's sends: a blocker on it, although the
    /// device was first crossed by the IPv4 way.
    #[test]
    fn a_device_two_families_cross_needs_both_checksums() {
        let mut ev = fixture("process-pid-many-ways");
        ipv4_checksum_only(&mut ev.stack[0]);
        let warned = raised(&ev, Code::NoTxChecksum);
        assert_eq!(
            warned.first().map(|f| f.severity),
            Some(Severity::Warning),
            "IPv4 only: IPv6 is a lesser gap"
        );

        let serving = ev.serving.as_mut().expect("serving");
        serving.routes[1].peer = "2001:db8::2".parse().expect("address");
        let found = raised(&ev, Code::NoTxChecksum);
        let f = found.first().expect("no-tx-checksum");
        assert_eq!(f.severity, Severity::Blocker, "{}", f.summary);
        assert_eq!(f.evidence["device"], "va");
        assert!(f.summary.contains("IPv6"), "{}", f.summary);
    }
}
