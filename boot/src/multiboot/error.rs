//! The multiboot parser's errors: what went wrong and which part of the MBI it was reading.

use core::fmt;

use super::{MAX_MMAP_ENTRIES, MAX_MODULES, MAX_STRING_LEN, STRING_SPACE};

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
    Unreadable {
        item: Item,
        paddr: u64,
        len: u64,
    },
    /// Flags bit 6 is clear: no memory map.
    NoMemoryMap {
        flags: u32,
    },
    TooManyModules {
        count: u32,
    },
    ModuleEndBeforeStart {
        index: usize,
        start: u32,
        end: u32,
    },
    /// No NUL within [`MAX_STRING_LEN`] bytes.
    StringTooLong {
        item: Item,
    },
    StringNotUtf8 {
        item: Item,
    },
    /// The strings together exceed [`STRING_SPACE`].
    StringSpaceFull {
        item: Item,
    },
    /// The entry at `offset` runs past `mmap_length`.
    MmapTruncated {
        offset: u32,
        length: u32,
    },
    /// The entry at `offset` declares a size below 20 bytes.
    MmapEntryTooSmall {
        offset: u32,
        size: u32,
    },
    TooManyMmapEntries,
    /// Entry `index` has `base + len` past 2^64.
    MmapEntryOverflow {
        index: usize,
        base: u64,
        len: u64,
    },
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
                write!(
                    f,
                    "module {index} ends at {end:#x} before its start {start:#x}"
                )
            }
            StringTooLong { item } => write!(f, "{item:?}: string over {MAX_STRING_LEN} bytes"),
            StringNotUtf8 { item } => write!(f, "{item:?}: string is not UTF-8"),
            StringSpaceFull { item } => write!(f, "{item:?}: strings over {STRING_SPACE} bytes"),
            MmapTruncated { offset, length } => {
                write!(
                    f,
                    "memory map entry at {offset:#x} runs past its length {length:#x}"
                )
            }
            MmapEntryTooSmall { offset, size } => {
                write!(
                    f,
                    "memory map entry at {offset:#x} has size {size}, below 20"
                )
            }
            TooManyMmapEntries => write!(f, "memory map over {MAX_MMAP_ENTRIES} entries"),
            MmapEntryOverflow { index, base, len } => {
                write!(f, "memory map entry {index} ({base:#x}+{len:#x}) overflows")
            }
        }
    }
}
