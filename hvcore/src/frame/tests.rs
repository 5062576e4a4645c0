//! Exhaustive tests of the packed state word ([`FrameState`]) and its checked arithmetic.

use super::*;

const COUNT_EDGES: [u32; 8] = [
    0,
    1,
    2,
    0x7FFFF,
    0x80000,
    GENERAL_MAX - 1,
    GENERAL_MAX,
    0xAAAAA,
];
const OWNER_EDGES: [u16; 6] = [0, 1, 0x7FEF, 0x7FF0, 0xAAAA, u16::MAX];

/// Every combination of type, flags, edge counts and edge owners.
fn all_edge_states() -> impl Iterator<Item = FrameState> {
    PageType::ALL.into_iter().flat_map(|ty| {
        (0u8..32).flat_map(move |flags| {
            COUNT_EDGES.into_iter().flat_map(move |g| {
                COUNT_EDGES.into_iter().flat_map(move |c| {
                    OWNER_EDGES.into_iter().map(move |o| {
                        FrameState::FREE
                            .with_type(ty)
                            .with_validated(flags & 1 != 0)
                            .with_pinned(flags & 2 != 0)
                            .with_allocated(flags & 4 != 0)
                            .with_non_coherent(flags & 8 != 0)
                            .with_partial(flags & 16 != 0)
                            .with_general(g)
                            .with_type_count(c)
                            .with_owner(o)
                    })
                })
            })
        })
    })
}

#[test]
fn round_trip_every_field_combination() {
    let mut n = 0;
    for s in all_edge_states() {
        let w = s.encode();
        assert_eq!(FrameState::decode(w), Some(s), "word {w:#x}");
        n += 1;
    }
    assert_eq!(n, 7 * 32 * 8 * 8 * 6);
}

#[test]
fn fields_land_in_their_masks_and_nowhere_else() {
    for s in all_edge_states() {
        let w = s.encode();
        assert_eq!((w & GENERAL_MASK) >> GENERAL_SHIFT, u64::from(s.general()));
        assert_eq!(
            (w & TYPE_COUNT_MASK) >> TYPE_COUNT_SHIFT,
            u64::from(s.type_count())
        );
        assert_eq!((w & TYPE_MASK) >> TYPE_SHIFT, u64::from(s.ty().bits()));
        assert_eq!(w & VALIDATED_BIT != 0, s.validated());
        assert_eq!(w & PINNED_BIT != 0, s.pinned());
        assert_eq!(w & ALLOCATED_BIT != 0, s.allocated());
        assert_eq!(w & NON_COHERENT_BIT != 0, s.non_coherent());
        assert_eq!(w & PARTIAL_BIT != 0, s.partial());
        assert_eq!((w & OWNER_MASK) >> OWNER_SHIFT, u64::from(s.owner()));
    }
}

#[test]
fn changing_one_field_leaves_the_others() {
    // Each setter, applied to every edge state, changes only its own field's bits.
    for s in all_edge_states() {
        let w = s.encode();
        let cases: [(u64, u64); 9] = [
            (
                s.with_general(GENERAL_MAX - s.general()).encode(),
                GENERAL_MASK,
            ),
            (
                s.with_type_count(TYPE_COUNT_MAX - s.type_count()).encode(),
                TYPE_COUNT_MASK,
            ),
            (s.with_type(PageType::Writable).encode(), TYPE_MASK),
            (s.with_validated(!s.validated()).encode(), VALIDATED_BIT),
            (s.with_pinned(!s.pinned()).encode(), PINNED_BIT),
            (s.with_allocated(!s.allocated()).encode(), ALLOCATED_BIT),
            (
                s.with_non_coherent(!s.non_coherent()).encode(),
                NON_COHERENT_BIT,
            ),
            (s.with_partial(!s.partial()).encode(), PARTIAL_BIT),
            (s.with_owner(!s.owner()).encode(), OWNER_MASK),
        ];
        for (changed, mask) in cases {
            assert_eq!(changed & !mask, w & !mask, "{s:?} field {mask:#x}");
        }
    }
}

#[test]
fn single_field_words_decode_to_that_field() {
    for bit in 0..64u32 {
        let w = 1u64 << bit;
        let d = FrameState::decode(w).expect("single bit decodes");
        assert_eq!(d.encode(), w, "bit {bit}");
        let set = [
            d.general() != 0,
            d.type_count() != 0,
            d.ty() != PageType::None,
            d.validated(),
            d.pinned(),
            d.allocated(),
            d.non_coherent(),
            d.partial(),
            d.owner() != 0,
        ];
        assert_eq!(
            set.iter().filter(|&&b| b).count(),
            1,
            "bit {bit} sets exactly one field"
        );
    }
}

#[test]
fn reserved_encodings_do_not_decode() {
    let base = FrameState::FREE.with_general(3).encode();
    assert_eq!(
        FrameState::decode(base | TYPE_MASK),
        None,
        "type 7 is reserved"
    );
    assert!(FrameState::decode(base | PARTIAL_BIT).is_some_and(FrameState::partial));
    assert!(FrameState::decode(base | NON_COHERENT_BIT).is_some_and(FrameState::non_coherent));
    assert_eq!(
        FrameState::decode(GENERAL_MASK),
        None,
        "all-ones G is never stored"
    );
    assert_eq!(
        FrameState::decode(TYPE_COUNT_MASK | (GENERAL_MASK - 1)),
        None
    );
    assert_eq!(FrameState::decode(0), Some(FrameState::FREE));
    assert_eq!(FrameState::decode(u64::MAX), None);
}

#[test]
fn page_type_bits_round_trip() {
    for ty in PageType::ALL {
        assert_eq!(PageType::from_bits(ty.bits()), Some(ty));
    }
    for bits in 7..=255u8 {
        assert_eq!(PageType::from_bits(bits), None);
    }
    for level in Level::ALL {
        assert_eq!(level.page_type().level(), Some(level));
    }
    assert_eq!(Level::L1.lower(), None);
    assert_eq!(Level::L4.lower(), Some(Level::L3));
}

#[test]
fn setters_saturate_at_the_caps() {
    let s = FrameState::FREE
        .with_general(u32::MAX)
        .with_type_count(u32::MAX);
    assert_eq!(s.general(), GENERAL_MAX);
    assert_eq!(s.type_count(), TYPE_COUNT_MAX);
    assert!(FrameState::decode(s.encode()).is_some());
}

#[test]
fn general_increment_fails_closed_at_the_cap() {
    let s = FrameState::FREE.with_general(GENERAL_MAX - 1);
    let s = s.inc_general().expect("one below the cap");
    assert_eq!(s.general(), GENERAL_MAX);
    assert_eq!(s.inc_general(), Err(MmError::CountOverflow));
}

#[test]
fn type_increment_fails_closed_at_the_cap() {
    let s = FrameState::FREE
        .with_general(GENERAL_MAX)
        .with_type_count(TYPE_COUNT_MAX - 1);
    let s = s.inc_type().expect("one below the cap");
    assert_eq!(s.type_count(), TYPE_COUNT_MAX);
    assert_eq!(s.inc_type(), Err(MmError::CountOverflow));
}

#[test]
fn type_reference_needs_a_general_reference() {
    // G = 1 is the allocation reference: a type reference needs a second G.
    let s = FrameState::FREE.with_general(1).with_allocated(true);
    assert_eq!(s.inc_type(), Err(MmError::MissingGeneralRef));
    assert!(s.with_general(2).inc_type().is_ok());
    assert_eq!(
        s.with_general(2).inc_type().and_then(FrameState::inc_type),
        Err(MmError::MissingGeneralRef)
    );
}

#[test]
fn decrements_refuse_to_eat_reserved_references() {
    let s = FrameState::FREE
        .with_general(3)
        .with_type_count(2)
        .with_allocated(true);
    assert_eq!(
        s.dec_general(),
        Err(MmError::CountUnderflow),
        "G = C + allocated"
    );
    assert_eq!(s.with_general(4).dec_general().map(|s| s.general()), Ok(3));
    assert_eq!(FrameState::FREE.dec_general(), Err(MmError::CountUnderflow));
    assert_eq!(FrameState::FREE.dec_type(), Err(MmError::CountUnderflow));
    assert_eq!(s.dec_type().map(|s| s.type_count()), Ok(1));
}

#[test]
fn errno_values_are_xen_values() {
    assert_eq!(MmError::MmioDenied.errno(), 1);
    assert_eq!(MmError::FrameBusy.errno(), 16);
    assert_eq!(MmError::WritableBusy.errno(), 16);
    assert_eq!(MmError::TypeMismatch.errno(), 22);
    assert_eq!(MmError::LinearOverflow.errno(), 22);
    assert_eq!(MmError::CountOverflow.errno(), 22);
}
