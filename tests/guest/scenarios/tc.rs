//! tc on the path (issue #18) on the tier's kernels, with actions and classifiers this host's
//! kernel lacks (matchall, pedit, skbedit): a mirror to a tapped device, a header rewrite
//! (pedit) after a mirror and alone, an `skbedit priority`, and a BPF classifier that passes
//! everything. Each is judged against the live probe's COPIED completions.

use serde_json::Value;

use super::{blockers, explains, live, static_neighbour};
use crate::common::path::{every_send_copied, no_send_copied};
use crate::common::{Netns, codes, finding, tmp_path};
use crate::harness::{Kernel, Outcome, Scenario, prove};

/// A namespace with the black-hole NIC `d0` (198.18.0.1/24, neighbour 198.18.0.2) under a
/// clsact qdisc, and a second black-hole NIC `dm` for mirrors.
fn shape(tag: &str) -> Netns {
    let a = Netns::new(tag);
    a.dummy("d0", Some("198.18.0.1/24"));
    a.dummy("dm", None);
    static_neighbour(&a, "d0");
    a.exec_ok(&["tc", "qdisc", "add", "dev", "d0", "clsact"]);
    a
}

/// A matchall filter on d0's egress hook, preference `pref`, running `actions`.
fn filter(a: &Netns, pref: &str, actions: &str) {
    let mut cmd = vec![
        "tc", "filter", "add", "dev", "d0", "egress", "pref", pref, "matchall",
    ];
    cmd.extend(actions.split_whitespace());
    a.exec_ok(&cmd);
}

fn probe(a: &Netns) -> Value {
    live(a, "d0", "198.18.0.2").1
}

/// A mirror to a device a tcpdump reads: every send copied, `tc-mirred-copies` names the
/// mirror and the tap's holder.
fn mirror_to_a_tapped_device(_: &Kernel) -> Outcome {
    let a = shape("gctm");
    let dump = a.tcpdump(&["-i", "dm"]);
    filter(&a, "10", "action mirred egress mirror dev dm");
    let doc = probe(&a);
    let (copied, completions) = every_send_copied(&doc);
    let f = explains(&doc, "tc-mirred-copies");
    let summary = f["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("mirred egress mirror to dm"), "{summary}");
    assert!(
        summary.contains(&dump.pid().to_string()),
        "tcpdump's pid: {summary}"
    );
    Outcome::Ran(format!(
        "mirror to a tapped dm: {copied} of {completions} copied, tc-mirred-copies names tcpdump"
    ))
}

pub const MIRROR_TO_A_TAPPED_DEVICE: Scenario = Scenario {
    name: "tc_mirror_to_a_tapped_device",
    run: mirror_to_a_tapped_device,
};

/// A pedit header rewrite after a mirror to a clean device: the mirror's clone shares the
/// packet and pedit expands it, yet `skb_orphan_frags()` leaves MSG_ZEROCOPY pages alone, so
/// nothing is copied: `tc-action-writes` is an info that says so, never a blocker. The same
/// pedit alone, and `skbedit priority` (writes nothing: no tc finding), copy nothing either.
fn pedit_after_a_mirror(_: &Kernel) -> Outcome {
    let a = shape("gctp");
    filter(
        &a,
        "10",
        "action mirred egress mirror dev dm action pedit ex munge ip tos set 0x10",
    );
    let doc = probe(&a);
    let (_, completions) = no_send_copied(&doc);
    let f = finding(&doc, "tc-action-writes").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "info", "{f:#}");
    assert!(blockers(&doc).is_empty(), "{:?}", blockers(&doc));
    prove("tc-action-writes");

    let alone = shape("gctq");
    filter(&alone, "10", "action pedit ex munge ip tos set 0x10");
    let alone_doc = probe(&alone);
    let (_, alone_done) = no_send_copied(&alone_doc);
    assert!(
        finding(&alone_doc, "tc-action-writes").is_some(),
        "{:?}",
        codes(&alone_doc)
    );
    assert!(
        blockers(&alone_doc).is_empty(),
        "{:?}",
        blockers(&alone_doc)
    );

    let prio = shape("gctk");
    filter(&prio, "10", "action skbedit priority 6");
    let prio_doc = probe(&prio);
    let (_, prio_done) = no_send_copied(&prio_doc);
    assert!(
        codes(&prio_doc).iter().all(|c| !c.starts_with("tc-")),
        "{:?}",
        codes(&prio_doc)
    );
    assert!(blockers(&prio_doc).is_empty(), "{:?}", blockers(&prio_doc));
    Outcome::Ran(format!(
        "mirror then pedit ip tos: 0 of {completions} copied (tc-action-writes, info); pedit alone: 0 of {alone_done}; skbedit priority: 0 of {prio_done}, no tc finding"
    ))
}

pub const PEDIT_AFTER_A_MIRROR: Scenario = Scenario {
    name: "tc_pedit_after_a_mirror",
    run: pedit_after_a_mirror,
};

/// A BPF classifier (direct action) that passes everything: named with its id and tag,
/// `tc-bpf-program` leaves it to the kernel's count, which shows no copy.
fn bpf_program_passing(_: &Kernel) -> Outcome {
    let a = shape("gctb");
    let object = tmp_path("tc_pass_guest.o");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/senders/tc_pass.ll");
    crate::common::run(&["llc", "-march=bpf", "-filetype=obj", "-o", &object, source]);
    a.exec_ok(&[
        "tc", "filter", "add", "dev", "d0", "egress", "pref", "5", "bpf", "da", "obj", &object,
        "sec", "tc",
    ]);
    let doc = probe(&a);
    let _ = std::fs::remove_file(&object);
    let (_, completions) = no_send_copied(&doc);
    let f = finding(&doc, "tc-bpf-program").unwrap_or_else(|| panic!("{:?}", codes(&doc)));
    assert_eq!(f["severity"], "warning");
    assert!(blockers(&doc).is_empty(), "{:?}", blockers(&doc));
    prove("tc-bpf-program");
    Outcome::Ran(format!(
        "a passing BPF classifier: 0 of {completions} copied, tc-bpf-program (warning), no blocker"
    ))
}

pub const BPF_PROGRAM_PASSING: Scenario = Scenario {
    name: "tc_bpf_program_passing",
    run: bpf_program_passing,
};
