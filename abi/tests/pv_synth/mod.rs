//! Synthetic PV kernel images for the parser's host tests (`abi/tests/pv_image.rs`): one RWX
//! PT_LOAD of three pages (text, hypercall page, data) at [`TEXT`], file offset 0x1000, and a
//! PT_NOTE at file offset [`NOTES_AT`] holding Xen notes. The standard notes make a valid
//! generic-loader kernel (VIRT_BASE 0, so the image is linked where it is loaded); a test changes
//! one note or a few bytes and checks the parser's verdict.
//!
//! xtask writes its own QEMU fixtures (`fault-guest`, `no-notes.elf`) with the same shape; this
//! copy only needs to be parseable, so its text is a lone `ud2`.

use abi::elfnote::{
    XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_LOADER,
    XEN_ELFNOTE_NAME, XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_VIRT_BASE, XEN_ELFNOTE_XEN_VERSION,
};

/// Load (and link) address of the segment, and the entry point.
pub const TEXT: u64 = 0x10_0000;
/// The hypercall page: the segment's second page.
pub const HYPERCALL_PAGE: u64 = 0x10_1000;
/// Bytes of the segment, in the file and in memory.
pub const SEGMENT_LEN: u64 = 0x3000;
/// File offset of the segment.
pub const SEGMENT_AT: u64 = 0x1000;
/// File offset of the notes (after the segment).
pub const NOTES_AT: usize = 0x4000;
/// File offset of the PT_NOTE program header (the second one).
pub const NOTE_PHDR_AT: usize = 64 + 56;
/// `GUEST_OS` of the standard notes.
pub const GUEST_OS: &[u8] = b"pv-test";

/// One note owned by "Xen", padded to 4 bytes.
fn note(kind: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    for word in [XEN_ELFNOTE_NAME.len() as u32, desc.len() as u32, kind] {
        n.extend(word.to_le_bytes());
    }
    n.extend(XEN_ELFNOTE_NAME);
    n.extend(desc);
    n.resize(n.len().next_multiple_of(4), 0);
    n
}

/// A valid image: the standard notes, unchanged.
pub fn kernel() -> Vec<u8> {
    kernel_with(&[])
}

/// An image whose notes are the standard ones (GUEST_OS, XEN_VERSION, LOADER, VIRT_BASE,
/// PADDR_OFFSET, ENTRY, HYPERCALL_PAGE) with each `(kind, desc)` of `changes` replacing the note
/// of its kind, or, for another kind, placed before them.
pub fn kernel_with(changes: &[(u32, &[u8])]) -> Vec<u8> {
    let standard: [(u32, Vec<u8>); 7] = [
        (XEN_ELFNOTE_GUEST_OS, [GUEST_OS, b"\0"].concat()),
        (XEN_ELFNOTE_XEN_VERSION, b"xen-3.0\0".to_vec()),
        (XEN_ELFNOTE_LOADER, b"generic\0".to_vec()),
        (XEN_ELFNOTE_VIRT_BASE, 0u64.to_le_bytes().to_vec()),
        (XEN_ELFNOTE_PADDR_OFFSET, 0u64.to_le_bytes().to_vec()),
        (XEN_ELFNOTE_ENTRY, TEXT.to_le_bytes().to_vec()),
        (
            XEN_ELFNOTE_HYPERCALL_PAGE,
            HYPERCALL_PAGE.to_le_bytes().to_vec(),
        ),
    ];
    let is_standard = |kind: u32| standard.iter().any(|(k, _)| *k == kind);
    let mut notes: Vec<u8> = changes
        .iter()
        .filter(|(k, _)| !is_standard(*k))
        .flat_map(|&(k, d)| note(k, d))
        .collect();
    for (kind, desc) in &standard {
        let changed = changes.iter().find(|(k, _)| k == kind);
        notes.extend(note(*kind, changed.map_or(desc.as_slice(), |(_, d)| d)));
    }
    elf(Some(&notes))
}

/// The same image without a PT_NOTE segment.
pub fn kernel_without_notes() -> Vec<u8> {
    elf(None)
}

/// The ELF file: header, program headers, the segment (text `ud2`), then the notes if any.
fn elf(notes: Option<&[u8]>) -> Vec<u8> {
    let phnum: u16 = if notes.is_some() { 2 } else { 1 };
    let mut f = b"\x7fELF\x02\x01\x01".to_vec(); // ELFCLASS64, little-endian, version 1
    f.resize(16, 0);
    f.extend(2u16.to_le_bytes()); // ET_EXEC
    f.extend(62u16.to_le_bytes()); // EM_X86_64
    f.extend(1u32.to_le_bytes()); // e_version
    f.extend(TEXT.to_le_bytes()); // e_entry
    f.extend(64u64.to_le_bytes()); // e_phoff
    f.extend([0u8; 12]); // e_shoff, e_flags
    for half in [64u16, 56, phnum, 64, 0, 0] {
        f.extend(half.to_le_bytes()); // e_ehsize, e_phentsize, e_phnum, e_shentsize, …
    }
    // (p_type, p_flags, p_offset, p_vaddr = p_paddr, p_filesz = p_memsz, p_align)
    let mut phdrs = vec![(1u32, 7u32, SEGMENT_AT, TEXT, SEGMENT_LEN, 0x1000u64)];
    if let Some(n) = notes {
        phdrs.push((4, 4, NOTES_AT as u64, 0, n.len() as u64, 4));
    }
    for (kind, flags, offset, addr, len, align) in phdrs {
        f.extend(kind.to_le_bytes());
        f.extend(flags.to_le_bytes());
        for word in [offset, addr, addr, len, len, align] {
            f.extend(word.to_le_bytes());
        }
    }
    f.resize(SEGMENT_AT as usize, 0);
    f.extend([0x0f, 0x0b]); // ud2
    f.resize(NOTES_AT, 0);
    f.extend(notes.unwrap_or_default());
    f
}

const _: () = assert!(NOTES_AT as u64 == SEGMENT_AT + SEGMENT_LEN);
