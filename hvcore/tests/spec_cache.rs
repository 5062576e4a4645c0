//! Spec §8.2 cases 26–27 and §8.8 case 91: cache attributes of a domain with I/O capabilities —
//! MMIO forced uncacheable (XSA-154), special pages write-back only, and the cache flush of a
//! frame that had a non-coherent (WC) writable mapping before it is validated (XSA-402).

mod mm_common;
use std::cell::RefCell;

use hvcore::domain::{DomainCtx, TypeChange};
use mm_common::*;

const EACCES: i64 = 13;
const EINVAL: i64 = 22;

/// A non-RAM frame.
const MMIO: u64 = 0x1000;
/// The special page (shared_info) of [`io_world`].
const SPECIAL: u64 = 3;

/// Frame 0 is a pinned L1 of domain 1, which is privileged, I/O capable and has frame
/// [`SPECIAL`] as a special page holding the hypervisor's writable type reference (as
/// shared_info does); frames 1.. are data.
fn io_world(n: usize) -> World {
    let mut w = World::new(n);
    w.dom.privileged = true;
    w.dom.io_caps = true;
    w.dom.special = Some(Mfn(SPECIAL));
    w.pin(0, Level::L1).unwrap();
    w.t()
        .get_page_and_type(&w.kit.mem, &w.dom, Mfn(SPECIAL), PageType::Writable)
        .unwrap();
    w
}

/// The special page's hypervisor-held reference, for the audit.
const SPECIAL_REF: [ExtraRef; 1] = [ExtraRef {
    mfn: Mfn(SPECIAL),
    ty: Some(PageType::Writable),
}];

/// Each PAT index's cache attributes, its Xen PV memory type, and what an MMIO entry with them
/// is stored with.
const PAT_CASES: [(u64, MemType, u64); 8] = [
    (0, MemType::Wb, CACHE_UC),
    (PTE_PWT, MemType::Wt, CACHE_UC),
    (PTE_PCD, MemType::UcMinus, PTE_PCD),
    (PTE_PCD | PTE_PWT, MemType::Uc, PTE_PCD | PTE_PWT),
    (PTE_PAT, MemType::Wc, PTE_PAT),
    (PTE_PAT | PTE_PWT, MemType::Wp, CACHE_UC),
    (PTE_PAT | PTE_PCD, MemType::Uc, PTE_PAT | PTE_PCD),
    (
        PTE_PAT | PTE_PCD | PTE_PWT,
        MemType::Uc,
        PTE_PAT | PTE_PCD | PTE_PWT,
    ),
];

#[test]
fn spec_08_26_mmio_mapped_wb_is_stored_uc_wc_is_kept() {
    let w = io_world(8);
    let user = PTE_P | PTE_RW | PTE_US;
    // WB → UC (PCD | PWT, index 3); the token reports the stored value; no references.
    let tok = w.set_tok(0, Level::L1, 0, pte(MMIO, user)).unwrap();
    let uc = pte(MMIO, user | PTE_G | PTE_PCD | PTE_PWT);
    assert_eq!((w.read(0, 0), tok.new, tok.released), (uc, uc, None));
    // WC (PAT, index 4) is kept.
    w.set(0, Level::L1, 1, pte(MMIO, user | PTE_PAT)).unwrap();
    assert_eq!(w.read(0, 1), pte(MMIO, user | PTE_G | PTE_PAT));
    // Every PAT index, on a kernel mapping (US clear: adjusted to US + bit 52).
    let kernel = PTE_US | PTE_GUEST_KERNEL;
    for (i, (attrs, ty, stored)) in PAT_CASES.into_iter().enumerate() {
        assert_eq!((pat_index(attrs), mem_type(attrs)), (i, ty));
        w.set(0, Level::L1, 2 + i, pte(MMIO + 1, PTE_P | attrs))
            .unwrap();
        assert_eq!(
            w.read(0, 2 + i),
            pte(MMIO + 1, PTE_P | kernel | stored),
            "PAT index {i} ({ty:?})"
        );
    }
    // Rewriting the UC entry as WB again is no fast path: it is forced to UC once more. An
    // A-bit change of the stored UC entry is a fast path and keeps it.
    let tok = w.set_tok(0, Level::L1, 0, pte(MMIO, user)).unwrap();
    assert_eq!((tok.fast_path, w.read(0, 0)), (false, uc));
    let tok = w
        .set_tok(0, Level::L1, 0, pte(MMIO, user | PTE_PCD | PTE_PWT | PTE_A))
        .unwrap();
    assert_eq!((tok.fast_path, w.read(0, 0)), (true, uc | PTE_A));
    // RAM is not forced: a WB mapping of a data frame stays WB.
    w.set(0, Level::L1, 10, pte(1, user)).unwrap();
    assert_eq!(w.read(0, 10), pte(1, user | PTE_G));
    // Validation forces the same way: an L1 written with a WB MMIO entry is stored UC.
    w.kit.write(2, 0, pte(MMIO, PTE_P | PTE_US));
    w.kit.write(2, 1, pte(MMIO, PTE_P | PTE_US | PTE_PAT));
    w.pin(2, Level::L1).unwrap();
    assert_eq!(
        (w.read(2, 0), w.read(2, 1)),
        (
            pte(MMIO, PTE_P | PTE_US | PTE_G | PTE_PCD | PTE_PWT),
            pte(MMIO, PTE_P | PTE_US | PTE_G | PTE_PAT)
        )
    );
    w.kit.assert_clean(&SPECIAL_REF);
    // Without I/O capabilities cache attributes stay refused (spec case 6's rule).
    let plain = TestDomain::new(DOM);
    fails(
        w.t().mod_entry(
            &w.kit.mem,
            &plain,
            Mfn(0),
            Level::L1,
            20,
            pte(MMIO, PTE_P | PTE_PAT),
            false,
        ),
        MmError::CacheAttr,
        EINVAL,
    );
}

#[test]
fn spec_08_27_non_wb_mapping_of_special_page_is_eacces() {
    let w = io_world(8);
    w.set(0, Level::L1, 0, pte(4, PTE_P | PTE_RW)).unwrap();
    let before = (w.s(SPECIAL), w.read(0, 0));
    assert_eq!((before.0.general(), before.0.type_count()), (2, 1));
    for attrs in [PTE_PCD, PTE_PWT, PTE_PAT, PTE_PCD | PTE_PWT, CACHE_WC] {
        for rw in [0, PTE_RW] {
            fails(
                w.set(0, Level::L1, 0, pte(SPECIAL, PTE_P | rw | attrs)),
                MmError::SpecialPageCacheAttr,
                EACCES,
            );
            assert_eq!(
                (w.s(SPECIAL), w.read(0, 0)),
                before,
                "attrs {attrs:#x} rw {rw:#x}"
            );
        }
    }
    assert!(!w.s(SPECIAL).non_coherent(), "refused before any mark");
    // Write-back mappings of it are fine, read-only and writable.
    w.set(0, Level::L1, 1, pte(SPECIAL, PTE_P)).unwrap();
    w.set(0, Level::L1, 2, pte(SPECIAL, PTE_P | PTE_RW))
        .unwrap();
    assert_eq!((w.g(SPECIAL), w.c(SPECIAL)), (4, 2));
    // Validation: the refused entry comes after two good ones; everything is given back and
    // the frame is left untyped.
    w.kit.write(5, 0, pte(4, PTE_P | PTE_RW));
    w.kit.write(5, 1, pte(SPECIAL, PTE_P | PTE_RW));
    w.kit.write(5, 2, pte(SPECIAL, PTE_P | PTE_PCD));
    let counts = |w: &World| [4, SPECIAL].map(|f| (w.g(f), w.c(f)));
    let held = counts(&w);
    fails(w.pin(5, Level::L1), MmError::SpecialPageCacheAttr, EACCES);
    assert_eq!(counts(&w), held, "no reference leaked");
    assert_eq!((w.c(5), w.ty(5), w.g(5)), (0, PageType::None, 1));
    w.kit.assert_clean(&SPECIAL_REF);
}

/// One recorded effect of a [`Probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// `flush_retyped` of this frame.
    Retyped(Mfn),
    /// `flush_frame_cache` of this frame, with its state and entry 0 at that moment.
    CacheFlush(Mfn, FrameState, u64),
}

/// The domain's context, recording the flushes with what the frame looked like when flushed.
struct Probe<'a> {
    dom: &'a TestDomain,
    kit: &'a Kit,
    events: RefCell<Vec<Event>>,
}

impl<'a> Probe<'a> {
    fn new(w: &'a World) -> Self {
        Self {
            dom: &w.dom,
            kit: &w.kit,
            events: RefCell::new(Vec::new()),
        }
    }
    fn pin(&self, f: u64) -> Result<(), MmError> {
        self.kit.table().pin(&self.kit.mem, self, Mfn(f), Level::L1)
    }
    fn take(&self) -> Vec<Event> {
        self.events.take()
    }
}

impl DomainCtx for Probe<'_> {
    fn domid(&self) -> DomId {
        self.dom.domid()
    }
    fn is_privileged(&self) -> bool {
        self.dom.is_privileged()
    }
    fn has_io_caps(&self) -> bool {
        self.dom.has_io_caps()
    }
    fn linear_pt_enabled(&self) -> bool {
        self.dom.linear_pt_enabled()
    }
    fn xen_l4_slot(&self, l4: Mfn, slot: usize) -> u64 {
        self.dom.xen_l4_slot(l4, slot)
    }
    fn flush_retyped(&self, change: TypeChange) {
        self.events.borrow_mut().push(Event::Retyped(change.mfn));
        self.dom.flush_retyped(change);
    }
    fn is_special_page(&self, mfn: Mfn) -> bool {
        self.dom.is_special_page(mfn)
    }
    fn cpu_self_snoop(&self) -> bool {
        self.dom.cpu_self_snoop()
    }
    fn flush_frame_cache(&self, mfn: Mfn) {
        let state = self.kit.state(mfn.0);
        let e0 = self.kit.read(mfn.0, 0);
        self.events
            .borrow_mut()
            .push(Event::CacheFlush(mfn, state, e0));
        self.dom.flush_frame_cache(mfn);
    }
}

#[test]
fn spec_08_91_wc_written_page_is_flushed_before_validation_as_l1() {
    let w = io_world(8);
    const P: u64 = 2;
    // Map P RW + WC: marked non-coherent (the CPUs do not self-snoop).
    w.set(0, Level::L1, 0, pte(P, PTE_P | PTE_RW | CACHE_WC))
        .unwrap();
    assert!(w.s(P).non_coherent());
    // Write a PTE into P through the mapping (US clear, so validation will adjust it), unmap.
    let raw = pte(1, PTE_P);
    w.kit.write(P, 0, raw);
    w.set(0, Level::L1, 0, 0).unwrap();
    let unmapped = w.s(P);
    assert_eq!(
        (
            unmapped.type_count(),
            unmapped.ty(),
            unmapped.non_coherent()
        ),
        (0, PageType::Writable, true),
        "the mark outlives the mapping"
    );
    // Pin P as L1: retype flush, then the cache flush while P is typed L1 but not validated
    // and entry 0 still holds the raw value, then validation (which adjusts entry 0).
    let probe = Probe::new(&w);
    probe.pin(P).unwrap();
    let flushing = unmapped
        .with_general(unmapped.general() + 1)
        .with_type_count(1)
        .with_type(PageType::L1)
        .with_validated(false)
        .with_non_coherent(false);
    assert_eq!(
        probe.take(),
        [
            Event::Retyped(Mfn(P)),
            Event::CacheFlush(Mfn(P), flushing, raw)
        ]
    );
    assert_eq!(w.read(P, 0), pte(1, PTE_P | PTE_US | PTE_GUEST_KERNEL));
    let pinned = w.s(P);
    assert!(pinned.validated() && pinned.pinned() && !pinned.non_coherent());
    assert_eq!(
        (w.dom.cache_flushes(), w.dom.last_cache_flush()),
        (1, Some(Mfn(P)))
    );
    // The mark is gone: unpin, map RW + WB, pin again → no second cache flush.
    w.unpin(P).unwrap();
    w.set(0, Level::L1, 0, pte(P, PTE_P | PTE_RW)).unwrap();
    w.set(0, Level::L1, 0, 0).unwrap();
    probe.pin(P).unwrap();
    assert_eq!(probe.take(), [Event::Retyped(Mfn(P))]);
    assert_eq!(w.dom.cache_flushes(), 1);
    w.unpin(P).unwrap();
    w.kit.assert_clean(&SPECIAL_REF);
}

#[test]
fn spec_08_91_coherent_mappings_are_not_marked_or_flushed() {
    let mut w = io_world(8);
    // Read-only WC, writable UC and writable WB mappings leave frames coherent.
    for (f, flags) in [
        (1, PTE_P | CACHE_WC),
        (2, PTE_P | PTE_RW | CACHE_UC),
        (4, PTE_P | PTE_RW),
    ] {
        w.set(0, Level::L1, f as usize, pte(f, flags)).unwrap();
        w.set(0, Level::L1, f as usize, 0).unwrap();
        assert!(!w.s(f).non_coherent(), "frame {f}");
        let probe = Probe::new(&w);
        probe.pin(f).unwrap();
        assert!(
            !probe
                .take()
                .iter()
                .any(|e| matches!(e, Event::CacheFlush(..))),
            "frame {f}"
        );
        w.unpin(f).unwrap();
    }
    // Taking the writable type again keeps the mark and flushes nothing.
    w.set(0, Level::L1, 5, pte(5, PTE_P | PTE_RW | CACHE_WC))
        .unwrap();
    w.set(0, Level::L1, 6, pte(5, PTE_P | PTE_RW)).unwrap();
    assert!(w.s(5).non_coherent());
    w.set(0, Level::L1, 5, 0).unwrap();
    w.set(0, Level::L1, 6, 0).unwrap();
    // On self-snooping CPUs writable WC marks nothing.
    w.dom.self_snoop = true;
    w.set(0, Level::L1, 6, pte(6, PTE_P | PTE_RW | CACHE_WC))
        .unwrap();
    w.set(0, Level::L1, 6, 0).unwrap();
    assert!(!w.s(6).non_coherent());
    w.pin(6, Level::L1).unwrap();
    assert_eq!(w.dom.cache_flushes(), 0);
    // A frame retyped as a descriptor page is flushed too (any type but writable).
    let t = w.t();
    t.get_page_and_type(&w.kit.mem, &w.dom, Mfn(5), PageType::SegDesc)
        .unwrap();
    assert_eq!((w.dom.cache_flushes(), w.s(5).non_coherent()), (1, false));
    t.put_page_and_type(&w.kit.mem, Mfn(5)).unwrap();
    w.unpin(6).unwrap();
    w.kit.assert_clean(&SPECIAL_REF);
}
