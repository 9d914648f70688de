//! A typed builder of eBPF instructions (the kernel's `struct bpf_insn`,
//! Documentation/bpf/standardization/instruction-set.rst) with forward labels, so the watch
//! programs are written as Rust calls and no BPF compiler is needed. Only what the programs use
//! is here: 64-bit ALU, loads and stores, atomic add, conditional jumps, helper calls and the
//! 64-bit immediate load that carries a map descriptor.

/// A register: `R0` (return value), `R1`–`R5` (arguments, clobbered by calls), `R6`–`R9`
/// (kept across calls), `R10` (read-only frame pointer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(u8);

pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R8: Reg = Reg(8);
pub const R9: Reg = Reg(9);
pub const R10: Reg = Reg(10);

/// Access size of a load or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    B = 0x10,
    H = 0x08,
    W = 0x00,
    Dw = 0x18,
}

/// One instruction as the kernel reads it (8 bytes, little-endian register nibbles).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// A jump target, bound later with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// Helper functions called by number (include/uapi/linux/bpf.h `__BPF_FUNC_MAPPER`).
pub mod helper {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const KTIME_GET_NS: i32 = 5;
    /// Linux 5.5+; zeroes the destination when the read faults.
    pub const PROBE_READ_KERNEL: i32 = 113;
}

// Instruction classes, operations and modes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
const K: u8 = 0x00;
const X: u8 = 0x08;
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
const ATOMIC: u8 = 0xc0;
const ADD: u8 = 0x00;
const SUB: u8 = 0x10;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const RSH: u8 = 0x70;
const XOR: u8 = 0xa0;
const MOV: u8 = 0xb0;
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JSET: u8 = 0x40;
const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load whose value is a map's file descriptor.
const PSEUDO_MAP_FD: u8 = 1;

/// Why a program could not be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsmError {
    #[error("label {0} used but never bound")]
    Unbound(usize),
    #[error("jump from {from} to {to} does not fit 16 bits")]
    TooFar { from: usize, to: usize },
}

/// Instructions being written, with the jumps still to resolve.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

fn regs(dst: Reg, src: Reg) -> u8 {
    (src.0 << 4) | (dst.0 & 0x0f)
}

impl Asm {
    pub fn new() -> Asm {
        Asm::default()
    }

    fn push(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            regs: regs(dst, src),
            off,
            imm,
        });
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `l` to the next instruction.
    pub fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }

    pub fn mov(&mut self, dst: Reg, src: Reg) {
        self.push(ALU64 | MOV | X, dst, src, 0, 0);
    }
    /// 32-bit move: the upper half of `dst` becomes zero.
    pub fn mov32(&mut self, dst: Reg, src: Reg) {
        self.push(ALU | MOV | X, dst, src, 0, 0);
    }
    pub fn mov_imm(&mut self, dst: Reg, imm: i32) {
        self.push(ALU64 | MOV | K, dst, R0, 0, imm);
    }
    pub fn add(&mut self, dst: Reg, src: Reg) {
        self.push(ALU64 | ADD | X, dst, src, 0, 0);
    }
    pub fn add_imm(&mut self, dst: Reg, imm: i32) {
        self.push(ALU64 | ADD | K, dst, R0, 0, imm);
    }
    pub fn sub(&mut self, dst: Reg, src: Reg) {
        self.push(ALU64 | SUB | X, dst, src, 0, 0);
    }
    pub fn and_imm(&mut self, dst: Reg, imm: i32) {
        self.push(ALU64 | AND | K, dst, R0, 0, imm);
    }
    pub fn xor_imm(&mut self, dst: Reg, imm: i32) {
        self.push(ALU64 | XOR | K, dst, R0, 0, imm);
    }
    pub fn lsh_imm(&mut self, dst: Reg, imm: i32) {
        self.push(ALU64 | LSH | K, dst, R0, 0, imm);
    }
    pub fn rsh_imm(&mut self, dst: Reg, imm: i32) {
        self.push(ALU64 | RSH | K, dst, R0, 0, imm);
    }

    /// `dst = *(size *)(src + off)`
    pub fn ldx(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.push(LDX | MEM | size as u8, dst, src, off, 0);
    }
    /// `*(size *)(dst + off) = src`
    pub fn stx(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.push(STX | MEM | size as u8, dst, src, off, 0);
    }
    /// `*(size *)(dst + off) = imm`
    pub fn st_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.push(ST | MEM | size as u8, dst, R0, off, imm);
    }
    /// `*(u64 *)(dst + off) += src`, atomically (`BPF_XADD`, every kernel since 4.x).
    pub fn atomic_add(&mut self, dst: Reg, off: i16, src: Reg) {
        self.push(STX | ATOMIC | Size::Dw as u8, dst, src, off, 0);
    }

    /// `dst = value` (two instruction slots).
    pub fn ld_imm64(&mut self, dst: Reg, value: u64) {
        self.push(LD | IMM | Size::Dw as u8, dst, R0, 0, value as u32 as i32);
        self.push(0, R0, R0, 0, (value >> 32) as u32 as i32);
    }
    /// `dst = map` for the map whose descriptor is `fd`; the kernel puts its address there.
    pub fn ld_map_fd(&mut self, dst: Reg, fd: i32) {
        self.push(LD | IMM | Size::Dw as u8, dst, Reg(PSEUDO_MAP_FD), 0, fd);
        self.push(0, R0, R0, 0, 0);
    }

    fn jump(&mut self, code: u8, dst: Reg, src: Reg, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.push(JMP | code, dst, src, 0, imm);
    }
    pub fn ja(&mut self, to: Label) {
        self.jump(JA, R0, R0, 0, to);
    }
    pub fn jeq_imm(&mut self, dst: Reg, imm: i32, to: Label) {
        self.jump(JEQ | K, dst, R0, imm, to);
    }
    pub fn jne_imm(&mut self, dst: Reg, imm: i32, to: Label) {
        self.jump(JNE | K, dst, R0, imm, to);
    }
    pub fn jne(&mut self, dst: Reg, src: Reg, to: Label) {
        self.jump(JNE | X, dst, src, 0, to);
    }
    /// Jumps when `dst & imm` is not zero.
    pub fn jset_imm(&mut self, dst: Reg, imm: i32, to: Label) {
        self.jump(JSET | K, dst, R0, imm, to);
    }

    pub fn call(&mut self, helper: i32) {
        self.push(JMP | CALL, R0, R0, 0, helper);
    }
    pub fn exit(&mut self) {
        self.push(JMP | EXIT, R0, R0, 0, 0);
    }

    /// The program, with every jump pointing at its label.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        for &(at, Label(l)) in &self.fixups {
            let to = self.labels[l].ok_or(AsmError::Unbound(l))?;
            let off = to as i64 - at as i64 - 1;
            self.insns[at].off =
                i16::try_from(off).map_err(|_| AsmError::TooFar { from: at, to })?;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodings checked against the kernel's own macros (include/linux/filter.h) as the
    /// selftests spell them.
    #[test]
    fn encodings_match_the_kernel() {
        let mut a = Asm::new();
        let out = a.label();
        a.mov(R6, R1); // BPF_MOV64_REG(R6, R1)
        a.ldx(Size::Dw, R7, R6, 112); // BPF_LDX_MEM(BPF_DW, R7, R6, 112)
        a.jeq_imm(R7, 0, out);
        a.atomic_add(R0, 8, R1); // BPF_ATOMIC_OP(BPF_DW, BPF_ADD, R0, R1, 8)
        a.bind(out);
        a.mov_imm(R0, 0);
        a.exit();
        let p = a.finish().expect("assembles");
        assert_eq!(
            p[0],
            Insn {
                code: 0xbf,
                regs: 0x16,
                off: 0,
                imm: 0
            }
        );
        assert_eq!(
            p[1],
            Insn {
                code: 0x79,
                regs: 0x67,
                off: 112,
                imm: 0
            }
        );
        assert_eq!(
            p[2],
            Insn {
                code: 0x15,
                regs: 0x07,
                off: 1,
                imm: 0
            }
        );
        assert_eq!(
            p[3],
            Insn {
                code: 0xdb,
                regs: 0x10,
                off: 8,
                imm: 0
            }
        );
        assert_eq!(
            p[5],
            Insn {
                code: 0x95,
                regs: 0,
                off: 0,
                imm: 0
            }
        );
    }

    #[test]
    fn map_loads_take_two_slots_and_unbound_labels_are_refused() {
        let mut a = Asm::new();
        a.ld_map_fd(R1, 7);
        a.ld_imm64(R2, 0xffff_ffff_8100_0000);
        let p = a.finish().expect("assembles");
        assert_eq!(
            p[0],
            Insn {
                code: 0x18,
                regs: 0x11,
                off: 0,
                imm: 7
            }
        );
        assert_eq!(p[2].imm as u32, 0x8100_0000);
        assert_eq!(p[3].imm as u32, 0xffff_ffff);
        let mut b = Asm::new();
        let l = b.label();
        b.ja(l);
        assert_eq!(b.finish(), Err(AsmError::Unbound(0)));
    }
}
