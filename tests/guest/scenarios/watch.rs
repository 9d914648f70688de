//! What `zcdoctor watch` (issue #17) will read from each kernel of the tier: the struct offsets
//! its kprobe programs follow, from the kernel's own BTF (docs/research/watch-design.md).

use zcdoctor::probe::watch::btf::Offsets;

use crate::harness::{Kernel, Outcome, Scenario};

/// Every member the watch programs follow resolves in this kernel's BTF, through anonymous
/// unions; the two that have not moved on x86-64 are where they always were.
fn btf_offsets(k: &Kernel) -> Outcome {
    let btf = Offsets::kernel().unwrap_or_else(|e| panic!("{}: {e}", k.release));
    assert_eq!(btf.of("sk_buff", "sk"), Ok(24));
    assert_eq!(btf.of("sk_buff", "cb"), Ok(40));
    let needed = [
        ("sk_buff", "head"),
        ("sk_buff", "end"),
        ("sk_buff", "dev"),
        ("sk_buff", "data_len"),
        ("skb_shared_info", "destructor_arg"),
        ("net_device", "ifindex"),
        ("sock", "sk_socket"),
        ("socket_alloc", "vfs_inode.i_ino"),
    ];
    let mut found = Vec::new();
    for (strukt, path) in needed {
        let at = btf
            .of(strukt, path)
            .unwrap_or_else(|e| panic!("{}: {e}", k.release));
        found.push(format!("{strukt}.{path} {at}"));
    }
    Outcome::Ran(found.join(", "))
}

pub const BTF_OFFSETS: Scenario = Scenario {
    name: "watch_btf_offsets",
    run: btf_offsets,
};
