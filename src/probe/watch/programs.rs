//! The watch programs, emitted as BPF instructions for the running kernel's layout.
//!
//! - A **copy program** runs at the entry of a function that copies zerocopy data
//!   (`skb_copy_ubufs`, `__pskb_pull_tail` when it pulls the whole paged part, `skb_segment`
//!   entered without `NETIF_F_SG`). It keeps only skbs that carry a `MSG_ZEROCOPY` notification
//!   (the zerocopy flag in the shared info, and the notification's callback or ops being the
//!   kernel's own), and counts them in the copies map by site, caller (the return address),
//!   device, namespace and the sender's socket inode, with the bytes of paged data.
//! - A **completion program** runs where a notification is completed and counts it in the
//!   completions map by socket inode and whether it reports a copy, adding the sends it
//!   covers.
//!
//! The sender's socket comes from the notification, not from `skb->sk` (NULL on the clones
//! that taps and loopback copy): a notification lives in the control block of an skb the
//! kernel allocated on the sending socket (`sock_omalloc`), so `container_of(uarg, struct
//! sk_buff, cb)->sk` is that socket, and its inode is the one `/proc/PID/fd` links show.
//! Pointers are followed with `bpf_probe_read_kernel`, which yields zero on a bad one, so a
//! stale or foreign pointer counts under inode 0 and never faults.
//!
//! Every program also adds its hits and the nanoseconds it ran to the statistics array, which is
//! how watch reports the overhead it added.

use super::insn::{
    Asm, AsmError, Insn, R0, R1, R2, R3, R4, R6, R7, R8, R9, R10, Reg, Size, helper,
};

/// `struct pt_regs` on x86-64: where a kprobe program finds the arguments and the stack.
mod pt_regs {
    pub const DI: i16 = 112;
    pub const SI: i16 = 104;
    pub const DX: i16 = 96;
    pub const SP: i16 = 152;
}

// The program's stack frame (below R10).
const SCRATCH: i16 = -8;
const LOST: i16 = -16;
const BYTES: i16 = -24;
const STATS_KEY: i16 = -28;
const KEY: i16 = -64;
const VAL: i16 = -80;

/// `NETIF_F_SG` (bit 0 of `netdev_features_t`, include/linux/netdev_features.h).
const NETIF_F_SG: i32 = 1;
/// `BPF_NOEXIST`.
const NOEXIST: i32 = 1;

/// Sizes of the maps' keys and values, shared with the reader.
pub const COPY_KEY: usize = 32;
pub const COUNT_VALUE: usize = 16;
pub const DONE_KEY: usize = 16;
pub const STATS_VALUE: usize = 24;

/// Where a copy program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// `skb_copy_ubufs(skb, gfp)`: every frag copied into new pages.
    CopyUbufs = 0,
    /// `__pskb_pull_tail(skb, delta)` with `delta == skb->data_len`: linearised.
    FullPull = 1,
    /// `skb_segment(head_skb, features)` without `NETIF_F_SG`: segmented into linear copies.
    SegmentNoSg = 2,
}

impl Site {
    pub fn from_index(i: u32) -> Option<Site> {
        [Site::CopyUbufs, Site::FullPull, Site::SegmentNoSg]
            .into_iter()
            .find(|s| *s as u32 == i)
    }
}

/// How the running kernel completes a `MSG_ZEROCOPY` notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// 5.10: `sock_zerocopy_callback(uarg, success)`, once per notification.
    Callback,
    /// 6.1+: `__msg_zerocopy_callback(uarg)`, once per notification, the copy bit in the uarg.
    Final,
    /// `msg_zerocopy_callback(skb, uarg, success)` / `msg_zerocopy_complete(...)` at every put;
    /// the notification completes at the put that finds the reference count at 1.
    PerPut,
}

/// Offsets and constants of the running kernel the programs are emitted with (from BTF and
/// `/proc/kallsyms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub skb_head: i32,
    pub skb_end: i32,
    pub skb_data_len: i32,
    pub skb_dev: i32,
    pub skb_sk: i32,
    pub skb_cb: i32,
    /// `skb_shared_info.flags` (6.1+) or `.tx_flags` (5.10), and its zerocopy bit.
    pub shinfo_flags: i32,
    pub zerocopy_flag: i32,
    pub shinfo_destructor_arg: i32,
    /// `ubuf_info.ops` (6.10+) or `.callback`, and the address it holds for `MSG_ZEROCOPY`.
    pub uarg_ident: i32,
    pub ident_addr: u64,
    pub uarg_len: i32,
    pub uarg_refcnt: i32,
    /// Bit offset of the notification's `zerocopy` bit.
    pub uarg_zerocopy_bit: i32,
    pub sk_socket: i32,
    pub socket_ino: i32,
    pub dev_ifindex: i32,
    pub dev_net: i32,
    pub net_inum: i32,
    pub completion: Completion,
}

/// The maps a program is emitted against (their descriptors).
#[derive(Debug, Clone, Copy)]
pub struct Maps {
    pub copies: i32,
    pub completions: i32,
    pub stats: i32,
}

/// `dst = *(size *)(base + off)`, read with `bpf_probe_read_kernel` into a zeroed slot (so a
/// fault reads 0). `base` may be any register but R1 and R2.
fn read(a: &mut Asm, dst: Reg, base: Reg, off: i32, size: u32) {
    a.st_imm(Size::Dw, R10, SCRATCH, 0);
    if base != R3 {
        a.mov(R3, base);
    }
    a.add_imm(R3, off);
    a.mov(R1, R10);
    a.add_imm(R1, SCRATCH as i32);
    a.mov_imm(R2, size as i32);
    a.call(helper::PROBE_READ_KERNEL);
    a.ldx(Size::Dw, dst, R10, SCRATCH);
}

fn prologue(a: &mut Asm) {
    a.mov(R6, R1);
    a.st_imm(Size::Dw, R10, LOST, 0);
    a.call(helper::KTIME_GET_NS);
    a.mov(R9, R0);
}

/// Adds the hit, its time and a lost count to entry `index` of the statistics array, and
/// returns 0.
fn epilogue(a: &mut Asm, maps: &Maps, index: u32) {
    let done = a.label();
    a.st_imm(Size::W, R10, STATS_KEY, index as i32);
    a.ld_map_fd(R1, maps.stats);
    a.mov(R2, R10);
    a.add_imm(R2, STATS_KEY as i32);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jeq_imm(R0, 0, done);
    a.mov(R7, R0);
    a.call(helper::KTIME_GET_NS);
    a.sub(R0, R9);
    a.atomic_add(R7, 8, R0);
    a.mov_imm(R1, 1);
    a.atomic_add(R7, 0, R1);
    a.ldx(Size::Dw, R1, R10, LOST);
    a.atomic_add(R7, 16, R1);
    a.bind(done);
    a.mov_imm(R0, 0);
    a.exit();
}

/// Adds 1 and the u64 at `BYTES` to the entry of `map` whose key is at `KEY`, creating it;
/// a full map marks the hit lost. Continues at `out`.
fn count(a: &mut Asm, map: i32, out: super::insn::Label) {
    let have = a.label();
    let lost = a.label();
    a.ld_map_fd(R1, map);
    a.mov(R2, R10);
    a.add_imm(R2, KEY as i32);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jne_imm(R0, 0, have);
    a.st_imm(Size::Dw, R10, VAL, 0);
    a.st_imm(Size::Dw, R10, VAL + 8, 0);
    a.ld_map_fd(R1, map);
    a.mov(R2, R10);
    a.add_imm(R2, KEY as i32);
    a.mov(R3, R10);
    a.add_imm(R3, VAL as i32);
    a.mov_imm(R4, NOEXIST);
    a.call(helper::MAP_UPDATE_ELEM);
    a.ld_map_fd(R1, map);
    a.mov(R2, R10);
    a.add_imm(R2, KEY as i32);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jeq_imm(R0, 0, lost);
    a.bind(have);
    a.mov_imm(R1, 1);
    a.atomic_add(R0, 0, R1);
    a.ldx(Size::Dw, R1, R10, BYTES);
    a.atomic_add(R0, 8, R1);
    a.ja(out);
    a.bind(lost);
    a.st_imm(Size::Dw, R10, LOST, 1);
    a.ja(out);
}

/// `dst` = the socket inode of the notification in `uarg` (0 when a pointer on the way is bad).
fn sender_inode(a: &mut Asm, l: &Layout, dst: Reg, uarg: Reg) {
    read(a, R0, uarg, l.skb_sk - l.skb_cb, 8);
    read(a, R0, R0, l.sk_socket, 8);
    read(a, dst, R0, l.socket_ino, 8);
}

/// The program for a copy site; `index` is its entry in the statistics array.
pub fn copy_program(
    l: &Layout,
    site: Site,
    maps: &Maps,
    index: u32,
) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    let out = a.label();
    prologue(&mut a);
    a.ldx(Size::Dw, R7, R6, pt_regs::DI);
    match site {
        Site::CopyUbufs => {}
        Site::FullPull => {
            read(&mut a, R8, R7, l.skb_data_len, 4);
            a.jeq_imm(R8, 0, out);
            a.ldx(Size::Dw, R0, R6, pt_regs::SI);
            a.mov32(R0, R0);
            a.jne(R0, R8, out);
        }
        Site::SegmentNoSg => {
            a.ldx(Size::Dw, R0, R6, pt_regs::SI);
            a.jset_imm(R0, NETIF_F_SG, out);
        }
    }
    // The shared info: skb->head + skb->end (an offset on 64-bit kernels).
    read(&mut a, R8, R7, l.skb_head, 8);
    read(&mut a, R0, R7, l.skb_end, 4);
    a.add(R8, R0);
    read(&mut a, R0, R8, l.shinfo_flags, 1);
    a.and_imm(R0, l.zerocopy_flag);
    a.jeq_imm(R0, 0, out);
    read(&mut a, R8, R8, l.shinfo_destructor_arg, 8);
    a.jeq_imm(R8, 0, out);
    read(&mut a, R0, R8, l.uarg_ident, 8);
    a.ld_imm64(R1, l.ident_addr);
    a.jne(R0, R1, out);
    // The key: site, device, namespace, caller, sender.
    a.st_imm(Size::W, R10, KEY, site as i32);
    a.st_imm(Size::W, R10, KEY + 12, 0);
    sender_inode(&mut a, l, R0, R8);
    a.stx(Size::Dw, R10, KEY + 24, R0);
    a.ldx(Size::Dw, R0, R6, pt_regs::SP);
    read(&mut a, R0, R0, 0, 8);
    a.stx(Size::Dw, R10, KEY + 16, R0);
    read(&mut a, R0, R7, l.skb_data_len, 4);
    a.stx(Size::Dw, R10, BYTES, R0);
    read(&mut a, R8, R7, l.skb_dev, 8);
    read(&mut a, R0, R8, l.dev_ifindex, 4);
    a.stx(Size::W, R10, KEY + 4, R0);
    read(&mut a, R0, R8, l.dev_net, 8);
    read(&mut a, R0, R0, l.net_inum, 4);
    a.stx(Size::W, R10, KEY + 8, R0);
    count(&mut a, maps.copies, out);
    a.bind(out);
    epilogue(&mut a, maps, index);
    a.finish()
}

/// The program for the completion function of `l.completion`.
pub fn completion_program(l: &Layout, maps: &Maps, index: u32) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::new();
    let out = a.label();
    prologue(&mut a);
    let uarg_at = match l.completion {
        Completion::Callback | Completion::Final => pt_regs::DI,
        Completion::PerPut => pt_regs::SI,
    };
    a.ldx(Size::Dw, R8, R6, uarg_at);
    if l.completion == Completion::PerPut {
        read(&mut a, R0, R8, l.uarg_refcnt, 4);
        a.jne_imm(R0, 1, out);
    }
    read(&mut a, R0, R8, l.uarg_len, 2);
    a.jeq_imm(R0, 0, out);
    a.stx(Size::Dw, R10, BYTES, R0);
    // R7 = 1 when the notification reports a copy.
    match l.completion {
        Completion::Callback => {
            let kept = a.label();
            a.ldx(Size::Dw, R1, R6, pt_regs::SI);
            a.and_imm(R1, 0xff);
            a.mov_imm(R7, 0);
            a.jne_imm(R1, 0, kept);
            a.mov_imm(R7, 1);
            a.bind(kept);
        }
        Completion::Final | Completion::PerPut => {
            read(&mut a, R7, R8, l.uarg_zerocopy_bit / 8, 1);
            a.rsh_imm(R7, l.uarg_zerocopy_bit % 8);
            a.and_imm(R7, 1);
            if l.completion == Completion::PerPut {
                let kept = a.label();
                a.ldx(Size::Dw, R1, R6, pt_regs::DX);
                a.and_imm(R1, 0xff);
                a.jne_imm(R1, 0, kept);
                a.mov_imm(R7, 0);
                a.bind(kept);
            }
            a.xor_imm(R7, 1);
        }
    }
    sender_inode(&mut a, l, R0, R8);
    a.stx(Size::Dw, R10, KEY, R0);
    a.stx(Size::Dw, R10, KEY + 8, R7);
    count(&mut a, maps.completions, out);
    a.bind(out);
    epilogue(&mut a, maps, index);
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(completion: Completion) -> Layout {
        Layout {
            skb_head: 192,
            skb_end: 188,
            skb_data_len: 116,
            skb_dev: 16,
            skb_sk: 24,
            skb_cb: 40,
            shinfo_flags: 0,
            zerocopy_flag: 1,
            shinfo_destructor_arg: 40,
            uarg_ident: 0,
            ident_addr: 0xffff_ffff_8100_0000,
            uarg_len: 20,
            uarg_refcnt: 8,
            uarg_zerocopy_bit: 22 * 8,
            sk_socket: 624,
            socket_ino: 192,
            dev_ifindex: 216,
            dev_net: 248,
            net_inum: 180,
            completion,
        }
    }

    /// Assembly only (the kernel's verifier is the real test: tests/guest/scenarios/watch.rs):
    /// every label resolves, the programs stay small, and the map loads carry the descriptors.
    #[test]
    fn programs_assemble_for_every_site_and_completion() {
        let maps = Maps {
            copies: 3,
            completions: 4,
            stats: 5,
        };
        for c in [Completion::Callback, Completion::Final, Completion::PerPut] {
            let l = layout(c);
            for site in [Site::CopyUbufs, Site::FullPull, Site::SegmentNoSg] {
                let p = copy_program(&l, site, &maps, 0).expect("assembles");
                assert!(p.len() < 400, "{site:?}: {} instructions", p.len());
                assert!(
                    p.iter()
                        .any(|i| i.code == 0x18 && i.regs == 0x11 && i.imm == 3)
                );
                assert!(
                    p.iter()
                        .any(|i| i.code == 0x18 && i.regs == 0x11 && i.imm == 5)
                );
            }
            let p = completion_program(&l, &maps, 3).expect("assembles");
            assert!(
                p.iter()
                    .any(|i| i.code == 0x18 && i.regs == 0x11 && i.imm == 4)
            );
            assert_eq!(p.last().map(|i| i.code), Some(0x95));
        }
        assert_eq!(Site::from_index(2), Some(Site::SegmentNoSg));
        assert_eq!(Site::from_index(3), None);
    }
}
