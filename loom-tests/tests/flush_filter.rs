//! Model (f): the flush clock and the type-change filter (spec §1.7): a CPU that has not flushed
//! since a frame's stamp is always in the retype's flush set.
//!
//! CPU 1 cached a writable translation of F; it does a full flush (tick the clock, flush, record
//! the tick) and then touches the page again, refilling its TLB by walking the L1 entry. CPU 0
//! unmaps F (its last writable reference: F is stamped) and retypes it as an L1; the retype's
//! `flush_retyped` filters the domain's dirty mask {1} by F's stamp and records the result.
//! Property: if CPU 1 still caches F writable once F is an L1, CPU 1 is in the flush set.
//!
//! What can fail: CPU 1 is filtered out only if its recorded flush tick is later than F's stamp.
//! That is safe only if a flush that ticked after the stamp also sees the unmap: the stamp must
//! be a read-modify-write of the clock (Release) sequenced after the unmap, so a tick that
//! follows it acquires the unmap; and a CPU whose tick equals the stamp (it ticked first, the
//! stamp read its tick) must be kept, because its later walk need not see the unmap.
//! Mutants: `need_flush_strict` (NEED_FLUSH uses `<` for `<=`), `stamp_plain_load` (frames are
//! stamped with a plain Acquire load of the clock, as Xen's C reads it, instead of the RMW).
#![cfg(loom)]

mod common;

use common::machine::Machine;
use common::{Arc, join, model, rw, spawn};
use hvcore::frame::{Level, PageType};
use hvcore::mem::Mfn;

/// The pinned L1 holding the mapping.
const T: u64 = 0;
/// The data frame that becomes an L1.
const F: u64 = 1;

#[test]
fn flush_filter_keeps_cpu_not_flushed_since_stamp() {
    model(|| {
        let m = Arc::new(Machine::new(2, 2, 2, &[1], false));
        assert_eq!(m.w.pin(T, Level::L1), Ok(()));
        assert_eq!(m.w.update(T, 0, rw(F)), Ok(()));
        assert_eq!(m.tlbs[1].walk(&m.w, T, 0), Some((F, true)));

        let m1 = m.clone();
        let cpu1 = spawn(move || {
            let times = m1.times();
            let tick = times.begin_full_flush();
            // (Tlb::flush_all, through the trait the shootdown layer uses.)
            hvcore::flush::Tlb::flush_all(&m1.tlbs[1]);
            assert!(times.end_full_flush(1, tick).is_none());
            m1.tlbs[1].walk(&m1.w, T, 0);
        });

        let cpu0 = m.cpu(0);
        assert_eq!(m.w.update_as(&cpu0, T, 0, 0), Ok(()));
        let t = m.w.t();
        assert_eq!(
            t.get_page_and_type(&m.w.kit.mem, &cpu0, Mfn(F), PageType::L1),
            Ok(())
        );
        join(cpu1);

        let (targets, retypes) = m.retype_record();
        assert_eq!(retypes, 1, "the writable → L1 change was not reported");
        if m.tlbs[1].lookup() == Some((F, true)) {
            assert!(
                targets.contains(1),
                "CPU 1 caches F writable after F became an L1, but the filter dropped it \
                 (stamp {}, CPU 1 flushed at {})",
                m.w.t().stamp(Mfn(F)).unwrap_or(0),
                m.times().last_flush(1)
            );
        }
        assert_eq!(m.w.put(F), Ok(()));
        m.w.assert_clean();
    });
}
