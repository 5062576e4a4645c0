//! `pair`'s one-CAS paths against the two steps they stand for, on every reachable state of a
//! grid of edge values: same result, same final word.

use super::*;
use crate::domain::DomId;
use crate::testkit::{Kit, TestDomain};

const COUNTS: [u32; 6] = [0, 1, 2, 3, GENERAL_MAX - 1, GENERAL_MAX];
const OWNERS: [DomId; 3] = [0, 1, 7];

/// Every state of the grid that the frame table's invariants allow (`frame::state`).
fn reachable_states() -> impl Iterator<Item = FrameState> {
    PageType::ALL.into_iter().flat_map(|ty| {
        (0u8..32).flat_map(move |flags| {
            COUNTS.into_iter().flat_map(move |g| {
                COUNTS.into_iter().flat_map(move |c| {
                    OWNERS.into_iter().filter_map(move |o| {
                        let s = FrameState::FREE
                            .with_type(ty)
                            .with_validated(flags & 1 != 0)
                            .with_pinned(flags & 2 != 0)
                            .with_allocated(flags & 4 != 0)
                            .with_non_coherent(flags & 8 != 0)
                            .with_partial(flags & 16 != 0)
                            .with_general(g)
                            .with_type_count(c)
                            .with_owner(o);
                        reachable(s).then_some(s)
                    })
                })
            })
        })
    })
}

fn reachable(s: FrameState) -> bool {
    let table = s.ty().level().is_some();
    let upper = table && s.ty() != PageType::L1;
    let counts_ok = s.general() >= s.type_count() + u32::from(s.allocated());
    let pin_ok = !s.pinned() || (s.type_count() >= 1 && table);
    let partial_ok =
        !s.partial() || (s.type_count() == 1 && !s.validated() && !s.pinned() && upper);
    let free_ok = (s.general() == 0) == (s.encode() == 0);
    counts_ok && pin_ok && partial_ok && free_ok
}

/// A one-frame kit whose frame holds `s`.
fn kit_with(s: FrameState) -> Kit {
    let kit = Kit::new(1);
    kit.frames[0]
        .state
        .store(s.encode(), crate::sync::Ordering::Relaxed);
    kit
}

fn word(kit: &Kit) -> u64 {
    kit.frames[0].state.load(crate::sync::Ordering::Relaxed)
}

#[test]
fn put_page_and_type_is_the_two_puts() {
    let mut fast = 0;
    for s in reachable_states() {
        let (a, b) = (kit_with(s), kit_with(s));
        let got = a.table().put_page_and_type(&a.mem, Mfn(0));
        let want = b
            .table()
            .put_page_type(&b.mem, Mfn(0))
            .and_then(|()| b.table().put_page(Mfn(0)));
        assert_eq!(got, want, "{s:?}");
        assert_eq!(word(&a), word(&b), "{s:?}");
        fast += usize::from(s.type_count() >= 2 && s.validated());
    }
    assert!(
        fast >= 50,
        "the grid reaches the one-CAS path ({fast} states)"
    );
}

#[test]
fn hold_validated_is_get_page_then_a_validated_type() {
    for s in reachable_states() {
        for want in PageType::ALL {
            for dom in OWNERS {
                let (a, b) = (kit_with(s), kit_with(s));
                let got = a.table().hold_validated(Mfn(0), dom, want);
                let t = b.table();
                let expect = t.get_page(Mfn(0), dom).and_then(|()| {
                    t.try_get_validated_type(Mfn(0), want).map_err(|e| {
                        assert_eq!(t.put_page(Mfn(0)), Ok(Released::Held));
                        match e {
                            MmError::CountOverflow => e,
                            _ => MmError::NotValidated,
                        }
                    })
                });
                assert_eq!(got, expect, "{s:?} {want:?} d{dom}");
                assert_eq!(word(&a), word(&b), "{s:?} {want:?} d{dom}");
            }
        }
    }
}

#[test]
fn writable_pair_is_get_page_if_then_writable_or_nothing() {
    let ctx = TestDomain::new(1);
    let mut fast = 0;
    for s in reachable_states() {
        // The two steps would wait for a validator (C ≥ 1, V clear) to finish: no second
        // thread here to finish it.
        if s.type_count() >= 1 && !s.validated() && !s.partial() && s.ty() == PageType::Writable {
            continue;
        }
        for allowed in OWNERS {
            let allow = |owner: DomId| owner == allowed;
            let (a, b) = (kit_with(s), kit_with(s));
            let t = b.table();
            let two_steps = t.get_page_if(Mfn(0), allow).and_then(|_| {
                t.get_page_type(&b.mem, &ctx, Mfn(0), PageType::Writable)
                    .inspect_err(|_| assert!(t.put_page(Mfn(0)).is_ok()))
            });
            if a.table().try_get_page_if_and_writable(Mfn(0), allow) {
                fast += 1;
                assert_eq!(two_steps, Ok(()), "{s:?} d{allowed}");
                assert_eq!(word(&a), word(&b), "{s:?} d{allowed}");
            } else {
                assert_eq!(word(&a), s.encode(), "nothing taken: {s:?} d{allowed}");
                // The one-CAS path covers every validated writable frame it may take.
                let common = s.allocated()
                    && s.ty() == PageType::Writable
                    && s.validated()
                    && s.owner() == allowed
                    && s.general() < GENERAL_MAX
                    && s.type_count() < TYPE_COUNT_MAX;
                assert!(!common || two_steps.is_err(), "{s:?} d{allowed}");
            }
        }
    }
    assert!(
        fast >= 50,
        "the grid reaches the one-CAS path ({fast} states)"
    );
}
