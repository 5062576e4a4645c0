//! Decoding the stores a 64-bit PV kernel makes to a page table it maps read-only, emulated on
//! the #PF they raise (Xen's writable page tables, spec §6.6): `mov %reg,mem` (`89 /r`),
//! `mov $imm32,mem` (`C7 /0 id`, sign-extended to 64 bits) and `cmpxchg %reg,mem`
//! (`0F B1 /r`, with or without `lock`), each of 4 bytes, or 8 with REX.W.
//!
//! Accepted encodings: an optional `lock` (0xF0, only before `cmpxchg`), then an optional REX
//! prefix (0x40–0x4F) directly before the opcode, no other prefix (no operand- or address-size
//! override, no segment override). The destination is a memory operand in 64-bit addressing:
//! ModRM with optional SIB, disp8 or disp32, or RIP-relative. REX.R extends the source register,
//! REX.X the index and REX.B the base. Anything else — a register destination, `C7` with a
//! non-zero `reg` field, other opcodes, a truncated instruction — is refused. Where the operand
//! points and what is stored depend on registers, which the caller supplies. Pure function over
//! bytes; no state.

/// A memory operand: `base + index * scale + disp`, or `disp` from the next instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemOperand {
    /// The base register (encoding order: rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8–r15).
    pub base: Option<u8>,
    /// The index register and its scale (1, 2, 4 or 8).
    pub index: Option<(u8, u8)>,
    /// The displacement, sign-extended.
    pub disp: i32,
    /// Relative to the next instruction's address (then there is no base and no index).
    pub rip_relative: bool,
}

impl MemOperand {
    /// The address the operand names, with `gpr(n)` the value of register `n` and `next_rip`
    /// the address of the following instruction (wrapping, as the CPU computes it).
    pub fn address(&self, gpr: impl Fn(u8) -> u64, next_rip: u64) -> u64 {
        let mut at = self.disp as i64 as u64;
        if self.rip_relative {
            at = at.wrapping_add(next_rip);
        }
        if let Some(b) = self.base {
            at = at.wrapping_add(gpr(b));
        }
        if let Some((i, scale)) = self.index {
            at = at.wrapping_add(gpr(i).wrapping_mul(u64::from(scale)));
        }
        at
    }
}

/// What a store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A general register (encoding order).
    Reg(u8),
    /// An immediate, sign-extended to the operand width.
    Imm(i32),
}

/// Which instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `mov`: the source is stored.
    Mov,
    /// `cmpxchg`: the source is stored only if the memory holds the accumulator (rax / eax).
    Cmpxchg,
}

/// A decoded store to memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteInsn {
    /// The instruction.
    pub kind: Kind,
    /// The operand width in bytes: 4 or 8.
    pub width: u8,
    /// The destination.
    pub dst: MemOperand,
    /// The value stored.
    pub src: Source,
    /// The instruction's length in bytes.
    pub len: u8,
}

impl WriteInsn {
    /// The value the source holds, truncated to the operand width.
    pub fn source(&self, gpr: impl Fn(u8) -> u64) -> u64 {
        let v = match self.src {
            Source::Reg(n) => gpr(n),
            Source::Imm(imm) => imm as i64 as u64,
        };
        v & width_mask(self.width)
    }
}

/// The low `width` bytes of a u64.
pub(crate) const fn width_mask(width: u8) -> u64 {
    if width >= 8 {
        u64::MAX
    } else {
        (1 << (width as u32 * 8)) - 1
    }
}

/// Decodes `bytes` (the instruction at the guest's RIP, as many bytes as could be read, at most
/// 12 needed) as one of the stores above.
pub fn decode_write(bytes: &[u8]) -> Option<WriteInsn> {
    let (lock, rest) = match bytes.split_first() {
        Some((0xF0, rest)) => (true, rest),
        _ => (false, bytes),
    };
    let (rex, rest) = match rest.split_first() {
        Some((&b, rest)) if b & 0xF0 == 0x40 => (b, rest),
        _ => (0, rest),
    };
    let (kind, imm, rest) = match rest {
        [0x89, rest @ ..] => (Kind::Mov, false, rest),
        [0xC7, rest @ ..] => (Kind::Mov, true, rest),
        [0x0F, 0xB1, rest @ ..] => (Kind::Cmpxchg, false, rest),
        _ => return None,
    };
    if lock && kind != Kind::Cmpxchg {
        return None;
    }
    let (&modrm, rest) = rest.split_first()?;
    let (md, reg, rm) = (modrm >> 6, (modrm >> 3) & 7, modrm & 7);
    if md == 3 || (imm && reg != 0) {
        return None;
    }
    let (rex_r, rex_x, rex_b) = ((rex >> 2) & 1, (rex >> 1) & 1, rex & 1);
    let (mut dst, rest, disp32) = match rm {
        4 => {
            let (&sib, rest) = rest.split_first()?;
            let index = ((sib >> 3) & 7) | rex_x << 3;
            let no_base = sib & 7 == 5 && md == 0;
            let dst = MemOperand {
                base: (!no_base).then_some((sib & 7) | rex_b << 3),
                index: (index != 4).then_some((index, 1 << (sib >> 6))),
                disp: 0,
                rip_relative: false,
            };
            (dst, rest, no_base)
        }
        5 if md == 0 => {
            let dst = MemOperand {
                base: None,
                index: None,
                disp: 0,
                rip_relative: true,
            };
            (dst, rest, true)
        }
        _ => {
            let dst = MemOperand {
                base: Some(rm | rex_b << 3),
                index: None,
                disp: 0,
                rip_relative: false,
            };
            (dst, rest, false)
        }
    };
    let rest = match (md, disp32) {
        (1, _) => {
            let (&d, rest) = rest.split_first()?;
            dst.disp = i32::from(d as i8);
            rest
        }
        (2, _) | (_, true) => {
            let (d, rest) = split_i32(rest)?;
            dst.disp = d;
            rest
        }
        _ => rest,
    };
    let (src, rest) = if imm {
        let (v, rest) = split_i32(rest)?;
        (Source::Imm(v), rest)
    } else {
        (Source::Reg(reg | rex_r << 3), rest)
    };
    Some(WriteInsn {
        kind,
        width: if rex & 8 != 0 { 8 } else { 4 },
        dst,
        src,
        len: (bytes.len() - rest.len()) as u8,
    })
}

/// A little-endian i32 at the front of `bytes`, and what follows it.
fn split_i32(bytes: &[u8]) -> Option<(i32, &[u8])> {
    let (d, rest) = bytes.split_first_chunk::<4>()?;
    Some((i32::from_le_bytes(*d), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(base: u8) -> MemOperand {
        MemOperand {
            base: Some(base),
            index: None,
            disp: 0,
            rip_relative: false,
        }
    }

    fn insn(kind: Kind, width: u8, dst: MemOperand, src: Source, len: u8) -> Option<WriteInsn> {
        Some(WriteInsn {
            kind,
            width,
            dst,
            src,
            len,
        })
    }

    #[test]
    fn register_stores() {
        // mov %rsi,(%rdi) / mov %esi,(%rdi) / mov %r9,(%r10) / mov %rax,(%r12) (SIB, no index)
        let rdi = reg(7);
        assert_eq!(
            decode_write(&[0x48, 0x89, 0x37, 0xC3]),
            insn(Kind::Mov, 8, rdi, Source::Reg(6), 3)
        );
        assert_eq!(
            decode_write(&[0x89, 0x37]),
            insn(Kind::Mov, 4, rdi, Source::Reg(6), 2)
        );
        assert_eq!(
            decode_write(&[0x4D, 0x89, 0x0A]),
            insn(Kind::Mov, 8, reg(10), Source::Reg(9), 3)
        );
        assert_eq!(
            decode_write(&[0x49, 0x89, 0x04, 0x24]),
            insn(Kind::Mov, 8, reg(12), Source::Reg(0), 4)
        );
    }

    #[test]
    fn displacements_and_sib() {
        // mov %rdx,0x8(%rax) / mov %rdx,-0x8(%rbp) / mov %rdx,0x1000(%rax)
        let d8 = MemOperand { disp: 8, ..reg(0) };
        assert_eq!(
            decode_write(&[0x48, 0x89, 0x50, 0x08]),
            insn(Kind::Mov, 8, d8, Source::Reg(2), 4)
        );
        let neg = MemOperand { disp: -8, ..reg(5) };
        assert_eq!(
            decode_write(&[0x48, 0x89, 0x55, 0xF8]),
            insn(Kind::Mov, 8, neg, Source::Reg(2), 4)
        );
        let d32 = MemOperand {
            disp: 0x1000,
            ..reg(0)
        };
        assert_eq!(
            decode_write(&[0x48, 0x89, 0x90, 0x00, 0x10, 0x00, 0x00]),
            insn(Kind::Mov, 8, d32, Source::Reg(2), 7)
        );
        // mov %rdx,0x10(%rdi,%rcx,8) / mov %rdx,(%rdi,%r12,1) (REX.X) / mov %rdx,(%r13) (mod 1)
        let sib = MemOperand {
            base: Some(7),
            index: Some((1, 8)),
            disp: 0x10,
            rip_relative: false,
        };
        assert_eq!(
            decode_write(&[0x48, 0x89, 0x54, 0xCF, 0x10]),
            insn(Kind::Mov, 8, sib, Source::Reg(2), 5)
        );
        let r12 = MemOperand {
            index: Some((12, 1)),
            ..reg(7)
        };
        assert_eq!(
            decode_write(&[0x4A, 0x89, 0x14, 0x27]),
            insn(Kind::Mov, 8, r12, Source::Reg(2), 4)
        );
        assert_eq!(
            decode_write(&[0x49, 0x89, 0x55, 0x00]),
            insn(Kind::Mov, 8, reg(13), Source::Reg(2), 4)
        );
        // No base (SIB base 5, mod 0): mov %rdx,0x2000(,%rcx,4); RIP-relative: 0x10(%rip)
        let abs = MemOperand {
            base: None,
            index: Some((1, 4)),
            disp: 0x2000,
            rip_relative: false,
        };
        assert_eq!(
            decode_write(&[0x48, 0x89, 0x14, 0x8D, 0x00, 0x20, 0x00, 0x00]),
            insn(Kind::Mov, 8, abs, Source::Reg(2), 8)
        );
        let rel = MemOperand {
            base: None,
            index: None,
            disp: 0x10,
            rip_relative: true,
        };
        assert_eq!(
            decode_write(&[0x48, 0x89, 0x15, 0x10, 0x00, 0x00, 0x00]),
            insn(Kind::Mov, 8, rel, Source::Reg(2), 7)
        );
    }

    #[test]
    fn immediates() {
        // movq $-1,(%rdi) / movl $0x1234,0x4(%rdi)
        assert_eq!(
            decode_write(&[0x48, 0xC7, 0x07, 0xFF, 0xFF, 0xFF, 0xFF]),
            insn(Kind::Mov, 8, reg(7), Source::Imm(-1), 7)
        );
        let d4 = MemOperand { disp: 4, ..reg(7) };
        assert_eq!(
            decode_write(&[0xC7, 0x47, 0x04, 0x34, 0x12, 0x00, 0x00]),
            insn(Kind::Mov, 4, d4, Source::Imm(0x1234), 7)
        );
    }

    #[test]
    fn cmpxchg_with_and_without_lock() {
        // lock cmpxchg %rdx,(%rdi) / cmpxchg %r8,(%rdi) / lock cmpxchg %edx,(%rdi)
        assert_eq!(
            decode_write(&[0xF0, 0x48, 0x0F, 0xB1, 0x17]),
            insn(Kind::Cmpxchg, 8, reg(7), Source::Reg(2), 5)
        );
        assert_eq!(
            decode_write(&[0x4C, 0x0F, 0xB1, 0x07]),
            insn(Kind::Cmpxchg, 8, reg(7), Source::Reg(8), 4)
        );
        assert_eq!(
            decode_write(&[0xF0, 0x0F, 0xB1, 0x17]),
            insn(Kind::Cmpxchg, 4, reg(7), Source::Reg(2), 4)
        );
    }

    #[test]
    fn operand_values() {
        let regs = |n: u8| [0x1000, 0x10, 0, 0, 0, 0, 0, 0x7000][n as usize % 8];
        let sib = MemOperand {
            base: Some(7),
            index: Some((1, 8)),
            disp: -8,
            rip_relative: false,
        };
        assert_eq!(sib.address(regs, 0), 0x7000 + 0x80 - 8);
        let rel = MemOperand {
            base: None,
            index: None,
            disp: -0x10,
            rip_relative: true,
        };
        assert_eq!(rel.address(regs, 0x5000), 0x4FF0);
        let imm = |v, width| WriteInsn {
            kind: Kind::Mov,
            width,
            dst: reg(0),
            src: Source::Imm(v),
            len: 7,
        };
        assert_eq!(imm(-1, 8).source(regs), u64::MAX);
        assert_eq!(imm(-1, 4).source(regs), 0xFFFF_FFFF);
        let wide = |n: u8| 0x1122_3344_5566_7788u64 + u64::from(n);
        let r = WriteInsn {
            src: Source::Reg(1),
            width: 4,
            ..imm(0, 4)
        };
        assert_eq!(r.source(wide), 0x5566_7789);
    }

    #[test]
    fn anything_else_is_refused() {
        for bytes in [
            &[][..],
            &[0x48, 0x89],                   // truncated
            &[0x48, 0x89, 0x50],             // disp8 missing
            &[0x48, 0xC7, 0x07, 0xFF, 0xFF], // imm32 truncated
            &[0x48, 0x89, 0xC7],             // register destination
            &[0x48, 0xC7, 0x0F, 0, 0, 0, 0], // C7 /1
            &[0x48, 0x8B, 0x37],             // a load
            &[0x88, 0x37],                   // a byte store
            &[0x66, 0x89, 0x37],             // operand-size override
            &[0x67, 0x48, 0x89, 0x37],       // address-size override
            &[0x65, 0x48, 0x89, 0x37],       // %gs override
            &[0xF0, 0x48, 0x89, 0x37],       // lock mov
            &[0x48, 0x40, 0x89, 0x37],       // two REX
            &[0x48, 0xF0, 0x0F, 0xB1, 0x17], // lock after REX
            &[0x48, 0x0F, 0xB0, 0x17],       // byte cmpxchg
            &[0x48, 0x87, 0x37],             // xchg
        ] {
            assert_eq!(decode_write(bytes), None, "{bytes:02x?}");
        }
    }
}
