//! Guest stack frames of the 64-bit PV ABI: the `HYPERVISOR_iret` frame the guest builds, and the
//! bounce frames the hypervisor pushes when it delivers an exception, event or failsafe callback
//! (spec §6.2; `xen-x86_64.h`, Xen's `create_bounce_frame` and `load_segments`).
//!
//! All frames are arrays of u64 words, listed lowest address first.
//!
//! - iret frame ([`IretContext`], 9 words at the guest's `rsp`): rax, r11, rcx, flags, rip, cs,
//!   rflags, rsp, ss. `flags` bit 8 ([`VGCF_IN_SYSCALL`]) asks for a SYSRET-style return.
//! - exception/event bounce frame ([`BounceFrame`], 7 or 8 words): rcx, r11, [error code], rip,
//!   cs, rflags, rsp, ss. The frame's top is the interrupted `rsp` (or `kernel_sp` when coming
//!   from user mode) rounded down to [`BOUNCE_STACK_ALIGN`].
//! - failsafe frame ([`FailsafeFrame`], 11 words): rcx, r11, ds, es, fs, gs, rip, cs, rflags,
//!   rsp, ss.
//!
//! The CS word of a bounce frame also carries the vCPU's saved event-upcall mask in bits 39..32
//! ([`BOUNCE_CS_UPCALL_MASK_SHIFT`]); the guest's `iret` uses it to restore the mask.

use crate::wire::abi_struct;

/// `iret` flags bit: the guest was in a `syscall` and wants a SYSRET-style return.
pub const VGCF_IN_SYSCALL: u64 = 1 << 8;

/// Words in the `iret` frame.
pub const IRET_FRAME_WORDS: usize = 9;

abi_struct! {
    /// `struct iret_context`: what `HYPERVISOR_iret` pops from the guest stack.
    #[repr(C)]
    pub struct IretContext, size 72 {
        /// rax to restore (the hypercall stub pushed it).
        pub rax: u64 = 0,
        /// r11 to restore.
        pub r11: u64 = 8,
        /// rcx to restore.
        pub rcx: u64 = 16,
        /// [`VGCF_IN_SYSCALL`] or 0.
        pub flags: u64 = 24,
        /// Return rip.
        pub rip: u64 = 32,
        /// Return cs (RPL forced to 3).
        pub cs: u64 = 40,
        /// Return rflags (IOPL/VM stripped, IF forced on; the saved IF sets the event mask).
        pub rflags: u64 = 48,
        /// Return rsp.
        pub rsp: u64 = 56,
        /// Return ss (RPL forced to 3).
        pub ss: u64 = 64,
    }
}

const _: () = assert!(IretContext::SIZE == IRET_FRAME_WORDS * 8);

/// The top of a bounce frame is aligned down to this many bytes.
pub const BOUNCE_STACK_ALIGN: u64 = 16;
/// Shift of the saved upcall mask inside a bounce frame's CS word.
pub const BOUNCE_CS_UPCALL_MASK_SHIFT: u32 = 32;

/// Packs a bounce frame's CS word: selector in bits 15..0, saved upcall mask in bits 39..32.
pub const fn bounce_cs_word(cs: u16, saved_upcall_mask: u8) -> u64 {
    cs as u64 | ((saved_upcall_mask as u64) << BOUNCE_CS_UPCALL_MASK_SHIFT)
}

/// The frame pushed on the guest kernel stack when an exception or event is bounced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BounceFrame {
    /// Interrupted rcx.
    pub rcx: u64,
    /// Interrupted r11.
    pub r11: u64,
    /// Error code, for exceptions that have one.
    pub error_code: Option<u32>,
    /// Interrupted rip.
    pub rip: u64,
    /// Interrupted cs (RPL bits cleared when the guest kernel was interrupted).
    pub cs: u16,
    /// The upcall mask before delivery.
    pub saved_upcall_mask: u8,
    /// Interrupted rflags as the guest sees them (IF = !saved mask).
    pub rflags: u64,
    /// Interrupted rsp.
    pub rsp: u64,
    /// Interrupted ss.
    pub ss: u16,
}

/// Largest bounce frame, in words (with an error code).
pub const BOUNCE_FRAME_MAX_WORDS: usize = 8;

impl BounceFrame {
    /// Number of words: 8 with an error code, 7 without.
    pub const fn words(&self) -> usize {
        if self.error_code.is_some() { 8 } else { 7 }
    }

    /// The words, lowest address first; only the first [`Self::words`] are meaningful.
    pub const fn encode(&self) -> [u64; BOUNCE_FRAME_MAX_WORDS] {
        let tail = [
            self.rip,
            bounce_cs_word(self.cs, self.saved_upcall_mask),
            self.rflags,
            self.rsp,
            self.ss as u64,
        ];
        let mut out = [0u64; BOUNCE_FRAME_MAX_WORDS];
        out[0] = self.rcx;
        out[1] = self.r11;
        let mut next = 2;
        if let Some(code) = self.error_code {
            out[2] = code as u64;
            next = 3;
        }
        let mut i = 0;
        while i < tail.len() {
            out[next + i] = tail[i];
            i += 1;
        }
        out
    }

    /// The guest-virtual address of the frame's lowest word, given the stack top it is pushed
    /// below (aligned down to [`BOUNCE_STACK_ALIGN`] first).
    pub const fn base(&self, stack_top: u64) -> u64 {
        (stack_top & !(BOUNCE_STACK_ALIGN - 1)).wrapping_sub(self.words() as u64 * 8)
    }
}

/// Words in the failsafe callback frame.
pub const FAILSAFE_FRAME_WORDS: usize = 11;

/// The frame pushed for the failsafe callback (a segment reload failed on return to the guest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailsafeFrame {
    /// rcx.
    pub rcx: u64,
    /// r11.
    pub r11: u64,
    /// The selectors that were being loaded.
    pub ds: u16,
    /// es.
    pub es: u16,
    /// fs.
    pub fs: u16,
    /// gs.
    pub gs: u16,
    /// rip.
    pub rip: u64,
    /// cs.
    pub cs: u16,
    /// The upcall mask before delivery.
    pub saved_upcall_mask: u8,
    /// rflags.
    pub rflags: u64,
    /// rsp.
    pub rsp: u64,
    /// ss.
    pub ss: u16,
}

impl FailsafeFrame {
    /// The words, lowest address first.
    pub const fn encode(&self) -> [u64; FAILSAFE_FRAME_WORDS] {
        [
            self.rcx,
            self.r11,
            self.ds as u64,
            self.es as u64,
            self.fs as u64,
            self.gs as u64,
            self.rip,
            bounce_cs_word(self.cs, self.saved_upcall_mask),
            self.rflags,
            self.rsp,
            self.ss as u64,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;
    use core::mem::offset_of;

    #[test]
    fn iret_frame_word_order() {
        assert_eq!(core::mem::size_of::<IretContext>(), 72);
        let names = [
            offset_of!(IretContext, rax),
            offset_of!(IretContext, r11),
            offset_of!(IretContext, rcx),
            offset_of!(IretContext, flags),
            offset_of!(IretContext, rip),
            offset_of!(IretContext, cs),
            offset_of!(IretContext, rflags),
            offset_of!(IretContext, rsp),
            offset_of!(IretContext, ss),
        ];
        for (word, off) in names.into_iter().enumerate() {
            assert_eq!(off, word * 8);
        }
        assert_eq!(VGCF_IN_SYSCALL, 0x100);

        let mut stack = [0u8; 72];
        for (i, chunk) in stack.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(i as u64 + 1).to_le_bytes());
        }
        let ctx = IretContext::read_from(&stack).unwrap();
        assert_eq!((ctx.rax, ctx.flags, ctx.ss), (1, 4, 9));
    }

    #[test]
    fn bounce_frame_without_error_code() {
        let f = BounceFrame {
            rcx: 0xC,
            r11: 0xB,
            error_code: None,
            rip: 0x1000,
            cs: 0xE030,
            saved_upcall_mask: 1,
            rflags: 0x2,
            rsp: 0x8000,
            ss: 0xE02B,
        };
        assert_eq!(f.words(), 7);
        assert_eq!(
            f.encode(),
            [0xC, 0xB, 0x1000, 0x1_0000_E030, 0x2, 0x8000, 0xE02B, 0],
            "upcall mask in CS bits 39..32"
        );
        assert_eq!(f.base(0x9008), 0x9000 - 7 * 8, "top aligned down to 16");
    }

    #[test]
    fn bounce_frame_with_error_code() {
        let f = BounceFrame {
            rcx: 1,
            r11: 2,
            error_code: Some(0x1B),
            rip: 3,
            cs: 0xE033,
            saved_upcall_mask: 0,
            rflags: 0x202,
            rsp: 4,
            ss: 0xE02B,
        };
        assert_eq!(f.words(), 8);
        assert_eq!(f.encode(), [1, 2, 0x1B, 3, 0xE033, 0x202, 4, 0xE02B]);
        assert_eq!(f.base(0x9000), 0x9000 - 64);
    }

    #[test]
    fn failsafe_frame_order() {
        let f = FailsafeFrame {
            rcx: 1,
            r11: 2,
            ds: 3,
            es: 4,
            fs: 5,
            gs: 6,
            rip: 7,
            cs: 8,
            saved_upcall_mask: 1,
            rflags: 9,
            rsp: 10,
            ss: 11,
        };
        assert_eq!(f.encode(), [1, 2, 3, 4, 5, 6, 7, 0x1_0000_0008, 9, 10, 11]);
    }
}
