//! [`Global`]: a static set once by the bootstrap CPU and read by every CPU afterwards, for the
//! machine-wide structures that have no `const` constructor (hvcore's atomics switch to loom's
//! under `cfg(loom)`, so they offer none).
//!
//! Protocol: `state` goes EMPTY → WRITING (the setter's CAS, so a second `set` fails instead of
//! racing) → READY (Release store after the value is written). `get` loads `state` with Acquire,
//! pairing with that Release, before it hands out a shared reference; after READY the value is
//! never written again, so shared references from any CPU are sound.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const READY: u8 = 2;

/// A write-once static (see the module head).
pub struct Global<T> {
    state: AtomicU8,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is written once, before READY is published with Release, and only shared
// references are handed out after an Acquire load of READY; `T: Sync` makes those shareable.
unsafe impl<T: Sync> Sync for Global<T> {}

impl<T> Global<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Stores `value` and returns a reference to it, or hands `value` back if the cell was set
    /// already.
    pub fn set(&self, value: T) -> Result<&T, T> {
        // Relaxed: the claim publishes nothing; READY below does.
        if self
            .state
            .compare_exchange(EMPTY, WRITING, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return Err(value);
        }
        // SAFETY: the CAS above made this call the only writer, and no reader hands out a
        // reference before READY.
        unsafe { (*self.value.get()).write(value) };
        // Release: publishes the value; pairs with the Acquire in `get`.
        self.state.store(READY, Ordering::Release);
        // SAFETY: written just above and never written again; `MaybeUninit<T>` has `T`'s layout.
        Ok(unsafe { &*self.value.get().cast::<T>() })
    }

    /// The value, once set.
    pub fn get(&self) -> Option<&T> {
        // Acquire: pairs with the Release in `set`.
        (self.state.load(Ordering::Acquire) == READY).then(|| {
            // SAFETY: READY means the value was fully written and is never written again;
            // `MaybeUninit<T>` has `T`'s layout.
            unsafe { &*self.value.get().cast::<T>() }
        })
    }
}
