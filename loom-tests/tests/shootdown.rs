//! Model (g): the shootdown handshake (DESIGN.md §7, spec §5) on a machine whose CPUs each have
//! a modelled TLB: once an update and its flush have returned, no CPU can write through a stale
//! translation to a frame that has become a page table; two CPUs shooting at each other at once
//! both complete.
//!
//! CPU 0 retypes F as an L1 with a real shootdown in `flush_retyped` (the domain's dirty mask,
//! filtered by F's stamp, gets a full flush); CPU 1 takes IPIs at its poll points and, at each,
//! writes through its TLB if that holds a writable translation, which must never lead to a
//! validated page table (`Machine::write_through_tlb`).
//!
//! What can fail: the initiator going on before every target acknowledged (the retype then
//! validates while CPU 1 still caches F writable); the retype flush issued before the new type is
//! published (XSA-401: CPU 1 maps F read-write, uses it and unmaps it in the window, and the
//! type CAS still succeeds); an initiator that does not serve its own mailbox while it waits
//! (two CPUs shooting at each other with interrupts off then wait forever: loom reports the
//! spin as a livelock).
//! Mutants: `shootdown_no_ack_wait`, `flush_before_publish`, `shootdown_no_self_serve`.
#![cfg(loom)]

mod common;

use common::machine::{Machine, VA};
use common::{Arc, join, model, ro, rw, spawn};
use hvcore::flush::{CpuMask, FlushKind};
use hvcore::frame::{Level, MmError, PageType};
use hvcore::mem::Mfn;

/// The pinned L1 holding the mapping of F at `VA`.
const T: u64 = 0;
/// The data frame that becomes an L1.
const F: u64 = 1;

/// CPU 0 retypes F as an L1 (shooting down CPU 1 if the filter keeps it); returns the result.
fn retype(m: &Machine) -> Result<(), MmError> {
    let t = m.w.t();
    t.get_page_and_type(&m.w.kit.mem, &m.cpu(0), Mfn(F), PageType::L1)
}

#[test]
fn shootdown_unmap_retype_no_stale_writer() {
    model(|| {
        // CPU 1 has used F through T[0] read-write. CPU 0 unmaps it, then retypes F.
        let m = Arc::new(Machine::new(2, 2, 2, &[1], true));
        assert_eq!(m.w.pin(T, Level::L1), Ok(()));
        assert_eq!(m.w.update(T, 0, rw(F)), Ok(()));
        assert_eq!(m.tlbs[1].walk(&m.w, T, 0), Some((F, true)));

        let m1 = m.clone();
        let cpu1 = spawn(move || {
            m1.poll(1);
            m1.write_through_tlb(1);
            m1.idle_until_finished(1, &[0]);
        });
        assert_eq!(m.w.update_as(&m.cpu(0), T, 0, 0), Ok(()));
        assert_eq!(retype(&m), Ok(()));
        m.idle_until_finished(0, &[1]);
        join(cpu1);

        assert_eq!(
            m.tlbs[1].lookup(),
            None,
            "CPU 1 kept F after the retype flush"
        );
        assert_eq!(m.w.put(F), Ok(()));
        m.w.assert_clean();
    });
}

#[test]
fn shootdown_xsa401_remap_window() {
    model(|| {
        // F is a validated writable frame with no references (mapped and unmapped before).
        // CPU 1 maps it read-write through T[0], uses it and unmaps it; CPU 0 retypes it.
        let m = Arc::new(Machine::new(2, 2, 2, &[1], true));
        assert_eq!(m.w.pin(T, Level::L1), Ok(()));
        m.w.writable_history(F);

        let m1 = m.clone();
        let cpu1 = spawn(move || {
            let me = m1.cpu(1);
            if m1.w.update_as(&me, T, 0, rw(F)).is_ok() {
                m1.poll(1);
                assert_eq!(m1.tlbs[1].walk(&m1.w, T, 0), Some((F, true)));
                m1.poll(1);
                assert_eq!(m1.w.update_as(&me, T, 0, 0), Ok(()));
            }
            m1.write_through_tlb(1);
            m1.idle_until_finished(1, &[0]);
        });
        let retyped = retype(&m);
        m.idle_until_finished(0, &[1]);
        join(cpu1);

        match retyped {
            Ok(()) => assert_eq!(m.w.put(F), Ok(())),
            Err(e) => assert_eq!(e, MmError::TypeMismatch),
        }
        m.w.assert_counts(F, 1, 0);
        m.w.assert_clean();
    });
}

#[test]
fn shootdown_mutual_both_complete() {
    model(|| {
        // Both CPUs cache VA; each flushes it on the other, with interrupts off, at once.
        let m = Arc::new(Machine::new(2, 1, 2, &[], false));
        m.w.kit.write(T, 0, ro(1));
        for cpu in 0..2 {
            assert_eq!(m.tlbs[cpu].walk(&m.w, T, 0), Some((1, false)));
        }
        let shoot = |m: &Machine, me: usize| {
            let other = 1 - me;
            let _ = m.sd().flush(
                me,
                CpuMask::single(other),
                FlushKind::va(VA),
                &m.cpu(me),
                &m.tlbs[me],
            );
            m.idle_until_finished(me, &[other]);
        };
        let m1 = m.clone();
        let cpu1 = spawn(move || shoot(&m1, 1));
        shoot(&m, 0);
        join(cpu1);
        for cpu in 0..2 {
            assert_eq!(m.tlbs[cpu].lookup(), None, "CPU {cpu} was not flushed");
        }
    });
}
