//! The parsing of `nft` dumps on bytes captured from the kernel (6.18, `iptables-nft` v1.8.9
//! in a namespace: `-A OUTPUT -p udp --dport 9 -j NFQUEUE --queue-num 3 --queue-bypass`,
//! `-A OUTPUT -m comment --comment "ids tap" -j NFQUEUE --queue-balance 2:5
//! --queue-cpu-fanout`, `-N SUB`, `-A SUB -j NFQUEUE --queue-num 7`, `-A OUTPUT -p tcp -j
//! SUB`), each message without its netlink header; and on a hand-built nft `queue` expression
//! (this kernel has no nft_queue).

use super::*;
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

fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = 4 + payload.len();
    let mut out = Vec::new();
    out.extend((len as u16).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(payload);
    out.resize(len.next_multiple_of(4), 0);
    out
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
