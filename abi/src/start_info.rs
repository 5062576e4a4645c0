//! `start_info` (64-bit, 1168 bytes): what the domain builder hands a PV kernel in `rsi`
//! (spec §6.3, `pv-boot-abi.md`), with its `SIF_*` flags and magic string.
//!
//! The builder writes it into guest memory as bytes: [`StartInfo::to_bytes`] (or
//! [`Wire::write_to`](crate::wire::Wire::write_to)) encodes every field little-endian at its C
//! offset, padding zeroed. The `OFFSET_*` constants are the C offsets, asserted against the Rust
//! layout at compile time.
//!
//! `console` is a C union of 16 bytes: a domU reads `{mfn: u64, evtchn: u32}`, the initial domain
//! reads `{info_off: u32, info_size: u32}`. It is stored here as two little-endian words and
//! accessed through [`StartInfo::console_domu`] / [`StartInfo::console_dom0`] and their setters.

use crate::wire::{Field, abi_struct};

/// Magic at the start of `start_info` for a 64-bit PV guest.
pub const START_INFO_MAGIC: &[u8] = b"xen-3.0-x86_64";
/// Magic Xen's dom0 builder writes when the kernel's PAE note says "yes" (a `p` suffix).
pub const START_INFO_MAGIC_PAE: &[u8] = b"xen-3.0-x86_64p";
/// Size of the `magic` field.
pub const START_INFO_MAGIC_LEN: usize = 32;
/// Size of `cmd_line` (`MAX_GUEST_CMDLINE`), terminating NUL included.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// The domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// The domain is the initial control domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `mod_start` is a multiboot module (a package of modules).
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `mod_start` is a PFN, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// The toolstack understands a virtually mapped P2M list.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// Byte reserved for power-management options.
pub const SIF_PM_MASK: u32 = 0xFF << 8;

abi_struct! {
    /// `struct start_info` for x86-64.
    #[repr(C)]
    pub struct StartInfo, size 1168 {
        /// `"xen-<version>-<platform>"`, NUL padded.
        pub magic: [u8; 32] = 0,
        /// Total pages allocated to the domain.
        pub nr_pages: u64 = 32,
        /// **Machine** address of the shared_info page.
        pub shared_info: u64 = 40,
        /// `SIF_*` flags.
        pub flags: u32 = 48,
        /// MFN of the xenstore ring page.
        pub store_mfn: u64 = 56,
        /// Event channel of the xenstore ring.
        pub store_evtchn: u32 = 64,
        /// The console union as two little-endian words (see the module head).
        pub console: [u64; 2] = 72,
        /// **Virtual** address of the bootstrap L4.
        pub pt_base: u64 = 88,
        /// Number of bootstrap page-table frames.
        pub nr_pt_frames: u64 = 96,
        /// Virtual address of the P2M array (one u64 MFN per PFN).
        pub mfn_list: u64 = 104,
        /// Virtual address (or PFN with `SIF_MOD_START_PFN`) of the initial module.
        pub mod_start: u64 = 112,
        /// Size in bytes of the initial module.
        pub mod_len: u64 = 120,
        /// Kernel command line, NUL terminated.
        pub cmd_line: [u8; 1024] = 128,
        /// First PFN of the initial P2M table (page tables and P2M frames).
        pub first_p2m_pfn: u64 = 1152,
        /// Number of PFNs of the initial P2M table.
        pub nr_p2m_frames: u64 = 1160,
    }
}

/// Offset of `magic`.
pub const OFFSET_MAGIC: usize = 0;
/// Offset of `nr_pages`.
pub const OFFSET_NR_PAGES: usize = 32;
/// Offset of `shared_info`.
pub const OFFSET_SHARED_INFO: usize = 40;
/// Offset of `flags`.
pub const OFFSET_FLAGS: usize = 48;
/// Offset of `store_mfn`.
pub const OFFSET_STORE_MFN: usize = 56;
/// Offset of `store_evtchn`.
pub const OFFSET_STORE_EVTCHN: usize = 64;
/// Offset of the `console` union (domU `mfn`, dom0 `info_off`).
pub const OFFSET_CONSOLE: usize = 72;
/// Offset of `console.domU.evtchn`.
pub const OFFSET_CONSOLE_DOMU_EVTCHN: usize = 80;
/// Offset of `console.dom0.info_size`.
pub const OFFSET_CONSOLE_DOM0_INFO_SIZE: usize = 76;
/// Offset of `pt_base`.
pub const OFFSET_PT_BASE: usize = 88;
/// Offset of `nr_pt_frames`.
pub const OFFSET_NR_PT_FRAMES: usize = 96;
/// Offset of `mfn_list`.
pub const OFFSET_MFN_LIST: usize = 104;
/// Offset of `mod_start`.
pub const OFFSET_MOD_START: usize = 112;
/// Offset of `mod_len`.
pub const OFFSET_MOD_LEN: usize = 120;
/// Offset of `cmd_line`.
pub const OFFSET_CMD_LINE: usize = 128;
/// Offset of `first_p2m_pfn`.
pub const OFFSET_FIRST_P2M_PFN: usize = 1152;
/// Offset of `nr_p2m_frames`.
pub const OFFSET_NR_P2M_FRAMES: usize = 1160;
/// Size of `struct start_info`.
pub const START_INFO_SIZE: usize = 1168;

const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(StartInfo, magic) == OFFSET_MAGIC);
    assert!(offset_of!(StartInfo, nr_pages) == OFFSET_NR_PAGES);
    assert!(offset_of!(StartInfo, shared_info) == OFFSET_SHARED_INFO);
    assert!(offset_of!(StartInfo, flags) == OFFSET_FLAGS);
    assert!(offset_of!(StartInfo, store_mfn) == OFFSET_STORE_MFN);
    assert!(offset_of!(StartInfo, store_evtchn) == OFFSET_STORE_EVTCHN);
    assert!(offset_of!(StartInfo, console) == OFFSET_CONSOLE);
    assert!(OFFSET_CONSOLE + 8 == OFFSET_CONSOLE_DOMU_EVTCHN);
    assert!(OFFSET_CONSOLE + 4 == OFFSET_CONSOLE_DOM0_INFO_SIZE);
    assert!(offset_of!(StartInfo, pt_base) == OFFSET_PT_BASE);
    assert!(offset_of!(StartInfo, nr_pt_frames) == OFFSET_NR_PT_FRAMES);
    assert!(offset_of!(StartInfo, mfn_list) == OFFSET_MFN_LIST);
    assert!(offset_of!(StartInfo, mod_start) == OFFSET_MOD_START);
    assert!(offset_of!(StartInfo, mod_len) == OFFSET_MOD_LEN);
    assert!(offset_of!(StartInfo, cmd_line) == OFFSET_CMD_LINE);
    assert!(offset_of!(StartInfo, first_p2m_pfn) == OFFSET_FIRST_P2M_PFN);
    assert!(offset_of!(StartInfo, nr_p2m_frames) == OFFSET_NR_P2M_FRAMES);
    assert!(core::mem::size_of::<StartInfo>() == START_INFO_SIZE);
};

/// A command line longer than `MAX_GUEST_CMDLINE - 1` bytes (room is kept for the NUL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdLineTooLong {
    /// Length of the rejected command line.
    pub len: usize,
}

impl StartInfo {
    /// A zeroed `start_info` with [`START_INFO_MAGIC`] in place.
    pub fn new() -> StartInfo {
        let mut si = StartInfo::default();
        si.magic[..START_INFO_MAGIC.len()].copy_from_slice(START_INFO_MAGIC);
        si
    }

    /// True if `magic` begins with [`START_INFO_MAGIC`] (with or without the PAE `p`).
    pub fn magic_ok(&self) -> bool {
        self.magic.starts_with(START_INFO_MAGIC)
    }

    /// Sets the domU console: ring MFN and event channel.
    pub fn set_console_domu(&mut self, mfn: u64, evtchn: u32) {
        self.console = [mfn, u64::from(evtchn)];
    }

    /// Reads the console union as domU `(mfn, evtchn)`.
    pub fn console_domu(&self) -> (u64, u32) {
        (self.console[0], self.console[1] as u32)
    }

    /// Sets the dom0 console: offset and size of the `dom0_vga_console_info` in this page.
    pub fn set_console_dom0(&mut self, info_off: u32, info_size: u32) {
        self.console = [u64::from(info_off) | (u64::from(info_size) << 32), 0];
    }

    /// Reads the console union as dom0 `(info_off, info_size)`.
    pub fn console_dom0(&self) -> (u32, u32) {
        (self.console[0] as u32, (self.console[0] >> 32) as u32)
    }

    /// Stores `cmd_line` NUL terminated; the rest of the field is zeroed.
    pub fn set_cmd_line(&mut self, cmd_line: &[u8]) -> Result<(), CmdLineTooLong> {
        if cmd_line.len() >= MAX_GUEST_CMDLINE {
            return Err(CmdLineTooLong {
                len: cmd_line.len(),
            });
        }
        self.cmd_line = [0; MAX_GUEST_CMDLINE];
        self.cmd_line[..cmd_line.len()].copy_from_slice(cmd_line);
        Ok(())
    }

    /// The command line up to its first NUL (the whole field if there is none).
    pub fn cmd_line(&self) -> &[u8] {
        let end = self
            .cmd_line
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_GUEST_CMDLINE);
        &self.cmd_line[..end]
    }

    /// The encoded structure, ready to copy into guest memory.
    pub fn to_bytes(&self) -> [u8; START_INFO_SIZE] {
        let mut out = [0u8; START_INFO_SIZE];
        Field::put(self, &mut out);
        out
    }

    /// Decodes an encoded structure.
    pub fn from_bytes(bytes: &[u8; START_INFO_SIZE]) -> StartInfo {
        Field::get(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le64(bytes: &[u8], off: usize) -> u64 {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&bytes[off..off + 8]);
        u64::from_le_bytes(raw)
    }

    fn le32(bytes: &[u8], off: usize) -> u32 {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&bytes[off..off + 4]);
        u32::from_le_bytes(raw)
    }

    #[test]
    fn size_and_offsets() {
        use core::mem::offset_of;
        assert_eq!(core::mem::size_of::<StartInfo>(), 1168);
        assert_eq!(offset_of!(StartInfo, nr_pages), 32);
        assert_eq!(offset_of!(StartInfo, shared_info), 40);
        assert_eq!(offset_of!(StartInfo, flags), 48);
        assert_eq!(offset_of!(StartInfo, store_mfn), 56);
        assert_eq!(offset_of!(StartInfo, store_evtchn), 64);
        assert_eq!(offset_of!(StartInfo, console), 72);
        assert_eq!(offset_of!(StartInfo, pt_base), 88);
        assert_eq!(offset_of!(StartInfo, nr_pt_frames), 96);
        assert_eq!(offset_of!(StartInfo, mfn_list), 104);
        assert_eq!(offset_of!(StartInfo, mod_start), 112);
        assert_eq!(offset_of!(StartInfo, mod_len), 120);
        assert_eq!(offset_of!(StartInfo, cmd_line), 128);
        assert_eq!(offset_of!(StartInfo, first_p2m_pfn), 1152);
        assert_eq!(offset_of!(StartInfo, nr_p2m_frames), 1160);
    }

    #[test]
    fn sif_flags_match_xen_h() {
        assert_eq!(
            [
                SIF_PRIVILEGED,
                SIF_INITDOMAIN,
                SIF_MULTIBOOT_MOD,
                SIF_MOD_START_PFN
            ],
            [1, 2, 4, 8]
        );
        assert_eq!(SIF_VIRT_P2M_4TOOLS, 16);
        assert_eq!(SIF_PM_MASK, 0xFF00);
        // What Xen 4.17 gives dom0 (pv-boot-abi.md): privileged | initdomain | PM bits.
        assert_eq!(SIF_PRIVILEGED | SIF_INITDOMAIN | 0x300, 0x303);
    }

    #[test]
    fn encodes_every_field_at_its_offset() {
        let mut si = StartInfo::new();
        si.nr_pages = 0x4000;
        si.shared_info = 0x1234_5000;
        si.flags = SIF_PRIVILEGED | SIF_INITDOMAIN;
        si.store_mfn = 0x77;
        si.store_evtchn = 3;
        si.set_console_domu(0x88, 9);
        si.pt_base = 0x40_5000;
        si.nr_pt_frames = 6;
        si.mfn_list = 0x20_0000;
        si.mod_start = 0x30_0000;
        si.mod_len = 0x1800;
        si.set_cmd_line(b"console=hvc0 loglvl=all").unwrap();
        si.first_p2m_pfn = 0x500;
        si.nr_p2m_frames = 8;

        let b = si.to_bytes();
        assert_eq!(&b[..15], b"xen-3.0-x86_64\0");
        assert_eq!(le64(&b, OFFSET_NR_PAGES), 0x4000);
        assert_eq!(le64(&b, OFFSET_SHARED_INFO), 0x1234_5000);
        assert_eq!(le32(&b, OFFSET_FLAGS), 3);
        assert_eq!(le32(&b, OFFSET_FLAGS + 4), 0, "padding after flags");
        assert_eq!(le64(&b, OFFSET_STORE_MFN), 0x77);
        assert_eq!(le32(&b, OFFSET_STORE_EVTCHN), 3);
        assert_eq!(le64(&b, OFFSET_CONSOLE), 0x88);
        assert_eq!(le32(&b, OFFSET_CONSOLE_DOMU_EVTCHN), 9);
        assert_eq!(le64(&b, OFFSET_PT_BASE), 0x40_5000);
        assert_eq!(le64(&b, OFFSET_NR_PT_FRAMES), 6);
        assert_eq!(le64(&b, OFFSET_MFN_LIST), 0x20_0000);
        assert_eq!(le64(&b, OFFSET_MOD_START), 0x30_0000);
        assert_eq!(le64(&b, OFFSET_MOD_LEN), 0x1800);
        assert_eq!(
            &b[OFFSET_CMD_LINE..OFFSET_CMD_LINE + 24],
            b"console=hvc0 loglvl=all\0"
        );
        assert_eq!(le64(&b, OFFSET_FIRST_P2M_PFN), 0x500);
        assert_eq!(le64(&b, OFFSET_NR_P2M_FRAMES), 8);
        assert_eq!(StartInfo::from_bytes(&b), si);
    }

    #[test]
    fn dom0_console_union() {
        let mut si = StartInfo::new();
        si.set_console_dom0(0x490, 0x28);
        let b = si.to_bytes();
        assert_eq!(le32(&b, OFFSET_CONSOLE), 0x490);
        assert_eq!(le32(&b, OFFSET_CONSOLE_DOM0_INFO_SIZE), 0x28);
        assert_eq!(si.console_dom0(), (0x490, 0x28));
    }

    #[test]
    fn magic_and_cmd_line() {
        let mut si = StartInfo::new();
        assert!(si.magic_ok());
        si.magic[14] = b'p';
        assert!(si.magic_ok());
        assert!(si.magic.starts_with(START_INFO_MAGIC_PAE));
        si.magic[0] = b'X';
        assert!(!si.magic_ok());

        assert_eq!(si.cmd_line(), b"");
        si.set_cmd_line(b"abc").unwrap();
        assert_eq!(si.cmd_line(), b"abc");
        si.set_cmd_line(b"x").unwrap();
        assert_eq!(si.cmd_line(), b"x", "old bytes cleared");
        assert_eq!(si.set_cmd_line(&[b'a'; 1023]), Ok(()));
        assert_eq!(si.cmd_line().len(), 1023);
        assert_eq!(
            si.set_cmd_line(&[b'a'; 1024]),
            Err(CmdLineTooLong { len: 1024 })
        );
        si.cmd_line = [b'z'; MAX_GUEST_CMDLINE];
        assert_eq!(
            si.cmd_line().len(),
            MAX_GUEST_CMDLINE,
            "unterminated field is bounded"
        );
    }
}
