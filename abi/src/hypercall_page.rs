//! The hypercall page: 128 stubs of 32 bytes the hypervisor writes into the page named by
//! `XEN_ELFNOTE_HYPERCALL_PAGE` (spec §6.2, `pv-boot-abi.md`).
//!
//! Stub `nr` sits at `page + 32 * nr`. A normal stub is
//! `push %rcx; push %r11; mov $nr, %eax; syscall; pop %r11; pop %rcx; ret`, so `rcx` and `r11`
//! (which `syscall` clobbers) survive the call. The `iret` stub (23) is
//! `push %rcx; push %r11; push %rax; mov $23, %eax; syscall`: the guest jumps to it with the rest
//! of the iret frame already on its stack, and it never returns. Every other byte of the page is
//! `0xCC` (`int3`).

use crate::hypercall::Hypercall;

/// Bytes per stub.
pub const HYPERCALL_STUB_SIZE: usize = 32;
/// Stubs in the page.
pub const HYPERCALL_STUBS: usize = 128;
/// Size of the page.
pub const HYPERCALL_PAGE_SIZE: usize = HYPERCALL_STUB_SIZE * HYPERCALL_STUBS;
/// Filler byte (`int3`).
pub const HYPERCALL_PAGE_FILL: u8 = 0xCC;

const PUSH_RCX: u8 = 0x51;
const PUSH_R11: [u8; 2] = [0x41, 0x53];
const PUSH_RAX: u8 = 0x50;
const MOV_IMM32_EAX: u8 = 0xB8;
const SYSCALL: [u8; 2] = [0x0F, 0x05];
const POP_R11: [u8; 2] = [0x41, 0x5B];
const POP_RCX: u8 = 0x59;
const RET: u8 = 0xC3;

/// The 32 bytes of stub `nr` (a number below [`HYPERCALL_STUBS`]).
pub const fn stub(nr: u32) -> [u8; HYPERCALL_STUB_SIZE] {
    let mut s = [HYPERCALL_PAGE_FILL; HYPERCALL_STUB_SIZE];
    let imm = nr.to_le_bytes();
    s[0] = PUSH_RCX;
    s[1] = PUSH_R11[0];
    s[2] = PUSH_R11[1];
    if nr as u64 == Hypercall::Iret.nr() {
        s[3] = PUSH_RAX;
        s[4] = MOV_IMM32_EAX;
        s[5] = imm[0];
        s[6] = imm[1];
        s[7] = imm[2];
        s[8] = imm[3];
        s[9] = SYSCALL[0];
        s[10] = SYSCALL[1];
    } else {
        s[3] = MOV_IMM32_EAX;
        s[4] = imm[0];
        s[5] = imm[1];
        s[6] = imm[2];
        s[7] = imm[3];
        s[8] = SYSCALL[0];
        s[9] = SYSCALL[1];
        s[10] = POP_R11[0];
        s[11] = POP_R11[1];
        s[12] = POP_RCX;
        s[13] = RET;
    }
    s
}

/// Fills a whole hypercall page.
pub fn fill(page: &mut [u8; HYPERCALL_PAGE_SIZE]) {
    for (nr, chunk) in page.chunks_exact_mut(HYPERCALL_STUB_SIZE).enumerate() {
        chunk.copy_from_slice(&stub(nr as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_stub_bytes() {
        let s = stub(1);
        assert_eq!(
            &s[..14],
            &[
                0x51, 0x41, 0x53, 0xB8, 1, 0, 0, 0, 0x0F, 0x05, 0x41, 0x5B, 0x59, 0xC3
            ]
        );
        assert!(s[14..].iter().all(|&b| b == 0xCC));
    }

    #[test]
    fn iret_stub_bytes() {
        let s = stub(23);
        assert_eq!(
            &s[..11],
            &[0x51, 0x41, 0x53, 0x50, 0xB8, 23, 0, 0, 0, 0x0F, 0x05]
        );
        assert!(s[11..].iter().all(|&b| b == 0xCC));
    }

    #[test]
    fn page_has_a_stub_per_slot() {
        assert_eq!(HYPERCALL_PAGE_SIZE, 4096);
        let mut page = [0u8; HYPERCALL_PAGE_SIZE];
        fill(&mut page);
        for nr in [0usize, 26, 63, 127] {
            let at = nr * HYPERCALL_STUB_SIZE;
            assert_eq!(page[at + 3], 0xB8);
            assert_eq!(page[at + 4] as usize, nr, "mov imm of stub {nr}");
            assert_eq!(page[at + 13], 0xC3);
        }
    }
}
