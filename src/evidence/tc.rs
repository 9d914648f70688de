//! tc filters and their actions on a device's clsact (or ingress) hooks, as `tc filter show dev
//! DEV ingress|egress` lists them: read through rtnetlink (`RTM_GETTFILTER`) by the `tc` probe.

use serde::{Deserialize, Serialize};

use super::{DeviceKind, OsError};

/// At most this many filters are recorded per device (both hooks together).
pub const MAX_TC_FILTERS: usize = 256;

/// The filters on a device's ingress and egress hooks (a clsact qdisc; an `ingress` qdisc has
/// the ingress hook only). Empty when the device has neither.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct TcFilters {
    /// At most [`MAX_TC_FILTERS`], ingress first, in the kernel's order.
    pub filters: Vec<TcFilter>,
    /// The device has more filters than are recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// What could not be read, as data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<TcProblem>,
}

/// Which hook of the device a filter is on.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TcHook {
    /// `sch_handle_ingress`: packets the device receives.
    Ingress,
    /// `sch_handle_egress`: packets the device transmits, before its qdisc.
    Egress,
}

impl TcHook {
    pub fn as_str(self) -> &'static str {
        match self {
            TcHook::Ingress => "ingress",
            TcHook::Egress => "egress",
        }
    }
}

/// One filter (`tc filter show` prints one `filter … pref N KIND … handle H` line per filter).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct TcFilter {
    pub hook: TcHook,
    /// `TCA_KIND`: `u32`, `matchall`, `flower`, `bpf`, …
    pub kind: String,
    /// The preference (priority) it was added with: what `tc filter del … pref N` names.
    pub pref: u16,
    /// The EtherType it matches, host order (`0x0003`: all, `0x0800`: IPv4).
    pub protocol: u16,
    pub handle: u32,
    /// `TCA_CHAIN`, when the kernel sent it (filters on chain 0 in older kernels have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<u32>,
    /// A `bpf` (cls_bpf) filter's program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf: Option<BpfProgram>,
    /// Its actions, in the order they run.
    #[serde(default)]
    pub actions: Vec<TcAction>,
}

impl TcFilter {
    /// `egress filter u32 pref 10 handle 800::800`.
    pub fn label(&self) -> String {
        format!(
            "{} filter {} pref {} handle {}",
            self.hook.as_str(),
            self.kind,
            self.pref,
            self.handle_text()
        )
    }

    /// The handle as `tc` prints it: a u32 filter's `htid:hash:node` (`800::800`), else hex.
    pub fn handle_text(&self) -> String {
        if self.kind != "u32" {
            return format!("{:#x}", self.handle);
        }
        let (htid, hash, node) = (
            self.handle >> 20,
            (self.handle >> 12) & 0xFF,
            self.handle & 0xFFF,
        );
        let hash = if hash == 0 {
            String::new()
        } else {
            format!("{hash:x}")
        };
        format!("{htid:x}:{hash}:{node:x}")
    }
}

#[cfg(test)]
impl TcFilter {
    /// For tests: a u32 filter on the egress hook matching every packet (`800::800`).
    pub fn u32_egress(pref: u16, actions: Vec<TcAction>) -> TcFilter {
        TcFilter {
            hook: TcHook::Egress,
            kind: "u32".into(),
            pref,
            protocol: 3,
            handle: 0x8000_0800,
            chain: None,
            bpf: None,
            actions,
        }
    }
}

/// A BPF program attached by tc (a `bpf` filter or action): what `bpftool prog show id N` names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct BpfProgram {
    /// `TCA_BPF_ID` (`TCA_ACT_BPF_ID`): the program's id.
    #[serde(default)]
    pub id: Option<u32>,
    /// `TCA_BPF_NAME`: the object file and section `tc` loaded it from, or the program's name.
    #[serde(default)]
    pub name: Option<String>,
    /// `TCA_BPF_TAG`: the hash of its instructions, in hex.
    #[serde(default)]
    pub tag: Option<String>,
    /// `TCA_BPF_FLAG_ACT_DIRECT`: the program's return value is the action (`da`).
    #[serde(default)]
    pub direct_action: bool,
}

impl BpfProgram {
    /// `id 42 name cls_main tag 1a2b3c4d5e6f7a8b (direct-action)`, with what is known.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if let Some(id) = self.id {
            parts.push(format!("id {id}"));
        }
        if let Some(name) = &self.name {
            parts.push(format!("name {name}"));
        }
        if let Some(tag) = &self.tag {
            parts.push(format!("tag {tag}"));
        }
        if self.direct_action {
            parts.push("(direct-action)".to_string());
        }
        if parts.is_empty() {
            return "(no id, name or tag reported)".to_string();
        }
        parts.join(" ")
    }
}

/// One action of a filter.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct TcAction {
    /// Its place in the filter's action list (`action order N`, 1 first).
    pub order: u32,
    /// `TCA_ACT_KIND`: `mirred`, `pedit`, `csum`, `skbedit`, `gact`, `bpf`, …
    pub kind: String,
    /// The action's index (`tc actions list action KIND` shows it), from its parameters.
    #[serde(default)]
    pub index: Option<u32>,
    /// A `mirred` action's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirred: Option<Mirred>,
    /// A `bpf` action's program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf: Option<BpfProgram>,
}

/// A `mirred` action: where it mirrors or redirects packets (`struct tc_mirred`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct Mirred {
    pub action: MirredAction,
    /// `eaction` verbatim.
    pub eaction: i32,
    /// The target device's ifindex, in the filter's namespace (0: the target is gone).
    pub ifindex: u32,
    /// The target as the link table of that namespace names it; `None` when no device has
    /// that ifindex.
    #[serde(default)]
    pub target: Option<MirredTarget>,
}

/// `TCA_EGRESS_REDIR`, `TCA_EGRESS_MIRROR`, `TCA_INGRESS_REDIR`, `TCA_INGRESS_MIRROR`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, schemars::JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MirredAction {
    EgressRedirect,
    EgressMirror,
    IngressRedirect,
    IngressMirror,
    Unknown,
}

impl MirredAction {
    pub fn from_kernel(eaction: i32) -> MirredAction {
        match eaction {
            1 => MirredAction::EgressRedirect,
            2 => MirredAction::EgressMirror,
            3 => MirredAction::IngressRedirect,
            4 => MirredAction::IngressMirror,
            _ => MirredAction::Unknown,
        }
    }

    /// As `tc` prints it: `egress mirror`, `ingress redirect`.
    pub fn as_str(self) -> &'static str {
        match self {
            MirredAction::EgressRedirect => "egress redirect",
            MirredAction::EgressMirror => "egress mirror",
            MirredAction::IngressRedirect => "ingress redirect",
            MirredAction::IngressMirror => "ingress mirror",
            MirredAction::Unknown => "unknown",
        }
    }

    /// The target receives the packet (`netif_receive_skb`) instead of transmitting it.
    pub fn to_ingress(self) -> bool {
        matches!(
            self,
            MirredAction::IngressRedirect | MirredAction::IngressMirror
        )
    }
}

/// The device a `mirred` action sends to.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
pub struct MirredTarget {
    pub name: String,
    pub kind: DeviceKind,
    /// `IFLA_INFO_KIND` verbatim.
    #[serde(default)]
    pub link_kind: Option<String>,
    pub oper_state: String,
    /// Its offload features (ethtool `FEATURES_GET`); `None` when not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<super::Features>,
}

/// Something about a device's tc filters that could not be read.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, PartialEq)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum TcProblem {
    /// The filter dump of a hook failed.
    DumpFailed { hook: TcHook, error: OsError },
    /// A hook's reply did not decode, or failed without an errno.
    Malformed { hook: TcHook, detail: String },
    /// The device's namespace could not be entered: nothing of it was read.
    Unenterable { error: String },
}

impl std::fmt::Display for TcProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TcProblem::DumpFailed { hook, error } => {
                write!(f, "{} filters: {error}", hook.as_str())
            }
            TcProblem::Malformed { hook, detail } => {
                write!(f, "{} filters: {detail}", hook.as_str())
            }
            TcProblem::Unenterable { error } => write!(f, "not read: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_round_trip() {
        let p = BpfProgram {
            id: Some(42),
            name: Some("cls.o:[tc]".into()),
            tag: Some("a04f5eef06a7f555".into()),
            direct_action: true,
        };
        assert_eq!(
            p.label(),
            "id 42 name cls.o:[tc] tag a04f5eef06a7f555 (direct-action)"
        );
        assert_eq!(
            BpfProgram::default().label(),
            "(no id, name or tag reported)"
        );
        assert_eq!(MirredAction::from_kernel(2), MirredAction::EgressMirror);
        let mut f = TcFilter::u32_egress(10, Vec::new());
        assert_eq!(f.label(), "egress filter u32 pref 10 handle 800::800");
        f.kind = "bpf".into();
        f.handle = 1;
        assert_eq!(f.handle_text(), "0x1");
        assert!(MirredAction::from_kernel(3).to_ingress());
        let problem = TcProblem::DumpFailed {
            hook: TcHook::Egress,
            error: OsError::new("tc filter dump of ifindex 3", nix::errno::Errno::EPERM),
        };
        let json = serde_json::to_value(&problem).expect("serialize");
        assert_eq!(json["problem"], "dump-failed");
        assert_eq!(
            serde_json::from_value::<TcProblem>(json).expect("load"),
            problem
        );
    }
}
