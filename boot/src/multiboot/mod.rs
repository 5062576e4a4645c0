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

use core::fmt;

use crate::memmap::{Range, Region, RegionKind};

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

/// What was being read when parsing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    Info,
    Cmdline,
    LoaderName,
    ModuleList,
    /// Module `n`'s command line.
    ModuleCmdline(usize),
    MemoryMap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// EAX did not hold [`BOOTLOADER_MAGIC`].
    BadMagic(u32),
    /// `len` bytes at `paddr` are not readable (or the range wraps).
    Unreadable { item: Item, paddr: u64, len: u64 },
    /// Flags bit 6 is clear: no memory map.
    NoMemoryMap { flags: u32 },
    TooManyModules { count: u32 },
    ModuleEndBeforeStart { index: usize, start: u32, end: u32 },
    /// No NUL within [`MAX_STRING_LEN`] bytes.
    StringTooLong { item: Item },
    StringNotUtf8 { item: Item },
    /// The strings together exceed [`STRING_SPACE`].
    StringSpaceFull { item: Item },
    /// The entry at `offset` runs past `mmap_length`.
    MmapTruncated { offset: u32, length: u32 },
    /// The entry at `offset` declares a size below 20 bytes.
    MmapEntryTooSmall { offset: u32, size: u32 },
    TooManyMmapEntries,
    /// Entry `index` has `base + len` past 2^64.
    MmapEntryOverflow { index: usize, base: u64, len: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match *self {
            BadMagic(m) => write!(f, "not a multiboot v1 boot (magic {m:#x})"),
            Unreadable { item, paddr, len } => {
                write!(f, "{item:?}: cannot read {len:#x} bytes at {paddr:#x}")
            }
            NoMemoryMap { flags } => write!(f, "no memory map (multiboot flags {flags:#x})"),
            TooManyModules { count } => write!(f, "{count} modules, at most {MAX_MODULES}"),
            ModuleEndBeforeStart { index, start, end } => {
                write!(f, "module {index} ends at {end:#x} before its start {start:#x}")
            }
            StringTooLong { item } => write!(f, "{item:?}: string over {MAX_STRING_LEN} bytes"),
            StringNotUtf8 { item } => write!(f, "{item:?}: string is not UTF-8"),
            StringSpaceFull { item } => write!(f, "{item:?}: strings over {STRING_SPACE} bytes"),
            MmapTruncated { offset, length } => {
                write!(f, "memory map entry at {offset:#x} runs past its length {length:#x}")
            }
            MmapEntryTooSmall { offset, size } => {
                write!(f, "memory map entry at {offset:#x} has size {size}, below 20")
            }
            TooManyMmapEntries => write!(f, "memory map over {MAX_MMAP_ENTRIES} entries"),
            MmapEntryOverflow { index, base, len } => {
                write!(f, "memory map entry {index} ({base:#x}+{len:#x}) overflows")
            }
        }
    }
}

/// A string in the arena: `start..end`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RawModule {
    start: u32,
    end: u32,
    cmdline: Span,
}

/// `mem_lower` / `mem_upper` (flags bit 0), in KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BasicMemory {
    pub lower_kib: u32,
    pub upper_kib: u32,
}

/// A boot module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module<'a> {
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    /// Starts with the module's path.
    pub cmdline: &'a str,
}

impl Module<'_> {
    pub fn range(&self) -> Range {
        Range::new(self.start, self.end)
    }
}

/// Everything Argon takes from the MBI, copied into fixed-capacity storage.
#[derive(Clone)]
pub struct BootInfo {
    flags: u32,
    mbi: Range,
    memory: Option<BasicMemory>,
    cmdline: Span,
    loader_name: Option<Span>,
    modules: [RawModule; MAX_MODULES],
    module_count: usize,
    mmap: [Region; MAX_MMAP_ENTRIES],
    mmap_count: usize,
    strings: [u8; STRING_SPACE],
    strings_used: usize,
}

impl BootInfo {
    pub const EMPTY: Self = Self {
        flags: 0,
        mbi: Range::new(0, 0),
        memory: None,
        cmdline: Span { start: 0, end: 0 },
        loader_name: None,
        modules: [RawModule { start: 0, end: 0, cmdline: Span { start: 0, end: 0 } }; MAX_MODULES],
        module_count: 0,
        mmap: [Region { base: 0, len: 0, kind: RegionKind::Reserved }; MAX_MMAP_ENTRIES],
        mmap_count: 0,
        strings: [0; STRING_SPACE],
        strings_used: 0,
    };

    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The fixed part of the MBI that was read (for the caller's list of reserved holes).
    pub fn mbi_range(&self) -> Range {
        self.mbi
    }

    pub fn basic_memory(&self) -> Option<BasicMemory> {
        self.memory
    }

    /// The hypervisor command line, path first; empty without flags bit 2.
    pub fn cmdline(&self) -> &str {
        self.str(self.cmdline)
    }

    pub fn loader_name(&self) -> Option<&str> {
        self.loader_name.map(|s| self.str(s))
    }

    pub fn modules(&self) -> impl ExactSizeIterator<Item = Module<'_>> + '_ {
        let raw = self.modules.get(..self.module_count).unwrap_or_default();
        raw.iter().map(|m| Module {
            start: u64::from(m.start),
            end: u64::from(m.end),
            cmdline: self.str(m.cmdline),
        })
    }

    pub fn memory_map(&self) -> &[Region] {
        self.mmap.get(..self.mmap_count).unwrap_or_default()
    }

    fn str(&self, s: Span) -> &str {
        // Spans are only made over bytes already checked to be UTF-8.
        let bytes = self.strings.get(s.start..s.end).unwrap_or_default();
        core::str::from_utf8(bytes).unwrap_or_default()
    }

    /// Copies the NUL-terminated string at `paddr` into the arena.
    fn read_string(&mut self, mem: &impl PhysRead, item: Item, paddr: u32) -> Result<Span, Error> {
        let start = self.strings_used;
        if paddr == 0 {
            return Ok(Span { start, end: start });
        }
        for i in 0..=MAX_STRING_LEN as u64 {
            let mut byte = [0u8; 1];
            read(mem, item, u64::from(paddr), i, &mut byte)?;
            let end = self.strings_used;
            if byte[0] == 0 {
                let text = self.strings.get(start..end).unwrap_or_default();
                core::str::from_utf8(text).map_err(|_| Error::StringNotUtf8 { item })?;
                return Ok(Span { start, end });
            }
            if end - start == MAX_STRING_LEN {
                return Err(Error::StringTooLong { item });
            }
            *self.strings.get_mut(end).ok_or(Error::StringSpaceFull { item })? = byte[0];
            self.strings_used = end + 1;
        }
        Err(Error::StringTooLong { item })
    }
}

impl fmt::Debug for BootInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Modules<'a>(&'a BootInfo);
        impl fmt::Debug for Modules<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.modules()).finish()
            }
        }
        f.debug_struct("BootInfo")
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("memory", &self.memory)
            .field("cmdline", &self.cmdline())
            .field("loader_name", &self.loader_name())
            .field("modules", &Modules(self))
            .field("memory_map", &self.memory_map())
            .finish()
    }
}

/// Reads `buf.len()` bytes at `base + off`.
fn read(mem: &impl PhysRead, item: Item, base: u64, off: u64, buf: &mut [u8]) -> Result<(), Error> {
    let len = buf.len() as u64;
    let paddr = base.checked_add(off).filter(|p| p.checked_add(len).is_some());
    let unreadable = Error::Unreadable { item, paddr: paddr.unwrap_or(base), len };
    mem.read(paddr.ok_or(unreadable)?, buf).map_err(|_| unreadable)
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

/// [`parse`] into caller storage; `out` is reset first and undefined after an error.
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
    let size = if has(flags::LOADER_NAME) { LOADER_NAME + 4 } else { MMAP_ADDR + 4 };
    out.mbi = Range::new(mbi, mbi.saturating_add(size));
    if has(flags::MEMORY) {
        out.memory = Some(BasicMemory { lower_kib: field(MEM_LOWER)?, upper_kib: field(MEM_UPPER)? });
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

fn parse_modules(out: &mut BootInfo, mem: &impl PhysRead, count: u32, addr: u32) -> Result<(), Error> {
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
        *out.modules.get_mut(index).ok_or(Error::TooManyModules { count })? =
            RawModule { start, end, cmdline };
        out.module_count = index + 1;
    }
    Ok(())
}

fn parse_mmap(out: &mut BootInfo, mem: &impl PhysRead, length: u32, addr: u32) -> Result<(), Error> {
    let (item, base) = (Item::MemoryMap, u64::from(addr));
    let mut offset: u32 = 0;
    while offset < length {
        let truncated = Error::MmapTruncated { offset, length };
        let body = offset.checked_add(4).filter(|&b| b <= length).ok_or(truncated)?;
        let size = read_u32(mem, item, base, u64::from(offset))?;
        let next = body.checked_add(size).filter(|&n| n <= length).ok_or(truncated)?;
        if size < MMAP_ENTRY {
            return Err(Error::MmapEntryTooSmall { offset, size });
        }
        let at = u64::from(body);
        let (base_addr, len) = (read_u64(mem, item, base, at)?, read_u64(mem, item, base, at + 8)?);
        let kind = RegionKind::from_e820(read_u32(mem, item, base, at + 16)?);
        let region = Region { base: base_addr, len, kind };
        let index = out.mmap_count;
        if region.base.checked_add(region.len).is_none() {
            return Err(Error::MmapEntryOverflow { index, base: region.base, len: region.len });
        }
        *out.mmap.get_mut(index).ok_or(Error::TooManyMmapEntries)? = region;
        out.mmap_count = index + 1;
        offset = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
