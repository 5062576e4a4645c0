//! Decoding the privileged instructions a 64-bit PV kernel executes in ring 3 and the
//! hypervisor emulates on the #GP they raise (Xen's `pv_emulate_privileged_op`): here only the
//! control-register moves, `mov %crN,%reg` (`0F 20 /r`) and `mov %reg,%crN` (`0F 22 /r`).
//!
//! Accepted encodings: an optional REX prefix (0x40–0x4F) directly before `0F`, no other
//! prefix. As on hardware, the ModRM `mod` field is ignored (the operand is always a
//! register), REX.R extends the control register and REX.B the general register, and the
//! operand is 64 bits. Which control registers are emulated is the hypervisor's choice; this
//! only names them. Pure function over bytes; no state.

/// A decoded control-register move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovCr {
    /// `mov %reg,%crN` (else `mov %crN,%reg`).
    pub write: bool,
    /// The control register, 0–15.
    pub cr: u8,
    /// The general register, 0–15 in encoding order (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi,
    /// r8–r15).
    pub gpr: u8,
    /// The instruction's length in bytes.
    pub len: u8,
}

/// Decodes `bytes` (the instruction at the guest's RIP, as many bytes as could be read, at
/// most 4 needed) as a control-register move.
pub fn decode_mov_cr(bytes: &[u8]) -> Option<MovCr> {
    let (rex, rest) = match bytes.split_first() {
        Some((&b, rest)) if b & 0xF0 == 0x40 => (b, rest),
        _ => (0, bytes),
    };
    let [0x0F, op, modrm, ..] = *rest else {
        return None;
    };
    let write = match op {
        0x20 => false,
        0x22 => true,
        _ => return None,
    };
    let r = (rex >> 2) & 1;
    let b = rex & 1;
    Some(MovCr {
        write,
        cr: ((modrm >> 3) & 7) | r << 3,
        gpr: (modrm & 7) | b << 3,
        len: 3 + u8::from(rex != 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mov(write: bool, cr: u8, gpr: u8, len: u8) -> Option<MovCr> {
        Some(MovCr {
            write,
            cr,
            gpr,
            len,
        })
    }

    #[test]
    fn plain_moves() {
        // mov %cr3,%rax / mov %cr2,%rdx / mov %rdi,%cr3
        assert_eq!(decode_mov_cr(&[0x0F, 0x20, 0xD8]), mov(false, 3, 0, 3));
        assert_eq!(decode_mov_cr(&[0x0F, 0x20, 0xD2]), mov(false, 2, 2, 3));
        assert_eq!(decode_mov_cr(&[0x0F, 0x22, 0xDF]), mov(true, 3, 7, 3));
        // Trailing bytes are not part of it.
        assert_eq!(
            decode_mov_cr(&[0x0F, 0x20, 0xD8, 0xC3]),
            mov(false, 3, 0, 3)
        );
    }

    #[test]
    fn rex_extends_both_registers() {
        // mov %cr3,%r9 (41 0F 20 D9) / mov %r15,%cr3 (41 0F 22 DF) / mov %cr8,%rax (44 0F 20 C0)
        assert_eq!(
            decode_mov_cr(&[0x41, 0x0F, 0x20, 0xD9]),
            mov(false, 3, 9, 4)
        );
        assert_eq!(
            decode_mov_cr(&[0x41, 0x0F, 0x22, 0xDF]),
            mov(true, 3, 15, 4)
        );
        assert_eq!(
            decode_mov_cr(&[0x44, 0x0F, 0x20, 0xC0]),
            mov(false, 8, 0, 4)
        );
        // REX.W changes nothing.
        assert_eq!(
            decode_mov_cr(&[0x48, 0x0F, 0x20, 0xD8]),
            mov(false, 3, 0, 4)
        );
    }

    #[test]
    fn mod_field_is_ignored() {
        assert_eq!(decode_mov_cr(&[0x0F, 0x20, 0x18]), mov(false, 3, 0, 3));
        assert_eq!(decode_mov_cr(&[0x0F, 0x22, 0x5F]), mov(true, 3, 7, 3));
    }

    #[test]
    fn anything_else_is_refused() {
        for bytes in [
            &[][..],
            &[0x0F],
            &[0x0F, 0x20],
            &[0x41, 0x0F, 0x20],
            &[0x0F, 0x21, 0xC0],       // mov %dr0,%rax
            &[0x0F, 0x23, 0xC0],       // mov %rax,%dr0
            &[0x0F, 0x01, 0xF8],       // swapgs
            &[0x66, 0x0F, 0x20, 0xD8], // a legacy prefix
            &[0xF0, 0x0F, 0x20, 0xC0], // lock
            &[0x41, 0x41, 0x0F, 0x20], // two REX
            &[0xFA],                   // cli
        ] {
            assert_eq!(decode_mov_cr(bytes), None, "{bytes:02x?}");
        }
    }
}
