//! Which zerocopy-related kernel features a release has: a pure table, no I/O.

use serde::{Deserialize, Serialize};

use crate::evidence::KernelVersion;

pub struct KernelFeature {
    pub id: &'static str,
    pub description: &'static str,
    pub since: KernelVersion,
}

pub const TCP_ZEROCOPY: KernelVersion = KernelVersion::new(4, 14);
pub const UDP_ZEROCOPY: KernelVersion = KernelVersion::new(5, 0);
pub const UDP_GSO: KernelVersion = KernelVersion::new(4, 18);
pub const IGNORE_OUTGOING: KernelVersion = KernelVersion::new(4, 20);
pub const OPTMEM_128K_DEFAULT: KernelVersion = KernelVersion::new(6, 8);
pub const PER_NETNS_TAPS: KernelVersion = KernelVersion::new(6, 15);
pub const FORWARDING_KEEPS_ZEROCOPY: KernelVersion = KernelVersion::new(6, 17);

pub const FEATURES: &[KernelFeature] = &[
    KernelFeature {
        id: "tcp-zerocopy",
        description: "MSG_ZEROCOPY for TCP",
        since: TCP_ZEROCOPY,
    },
    KernelFeature {
        id: "udp-gso",
        description: "UDP_SEGMENT (UDP GSO): large sends without fragmentation",
        since: UDP_GSO,
    },
    KernelFeature {
        id: "rds-zerocopy",
        description: "MSG_ZEROCOPY for RDS",
        since: KernelVersion::new(4, 19),
    },
    KernelFeature {
        id: "packet-ignore-outgoing",
        description: "PACKET_IGNORE_OUTGOING: taps can skip outgoing packets",
        since: IGNORE_OUTGOING,
    },
    KernelFeature {
        id: "udp-zerocopy",
        description: "MSG_ZEROCOPY for UDP",
        since: UDP_ZEROCOPY,
    },
    KernelFeature {
        id: "io-uring-send-zc",
        description: "io_uring IORING_OP_SEND_ZC",
        since: KernelVersion::new(6, 0),
    },
    KernelFeature {
        id: "io-uring-zc-copied-report",
        description: "io_uring IORING_NOTIF_USAGE_ZC_COPIED report",
        since: KernelVersion::new(6, 2),
    },
    KernelFeature {
        id: "vsock-zerocopy",
        description: "MSG_ZEROCOPY for vsock",
        since: KernelVersion::new(6, 7),
    },
    KernelFeature {
        id: "optmem-128k-per-netns",
        description: "optmem_max defaults to 128 KiB and is per network namespace",
        since: OPTMEM_128K_DEFAULT,
    },
    KernelFeature {
        id: "per-netns-taps",
        description: "unbound taps affect only their own network namespace",
        since: PER_NETNS_TAPS,
    },
    KernelFeature {
        id: "forwarding-keeps-zerocopy",
        description: "traffic forwarded from veth keeps zerocopy",
        since: FORWARDING_KEEPS_ZEROCOPY,
    },
];

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct KernelFeatureState {
    pub id: String,
    pub description: String,
    pub since: String,
    /// `None` when the kernel version could not be parsed.
    pub present: Option<bool>,
    /// `present` is the kernel's own answer (a probe tried the feature), not read from the
    /// version: stable kernels carry features from later releases (Debian's 6.1 has the 6.2
    /// io_uring copy report).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probed: bool,
}

/// Every feature with whether `version` has it, or what a probe found (`probed`: feature id
/// and whether the kernel accepted it).
pub fn feature_table(
    version: Option<KernelVersion>,
    probed: &[(&str, bool)],
) -> Vec<KernelFeatureState> {
    FEATURES
        .iter()
        .map(|f| {
            let answer = probed.iter().find(|(id, _)| *id == f.id).map(|(_, p)| *p);
            KernelFeatureState {
                id: f.id.to_string(),
                description: f.description.to_string(),
                since: f.since.to_string(),
                present: answer.or(version.map(|v| v.at_least(f.since))),
                probed: answer.is_some(),
            }
        })
        .collect()
}

/// Whether `version` has `since`; an unparsed version counts as new (no finding from a guess).
pub fn has(version: Option<KernelVersion>, since: KernelVersion) -> bool {
    version.is_none_or(|v| v.at_least(since))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe's answer outranks the version: Debian's 6.1 carries the 6.2 copy report.
    #[test]
    fn a_probed_feature_is_the_kernels_answer() {
        let t = feature_table(
            Some(KernelVersion::new(6, 1)),
            &[("io-uring-zc-copied-report", true)],
        );
        let report = t
            .iter()
            .find(|f| f.id == "io-uring-zc-copied-report")
            .unwrap();
        assert_eq!((report.present, report.probed), (Some(true), true));
        let zc = t.iter().find(|f| f.id == "io-uring-send-zc").unwrap();
        assert_eq!((zc.present, zc.probed), (Some(true), false));
    }

    #[test]
    fn table_follows_version() {
        let t = feature_table(Some(KernelVersion::new(4, 18)), &[]);
        let get = |id: &str| t.iter().find(|f| f.id == id).and_then(|f| f.present);
        assert_eq!(get("tcp-zerocopy"), Some(true));
        assert_eq!(get("udp-gso"), Some(true));
        assert_eq!(get("udp-zerocopy"), Some(false));
        assert_eq!(get("packet-ignore-outgoing"), Some(false));
        assert_eq!(get("per-netns-taps"), Some(false));
        let unknown = feature_table(None, &[]);
        assert!(unknown.iter().all(|f| f.present.is_none()));
    }
}
