//! Shared helpers for the frame-table / page-table integration tests: a [`World`] of one
//! `testkit::Kit` and one unprivileged domain (id 1) owning every frame.
#![allow(dead_code, unused_imports)]

pub use hvcore::audit::{ExtraRef, Finding};
pub use hvcore::domain::DomId;
pub use hvcore::frame::{FrameState, FrameTable, Level, MmError, PageType};
pub use hvcore::mem::{Mfn, PhysMem};
pub use hvcore::pt::*;
pub use hvcore::testkit::{Kit, TestDomain, pte, test_xen_l4_slot};

/// The domain every [`World`] frame belongs to.
pub const DOM: DomId = 1;

/// A kit plus one domain.
pub struct World {
    pub kit: Kit,
    pub dom: TestDomain,
}

impl World {
    /// `n` frames, all owned by [`DOM`].
    pub fn new(n: usize) -> Self {
        Self {
            kit: Kit::with_domain(n, DOM),
            dom: TestDomain::new(DOM),
        }
    }

    /// `n` frames, of which `range` is left free.
    pub fn with_free(n: usize, free: core::ops::Range<u64>) -> Self {
        let kit = Kit::new(n);
        kit.assign_range(0..free.start, DOM);
        kit.assign_range(free.end..n as u64, DOM);
        Self {
            kit,
            dom: TestDomain::new(DOM),
        }
    }

    pub fn t(&self) -> FrameTable<'_> {
        self.kit.table()
    }

    pub fn pin(&self, f: u64, level: Level) -> Result<(), MmError> {
        self.t().pin(&self.kit.mem, &self.dom, Mfn(f), level)
    }

    pub fn pin_as(&self, dom: &TestDomain, f: u64, level: Level) -> Result<(), MmError> {
        self.t().pin(&self.kit.mem, dom, Mfn(f), level)
    }

    pub fn unpin(&self, f: u64) -> Result<(), MmError> {
        self.t().unpin(&self.kit.mem, &self.dom, Mfn(f)).map(|_| ())
    }

    /// `mod_entry` without preserving A/D; the token is returned.
    pub fn set_tok(
        &self,
        table: u64,
        level: Level,
        index: usize,
        val: u64,
    ) -> Result<EntryUpdate, MmError> {
        self.t().mod_entry(
            &self.kit.mem,
            &self.dom,
            Mfn(table),
            level,
            index,
            val,
            false,
        )
    }

    /// `mod_entry`, token dropped.
    pub fn set(&self, table: u64, level: Level, index: usize, val: u64) -> Result<(), MmError> {
        self.set_tok(table, level, index, val).map(|_| ())
    }

    /// Write `val` into frame `f` the way a guest does it: through a writable type reference.
    pub fn data_write(&self, f: u64, index: usize, val: u64) -> Result<(), MmError> {
        let t = self.t();
        t.get_page_and_type(&self.kit.mem, &self.dom, Mfn(f), PageType::Writable)?;
        self.kit.write(f, index, val);
        t.put_page_and_type(&self.kit.mem, Mfn(f)).map(|_| ())
    }

    pub fn s(&self, f: u64) -> FrameState {
        self.kit.state(f)
    }
    pub fn g(&self, f: u64) -> u32 {
        self.s(f).general()
    }
    pub fn c(&self, f: u64) -> u32 {
        self.s(f).type_count()
    }
    pub fn ty(&self, f: u64) -> PageType {
        self.s(f).ty()
    }
    pub fn read(&self, f: u64, i: usize) -> u64 {
        self.kit.read(f, i)
    }

    /// Assert the audit finds nothing.
    pub fn clean(&self) {
        self.kit.assert_clean(&[]);
    }
}

/// Assert `r` failed with `want` (and therefore with its errno).
#[track_caller]
pub fn fails<T: core::fmt::Debug>(r: Result<T, MmError>, want: MmError, errno: i64) {
    match r {
        Err(e) => {
            assert_eq!(e, want, "error");
            assert_eq!(e.errno(), errno, "errno of {e:?}");
        }
        Ok(v) => panic!("expected {want:?}, got Ok({v:?})"),
    }
}
