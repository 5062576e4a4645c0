//! Host tests of the initial-layout arithmetic, `abi::boot_layout`: the arrangement Xen 4.17's
//! dom0 builder prints for our guest kernel, the 512 KiB stack slack, a kernel in the upper half,
//! and the ranges it must refuse.

use abi::{BootLayout, BootLayoutError};

/// The guest kernel under Xen 4.17 with dom0_mem=64M prints exactly this arrangement.
#[test]
fn layout_matches_xen_dom0() {
    let l = BootLayout::compute(0, 0x10_0000, 0x12_2000, 16384).unwrap();
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
    let l = BootLayout::compute(0, 0x10_0000, 0x3A_0000, 1024).unwrap_err();
    assert!(
        matches!(
            l,
            BootLayoutError::TooSmall {
                needed: 2048,
                have: 1024
            }
        ),
        "{l:?}"
    );
    let l = BootLayout::compute(0, 0x10_0000, 0x3A_0000, 4096).unwrap();
    assert_eq!(l.v_end, 0x80_0000);
    assert!(l.v_end - l.stack_top() >= 512 << 10);
    // A Linux-style kernel in the top 2 GiB.
    let base = 0xFFFF_FFFF_8000_0000;
    let l = BootLayout::compute(base, base + 0x100_0000, base + 0x200_0000, 65536).unwrap();
    assert_eq!((l.nr_l3, l.nr_l2), (1, 1));
    assert_eq!(l.nr_l1, (l.v_end - base) >> 21);
    assert!(1 + l.nr_l3 + l.nr_l2 + l.nr_l1 <= l.nr_pt_frames);
    // Into the hypervisor hole, past the lower half, misaligned, inverted: refused.
    let hole = 0xFFFF_8000_0000_0000;
    assert_eq!(
        BootLayout::compute(hole, hole, hole + 0x1000, 16384),
        Err(BootLayoutError::BadRange)
    );
    let top = (1u64 << 47) - 0x4_0000;
    assert_eq!(
        BootLayout::compute(top, top, top + 0x1000, 16384),
        Err(BootLayoutError::BadRange)
    );
    assert_eq!(
        BootLayout::compute(0x10, 0x1000, 0x2000, 16384),
        Err(BootLayoutError::BadRange)
    );
    assert_eq!(
        BootLayout::compute(0, 0x2000, 0x1000, 16384),
        Err(BootLayoutError::BadRange)
    );
    assert!(BootLayout::compute(!0xFFF, u64::MAX - 10, u64::MAX, 16).is_err());
}
