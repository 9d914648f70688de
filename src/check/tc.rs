//! tc on the path: the filters (and their actions) on the hook of each hop's devices that the
//! traffic crosses, as the `tc` probe read them, and how a finding names one. The rules
//! `tc_mirred_copies`, `tc_action_writes` and `tc_bpf_program` judge them.

use serde_json::{Value, json};

use super::hops::{Hop, with_toward};
use crate::evidence::{Device, HopRole, TcAction, TcFilter, TcHook};

/// EtherTypes whose filters can match IP traffic: all, IPv4, IPv6, 802.1Q, 802.1ad.
const IP_PROTOCOLS: [u16; 5] = [0x0003, 0x0800, 0x86DD, 0x8100, 0x88A8];

/// One filter on the path: on a device of a hop, on the hook the traffic passes there.
pub struct OnPath<'h, 'a> {
    pub hop: &'h Hop<'a>,
    pub dev: &'a Device,
    pub filter: &'a TcFilter,
}

/// The hook the traffic passes on `hop`'s devices: ingress where it is received (a veth's
/// peer, a sibling), egress where it is transmitted.
pub fn hook_of(hop: &Hop) -> TcHook {
    if hop.role.is_some_and(HopRole::receives) {
        TcHook::Ingress
    } else {
        TcHook::Egress
    }
}

/// Every filter on the path that can match IP traffic, hop by hop.
pub fn on_path<'h, 'a>(hops: &'h [Hop<'a>]) -> Vec<OnPath<'h, 'a>> {
    let mut out = Vec::new();
    for hop in hops {
        let hook = hook_of(hop);
        for dev in hop.stack.iter().copied() {
            let filters = dev.tc.iter().flat_map(|t| &t.filters);
            for filter in filters.filter(|f| f.hook == hook && IP_PROTOCOLS.contains(&f.protocol)) {
                out.push(OnPath { hop, dev, filter });
            }
        }
    }
    out
}

impl OnPath<'_, '_> {
    /// `tc egress filter u32 pref 10 handle 800::800 on ifbz in namespace r (hop 2, …)`.
    pub fn name(&self) -> String {
        format!(
            "tc {} on {}{}",
            self.filter.label(),
            self.dev.name,
            self.hop.whereabouts()
        )
    }

    /// `action 1 mirred (index 7)`.
    pub fn action_name(action: &TcAction) -> String {
        match action.index {
            Some(i) => format!("action {} {} (index {i})", action.order, action.kind),
            None => format!("action {} {}", action.order, action.kind),
        }
    }

    /// The command that removes the filter, in the hop's namespace (it removes every filter
    /// of that preference on the hook).
    pub fn delete(&self) -> String {
        self.hop.command(&format!(
            "tc filter del dev {} {} pref {}",
            self.dev.name,
            self.filter.hook.as_str(),
            self.filter.pref
        ))
    }

    /// The command that shows the filter with its actions, in the hop's namespace.
    pub fn show(&self) -> String {
        self.hop.command(&format!(
            "tc -s filter show dev {} {} pref {}",
            self.dev.name,
            self.filter.hook.as_str(),
            self.filter.pref
        ))
    }

    /// The filter (and `action`) as a finding's evidence.
    pub fn evidence(&self, action: Option<&TcAction>) -> Value {
        let f = self.filter;
        let mut evidence = json!({
            "device": self.dev.name,
            "hop": self.hop.index + 1,
            "netns": self.hop.netns,
            "hook": f.hook,
            "filter": {
                "kind": f.kind,
                "pref": f.pref,
                "protocol": f.protocol,
                "handle": f.handle,
                "chain": f.chain,
            },
        });
        if let (Some(a), Value::Object(map)) = (action, &mut evidence) {
            map.insert(
                "action".into(),
                json!({ "order": a.order, "kind": a.kind, "index": a.index }),
            );
        }
        with_toward(&mut evidence, self.hop.toward);
        evidence
    }
}
