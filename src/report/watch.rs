//! What `zcdoctor watch` saw, attributed: each copy's cause and culprit, each sender's copied
//! fraction, and what the watch cost. Made by `check::watch` from the watch evidence.

use serde::{Deserialize, Serialize};

use crate::evidence::watch::{NotProbed, WatchDevice, WatchedFunction};
use crate::vocab::Code;

/// Why zerocopy data was copied, named after the kernel path that copied it.
#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum WatchCause {
    /// `skb_copy_ubufs` from `dev_queue_xmit_nit`: a packet tap on the device.
    Tap,
    /// `skb_copy_ubufs` from `__netif_receive_skb_core`: the packet is received on this host.
    LocalDelivery,
    /// `skb_copy_ubufs` from `__skb_tstamp_tx`: a TX timestamp without `OPT_TSONLY`.
    Timestamping,
    /// `skb_copy_ubufs` from `tun_net_xmit`: a tun/tap device.
    Tun,
    /// A full `__pskb_pull_tail` from `validate_xmit_skb`: a device without scatter-gather.
    Linearize,
    /// A full pull from `skb_checksum_help`: checksummed in software.
    Checksum,
    /// A full pull inside `skb_segment`: software segmentation.
    Segmentation,
    /// A full pull from `skb_cow_data`: encrypted in software (macsec, esp, wireguard).
    Encryption,
    /// The completion says COPIED but no copy site ran: decided when sending.
    SendFallback,
    /// `skb_segment` without scatter-gather: copied, but the completion may say zerocopy.
    SilentSegmentation,
    /// Another caller, named by its symbol.
    Other,
}

impl WatchCause {
    pub const ALL: [WatchCause; 11] = [
        WatchCause::Tap,
        WatchCause::LocalDelivery,
        WatchCause::Timestamping,
        WatchCause::Tun,
        WatchCause::Linearize,
        WatchCause::Checksum,
        WatchCause::Segmentation,
        WatchCause::Encryption,
        WatchCause::SendFallback,
        WatchCause::SilentSegmentation,
        WatchCause::Other,
    ];

    /// The stable kebab-case name (JSON, Prometheus label, `explain`).
    pub fn as_str(self) -> &'static str {
        match self {
            WatchCause::Tap => "tap",
            WatchCause::LocalDelivery => "local-delivery",
            WatchCause::Timestamping => "timestamping",
            WatchCause::Tun => "tun",
            WatchCause::Linearize => "linearize",
            WatchCause::Checksum => "checksum",
            WatchCause::Segmentation => "segmentation",
            WatchCause::Encryption => "encryption",
            WatchCause::SendFallback => "send-fallback",
            WatchCause::SilentSegmentation => "silent-segmentation",
            WatchCause::Other => "other",
        }
    }
}

/// A socket that sent zerocopy data, and who holds it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Default)]
pub struct WatchSender {
    /// Socket inode (`None`: the copy could not be traced to a socket).
    pub socket: Option<u64>,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub comm: Option<String>,
    #[serde(default)]
    pub fd: Option<i32>,
    /// What the socket is, when `--pid` read it: `tcp 198.18.0.1:40000 -> 198.18.0.2:4444`,
    /// and for QEMU its migration channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_label: Option<String>,
}

/// A process whose tap made the copies.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct TapCulprit {
    pub pid: u32,
    pub comm: String,
    #[serde(default)]
    pub unit: Option<String>,
    /// The tap's socket inode.
    pub socket: u64,
}

/// Copies of one cause, at one place, of one sender.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct WatchCopies {
    pub cause: WatchCause,
    /// Whether the sender's completion reports these copies (`SO_EE_CODE_ZEROCOPY_COPIED`).
    pub reported: bool,
    /// The kernel function that called the copy.
    pub caller: Option<String>,
    pub device: Option<WatchDevice>,
    pub sender: WatchSender,
    /// For a tap: the processes holding the taps of that device.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub culprits: Vec<TapCulprit>,
    /// The finding that explains this cause (`zcdoctor explain CODE`).
    #[serde(default)]
    pub code: Option<Code>,
    /// skbs copied, their bytes, and copies per second of the window.
    pub count: u64,
    pub bytes: u64,
    pub per_second: f64,
}

/// One sender's completions over the window.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct WatchSenderTotals {
    pub sender: WatchSender,
    pub notifications: u64,
    /// Sends the completions covered, and of those the ones reported COPIED.
    pub sends: u64,
    pub copied_sends: u64,
    /// `copied_sends / sends` (`None` without sends).
    pub copied_fraction: Option<f64>,
    /// skbs copied at sites the completion reports, and silently.
    pub reported_copies: u64,
    pub silent_copies: u64,
    /// COPIED completions with no copy site seen: decided when sending.
    pub send_fallback: bool,
}

/// What the watch cost.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Default)]
pub struct WatchOverhead {
    /// Program runs (every call of a probed function), per second.
    pub hits: u64,
    pub hits_per_second: f64,
    /// Nanoseconds the programs ran, and that as a share of the CPUs' time in the window.
    pub bpf_ns: u64,
    pub cpu_share: f64,
    /// Events dropped because a map was full.
    pub lost: u64,
}

/// The watch, attributed.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct WatchSummary {
    /// Why watch could not run here; nothing else is then counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub duration_ms: u64,
    pub interrupted: bool,
    /// What the report is limited to: `every device`, the interface's path, or the pids.
    pub scope: String,
    pub functions: Vec<WatchedFunction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_probed: Vec<NotProbed>,
    /// By cause, most copies first.
    pub copies: Vec<WatchCopies>,
    pub senders: Vec<WatchSenderTotals>,
    /// skbs copied, reported and silent, in scope.
    pub reported_copies: u64,
    pub silent_copies: u64,
    pub overhead: WatchOverhead,
}
