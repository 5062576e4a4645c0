//! [`FrameState`]: the pure value form of a frame's packed state word, and its layout.
//!
//! The layout is specified once, in the table on [`FrameState`], with a named SHIFT/MASK per
//! field and compile-time asserts that the fields are disjoint and cover all 64 bits. No atomics
//! here: the frame table loads a word, decodes it, computes the next value with the checked
//! helpers below and compare-and-swaps it back.

use super::{MmError, PageType};
use crate::domain::DomId;

/// General count: bits 0..=19.
pub const GENERAL_SHIFT: u32 = 0;
/// General count field mask (in place).
pub const GENERAL_MASK: u64 = 0xF_FFFF << GENERAL_SHIFT;
/// Type count: bits 20..=39.
pub const TYPE_COUNT_SHIFT: u32 = 20;
/// Type count field mask (in place).
pub const TYPE_COUNT_MASK: u64 = 0xF_FFFF << TYPE_COUNT_SHIFT;
/// Type: bits 40..=42.
pub const TYPE_SHIFT: u32 = 40;
/// Type field mask (in place).
pub const TYPE_MASK: u64 = 0x7 << TYPE_SHIFT;
/// Validated flag: bit 43.
pub const VALIDATED_BIT: u64 = 1 << 43;
/// Pinned flag: bit 44.
pub const PINNED_BIT: u64 = 1 << 44;
/// Allocated flag: bit 45.
pub const ALLOCATED_BIT: u64 = 1 << 45;
/// Non-coherent flag: bit 46 (Xen's `PGT_non_coherent`, XSA-402).
pub const NON_COHERENT_BIT: u64 = 1 << 46;
/// Partial flag: bit 47 (Xen's `PGT_partial`, de-validation side only; see `partial`).
pub const PARTIAL_BIT: u64 = 1 << 47;
/// Owner domain id: bits 48..=63.
pub const OWNER_SHIFT: u32 = 48;
/// Owner field mask (in place).
pub const OWNER_MASK: u64 = 0xFFFF << OWNER_SHIFT;

/// One unit of type count, in place (for `fetch_sub` of the last type reference).
pub const TYPE_COUNT_ONE: u64 = 1 << TYPE_COUNT_SHIFT;

/// Highest general count ever stored. The all-ones field value is never stored: an increment
/// that would reach it fails with [`MmError::CountOverflow`], and a word holding it does not
/// decode.
pub const GENERAL_MAX: u32 = (GENERAL_MASK >> GENERAL_SHIFT) as u32 - 1;
/// Highest type count ever stored (same rule as [`GENERAL_MAX`]).
pub const TYPE_COUNT_MAX: u32 = (TYPE_COUNT_MASK >> TYPE_COUNT_SHIFT) as u32 - 1;

const FIELDS: [u64; 9] = [
    GENERAL_MASK,
    TYPE_COUNT_MASK,
    TYPE_MASK,
    VALIDATED_BIT,
    PINNED_BIT,
    ALLOCATED_BIT,
    NON_COHERENT_BIT,
    PARTIAL_BIT,
    OWNER_MASK,
];

const fn fields_disjoint_and_cover() -> bool {
    let mut seen = 0u64;
    let mut i = 0;
    while i < FIELDS.len() {
        if seen & FIELDS[i] != 0 {
            return false;
        }
        seen |= FIELDS[i];
        i += 1;
    }
    seen == u64::MAX
}

const _: () = assert!(fields_disjoint_and_cover());
const _: () = assert!(GENERAL_MAX == (1 << 20) - 2);
const _: () = assert!(TYPE_COUNT_MAX == (1 << 20) - 2);
// The owner field holds exactly a `domid_t`.
const _: () = assert!(OWNER_MASK >> OWNER_SHIFT == DomId::MAX as u64);
// Every type fits the 3-bit field, and 7 is left reserved.
const _: () = assert!((PageType::Writable as u64) < (TYPE_MASK >> TYPE_SHIFT));

/// The decoded state of one frame. Packed into one `AtomicU64` per frame as:
///
/// | bits  | field | meaning |
/// |-------|-------|---------|
/// | 0–19  | general count `G` | references of any kind, including the allocation reference and one per type reference; ≤ [`GENERAL_MAX`] |
/// | 20–39 | type count `C` | references of type `T`; ≤ [`TYPE_COUNT_MAX`] |
/// | 40–42 | type `T` | [`PageType`] encoding 0–6 (7 reserved); kept as history while `C == 0` |
/// | 43    | validated `V` | contents audited for `T` (L1–L4: every present entry holds its child references) |
/// | 44    | pinned | the guest's pin holds one `C` and one `G` |
/// | 45    | allocated | the allocation reference (one `G`) is held: the frame belongs to `owner` |
/// | 46    | non-coherent | a writable mapping with a memory type the CPUs do not snoop (WC) existed: the frame's cache lines are flushed before it next takes a type other than writable (XSA-402) |
/// | 47    | partial `P` | a preemptible de-validation of this L2–L4 table is under way (with `C == 1`, `V` clear): the type reference belongs to whoever owns the de-validation, its progress is the cursor kept beside the linear counter (see `partial`) |
/// | 48–63 | owner | `domid_t` of the owner; meaningful while `G > 0` |
///
/// This is DESIGN.md §5's packing, with spare bits 46 and 47 taken for the non-coherent and partial
/// flags: no spare bit is left (the next flag needs a narrower count or owner field). No
/// "validation in progress" bit is needed: `C ≥ 1` with `V` and `P` clear is that state (exactly
/// one holder is validating, de-validating or finishing a type change; every other taker of the
/// same type waits, every other type fails). `P` marks the one (de)validation state that may last
/// across hypercalls, so takers fail instead of waiting for it. The free state is the all-zero
/// word, so freeing a frame forgets its non-coherent flag. The owner sits in the same word as the
/// counts so that "is this frame mine, and take a reference" is one compare-and-swap. The
/// non-coherent flag is set only while a writable type reference is held and cleared by the CAS
/// that next publishes another type (see `typed`).
///
/// Invariants the frame table keeps (and `audit` checks): `G ≥ C + allocated`;
/// `pinned ⇒ C ≥ 1` and `T` is a page-table type; `P ⇒ C == 1`, `V` and pinned clear and `T`
/// is L2–L4; `G == 0 ⇔` the word is 0.
///
/// The value type is the word itself (`repr(transparent)` over `u64`): accessors and setters
/// are shifts and masks, so the compare-and-swap loops of the frame table decode, check and
/// re-encode a state in a few register instructions. Only [`FrameState::decode`] and the
/// setters below create values, and they keep every field within its range, so a `FrameState`
/// always holds a valid type and counts within their caps.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
#[repr(transparent)]
pub struct FrameState(u64);

impl core::fmt::Debug for FrameState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrameState")
            .field("general", &self.general())
            .field("type_count", &self.type_count())
            .field("ty", &self.ty())
            .field("validated", &self.validated())
            .field("pinned", &self.pinned())
            .field("allocated", &self.allocated())
            .field("non_coherent", &self.non_coherent())
            .field("partial", &self.partial())
            .field("owner", &self.owner())
            .finish()
    }
}

/// `bit` if `on`, else 0.
const fn flag(on: bool, bit: u64) -> u64 {
    if on { bit } else { 0 }
}

impl FrameState {
    /// The free frame: no references, no owner, no type.
    pub const FREE: FrameState = FrameState(0);

    /// Decode a state word; `None` if it holds a reserved type or a count above its cap (none
    /// of which the frame table ever stores).
    pub const fn decode(word: u64) -> Option<FrameState> {
        let general = ((word & GENERAL_MASK) >> GENERAL_SHIFT) as u32;
        let type_count = ((word & TYPE_COUNT_MASK) >> TYPE_COUNT_SHIFT) as u32;
        let ty_ok = PageType::from_bits(((word & TYPE_MASK) >> TYPE_SHIFT) as u8).is_some();
        if !ty_ok || general > GENERAL_MAX || type_count > TYPE_COUNT_MAX {
            return None;
        }
        Some(FrameState(word))
    }

    /// Encode into a state word.
    pub const fn encode(self) -> u64 {
        self.0
    }

    const fn with_bit(self, bit: u64, on: bool) -> Self {
        FrameState((self.0 & !bit) | flag(on, bit))
    }

    /// General reference count `G`.
    pub const fn general(self) -> u32 {
        ((self.0 & GENERAL_MASK) >> GENERAL_SHIFT) as u32
    }
    /// Type reference count `C`.
    pub const fn type_count(self) -> u32 {
        ((self.0 & TYPE_COUNT_MASK) >> TYPE_COUNT_SHIFT) as u32
    }
    /// Type `T` (history while `C == 0`).
    pub const fn ty(self) -> PageType {
        match PageType::from_bits(((self.0 & TYPE_MASK) >> TYPE_SHIFT) as u8) {
            Some(ty) => ty,
            // Unreachable: every constructor keeps the type field valid (type head).
            None => PageType::None,
        }
    }
    /// Validated flag `V`.
    pub const fn validated(self) -> bool {
        self.0 & VALIDATED_BIT != 0
    }
    /// Pinned flag.
    pub const fn pinned(self) -> bool {
        self.0 & PINNED_BIT != 0
    }
    /// Allocated flag.
    pub const fn allocated(self) -> bool {
        self.0 & ALLOCATED_BIT != 0
    }
    /// Non-coherent flag (XSA-402).
    pub const fn non_coherent(self) -> bool {
        self.0 & NON_COHERENT_BIT != 0
    }
    /// Partial flag `P`: a preemptible de-validation is under way.
    pub const fn partial(self) -> bool {
        self.0 & PARTIAL_BIT != 0
    }
    /// Owner domain id.
    pub const fn owner(self) -> DomId {
        ((self.0 & OWNER_MASK) >> OWNER_SHIFT) as DomId
    }

    /// With general count `n`, saturated at [`GENERAL_MAX`].
    pub const fn with_general(self, n: u32) -> Self {
        let n = if n > GENERAL_MAX { GENERAL_MAX } else { n };
        FrameState((self.0 & !GENERAL_MASK) | ((n as u64) << GENERAL_SHIFT))
    }
    /// With type count `n`, saturated at [`TYPE_COUNT_MAX`].
    pub const fn with_type_count(self, n: u32) -> Self {
        let n = if n > TYPE_COUNT_MAX {
            TYPE_COUNT_MAX
        } else {
            n
        };
        FrameState((self.0 & !TYPE_COUNT_MASK) | ((n as u64) << TYPE_COUNT_SHIFT))
    }
    /// With type `ty`.
    pub const fn with_type(self, ty: PageType) -> Self {
        FrameState((self.0 & !TYPE_MASK) | ((ty.bits() as u64) << TYPE_SHIFT))
    }
    /// With the validated flag.
    pub const fn with_validated(self, v: bool) -> Self {
        self.with_bit(VALIDATED_BIT, v)
    }
    /// With the pinned flag.
    pub const fn with_pinned(self, v: bool) -> Self {
        self.with_bit(PINNED_BIT, v)
    }
    /// With the allocated flag.
    pub const fn with_allocated(self, v: bool) -> Self {
        self.with_bit(ALLOCATED_BIT, v)
    }
    /// With the non-coherent flag.
    pub const fn with_non_coherent(self, v: bool) -> Self {
        self.with_bit(NON_COHERENT_BIT, v)
    }
    /// With the partial flag.
    pub const fn with_partial(self, v: bool) -> Self {
        self.with_bit(PARTIAL_BIT, v)
    }
    /// With owner `owner`.
    pub const fn with_owner(self, owner: DomId) -> Self {
        FrameState((self.0 & !OWNER_MASK) | ((owner as u64) << OWNER_SHIFT))
    }

    /// `G + 1`, failing closed at the cap.
    pub const fn inc_general(self) -> Result<Self, MmError> {
        if self.general() >= GENERAL_MAX {
            return Err(MmError::CountOverflow);
        }
        Ok(FrameState(self.0 + (1 << GENERAL_SHIFT)))
    }
    /// `G - 1`, refusing to go below the references that type holders and the allocation own.
    pub const fn dec_general(self) -> Result<Self, MmError> {
        if self.general() <= self.type_count() + self.allocated() as u32 {
            return Err(MmError::CountUnderflow);
        }
        Ok(FrameState(self.0 - (1 << GENERAL_SHIFT)))
    }
    /// `C + 1`, failing closed at the cap, and only if a general reference is there to go with
    /// it (`G ≥ C + 1 + allocated`).
    pub const fn inc_type(self) -> Result<Self, MmError> {
        let c = self.type_count();
        if c >= TYPE_COUNT_MAX {
            return Err(MmError::CountOverflow);
        }
        if c + 1 + self.allocated() as u32 > self.general() {
            return Err(MmError::MissingGeneralRef);
        }
        Ok(FrameState(self.0 + (1 << TYPE_COUNT_SHIFT)))
    }
    /// `C - 1`.
    pub const fn dec_type(self) -> Result<Self, MmError> {
        if self.type_count() == 0 {
            return Err(MmError::CountUnderflow);
        }
        Ok(FrameState(self.0 - (1 << TYPE_COUNT_SHIFT)))
    }
}
