//! Frame types and page-table levels: small value types shared by the frame table and `pt`.
//!
//! Owns the numeric encoding of the 3-bit type field (value 7 is reserved and never stored).
//! Pure values; no atomics here.

/// The use a frame is typed for. Types are mutually exclusive while the type count is non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[repr(u8)]
pub enum PageType {
    /// No type (fresh, or validation failed).
    #[default]
    None = 0,
    /// Level-1 page table.
    L1 = 1,
    /// Level-2 page table.
    L2 = 2,
    /// Level-3 page table.
    L3 = 3,
    /// Level-4 page table.
    L4 = 4,
    /// GDT/LDT frame.
    SegDesc = 5,
    /// Writable data frame (mapped RW by an L1 entry, or written by the hypervisor for the guest).
    Writable = 6,
}

impl PageType {
    /// Every type, in encoding order.
    pub const ALL: [PageType; 7] = [
        PageType::None,
        PageType::L1,
        PageType::L2,
        PageType::L3,
        PageType::L4,
        PageType::SegDesc,
        PageType::Writable,
    ];

    /// The 3-bit encoding.
    pub const fn bits(self) -> u8 {
        self as u8
    }

    /// Decode the 3-bit field; 7 (and anything wider) is not a type.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0 => PageType::None,
            1 => PageType::L1,
            2 => PageType::L2,
            3 => PageType::L3,
            4 => PageType::L4,
            5 => PageType::SegDesc,
            6 => PageType::Writable,
            _ => return None,
        })
    }

    /// The page-table level of an L1..L4 type.
    pub const fn level(self) -> Option<Level> {
        match self {
            PageType::L1 => Some(Level::L1),
            PageType::L2 => Some(Level::L2),
            PageType::L3 => Some(Level::L3),
            PageType::L4 => Some(Level::L4),
            _ => None,
        }
    }
}

/// A page-table level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Leaf table (PTEs).
    L1 = 1,
    /// Page directory.
    L2 = 2,
    /// Page-directory-pointer table.
    L3 = 3,
    /// Root (PML4).
    L4 = 4,
}

impl Level {
    /// Every level, leaf first.
    pub const ALL: [Level; 4] = [Level::L1, Level::L2, Level::L3, Level::L4];

    /// The frame type of a table at this level.
    pub const fn page_type(self) -> PageType {
        match self {
            Level::L1 => PageType::L1,
            Level::L2 => PageType::L2,
            Level::L3 => PageType::L3,
            Level::L4 => PageType::L4,
        }
    }

    /// The level an entry of this level points at (`None` for L1: its entries map data).
    pub const fn lower(self) -> Option<Level> {
        match self {
            Level::L1 => None,
            Level::L2 => Some(Level::L1),
            Level::L3 => Some(Level::L2),
            Level::L4 => Some(Level::L3),
        }
    }
}
