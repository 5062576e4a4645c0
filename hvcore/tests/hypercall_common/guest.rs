//! [`FakeGuest`]: guest memory of the `hypercall_*` tests, byte regions at guest addresses. An
//! access must lie entirely inside one region, else it faults; writes are counted.

use std::cell::{Cell, RefCell};

use hvcore::hypercall::{Fault, GuestMem};

/// Guest memory: byte regions; counts writes.
pub struct FakeGuest {
    pub regions: Vec<(u64, RefCell<Vec<u8>>)>,
    pub writes: Cell<u32>,
}

impl FakeGuest {
    fn find(&self, va: u64, len: usize) -> Option<(usize, usize)> {
        self.regions
            .iter()
            .enumerate()
            .find_map(|(i, (base, bytes))| {
                let off = usize::try_from(va.checked_sub(*base)?).ok()?;
                (off.checked_add(len)? <= bytes.borrow().len()).then_some((i, off))
            })
    }
}

impl GuestMem for FakeGuest {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let (i, off) = self.find(va, buf.len()).ok_or(Fault { va })?;
        buf.copy_from_slice(&self.regions[i].1.borrow()[off..off + buf.len()]);
        Ok(())
    }
    fn write(&self, va: u64, buf: &[u8]) -> Result<(), Fault> {
        self.writes.set(self.writes.get() + 1);
        let (i, off) = self.find(va, buf.len()).ok_or(Fault { va })?;
        self.regions[i].1.borrow_mut()[off..off + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}
