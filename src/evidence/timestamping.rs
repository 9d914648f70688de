//! `SO_TIMESTAMPING` flags as read from a socket (`SOF_TIMESTAMPING_*` of
//! `include/uapi/linux/net_tstamp.h`), and what they mean for MSG_ZEROCOPY: a transmit
//! timestamp without `OPT_TSONLY` loops a clone of the sent skb back to the error queue, and
//! `__skb_tstamp_tx` copies that clone's zerocopy pages (`skb_orphan_frags_rx`).

use serde::{Deserialize, Serialize};

/// The socket's `SO_TIMESTAMPING` flags (`sk_tsflags`), as the kernel returned them.
#[derive(
    Debug, Clone, Copy, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq,
)]
#[serde(transparent)]
pub struct TimestampingFlags(pub u32);

/// Bit names of `net_tstamp.h`, lowest bit first (without the `SOF_TIMESTAMPING_` prefix).
const NAMES: [&str; 19] = [
    "TX_HARDWARE",
    "TX_SOFTWARE",
    "RX_HARDWARE",
    "RX_SOFTWARE",
    "SOFTWARE",
    "SYS_HARDWARE",
    "RAW_HARDWARE",
    "OPT_ID",
    "TX_SCHED",
    "TX_ACK",
    "OPT_CMSG",
    "OPT_TSONLY",
    "OPT_STATS",
    "OPT_PKTINFO",
    "OPT_TX_SWHW",
    "BIND_PHC",
    "OPT_ID_TCP",
    "OPT_RX_FILTER",
    "TX_COMPLETION",
];

impl TimestampingFlags {
    pub const TX_HARDWARE: u32 = 1 << 0;
    pub const TX_SOFTWARE: u32 = 1 << 1;
    pub const SOFTWARE: u32 = 1 << 4;
    pub const OPT_ID: u32 = 1 << 7;
    pub const TX_SCHED: u32 = 1 << 8;
    pub const TX_ACK: u32 = 1 << 9;
    pub const OPT_TSONLY: u32 = 1 << 11;
    pub const TX_COMPLETION: u32 = 1 << 18;
    /// The flags that ask for a transmit timestamp of every packet the socket sends.
    pub const TX: u32 =
        Self::TX_HARDWARE | Self::TX_SOFTWARE | Self::TX_SCHED | Self::TX_ACK | Self::TX_COMPLETION;

    /// Transmit timestamps are requested for every send.
    pub fn transmit(self) -> bool {
        self.0 & Self::TX != 0
    }

    /// `OPT_TSONLY`: the timestamp comes back on an empty skb, not a clone of the packet.
    pub fn tsonly(self) -> bool {
        self.0 & Self::OPT_TSONLY != 0
    }

    /// Every zerocopy send is copied: transmit timestamps looped back with their payload.
    pub fn copies_zerocopy(self) -> bool {
        self.transmit() && !self.tsonly()
    }

    /// `TX_SOFTWARE|SOFTWARE|OPT_ID`; `0` when none is set; unknown bits as `0x…`.
    pub fn names(self) -> String {
        if self.0 == 0 {
            return "0".to_string();
        }
        let mut parts: Vec<String> = NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| n.to_string())
            .collect();
        let unknown = self.0 & !((1u32 << NAMES.len()) - 1);
        if unknown != 0 {
            parts.push(format!("{unknown:#x}"));
        }
        parts.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_meaning() {
        let f = TimestampingFlags(
            TimestampingFlags::TX_SOFTWARE
                | TimestampingFlags::SOFTWARE
                | TimestampingFlags::OPT_ID,
        );
        assert_eq!(f.names(), "TX_SOFTWARE|SOFTWARE|OPT_ID");
        assert!(f.transmit() && f.copies_zerocopy());
        let f = TimestampingFlags(f.0 | TimestampingFlags::OPT_TSONLY);
        assert!(f.transmit() && !f.copies_zerocopy());
        // Receive timestamps only.
        let f = TimestampingFlags((1 << 3) | TimestampingFlags::SOFTWARE);
        assert_eq!(f.names(), "RX_SOFTWARE|SOFTWARE");
        assert!(!f.transmit() && !f.copies_zerocopy());
        assert_eq!(TimestampingFlags(0).names(), "0");
        assert_eq!(TimestampingFlags(1 << 30).names(), "0x40000000");
        assert_eq!(
            serde_json::to_string(&TimestampingFlags(0x912)).unwrap(),
            "2322"
        );
    }
}
