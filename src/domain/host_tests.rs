//! Host unit tests of the PV kernel parser (`elf.rs`) and the initial-layout arithmetic
//! (`layout.rs`). The hypervisor crate builds only for bare metal, so these files are compiled
//! into xtask's test binary (`xtask/src/tests_guest.rs`, module `host`), next to the synthetic PV
//! kernels they parse; `super` is that module. Run with `cargo test -p xtask` (part of
//! `cargo xtask test`'s host tier).

use super::elf::{ElfError, parse, parse_features};
use super::layout::{Layout, LayoutError};
use super::*;

/// An image whose notes are the standard ones with note `kind` replaced (or added) by `desc`.
fn with_note(kind: u32, desc: &[u8]) -> Vec<u8> {
    with_notes(&[(kind, desc)])
}

/// As [`with_note`], for several notes.
fn with_notes(changes: &[(u32, &[u8])]) -> Vec<u8> {
    let mut n = Vec::new();
    for &(kind, desc) in changes.iter().filter(|(k, _)| *k > 8) {
        note(&mut n, kind, desc);
    }
    for (k, d) in [
        (6u32, b"t\0".to_vec()),
        (5, b"xen-3.0\0".to_vec()),
        (8, b"generic\0".to_vec()),
        (3, 0u64.to_le_bytes().to_vec()),
        (4, 0u64.to_le_bytes().to_vec()),
        (1, TEXT.to_le_bytes().to_vec()),
        (2, HYPERCALL_PAGE.to_le_bytes().to_vec()),
    ] {
        let changed = changes.iter().find(|(kind, _)| *kind == k);
        note(&mut n, k, changed.map_or(&d[..], |(_, desc)| desc));
    }
    image_with_notes(&hex(FAULT_TEXT), &[], Some(&n))
}

#[test]
fn synthesised_kernel_parses() {
    let img = fault_guest();
    let k = parse(&img).expect("a valid PV kernel");
    assert_eq!(
        (k.entry, k.virt_base, k.hypercall_page),
        (TEXT, 0, Some(HYPERCALL_PAGE))
    );
    assert_eq!((k.image_start, k.image_end), (TEXT, TEXT + 0x3000));
    assert_eq!(k.guest_os, b"fault-guest");
    assert_eq!(k.segments().len(), 1);
    let s = k.segments()[0];
    assert_eq!(
        (s.va, s.offset, s.filesz, s.memsz),
        (TEXT, 0x1000, 0x3000, 0x3000)
    );
    assert_eq!((k.features_required, k.init_p2m, k.pae), (0, None, false));
}

#[test]
fn malformed_images_are_refused() {
    let good = fault_guest();
    assert_eq!(
        parse(b"this is a text file, not a kernel\n").err(),
        Some(ElfError::NotElf)
    );
    assert_eq!(parse(&good[..40]).err(), Some(ElfError::TooShort));
    assert_eq!(parse(&good[..150]).err(), Some(ElfError::BadPhdrTable));
    assert_eq!(parse(&good[..0x2000]).err(), Some(ElfError::BadSegment(0)));
    assert_eq!(
        parse(&pv_image("x", &[0x90], &[], false)).err(),
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
    assert_eq!(
        patched(64 + 32, &0x4000u64.to_le_bytes()),
        Some(ElfError::BadSegment(0))
    );
    assert_eq!(
        patched(64 + 40, &0x10u64.to_le_bytes()),
        Some(ElfError::BadSegment(0))
    );
    assert_eq!(
        patched(120 + 32, &0x10_0000u64.to_le_bytes()),
        Some(ElfError::BadNote)
    );
    assert_eq!(
        parse(&with_note(8, b"other\0")).err(),
        Some(ElfError::UnsupportedLoader)
    );
    assert_eq!(
        parse(&with_note(5, b"xen-2.0\0")).err(),
        Some(ElfError::UnsupportedXenVersion)
    );
    assert_eq!(
        parse(&with_note(1, &0x20_0000u64.to_le_bytes())).err(),
        Some(ElfError::EntryOutsideImage)
    );
    assert_eq!(
        parse(&with_note(1, &[1, 2, 3])).err(),
        Some(ElfError::BadNoteValue(1))
    );
    for hp in [0x10_1008u64, 0x10_3000, 0x0] {
        assert_eq!(
            parse(&with_note(2, &hp.to_le_bytes())).err(),
            Some(ElfError::BadHypercallPage),
            "{hp:#x}"
        );
    }
    let base = 0x20_0000u64.to_le_bytes();
    assert_eq!(
        parse(&with_notes(&[(3, &base), (4, &base)])).err(),
        Some(ElfError::BadAddresses)
    );
    // VIRT_BASE moves the image: loaded at p_paddr + VIRT_BASE - PADDR_OFFSET.
    let le = |v: u64| v.to_le_bytes();
    let (e, hp) = (le(0x30_0000), le(0x30_1000));
    let moved = with_notes(&[(3, &base), (1, &e), (2, &hp)]);
    let moved = parse(&moved).map(|k| (k.image_start, k.segments()[0].va));
    assert_eq!(moved.ok(), Some((0x30_0000, 0x30_0000)));
    let (off, e, hp) = (le(0x1000), le(0xF_F000), le(0x10_0000));
    let below = with_notes(&[(4, &off), (1, &e), (2, &hp)]);
    assert_eq!(
        parse(&below).map(|k| k.image_start).ok(),
        Some(0xF_F000),
        "negative shift"
    );
    assert!(
        parse(&with_note(1, &0x10_0010u32.to_le_bytes())).is_ok(),
        "4-byte integer notes"
    );
}

#[test]
fn no_input_makes_the_parser_panic() {
    let good = fault_guest();
    for len in 0..good.len() {
        let _ = parse(&good[..len]);
    }
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = good.clone();
        let at = (seed as usize) % 0x200.min(b.len());
        let at = if seed & 1 == 0 {
            at
        } else {
            0x4000 + at % (b.len() - 0x4000)
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
    let img = with_note(10, b"!writable_page_tables|pae_pgdir_above_4gb\0");
    assert_eq!(parse(&img).unwrap().features_required, 1);
}

/// The guest kernel under Xen 4.17 with dom0_mem=64M prints exactly this arrangement.
#[test]
fn layout_matches_xen_dom0() {
    let l = Layout::compute(0, 0x10_0000, 0x12_2000, 16384).unwrap();
    assert_eq!(
        (l.p2m, l.start_info, l.pt_start),
        (0x12_2000, 0x14_2000, 0x14_3000)
    );
    assert_eq!((l.nr_pt_frames, l.nr_l3, l.nr_l2, l.nr_l1), (5, 1, 1, 2));
    assert_eq!(
        (l.stack, l.stack_top(), l.v_end),
        (0x14_8000, 0x14_9000, 0x40_0000)
    );
    assert_eq!(
        (l.pfn_of(0x14_3000), l.pfn_of(0x40_0000)),
        (Some(0x143), None)
    );
    assert!(l.is_pt_page(0x14_7000) && !l.is_pt_page(0x14_8000) && !l.is_pt_page(0x14_2000));
    assert_eq!(l.mapped_pages(), 1024);
}

#[test]
fn layout_slack_upper_half_and_errors() {
    // A stack ending 256 KiB below a 4 MiB boundary gets another 4 MiB (>= 512 KiB slack).
    let l = Layout::compute(0, 0x10_0000, 0x3A_0000, 1024).unwrap_err();
    assert!(
        matches!(
            l,
            LayoutError::TooSmall {
                needed: 2048,
                have: 1024
            }
        ),
        "{l:?}"
    );
    let l = Layout::compute(0, 0x10_0000, 0x3A_0000, 4096).unwrap();
    assert_eq!(l.v_end, 0x80_0000);
    assert!(l.v_end - l.stack_top() >= 512 << 10);
    // A Linux-style kernel in the top 2 GiB.
    let base = 0xFFFF_FFFF_8000_0000;
    let l = Layout::compute(base, base + 0x100_0000, base + 0x200_0000, 65536).unwrap();
    assert_eq!((l.nr_l3, l.nr_l2), (1, 1));
    assert_eq!(l.nr_l1, (l.v_end - base) >> 21);
    assert!(1 + l.nr_l3 + l.nr_l2 + l.nr_l1 <= l.nr_pt_frames);
    // Into the hypervisor hole, past the lower half, misaligned, inverted: refused.
    let hole = 0xFFFF_8000_0000_0000;
    assert_eq!(
        Layout::compute(hole, hole, hole + 0x1000, 16384),
        Err(LayoutError::BadRange)
    );
    let top = (1u64 << 47) - 0x4_0000;
    assert_eq!(
        Layout::compute(top, top, top + 0x1000, 16384),
        Err(LayoutError::BadRange)
    );
    assert_eq!(
        Layout::compute(0x10, 0x1000, 0x2000, 16384),
        Err(LayoutError::BadRange)
    );
    assert_eq!(
        Layout::compute(0, 0x2000, 0x1000, 16384),
        Err(LayoutError::BadRange)
    );
    assert!(Layout::compute(!0xFFF, u64::MAX - 10, u64::MAX, 16).is_err());
}
