//! [`BootInfo`]: what Argon keeps of the MBI, in fixed-capacity storage. Every string is copied
//! into one arena (`strings`) and referred to by a [`Span`]; a span is only made over bytes that
//! were checked to be UTF-8, so the accessors never fail.

use core::fmt;

use super::{
    Error, Item, MAX_MMAP_ENTRIES, MAX_MODULES, MAX_STRING_LEN, PhysRead, STRING_SPACE, read,
};
use crate::memmap::{Range, Region, RegionKind};

/// A string in the arena: `start..end`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) end: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct RawModule {
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) cmdline: Span,
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
    pub(super) flags: u32,
    pub(super) mbi: Range,
    pub(super) memory: Option<BasicMemory>,
    pub(super) cmdline: Span,
    pub(super) loader_name: Option<Span>,
    pub(super) modules: [RawModule; MAX_MODULES],
    pub(super) module_count: usize,
    pub(super) mmap: [Region; MAX_MMAP_ENTRIES],
    pub(super) mmap_count: usize,
    pub(super) strings: [u8; STRING_SPACE],
    pub(super) strings_used: usize,
}

impl BootInfo {
    pub const EMPTY: Self = Self {
        flags: 0,
        mbi: Range::new(0, 0),
        memory: None,
        cmdline: Span { start: 0, end: 0 },
        loader_name: None,
        modules: [RawModule {
            start: 0,
            end: 0,
            cmdline: Span { start: 0, end: 0 },
        }; MAX_MODULES],
        module_count: 0,
        mmap: [Region {
            base: 0,
            len: 0,
            kind: RegionKind::Reserved,
        }; MAX_MMAP_ENTRIES],
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
    pub(super) fn read_string(
        &mut self,
        mem: &impl PhysRead,
        item: Item,
        paddr: u32,
    ) -> Result<Span, Error> {
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
            let slot = self
                .strings
                .get_mut(end)
                .ok_or(Error::StringSpaceFull { item })?;
            *slot = byte[0];
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
