//! `RTM_GETTFILTER`: the filters on a device's clsact (or ingress) hooks and their actions, as
//! `tc filter show dev DEV ingress|egress` lists them.
//!
//! Read from the kernel's own dump code: `tc_dump_tfilter` (net/sched/cls_api.c) finds the
//! qdisc by `TC_H_MAJ(tcm_parent)` and the hook by `TC_H_MIN` (`clsact_find`: `TC_H_MIN_INGRESS`
//! or `TC_H_MIN_EGRESS`); each classifier's `dump` nests its options in `TCA_OPTIONS` and its
//! actions (`tcf_exts_dump` → `tcf_action_dump`) in one attribute per action, numbered from 1,
//! each with `TCA_ACT_KIND` and `TCA_ACT_OPTIONS`. An `ingress` qdisc answers any minor with its
//! one block (`ingress_find`), so the hooks dumped are chosen by the qdisc's kind, asked first.
//! Layouts: include/uapi/linux/{pkt_cls.h,pkt_sched.h,tc_act/tc_mirred.h,tc_act/tc_bpf.h}.

use neli::{
    consts::{
        nl::NlmF,
        rtnl::{Rtm, Tca},
        socket::NlFamily,
    },
    rtnl::{Tcmsg, TcmsgBuilder},
};
use nix::errno::Errno;

use super::{Conn, NLA_TYPE_MASK, NetlinkError, attr_string, find, nested};
use crate::evidence::{
    BpfProgram, DeviceKind, MAX_TC_FILTERS, Mirred, MirredAction, MirredTarget, OsError, TcAction,
    TcFilter, TcFilters, TcHook, TcProblem,
};

/// `TC_H_INGRESS` / `TC_H_CLSACT`: the parent of the ingress qdisc.
const TC_H_CLSACT: u32 = 0xFFFF_FFF1;
const TC_H_MAJ_MASK: u32 = 0xFFFF_0000;
const TC_H_MIN_INGRESS: u32 = 0xFFF2;
const TC_H_MIN_EGRESS: u32 = 0xFFF3;
/// `TCA_CHAIN` (not in neli's `Tca`).
const TCA_CHAIN: u16 = 11;
/// `TCA_U32_DIVISOR`: only a u32 hash table has it.
const TCA_U32_DIVISOR: u16 = 4;
/// `TCA_ACT_KIND`, `TCA_ACT_OPTIONS` inside one action.
const TCA_ACT_KIND: u16 = 1;
const TCA_ACT_OPTIONS: u16 = 2;
/// cls_bpf's `TCA_BPF_NAME`, `TCA_BPF_FLAGS`, `TCA_BPF_TAG`, `TCA_BPF_ID`.
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_TAG: u16 = 10;
const TCA_BPF_ID: u16 = 11;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
/// act_bpf's `TCA_ACT_BPF_NAME`, `TCA_ACT_BPF_TAG`, `TCA_ACT_BPF_ID`.
const TCA_ACT_BPF_NAME: u16 = 6;
const TCA_ACT_BPF_TAG: u16 = 8;
const TCA_ACT_BPF_ID: u16 = 9;

/// The attribute of a classifier's options that holds its actions (`TCA_<KIND>_ACT`).
fn actions_attr(kind: &str) -> Option<u16> {
    Some(match kind {
        "bpf" | "cgroup" => 1,
        "matchall" => 2,
        "flower" | "basic" => 3,
        "fw" => 4,
        "route" => 6,
        "u32" => 7,
        "flow" => 9,
        _ => return None,
    })
}

/// The attribute of an action's options that holds its `tc_gen` parameters (index first):
/// `TCA_CSUM_PARMS` is 1, every other action's `TCA_<KIND>_PARMS` is 2.
fn params_attr(kind: &str) -> u16 {
    if kind == "csum" { 1 } else { 2 }
}

/// The filters of device `ifindex` (in the calling thread's namespace), with the mirred
/// targets named from its link table. Never fails: what could not be read is in `problems`.
pub fn tc_filters(ifindex: u32) -> TcFilters {
    let mut out = TcFilters::default();
    let mut conn = match Conn::open(NlFamily::Route, format!("tc filters of ifindex {ifindex}")) {
        Ok(c) => c,
        Err(e) => {
            out.problems.push(problem(TcHook::Ingress, &e));
            return out;
        }
    };
    let qdisc = hook_qdisc(&mut conn, ifindex);
    let hooks = match qdisc.as_ref().map(|k| k.as_deref()) {
        Ok(Some("clsact")) => vec![TcHook::Ingress, TcHook::Egress],
        Ok(Some("ingress")) => vec![TcHook::Ingress],
        // None, or the `noop` a removed one leaves: no hook has filters.
        Ok(_) => return out,
        // A qdisc that could not be asked: both hooks, whose dumps say what they find.
        Err(_) => vec![TcHook::Ingress, TcHook::Egress],
    };
    for hook in hooks {
        match dump_hook(&mut conn, ifindex, hook) {
            Ok(filters) => {
                for f in filters {
                    if out.filters.len() >= MAX_TC_FILTERS {
                        out.truncated = true;
                        break;
                    }
                    out.filters.push(f);
                }
            }
            Err(e) => out.problems.push(problem(hook, &e)),
        }
    }
    name_targets(&mut out);
    out
}

fn problem(hook: TcHook, e: &NetlinkError) -> TcProblem {
    match e.errno() {
        Some(errno) => TcProblem::DumpFailed {
            hook,
            error: OsError::new(e.op(), errno),
        },
        None => TcProblem::Malformed {
            hook,
            detail: e.to_string(),
        },
    }
}

fn tcmsg(ifindex: u32, parent: u32) -> Result<Tcmsg, String> {
    let index = i32::try_from(ifindex).map_err(|_| "ifindex out of range".to_string())?;
    TcmsgBuilder::default()
        .tcm_family(0)
        .tcm_ifindex(index)
        .tcm_handle(0)
        .tcm_parent(parent)
        .tcm_info(0)
        .build()
        .map_err(|e| format!("tcmsg: {e}"))
}

/// The kind of the device's ingress-side qdisc (`clsact` or `ingress`); `None` without one.
fn hook_qdisc(conn: &mut Conn, ifindex: u32) -> Result<Option<String>, NetlinkError> {
    let request = tcmsg(ifindex, TC_H_CLSACT).map_err(|e| conn.build_error(e))?;
    let reply = match conn.request::<_, _, Tcmsg>(Rtm::Getqdisc, NlmF::empty(), request) {
        Ok(r) => r,
        Err(NetlinkError::Kernel {
            errno: Errno::ENOENT | Errno::EINVAL,
            ..
        }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(reply
        .messages
        .iter()
        .filter(|(t, _)| *t == Rtm::Newqdisc)
        .flat_map(|(_, m)| m.rtattrs().iter())
        .find(|a| *a.rta_type() == Tca::Kind)
        .map(|a| attr_string(a.rta_payload().as_ref())))
}

fn dump_hook(conn: &mut Conn, ifindex: u32, hook: TcHook) -> Result<Vec<TcFilter>, NetlinkError> {
    let minor = match hook {
        TcHook::Ingress => TC_H_MIN_INGRESS,
        TcHook::Egress => TC_H_MIN_EGRESS,
    };
    let parent = (TC_H_CLSACT & TC_H_MAJ_MASK) | minor;
    let request = tcmsg(ifindex, parent).map_err(|e| conn.build_error(e))?;
    let messages = conn.dump::<_, _, Tcmsg>(Rtm::Gettfilter, request, "filter table")?;
    Ok(messages
        .iter()
        .filter(|(t, _)| *t == Rtm::Newtfilter)
        .filter_map(|(_, msg)| parse_filter(hook, msg))
        .collect())
}

/// One filter message. `None` for a classifier's header (sent once per preference, without
/// `TCA_OPTIONS`) and a u32 hash table, which are not filters.
fn parse_filter(hook: TcHook, msg: &Tcmsg) -> Option<TcFilter> {
    let info = *msg.tcm_info();
    let mut kind = String::new();
    let mut chain = None;
    let mut options = None;
    for attr in msg.rtattrs().iter() {
        let payload = attr.rta_payload().as_ref();
        match u16::from(attr.rta_type()) & NLA_TYPE_MASK {
            1 => kind = attr_string(payload),
            2 => options = Some(payload),
            TCA_CHAIN => chain = u32_at(payload, 0),
            _ => {}
        }
    }
    let opts = nested(options?);
    // A u32 hash table (`fh 800: ht divisor 1`) is dumped like a filter, but holds none.
    if kind == "u32" && find(&opts, TCA_U32_DIVISOR).is_some() {
        return None;
    }
    let bpf = (kind == "bpf").then(|| cls_bpf(&opts));
    let actions = actions_attr(&kind)
        .and_then(|a| find(&opts, a))
        .map(parse_actions)
        .unwrap_or_default();
    Some(TcFilter {
        hook,
        pref: (info >> 16) as u16,
        protocol: u16::from_be((info & 0xFFFF) as u16),
        handle: *msg.tcm_handle(),
        chain,
        kind,
        bpf,
        actions,
    })
}

/// A `bpf` filter's program: `TCA_BPF_ID`, `_NAME`, `_TAG`, and `_FLAGS` for direct-action.
fn cls_bpf(opts: &[(u16, &[u8])]) -> BpfProgram {
    BpfProgram {
        id: find(opts, TCA_BPF_ID).and_then(|p| u32_at(p, 0)),
        name: find(opts, TCA_BPF_NAME).map(attr_string),
        tag: find(opts, TCA_BPF_TAG).map(hex),
        direct_action: find(opts, TCA_BPF_FLAGS)
            .and_then(|p| u32_at(p, 0))
            .is_some_and(|f| f & TCA_BPF_FLAG_ACT_DIRECT != 0),
    }
}

/// The actions of a filter: one nested attribute per action, its type the action's order.
fn parse_actions(list: &[u8]) -> Vec<TcAction> {
    nested(list)
        .into_iter()
        .filter_map(|(order, payload)| {
            let attrs = nested(payload);
            let kind = attr_string(find(&attrs, TCA_ACT_KIND)?);
            let opts = find(&attrs, TCA_ACT_OPTIONS)
                .map(nested)
                .unwrap_or_default();
            let params = find(&opts, params_attr(&kind));
            Some(TcAction {
                order: u32::from(order),
                index: params.and_then(|p| u32_at(p, 0)),
                mirred: params.filter(|_| kind == "mirred").and_then(mirred),
                bpf: (kind == "bpf").then(|| act_bpf(&opts)),
                kind,
            })
        })
        .collect()
}

/// `struct tc_mirred`: `tc_gen` (index, capab, action, refcnt, bindcnt), eaction, ifindex.
fn mirred(params: &[u8]) -> Option<Mirred> {
    let eaction = i32::from_ne_bytes(params.get(20..24)?.try_into().ok()?);
    Some(Mirred {
        action: MirredAction::from_kernel(eaction),
        eaction,
        ifindex: u32_at(params, 24)?,
        target: None,
    })
}

fn act_bpf(opts: &[(u16, &[u8])]) -> BpfProgram {
    BpfProgram {
        id: find(opts, TCA_ACT_BPF_ID).and_then(|p| u32_at(p, 0)),
        name: find(opts, TCA_ACT_BPF_NAME).map(attr_string),
        tag: find(opts, TCA_ACT_BPF_TAG).map(hex),
        direct_action: false,
    }
}

/// Names each mirred target from the calling thread's link table, with its offload features.
fn name_targets(filters: &mut TcFilters) {
    let wanted = filters
        .filters
        .iter()
        .flat_map(|f| &f.actions)
        .any(|a| a.mirred.is_some());
    if !wanted {
        return;
    }
    let Ok(links) = super::dump_links() else {
        return;
    };
    let targets = filters
        .filters
        .iter_mut()
        .flat_map(|f| f.actions.iter_mut())
        .filter_map(|a| a.mirred.as_mut());
    for m in targets {
        m.target = links
            .iter()
            .find(|l| l.ifindex == m.ifindex)
            .map(|l| MirredTarget {
                name: l.name.clone(),
                kind: DeviceKind::from_link_kind(
                    l.link_kind.as_deref(),
                    l.flags & libc::IFF_LOOPBACK as u32 != 0,
                ),
                link_kind: l.link_kind.clone(),
                oper_state: l.oper_state.clone(),
                features: super::features(&l.name).ok(),
            });
    }
}

fn u32_at(payload: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        payload.get(offset..offset + 4)?.try_into().ok()?,
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_attr as attr;
    use super::*;

    fn mirred_params(index: u32, eaction: i32, ifindex: u32) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend(index.to_ne_bytes());
        p.extend([0u8; 16]); // capab, action, refcnt, bindcnt
        p.extend(eaction.to_ne_bytes());
        p.extend(ifindex.to_ne_bytes());
        p
    }

    /// An action list as `tcf_action_dump` nests it: the mirred at order 1 with its options
    /// flagged `NLA_F_NESTED`, a csum at order 2.
    #[test]
    fn actions_mirred_csum_and_their_indexes_are_read() {
        let mirred_opts = attr(2, &mirred_params(7, 2, 12));
        let mut first = attr(TCA_ACT_KIND, b"mirred\0");
        first.extend(attr(TCA_ACT_OPTIONS | 0x8000, &mirred_opts));
        let mut second = attr(TCA_ACT_KIND, b"csum\0");
        second.extend(attr(TCA_ACT_OPTIONS, &attr(1, &[9, 0, 0, 0, 0, 0, 0, 0])));
        let mut list = attr(1 | 0x8000, &first);
        list.extend(attr(2, &second));
        let actions = parse_actions(&list);
        assert_eq!(actions.len(), 2);
        assert_eq!((actions[0].order, actions[0].kind.as_str()), (1, "mirred"));
        assert_eq!(actions[0].index, Some(7));
        let m = actions[0].mirred.as_ref().expect("mirred parameters");
        assert_eq!((m.action, m.ifindex), (MirredAction::EgressMirror, 12));
        assert_eq!(
            (actions[1].kind.as_str(), actions[1].index),
            ("csum", Some(9))
        );
        assert!(actions[1].mirred.is_none());
        // A truncated list ends the walk without a panic.
        assert!(parse_actions(&list[..3]).is_empty());
        assert!(mirred(&[0u8; 20]).is_none());
    }

    #[test]
    fn a_cls_bpf_program_is_named() {
        let mut opts = attr(TCA_BPF_ID, &42u32.to_ne_bytes());
        opts.extend(attr(TCA_BPF_NAME, b"prog.o:[tc]\0"));
        opts.extend(attr(
            TCA_BPF_TAG,
            &[0xa0, 0x4f, 0x5e, 0xef, 6, 0xa7, 0xf5, 0x55],
        ));
        opts.extend(attr(TCA_BPF_FLAGS, &1u32.to_ne_bytes()));
        let p = cls_bpf(&nested(&opts));
        assert_eq!(p.id, Some(42));
        assert_eq!(p.name.as_deref(), Some("prog.o:[tc]"));
        assert_eq!(p.tag.as_deref(), Some("a04f5eef06a7f555"));
        assert!(p.direct_action);
    }

    #[test]
    fn classifiers_name_their_action_attribute() {
        assert_eq!(actions_attr("u32"), Some(7));
        assert_eq!(actions_attr("matchall"), Some(2));
        assert_eq!(actions_attr("flower"), Some(3));
        assert_eq!(actions_attr("bpf"), Some(1));
        assert_eq!(actions_attr("rsvp"), None);
        assert_eq!((params_attr("csum"), params_attr("mirred")), (1, 2));
    }

    /// Loopback has no clsact qdisc here: nothing, and no problem.
    #[test]
    fn a_device_without_a_clsact_qdisc_has_no_filters() {
        let f = tc_filters(1);
        assert!(f.filters.is_empty(), "{f:?}");
        assert!(f.problems.is_empty(), "{f:?}");
    }
}
