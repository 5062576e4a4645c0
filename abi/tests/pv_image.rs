//! Host tests of the PV kernel parser, `abi::pv_image`, on synthetic images (`pv_synth`): a valid
//! kernel, every refusal the parser names, Xen's load-address rule, the `FEATURES` note, and a
//! truncation and mutation sweep that no input may make panic.

mod pv_synth;

use abi::ElfError;
use abi::elfnote::{
    XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_FEATURES, XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_LOADER,
    XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_VIRT_BASE, XEN_ELFNOTE_XEN_VERSION,
};
use abi::pv_image::{parse, parse_features};
use pv_synth::{
    GUEST_OS, HYPERCALL_PAGE, NOTE_PHDR_AT, NOTES_AT, SEGMENT_AT, SEGMENT_LEN, TEXT, kernel,
    kernel_with, kernel_without_notes,
};

/// An image whose note `kind` is `desc`.
fn with_note(kind: u32, desc: &[u8]) -> Vec<u8> {
    kernel_with(&[(kind, desc)])
}

#[test]
fn synthesised_kernel_parses() {
    let img = kernel();
    let k = parse(&img).expect("a valid PV kernel");
    assert_eq!(
        (k.entry, k.virt_base, k.hypercall_page),
        (TEXT, 0, Some(HYPERCALL_PAGE))
    );
    assert_eq!((k.image_start, k.image_end), (TEXT, TEXT + SEGMENT_LEN));
    assert_eq!(k.guest_os, GUEST_OS);
    assert_eq!(k.segments().len(), 1);
    let s = k.segments()[0];
    assert_eq!(
        (s.va, s.offset, s.filesz, s.memsz),
        (TEXT, SEGMENT_AT, SEGMENT_LEN, SEGMENT_LEN)
    );
    assert_eq!((k.features_required, k.init_p2m, k.pae), (0, None, false));
}

#[test]
fn malformed_images_are_refused() {
    let good = kernel();
    assert_eq!(
        parse(b"this is a text file, not a kernel\n").err(),
        Some(ElfError::NotElf)
    );
    assert_eq!(parse(&good[..40]).err(), Some(ElfError::TooShort));
    assert_eq!(parse(&good[..150]).err(), Some(ElfError::BadPhdrTable));
    assert_eq!(parse(&good[..0x2000]).err(), Some(ElfError::BadSegment(0)));
    assert_eq!(
        parse(&kernel_without_notes()).err(),
        Some(ElfError::NoXenNotes)
    );
    let patched = |at: usize, v: &[u8]| {
        let mut b = good.clone();
        b[at..at + v.len()].copy_from_slice(v);
        parse(&b).err()
    };
    assert_eq!(patched(4, &[1]), Some(ElfError::NotElf64Le));
    assert_eq!(
        patched(18, &3u16.to_le_bytes()),
        Some(ElfError::NotX86_64(3))
    );
    assert_eq!(
        patched(16, &3u16.to_le_bytes()),
        Some(ElfError::NotExecutable(3))
    );
    assert_eq!(
        patched(56, &0u16.to_le_bytes()),
        Some(ElfError::BadPhdrTable)
    );
    // The PT_LOAD's p_filesz past the end of the file, then its p_memsz below p_filesz.
    assert_eq!(
        patched(64 + 32, &0x4000u64.to_le_bytes()),
        Some(ElfError::BadSegment(0))
    );
    assert_eq!(
        patched(64 + 40, &0x10u64.to_le_bytes()),
        Some(ElfError::BadSegment(0))
    );
    assert_eq!(
        patched(NOTE_PHDR_AT + 32, &0x10_0000u64.to_le_bytes()),
        Some(ElfError::BadNote)
    );
    assert_eq!(
        parse(&with_note(XEN_ELFNOTE_LOADER, b"other\0")).err(),
        Some(ElfError::UnsupportedLoader)
    );
    assert_eq!(
        parse(&with_note(XEN_ELFNOTE_XEN_VERSION, b"xen-2.0\0")).err(),
        Some(ElfError::UnsupportedXenVersion)
    );
    assert_eq!(
        parse(&with_note(XEN_ELFNOTE_ENTRY, &0x20_0000u64.to_le_bytes())).err(),
        Some(ElfError::EntryOutsideImage)
    );
    assert_eq!(
        parse(&with_note(XEN_ELFNOTE_ENTRY, &[1, 2, 3])).err(),
        Some(ElfError::BadNoteValue(XEN_ELFNOTE_ENTRY))
    );
    for hp in [0x10_1008u64, 0x10_3000, 0x0] {
        assert_eq!(
            parse(&with_note(XEN_ELFNOTE_HYPERCALL_PAGE, &hp.to_le_bytes())).err(),
            Some(ElfError::BadHypercallPage),
            "{hp:#x}"
        );
    }
}

#[test]
fn load_addresses_follow_virt_base_and_paddr_offset() {
    let le = |v: u64| v.to_le_bytes();
    let base = le(0x20_0000);
    // VIRT_BASE = PADDR_OFFSET above the image: it starts below VIRT_BASE.
    assert_eq!(
        parse(&kernel_with(&[
            (XEN_ELFNOTE_VIRT_BASE, &base),
            (XEN_ELFNOTE_PADDR_OFFSET, &base)
        ]))
        .err(),
        Some(ElfError::BadAddresses)
    );
    // VIRT_BASE alone moves the image: loaded at p_paddr + VIRT_BASE - PADDR_OFFSET.
    let (e, hp) = (le(0x30_0000), le(0x30_1000));
    let moved = kernel_with(&[
        (XEN_ELFNOTE_VIRT_BASE, &base),
        (XEN_ELFNOTE_ENTRY, &e),
        (XEN_ELFNOTE_HYPERCALL_PAGE, &hp),
    ]);
    let moved = parse(&moved).map(|k| (k.image_start, k.segments()[0].va));
    assert_eq!(moved.ok(), Some((0x30_0000, 0x30_0000)));
    // PADDR_OFFSET above VIRT_BASE: a negative shift.
    let (off, e, hp) = (le(0x1000), le(0xF_F000), le(0x10_0000));
    let below = kernel_with(&[
        (XEN_ELFNOTE_PADDR_OFFSET, &off),
        (XEN_ELFNOTE_ENTRY, &e),
        (XEN_ELFNOTE_HYPERCALL_PAGE, &hp),
    ]);
    assert_eq!(parse(&below).map(|k| k.image_start).ok(), Some(0xF_F000));
    assert!(
        parse(&with_note(XEN_ELFNOTE_ENTRY, &0x10_0010u32.to_le_bytes())).is_ok(),
        "4-byte integer notes"
    );
}

#[test]
fn no_input_makes_the_parser_panic() {
    let good = kernel();
    for len in 0..good.len() {
        let _ = parse(&good[..len]);
    }
    // xorshift64: mutate one byte of the headers or of the notes at a time.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = good.clone();
        let at = (seed as usize) % 0x200;
        let at = if seed & 1 == 0 {
            at
        } else {
            NOTES_AT + at % (b.len() - NOTES_AT)
        };
        b[at] = (seed >> 32) as u8;
        let _ = parse(&b);
    }
}

#[test]
fn features_note() {
    let (req, sup) = parse_features(b"!writable_page_tables|pae_pgdir_above_4gb").unwrap();
    assert_eq!((req, sup), (1, 1 | 1 << 4));
    assert_eq!(parse_features(b"").unwrap(), (0, 0));
    assert_eq!(
        parse_features(b"!dom0|hvm_callback_vector").unwrap(),
        (1 << 11, 1 << 11 | 1 << 8)
    );
    assert_eq!(
        parse_features(b"writable_page_tables|warp_drive"),
        Err(ElfError::UnknownFeature)
    );
    let img = with_note(
        XEN_ELFNOTE_FEATURES,
        b"!writable_page_tables|pae_pgdir_above_4gb\0",
    );
    assert_eq!(parse(&img).unwrap().features_required, 1);
}
