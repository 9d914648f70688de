//! nfnetlink `NFT_MSG_GETCHAIN` and `NFT_MSG_GETRULE` dumps (`NFNL_SUBSYS_NFTABLES`): the
//! rules of the calling thread's namespace that queue packets to userspace, as `nft -a list
//! ruleset` shows them.
//!
//! Read from the kernel's dump code (net/netfilter/nf_tables_api.c: `nf_tables_fill_chain_info`,
//! `nf_tables_fill_rule_info`; nft_queue.c `nft_queue_dump`; nft_compat.c `nft_target_dump`) and
//! include/uapi/linux/netfilter/{nf_tables.h,nfnetlink.h,xt_NFQUEUE.h}. Every message starts with
//! a `struct nfgenmsg` (family, version, resource id); numbers in nftables attributes are big
//! endian, an xt target's info is the kernel's own struct (host order). A dump with family
//! `NFPROTO_UNSPEC` and no attributes answers every table of every family. iptables-nft writes
//! `-j NFQUEUE` as an xt `target` expression named `NFQUEUE` (measured: iptables v1.8.9 on 6.18),
//! nft's `queue` statement as the `queue` expression.

use std::collections::BTreeMap;

use super::{Conn, NetlinkError, attr_string, find, nested};
use crate::evidence::{JumpFrom, MAX_NFT_RULES, MAX_QUEUE_RULES, QueueRule};
use neli::{consts::socket::NlFamily, types::Buffer};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
/// `NFTA_CHAIN_*`, `NFTA_HOOK_*`.
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
/// `NFTA_RULE_*`.
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
/// `NFTA_EXPR_NAME`, `NFTA_EXPR_DATA`.
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
/// `NFTA_QUEUE_*` and its flags `NFT_QUEUE_FLAG_BYPASS`, `NFT_QUEUE_FLAG_CPU_FANOUT`.
const NFTA_QUEUE_NUM: u16 = 1;
const NFTA_QUEUE_TOTAL: u16 = 2;
const NFTA_QUEUE_FLAGS: u16 = 3;
const NFTA_QUEUE_SREG_QNUM: u16 = 4;
const QUEUE_FLAG_BYPASS: u16 = 1;
const QUEUE_FLAG_CPU_FANOUT: u16 = 2;
/// `NFTA_TARGET_NAME`/`NFTA_MATCH_NAME`, `_REV`, `_INFO` (nft_compat).
const NFTA_XT_NAME: u16 = 1;
const NFTA_XT_REV: u16 = 2;
const NFTA_XT_INFO: u16 = 3;
/// `NFTA_IMMEDIATE_DATA` → `NFTA_DATA_VERDICT` → `NFTA_VERDICT_CODE`, `NFTA_VERDICT_CHAIN`.
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
/// `NFTNL_UDATA_RULE_COMMENT` in a rule's user data (type, length, value records).
const UDATA_RULE_COMMENT: u8 = 0;

/// The queue rules of the calling thread's namespace, how many rules were read and whether
/// the reading stopped at [`MAX_NFT_RULES`] or [`MAX_QUEUE_RULES`].
#[derive(Debug, Default)]
pub struct QueueRules {
    pub rules: Vec<QueueRule>,
    pub rules_read: usize,
    pub truncated: bool,
}

pub fn queue_rules() -> Result<QueueRules, NetlinkError> {
    let mut conn = Conn::open(NlFamily::Netfilter, "nftables rule set dump")?;
    let chains: BTreeMap<ChainKey, Hook> = dump(&mut conn, NFT_MSG_GETCHAIN, "chain list")?
        .into_iter()
        .filter(|(t, _)| *t == NFT_MSG_NEWCHAIN)
        .filter_map(|(_, m)| parse_chain(&m))
        .collect();
    let messages = dump(&mut conn, NFT_MSG_GETRULE, "rule set")?;
    let raw: Vec<RawRule> = messages
        .iter()
        .filter(|(t, _)| *t == NFT_MSG_NEWRULE)
        .take(MAX_NFT_RULES)
        .filter_map(|(_, m)| parse_rule(m))
        .collect();
    let mut out = QueueRules {
        rules_read: raw.len(),
        truncated: messages.len() > MAX_NFT_RULES,
        ..QueueRules::default()
    };
    for rule in raw.iter().filter(|r| r.queue.is_some()) {
        if out.rules.len() >= MAX_QUEUE_RULES {
            out.truncated = true;
            break;
        }
        out.rules.push(queue_rule(rule, &chains, &raw));
    }
    Ok(out)
}

fn dump(
    conn: &mut Conn,
    msg: u16,
    table: &'static str,
) -> Result<Vec<(u16, Vec<u8>)>, NetlinkError> {
    // struct nfgenmsg: NFPROTO_UNSPEC (every family), NFNETLINK_V0, resource id 0.
    let request = Buffer::from(vec![0u8, 0, 0, 0]);
    let nl_type = (NFNL_SUBSYS_NFTABLES << 8) | msg;
    Ok(conn
        .dump::<u16, Buffer, Buffer>(nl_type, request, table)?
        .into_iter()
        .map(|(t, b)| (t & 0xFF, b.as_ref().to_vec()))
        .collect())
}

/// A chain: its family, table and name.
type ChainKey = (u8, String, String);

/// A base chain's hook and priority.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Hook {
    num: u32,
    priority: i32,
}

/// One rule as read, with what the check needs of its expressions.
#[derive(Debug, Default, PartialEq)]
struct RawRule {
    family: u8,
    table: String,
    chain: String,
    handle: u64,
    /// The names of the expressions before the queue (or before a jump), matches only.
    matches: Vec<String>,
    queue: Option<Queue>,
    /// A `jump`/`goto` to this chain, and whether expressions before it match.
    jump: Option<(String, bool)>,
    comment: Option<String>,
}

#[derive(Debug, Default, PartialEq)]
struct Queue {
    num: u16,
    total: u16,
    flags: u16,
    from_register: bool,
    expression: &'static str,
}

fn parse_chain(msg: &[u8]) -> Option<(ChainKey, Hook)> {
    let family = *msg.first()?;
    let attrs = nested(msg.get(4..)?);
    let hook = nested(find(&attrs, NFTA_CHAIN_HOOK)?);
    let key = (
        family,
        attr_string(find(&attrs, NFTA_CHAIN_TABLE)?),
        attr_string(find(&attrs, NFTA_CHAIN_NAME)?),
    );
    let num = be_u32(find(&hook, NFTA_HOOK_HOOKNUM)?)?;
    let priority = find(&hook, NFTA_HOOK_PRIORITY)
        .and_then(be_u32)
        .map_or(0, |p| p as i32);
    Some((key, Hook { num, priority }))
}

fn parse_rule(msg: &[u8]) -> Option<RawRule> {
    let family = *msg.first()?;
    let attrs = nested(msg.get(4..)?);
    let mut rule = RawRule {
        family,
        table: attr_string(find(&attrs, NFTA_RULE_TABLE)?),
        chain: attr_string(find(&attrs, NFTA_RULE_CHAIN)?),
        handle: be_u64(find(&attrs, NFTA_RULE_HANDLE)?)?,
        comment: find(&attrs, NFTA_RULE_USERDATA).and_then(udata_comment),
        ..RawRule::default()
    };
    let list = find(&attrs, NFTA_RULE_EXPRESSIONS)
        .map(nested)
        .unwrap_or_default();
    for (_, elem) in list {
        let expr = nested(elem);
        let name = attr_string(find(&expr, NFTA_EXPR_NAME)?);
        let data = find(&expr, NFTA_EXPR_DATA).map(nested).unwrap_or_default();
        match name.as_str() {
            "queue" => rule.queue = Some(nft_queue(&data)),
            "target" => {
                let target = attr_string(find(&data, NFTA_XT_NAME).unwrap_or_default());
                if target == "NFQUEUE" {
                    rule.queue = Some(xt_nfqueue(&data));
                }
            }
            "immediate" => rule.jump = jump(&data).map(|c| (c, !rule.matches.is_empty())),
            "match" => {
                let m = attr_string(find(&data, NFTA_XT_NAME).unwrap_or_default());
                if m == "comment" {
                    rule.comment = find(&data, NFTA_XT_INFO).map(attr_string);
                } else {
                    rule.matches.push(format!("xt {m}"));
                }
            }
            "counter" | "log" => {}
            _ => rule.matches.push(name),
        }
        if rule.queue.is_some() || rule.jump.is_some() {
            break;
        }
    }
    Some(rule)
}

/// nft_queue: `NFTA_QUEUE_NUM`, `_TOTAL`, `_FLAGS` (be16), or `_SREG_QNUM` (`queue to EXPR`).
fn nft_queue(data: &[(u16, &[u8])]) -> Queue {
    Queue {
        num: find(data, NFTA_QUEUE_NUM).and_then(be_u16).unwrap_or(0),
        total: find(data, NFTA_QUEUE_TOTAL).and_then(be_u16).unwrap_or(1),
        flags: find(data, NFTA_QUEUE_FLAGS).and_then(be_u16).unwrap_or(0),
        from_register: find(data, NFTA_QUEUE_SREG_QNUM).is_some(),
        expression: "queue",
    }
}

/// xt_NFQUEUE's info by revision: v0 `queuenum`; v1 adds `queues_total`; v2 `bypass`; v3
/// `flags` (`NFQ_FLAG_BYPASS` 1, `NFQ_FLAG_CPU_FANOUT` 2), each a host-order u16.
fn xt_nfqueue(data: &[(u16, &[u8])]) -> Queue {
    let rev = find(data, NFTA_XT_REV).and_then(be_u32).unwrap_or(0);
    let info = find(data, NFTA_XT_INFO).unwrap_or_default();
    let field = |i: usize| {
        info.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    Queue {
        num: field(0).unwrap_or(0),
        total: if rev >= 1 {
            field(1).unwrap_or(1).max(1)
        } else {
            1
        },
        flags: if rev >= 2 { field(2).unwrap_or(0) } else { 0 },
        from_register: false,
        expression: "xt NFQUEUE",
    }
}

/// The chain of an `immediate` verdict `jump`/`goto`.
fn jump(data: &[(u16, &[u8])]) -> Option<String> {
    let value = nested(find(data, NFTA_IMMEDIATE_DATA)?);
    let verdict = nested(find(&value, NFTA_DATA_VERDICT)?);
    let code = be_u32(find(&verdict, NFTA_VERDICT_CODE)?)? as i32;
    if code != NFT_JUMP && code != NFT_GOTO {
        return None;
    }
    Some(attr_string(find(&verdict, NFTA_VERDICT_CHAIN)?))
}

/// The comment record of a rule's user data.
fn udata_comment(mut udata: &[u8]) -> Option<String> {
    while udata.len() >= 2 {
        let (kind, len) = (udata[0], usize::from(udata[1]));
        let value = udata.get(2..2 + len)?;
        if kind == UDATA_RULE_COMMENT {
            return Some(attr_string(value));
        }
        udata = &udata[2 + len..];
    }
    None
}

fn queue_rule(r: &RawRule, chains: &BTreeMap<ChainKey, Hook>, all: &[RawRule]) -> QueueRule {
    let q = r.queue.as_ref();
    let hook = chains.get(&(r.family, r.table.clone(), r.chain.clone()));
    let reached_from = match hook {
        Some(_) => Vec::new(),
        None => all
            .iter()
            .filter(|j| j.family == r.family && j.table == r.table)
            .filter_map(|j| {
                let (to, conditional) = j.jump.as_ref()?;
                let from = chains.get(&(j.family, j.table.clone(), j.chain.clone()))?;
                (*to == r.chain).then(|| JumpFrom {
                    chain: j.chain.clone(),
                    hook: hook_name(r.family, from.num).to_string(),
                    conditional: *conditional,
                })
            })
            .collect(),
    };
    QueueRule {
        family: family_name(r.family).to_string(),
        table: r.table.clone(),
        chain: r.chain.clone(),
        hook: hook.map(|h| hook_name(r.family, h.num).to_string()),
        priority: hook.map(|h| h.priority),
        reached_from,
        handle: r.handle,
        queue: q.map_or(0, |q| q.num),
        queues: q.map_or(1, |q| q.total.max(1)),
        bypass: q.is_some_and(|q| q.flags & QUEUE_FLAG_BYPASS != 0),
        fanout: q.is_some_and(|q| q.flags & QUEUE_FLAG_CPU_FANOUT != 0),
        from_register: q.is_some_and(|q| q.from_register),
        expression: q.map_or("queue", |q| q.expression).to_string(),
        matches: r.matches.clone(),
        comment: r.comment.clone(),
    }
}

/// `NFPROTO_*` as nft names the family.
fn family_name(family: u8) -> &'static str {
    match family {
        1 => "inet",
        2 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        10 => "ip6",
        _ => "unknown",
    }
}

/// `NF_INET_*` (`NF_NETDEV_*` for netdev) as nft names the hook.
fn hook_name(family: u8, num: u32) -> &'static str {
    match (family, num) {
        (5, 0) => "ingress",
        (5, 1) => "egress",
        (_, 0) => "prerouting",
        (_, 1) => "input",
        (_, 2) => "forward",
        (_, 3) => "output",
        (_, 4) => "postrouting",
        (_, 5) => "ingress",
        _ => "unknown",
    }
}

fn be_u16(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(..2)?.try_into().ok()?))
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

// The parsing of `nft` dumps on bytes captured from the kernel (6.18, `iptables-nft` v1.8.9
// in a namespace: `-A OUTPUT -p udp --dport 9 -j NFQUEUE --queue-num 3 --queue-bypass`,
// `-A OUTPUT -m comment --comment "ids tap" -j NFQUEUE --queue-balance 2:5
// --queue-cpu-fanout`, `-N SUB`, `-A SUB -j NFQUEUE --queue-num 7`, `-A OUTPUT -p tcp -j
// SUB`), each message without its netlink header; and on a hand-built nft `queue` expression
// (this kernel has no nft_queue).
#[cfg(test)]
mod tests {
    use super::super::test_attr as attr;
    use super::{
        BTreeMap, ChainKey, Hook, JumpFrom, NFTA_EXPR_DATA, NFTA_EXPR_NAME, NFTA_QUEUE_FLAGS,
        NFTA_QUEUE_NUM, NFTA_QUEUE_TOTAL, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS, NFTA_RULE_HANDLE,
        NFTA_RULE_TABLE, NFTA_RULE_USERDATA, RawRule, hook_name, parse_chain, parse_rule,
        queue_rule, udata_comment,
    };
    use crate::probe::netlink::tests_support::hex;

    /// `NFT_MSG_NEWCHAIN` of `ip filter OUTPUT` (hook output, priority 0).
    const CHAIN_OUTPUT: &str = "020000060b00010066696c74657200000b0003004f555450555400000c000200000000000000000114000400\
        0800010000000003080002000000000008000500000000010b00070066696c746572000008000a0000000001\
        0800060000000003";
    /// `NFT_MSG_NEWCHAIN` of the regular chain `ip filter SUB` (no hook).
    const CHAIN_SUB: &str =
        "020000060b00010066696c746572000008000300535542000c00020000000000000000040800060000000002";
    /// `-p udp --dport 9 -j NFQUEUE --queue-num 3 --queue-bypass` (handle 2).
    const RULE_UDP_BYPASS: &str = "020000060b00010066696c74657200000b0002004f555450555400000c000300000000000000000214010400\
        24000100090001006d6574610000000014000200080002000000001008000100000000012c00010008000100\
        636d700020000200080001000000000108000200000000000c0003000500010011000000340001000c000100\
        7061796c6f616400240002000800010000000001080002000000000208000300000000020800040000000002\
        2c00010008000100636d700020000200080001000000000108000200000000000c0003000600010000090000\
        2c0001000c000100636f756e746572001c0002000c00010000000000000000000c0002000000000000000000\
        340001000b0001007461726765740000240002000c0001004e4651554555450008000200000000030c000300\
        0300010001000000";
    /// `-m comment --comment "ids tap" -j NFQUEUE --queue-balance 2:5 --queue-cpu-fanout` (handle 3).
    const RULE_COMMENT_BALANCE: &str = "020000060b00010066696c74657200000b0002004f555450555400000c00030000000000000000030c000600\
        0000000000000002900104002c0101000a0001006d617463680000001c0102000c000100636f6d6d656e7400\
        0800020000000000040103006964732074617000000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000002c0001000c000100636f756e746572001c0002000c00010000000000000000000c00020000000000\
        00000000340001000b0001007461726765740000240002000c0001004e465155455545000800020000000003\
        0c0003000200040002000000";
    /// `-p tcp -j SUB` (handle 6).
    const RULE_JUMP_SUB: &str = "020000060b00010066696c74657200000b0002004f555450555400000c00030000000000000000060c000600\
        0000000000000003b800040024000100090001006d6574610000000014000200080002000000001008000100\
        000000012c00010008000100636d700020000200080001000000000108000200000000000c00030005000100\
        060000002c0001000c000100636f756e746572001c0002000c00010000000000000000000c00020000000000\
        00000000380001000e000100696d6d6564696174650000002400020008000100000000001800020014000200\
        08000100fffffffd0800020053554200";
    /// `-A SUB -j NFQUEUE --queue-num 7` (handle 5).
    const RULE_SUB_QUEUE: &str = "020000060b00010066696c746572000008000200535542000c0003000000000000000005640004002c000100\
        0c000100636f756e746572001c0002000c00010000000000000000000c000200000000000000000034000100\
        0b0001007461726765740000240002000c0001004e4651554555450008000200000000030c00030007000100\
        00000000";

    fn rule(h: &str) -> RawRule {
        parse_rule(&hex(h)).expect("a rule")
    }

    fn chains() -> BTreeMap<ChainKey, Hook> {
        [CHAIN_OUTPUT, CHAIN_SUB]
            .iter()
            .filter_map(|h| parse_chain(&hex(h)))
            .collect()
    }

    #[test]
    fn base_chains_have_a_hook_and_regular_ones_none() {
        let chains = chains();
        assert_eq!(chains.len(), 1, "{chains:?}");
        let key = (2, "filter".to_string(), "OUTPUT".to_string());
        assert_eq!(
            chains[&key],
            Hook {
                num: 3,
                priority: 0
            }
        );
        assert_eq!(hook_name(2, 3), "output");
        assert_eq!(hook_name(5, 1), "egress");
    }

    #[test]
    fn an_iptables_nft_nfqueue_target_is_a_queue_rule() {
        let r = rule(RULE_UDP_BYPASS);
        assert_eq!(
            (r.family, r.table.as_str(), r.chain.as_str()),
            (2, "filter", "OUTPUT")
        );
        assert_eq!(r.handle, 2);
        let q = r.queue.as_ref().expect("queue");
        assert_eq!(
            (q.num, q.total, q.flags, q.expression),
            (3, 1, 1, "xt NFQUEUE")
        );
        assert_eq!(r.matches, ["meta", "cmp", "payload", "cmp"]);
        let all = [r];
        let qr = queue_rule(&all[0], &chains(), &all);
        assert_eq!(
            qr.label(),
            "ip table filter chain OUTPUT (hook output) handle 2"
        );
        assert_eq!(qr.queue_label(), "queue 3 bypass");
        assert_eq!(qr.priority, Some(0));
    }

    #[test]
    fn balance_fanout_and_the_xt_comment_are_read() {
        let r = rule(RULE_COMMENT_BALANCE);
        let q = r.queue.as_ref().expect("queue");
        assert_eq!((q.num, q.total, q.flags), (2, 4, 2));
        assert!(
            r.matches.is_empty(),
            "a comment is not a match: {:?}",
            r.matches
        );
        assert_eq!(r.comment.as_deref(), Some("ids tap"));
        let all = [r];
        let qr = queue_rule(&all[0], &chains(), &all);
        assert_eq!(qr.queue_label(), "queues 2-5 fanout");
    }

    #[test]
    fn a_regular_chain_names_the_base_chains_that_jump_to_it() {
        let all = [
            rule(RULE_UDP_BYPASS),
            rule(RULE_JUMP_SUB),
            rule(RULE_SUB_QUEUE),
        ];
        assert_eq!(all[1].jump, Some(("SUB".to_string(), true)));
        assert!(all[1].queue.is_none());
        let qr = queue_rule(&all[2], &chains(), &all);
        assert_eq!((qr.hook, qr.queue), (None, 7));
        assert_eq!(
            qr.reached_from,
            [JumpFrom {
                chain: "OUTPUT".into(),
                hook: "output".into(),
                conditional: true
            }]
        );
    }

    /// `inet zc out handle 4: queue num 5-6 bypass comment "zc"`, as nft_queue_dump and
    /// nf_tables_fill_rule_info write it.
    #[test]
    fn an_nft_queue_expression_and_its_udata_comment_are_read() {
        let mut data = attr(NFTA_QUEUE_NUM, &5u16.to_be_bytes());
        data.extend(attr(NFTA_QUEUE_TOTAL, &2u16.to_be_bytes()));
        data.extend(attr(NFTA_QUEUE_FLAGS, &1u16.to_be_bytes()));
        let mut expr = attr(NFTA_EXPR_NAME, b"queue\0");
        expr.extend(attr(NFTA_EXPR_DATA | 0x8000, &data));
        let mut msg = vec![1u8, 0, 0, 9];
        msg.extend(attr(NFTA_RULE_TABLE, b"zc\0"));
        msg.extend(attr(NFTA_RULE_CHAIN, b"out\0"));
        msg.extend(attr(NFTA_RULE_HANDLE, &4u64.to_be_bytes()));
        msg.extend(attr(
            NFTA_RULE_EXPRESSIONS | 0x8000,
            &attr(1 | 0x8000, &expr),
        ));
        msg.extend(attr(NFTA_RULE_USERDATA, &[0, 3, b'z', b'c', 0]));
        let r = parse_rule(&msg).expect("a rule");
        assert_eq!(r.comment.as_deref(), Some("zc"));
        let all = [r];
        let qr = queue_rule(&all[0], &BTreeMap::new(), &all);
        assert_eq!(
            (qr.family.as_str(), qr.handle, qr.hook.clone()),
            ("inet", 4, None)
        );
        assert_eq!(qr.queue_label(), "queues 5-6 bypass");
        assert_eq!(qr.expression, "queue");
        assert!(qr.matches.is_empty());
        // Truncated input ends the walk, no panic.
        assert!(parse_rule(&msg[..3]).is_none());
        assert_eq!(udata_comment(&[0, 9, b'x']), None);
    }
}
