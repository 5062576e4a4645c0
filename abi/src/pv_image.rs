//! PV kernel images: ELF64 program headers and Xen's ELF notes, parsed as a pure function over
//! bytes ([`parse`] → [`Kernel`]). No `unsafe`, no hardware, nothing beyond `core`; the
//! hypervisor's domain builder calls it, and `abi/tests/pv_image.rs` tests it on synthetic images.
//!
//! Invariants of a [`Kernel`] that [`parse`] returns:
//! - every PT_LOAD segment's file bytes lie inside the input, `filesz <= memsz`, and its virtual
//!   range `[va, va + memsz)` does not wrap; all segments lie inside `[image_start, image_end)`;
//! - `virt_base <= image_start < image_end`, the entry point is inside the image, and the
//!   hypercall page (if named) is a whole, page-aligned page inside the image;
//! - `XEN_VERSION` is `xen-3.0*` and the loader is `generic` (or the guest OS `linux`), as Xen's
//!   libelf demands; every feature named in `FEATURES` is one Xen knows.
//!
//! Load addresses follow Xen's rule: a segment is loaded at `p_paddr + virt_base - paddr_offset`
//! (`PADDR_OFFSET` defaults to `VIRT_BASE`, which defaults to 0). Note types are
//! [`crate::elfnote`]'s; notes of other owners, and Xen notes above [`XEN_ELFNOTE_MAX`], are
//! skipped.

use crate::elfnote::{
    XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_FEATURES, XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_HYPERCALL_PAGE,
    XEN_ELFNOTE_INIT_P2M, XEN_ELFNOTE_LOADER, XEN_ELFNOTE_MAX, XEN_ELFNOTE_NAME,
    XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_PAE_MODE, XEN_ELFNOTE_SUPPORTED_FEATURES,
    XEN_ELFNOTE_VIRT_BASE, XEN_ELFNOTE_XEN_VERSION,
};
use crate::layout::PAGE_SIZE;

/// Most PT_LOAD segments a kernel may have.
pub const MAX_SEGMENTS: usize = 16;
/// Most program headers looked at.
const MAX_PHDRS: u16 = 64;
/// Xen note types kept (`0..=XEN_ELFNOTE_MAX`).
const NOTE_SLOTS: usize = XEN_ELFNOTE_MAX as usize + 1;

/// Feature names of the `FEATURES` note, by `XENFEAT_*` bit (Xen's libelf list).
const FEATURE_NAMES: [(&str, u32); 7] = [
    ("writable_page_tables", 0),
    ("writable_descriptor_tables", 1),
    ("auto_translated_physmap", 2),
    ("supervisor_mode_kernel", 3),
    ("pae_pgdir_above_4gb", 4),
    ("hvm_callback_vector", 8),
    ("dom0", 11),
];

/// Why an image was refused. Each names the rule it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF header.
    TooShort,
    /// No `\x7fELF` magic.
    NotElf,
    /// Not ELFCLASS64 / little-endian / version 1.
    NotElf64Le,
    /// `e_machine` is not x86-64 (62).
    NotX86_64(u16),
    /// `e_type` is not ET_EXEC.
    NotExecutable(u16),
    /// The program header table is missing, mis-sized or outside the file.
    BadPhdrTable,
    /// More PT_LOAD segments than [`MAX_SEGMENTS`].
    TooManySegments,
    /// Segment `n` (program header index) has file bytes outside the file, `filesz > memsz`, or
    /// an address range that wraps.
    BadSegment(usize),
    /// No PT_LOAD segment with memory.
    NoLoadSegment,
    /// A PT_NOTE segment lies outside the file or a note in it is truncated.
    BadNote,
    /// No note with owner "Xen": not a PV kernel.
    NoXenNotes,
    /// An integer note whose descriptor is not 4 or 8 bytes (the note type).
    BadNoteValue(u32),
    /// Neither loader `generic` nor guest OS `linux`.
    UnsupportedLoader,
    /// `XEN_VERSION` is not `xen-3.0`.
    UnsupportedXenVersion,
    /// A `FEATURES` entry Xen does not know.
    UnknownFeature,
    /// The image starts below `VIRT_BASE`, or its addresses wrap.
    BadAddresses,
    /// The entry point is outside the image.
    EntryOutsideImage,
    /// The hypercall page is not a page-aligned page inside the image.
    BadHypercallPage,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TooShort => write!(f, "too short for an ELF header"),
            Self::NotElf => write!(f, "not an ELF file (bad magic)"),
            Self::NotElf64Le => write!(f, "not a little-endian ELF64 version-1 file"),
            Self::NotX86_64(m) => write!(f, "ELF machine {m} is not x86-64"),
            Self::NotExecutable(t) => write!(f, "ELF type {t} is not an executable"),
            Self::BadPhdrTable => write!(f, "bad program header table"),
            Self::TooManySegments => write!(f, "more than {MAX_SEGMENTS} loadable segments"),
            Self::BadSegment(i) => write!(f, "program header {i} is out of bounds or inconsistent"),
            Self::NoLoadSegment => write!(f, "no loadable segment"),
            Self::BadNote => write!(f, "truncated ELF note"),
            Self::NoXenNotes => write!(f, "no Xen ELF notes (not a PV kernel)"),
            Self::BadNoteValue(t) => write!(f, "Xen note {t} has a bad value size"),
            Self::UnsupportedLoader => write!(f, "not built for the generic loader"),
            Self::UnsupportedXenVersion => write!(f, "not built for xen-3.0"),
            Self::UnknownFeature => write!(f, "unknown feature in the FEATURES note"),
            Self::BadAddresses => write!(f, "image addresses below VIRT_BASE or wrapping"),
            Self::EntryOutsideImage => write!(f, "entry point outside the image"),
            Self::BadHypercallPage => {
                write!(f, "hypercall page not a page-aligned page of the image")
            }
        }
    }
}

/// One PT_LOAD segment, at its load address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    /// Virtual load address.
    pub va: u64,
    /// File offset of its bytes.
    pub offset: u64,
    /// Bytes taken from the file; the rest up to `memsz` is zero.
    pub filesz: u64,
    /// Bytes of memory.
    pub memsz: u64,
}

/// A PV kernel as the domain builder needs it.
#[derive(Debug, Clone, Copy)]
pub struct Kernel<'a> {
    /// Entry point (`ENTRY` note, else `e_entry`).
    pub entry: u64,
    /// Virtual address of pseudo-physical 0.
    pub virt_base: u64,
    /// The page the hypervisor fills with hypercall stubs.
    pub hypercall_page: Option<u64>,
    /// First byte of the image (lowest segment, virtual).
    pub image_start: u64,
    /// One past the image's last byte.
    pub image_end: u64,
    /// `GUEST_OS`, without the NUL.
    pub guest_os: &'a [u8],
    /// `XENFEAT_*` bits the kernel needs (`!name` in `FEATURES`).
    pub features_required: u32,
    /// `INIT_P2M`: where the kernel wants the P2M list mapped.
    pub init_p2m: Option<u64>,
    /// `PAE_MODE` is `yes…` or `bimodal` (Xen then adds `p` to dom0's start_info magic).
    pub pae: bool,
    segments: [Segment; MAX_SEGMENTS],
    nr_segments: usize,
}

impl Kernel<'_> {
    /// The PT_LOAD segments, in program-header order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.nr_segments]
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// `b[off..off + len]` with both as u64, if inside `b`.
fn slice(b: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    b.get(start..end)
}

/// The Xen notes found, raw.
#[derive(Default)]
struct Notes<'a> {
    any: bool,
    ints: [Option<u64>; NOTE_SLOTS],
    strs: [Option<&'a [u8]>; NOTE_SLOTS],
}

/// A string descriptor up to its first NUL.
fn c_str(desc: &[u8]) -> &[u8] {
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    &desc[..end]
}

/// Walks the notes of one PT_NOTE segment's bytes, keeping those owned by "Xen".
fn scan_notes<'a>(mut b: &'a [u8], notes: &mut Notes<'a>) -> Result<(), ElfError> {
    let pad4 = |n: u32| {
        (n as usize)
            .checked_add(3)
            .map(|v| v & !3)
            .ok_or(ElfError::BadNote)
    };
    while b.len() >= 12 {
        let (namesz, descsz, kind) = match (u32_at(b, 0), u32_at(b, 4), u32_at(b, 8)) {
            (Some(n), Some(d), Some(t)) => (n, d, t),
            _ => return Err(ElfError::BadNote),
        };
        let name_end = 12usize
            .checked_add(pad4(namesz)?)
            .ok_or(ElfError::BadNote)?;
        let desc_end = name_end
            .checked_add(pad4(descsz)?)
            .ok_or(ElfError::BadNote)?;
        let name = b.get(12..12 + namesz as usize).ok_or(ElfError::BadNote)?;
        let desc = b
            .get(name_end..name_end + descsz as usize)
            .ok_or(ElfError::BadNote)?;
        if name == XEN_ELFNOTE_NAME || name == b"Xen" {
            notes.any = true;
            if let Some(slot) = notes.strs.get_mut(kind as usize) {
                *slot = Some(desc);
                notes.ints[kind as usize] = match desc.len() {
                    8 => u64_at(desc, 0),
                    4 => u32_at(desc, 0).map(u64::from),
                    _ => None,
                };
            }
        }
        b = b.get(desc_end..).unwrap_or_default();
    }
    Ok(())
}

impl<'a> Notes<'a> {
    fn int(&self, kind: u32) -> Result<Option<u64>, ElfError> {
        match (self.strs[kind as usize], self.ints[kind as usize]) {
            (None, _) => Ok(None),
            (Some(_), Some(v)) => Ok(Some(v)),
            (Some(_), None) => Err(ElfError::BadNoteValue(kind)),
        }
    }

    fn string(&self, kind: u32) -> &'a [u8] {
        self.strs[kind as usize].map(c_str).unwrap_or_default()
    }
}

/// Parses a `FEATURES` string (`name|!name|…`) into (required, supported) `XENFEAT_*` bits.
pub fn parse_features(s: &[u8]) -> Result<(u32, u32), ElfError> {
    let (mut required, mut supported) = (0u32, 0u32);
    for word in s.split(|&b| b == b'|').filter(|w| !w.is_empty()) {
        let (must, name) = match word.split_first() {
            Some((b'!', rest)) => (true, rest),
            _ => (false, word),
        };
        let bit = FEATURE_NAMES
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|&(_, bit)| 1u32 << bit)
            .ok_or(ElfError::UnknownFeature)?;
        supported |= bit;
        if must {
            required |= bit;
        }
    }
    Ok((required, supported))
}

/// Parses and checks a PV kernel image.
pub fn parse(b: &[u8]) -> Result<Kernel<'_>, ElfError> {
    if !b.starts_with(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    if b.len() < 64 {
        return Err(ElfError::TooShort);
    }
    if b[4] != 2 || b[5] != 1 || b[6] != 1 {
        return Err(ElfError::NotElf64Le);
    }
    let field16 = |at| u16_at(b, at).ok_or(ElfError::TooShort);
    let e_type = field16(16)?;
    let machine = field16(18)?;
    if machine != 62 {
        return Err(ElfError::NotX86_64(machine));
    }
    if e_type != 2 {
        return Err(ElfError::NotExecutable(e_type));
    }
    let e_entry = u64_at(b, 24).ok_or(ElfError::TooShort)?;
    let phoff = u64_at(b, 32).ok_or(ElfError::TooShort)?;
    let (phentsize, phnum) = (field16(54)?, field16(56)?);
    if phentsize != 56 || phnum == 0 || phnum > MAX_PHDRS {
        return Err(ElfError::BadPhdrTable);
    }
    let table = slice(b, phoff, u64::from(phnum) * 56).ok_or(ElfError::BadPhdrTable)?;

    let mut segments = [Segment::default(); MAX_SEGMENTS];
    let mut nr_segments = 0;
    let mut notes = Notes::default();
    let (mut pstart, mut pend) = (u64::MAX, 0u64);
    for (i, ph) in table.chunks_exact(56).enumerate() {
        let word = |at| u64_at(ph, at).ok_or(ElfError::BadPhdrTable);
        let p_type = u32_at(ph, 0).ok_or(ElfError::BadPhdrTable)?;
        let (offset, paddr, filesz, memsz) = (word(8)?, word(24)?, word(32)?, word(40)?);
        match p_type {
            1 if memsz > 0 => {
                let end = paddr.checked_add(memsz);
                if slice(b, offset, filesz).is_none() || filesz > memsz || end.is_none() {
                    return Err(ElfError::BadSegment(i));
                }
                let slot = segments
                    .get_mut(nr_segments)
                    .ok_or(ElfError::TooManySegments)?;
                *slot = Segment {
                    va: paddr,
                    offset,
                    filesz,
                    memsz,
                };
                nr_segments += 1;
                pstart = pstart.min(paddr);
                pend = pend.max(end.unwrap_or(u64::MAX));
            }
            4 => scan_notes(
                slice(b, offset, filesz).ok_or(ElfError::BadNote)?,
                &mut notes,
            )?,
            _ => {}
        }
    }
    if nr_segments == 0 {
        return Err(ElfError::NoLoadSegment);
    }
    if !notes.any {
        return Err(ElfError::NoXenNotes);
    }
    if !notes.string(XEN_ELFNOTE_LOADER).starts_with(b"generic")
        && !notes.string(XEN_ELFNOTE_GUEST_OS).starts_with(b"linux")
    {
        return Err(ElfError::UnsupportedLoader);
    }
    if !notes
        .string(XEN_ELFNOTE_XEN_VERSION)
        .starts_with(b"xen-3.0")
    {
        return Err(ElfError::UnsupportedXenVersion);
    }
    let (required, _) = parse_features(notes.string(XEN_ELFNOTE_FEATURES))?;
    // SUPPORTED_FEATURES only says what the kernel can use; read it so a bad size is refused.
    notes.int(XEN_ELFNOTE_SUPPORTED_FEATURES)?;

    let virt_base = notes.int(XEN_ELFNOTE_VIRT_BASE)?.unwrap_or(0);
    let paddr_offset = notes.int(XEN_ELFNOTE_PADDR_OFFSET)?.unwrap_or(virt_base);
    let shift = virt_base.wrapping_sub(paddr_offset);
    // Modular, as in Xen: PADDR_OFFSET may exceed VIRT_BASE. A range that wraps is refused.
    let image_start = pstart.wrapping_add(shift);
    let image_end = pend.wrapping_add(shift);
    if image_start < virt_base || image_end <= image_start {
        return Err(ElfError::BadAddresses);
    }
    for s in segments[..nr_segments].iter_mut() {
        s.va = s.va.wrapping_add(shift);
    }
    let entry = notes.int(XEN_ELFNOTE_ENTRY)?.unwrap_or(e_entry);
    if !(image_start..image_end).contains(&entry) {
        return Err(ElfError::EntryOutsideImage);
    }
    let hypercall_page = notes.int(XEN_ELFNOTE_HYPERCALL_PAGE)?;
    if let Some(hp) = hypercall_page
        && (hp % PAGE_SIZE != 0
            || hp < image_start
            || hp.checked_add(PAGE_SIZE).is_none_or(|e| e > image_end))
    {
        return Err(ElfError::BadHypercallPage);
    }
    Ok(Kernel {
        entry,
        virt_base,
        hypercall_page,
        image_start,
        image_end,
        guest_os: notes.string(XEN_ELFNOTE_GUEST_OS),
        features_required: required,
        init_p2m: notes.int(XEN_ELFNOTE_INIT_P2M)?,
        pae: {
            let pae = notes.string(XEN_ELFNOTE_PAE_MODE);
            pae.starts_with(b"yes") || pae.starts_with(b"bimodal")
        },
        segments,
        nr_segments,
    })
}
