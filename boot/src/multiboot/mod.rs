//! The Multiboot v1 boot information (MBI) → [`BootInfo`]: flags, basic memory, the command
//! line, the boot loader name, the modules with their command lines and the memory map.
//!
//! Physical memory is reached only through [`PhysRead`] (the hypervisor implements it over its
//! identity map, tests over fake memory), so nothing here dereferences an address: every
//! pointer in the MBI is input and every offset is computed with checked arithmetic.
//!
//! Choices: the memory map (flags bit 6) is required, the rest optional; strings are
//! NUL-terminated, at most [`MAX_STRING_LEN`] bytes, and must be UTF-8 (an error, not lossy: a
//! command line the parser would partly misread is worse than a clear stop); a string pointer of
//! 0 is an empty string (the spec allows it for module strings). Module `mod_end` is exclusive
//! (GRUB and QEMU both pass start + size). `BootInfo` copies every string into its own fixed
//! arena, so the MBI's memory may be reused once [`parse`] returns. `BootInfo` is about 10 KiB:
//! early code with a small stack should use [`parse_into`] on a static.

mod error;
mod info;

pub use error::{Error, Item};
pub use info::{BasicMemory, BootInfo, Module};

use crate::memmap::{Range, Region, RegionKind};
use info::RawModule;

/// EAX at entry from a Multiboot v1 loader.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
pub const MAX_MODULES: usize = 16;
pub const MAX_MMAP_ENTRIES: usize = 64;
/// Longest string read, without its NUL.
pub const MAX_STRING_LEN: usize = 4096;
/// Bytes for all strings of one `BootInfo` together.
pub const STRING_SPACE: usize = 8192;

/// `flags` bits of the MBI (Multiboot 0.6.96 §3.3).
pub mod flags {
    pub const MEMORY: u32 = 1 << 0;
    pub const CMDLINE: u32 = 1 << 2;
    pub const MODULES: u32 = 1 << 3;
    pub const MEMORY_MAP: u32 = 1 << 6;
    pub const LOADER_NAME: u32 = 1 << 9;
}

// Byte offsets of MBI fields, and the sizes of a module entry and of a memory-map entry body.
const MEM_LOWER: u64 = 4;
const MEM_UPPER: u64 = 8;
const CMDLINE: u64 = 16;
const MODS_COUNT: u64 = 20;
const MODS_ADDR: u64 = 24;
const MMAP_LENGTH: u64 = 44;
const MMAP_ADDR: u64 = 48;
const LOADER_NAME: u64 = 64;
const MODULE_ENTRY: u64 = 16;
const MMAP_ENTRY: u32 = 20;

/// The requested physical range cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable;

/// Reads physical memory; the seam that keeps the parser testable.
pub trait PhysRead {
    /// Fills `buf` from `paddr..paddr + buf.len()`, or fails if any of it is not readable.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable>;
}

/// Reads `buf.len()` bytes at `base + off`; a range that wraps past 2^64 is unreadable.
fn read(mem: &impl PhysRead, item: Item, base: u64, off: u64, buf: &mut [u8]) -> Result<(), Error> {
    let len = buf.len() as u64;
    let paddr = base
        .checked_add(off)
        .filter(|p| p.checked_add(len).is_some());
    let unreadable = Error::Unreadable {
        item,
        paddr: paddr.unwrap_or(base),
        len,
    };
    mem.read(paddr.ok_or(unreadable)?, buf)
        .map_err(|_| unreadable)
}

fn read_u32(mem: &impl PhysRead, item: Item, base: u64, off: u64) -> Result<u32, Error> {
    let mut b = [0; 4];
    read(mem, item, base, off, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(mem: &impl PhysRead, item: Item, base: u64, off: u64) -> Result<u64, Error> {
    let mut b = [0; 8];
    read(mem, item, base, off, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Parses the MBI at `mbi` given the EAX value `magic` from entry.
pub fn parse(magic: u32, mbi: u64, mem: &impl PhysRead) -> Result<BootInfo, Error> {
    let mut info = BootInfo::EMPTY;
    parse_into(&mut info, magic, mbi, mem)?;
    Ok(info)
}

/// [`parse`] into caller storage (e.g. a static); `out` is partly filled after an error.
pub fn parse_into(
    out: &mut BootInfo,
    magic: u32,
    mbi: u64,
    mem: &impl PhysRead,
) -> Result<(), Error> {
    if magic != BOOTLOADER_MAGIC {
        return Err(Error::BadMagic(magic));
    }
    *out = BootInfo::EMPTY;
    let flags = read_u32(mem, Item::Info, mbi, 0)?;
    let has = |bit| flags & bit != 0;
    if !has(flags::MEMORY_MAP) {
        return Err(Error::NoMemoryMap { flags });
    }
    let field = |off| read_u32(mem, Item::Info, mbi, off);
    out.flags = flags;
    let size = if has(flags::LOADER_NAME) {
        LOADER_NAME + 4
    } else {
        MMAP_ADDR + 4
    };
    out.mbi = Range::new(mbi, mbi.saturating_add(size));
    if has(flags::MEMORY) {
        out.memory = Some(BasicMemory {
            lower_kib: field(MEM_LOWER)?,
            upper_kib: field(MEM_UPPER)?,
        });
    }
    if has(flags::CMDLINE) {
        out.cmdline = out.read_string(mem, Item::Cmdline, field(CMDLINE)?)?;
    }
    if has(flags::LOADER_NAME) {
        out.loader_name = Some(out.read_string(mem, Item::LoaderName, field(LOADER_NAME)?)?);
    }
    if has(flags::MODULES) {
        parse_modules(out, mem, field(MODS_COUNT)?, field(MODS_ADDR)?)?;
    }
    parse_mmap(out, mem, field(MMAP_LENGTH)?, field(MMAP_ADDR)?)
}

fn parse_modules(
    out: &mut BootInfo,
    mem: &impl PhysRead,
    count: u32,
    addr: u32,
) -> Result<(), Error> {
    let n = usize::try_from(count).ok().filter(|&n| n <= MAX_MODULES);
    let n = n.ok_or(Error::TooManyModules { count })?;
    for index in 0..n {
        let at = index as u64 * MODULE_ENTRY;
        let entry = |field| read_u32(mem, Item::ModuleList, u64::from(addr), at + field);
        let (start, end, string) = (entry(0)?, entry(4)?, entry(8)?);
        if end < start {
            return Err(Error::ModuleEndBeforeStart { index, start, end });
        }
        let cmdline = out.read_string(mem, Item::ModuleCmdline(index), string)?;
        let slot = out
            .modules
            .get_mut(index)
            .ok_or(Error::TooManyModules { count })?;
        *slot = RawModule {
            start,
            end,
            cmdline,
        };
        out.module_count = index + 1;
    }
    Ok(())
}

fn parse_mmap(
    out: &mut BootInfo,
    mem: &impl PhysRead,
    length: u32,
    addr: u32,
) -> Result<(), Error> {
    let (item, map) = (Item::MemoryMap, u64::from(addr));
    let mut offset: u32 = 0;
    while offset < length {
        let truncated = Error::MmapTruncated { offset, length };
        let body = offset
            .checked_add(4)
            .filter(|&b| b <= length)
            .ok_or(truncated)?;
        let size = read_u32(mem, item, map, u64::from(offset))?;
        let next = body
            .checked_add(size)
            .filter(|&n| n <= length)
            .ok_or(truncated)?;
        if size < MMAP_ENTRY {
            return Err(Error::MmapEntryTooSmall { offset, size });
        }
        let at = u64::from(body);
        let base = read_u64(mem, item, map, at)?;
        let len = read_u64(mem, item, map, at + 8)?;
        let kind = RegionKind::from_e820(read_u32(mem, item, map, at + 16)?);
        let index = out.mmap_count;
        if base.checked_add(len).is_none() {
            return Err(Error::MmapEntryOverflow { index, base, len });
        }
        *out.mmap.get_mut(index).ok_or(Error::TooManyMmapEntries)? = Region { base, len, kind };
        out.mmap_count = index + 1;
        offset = next;
    }
    Ok(())
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
