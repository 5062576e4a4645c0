//! The one synchronisation shim of `hvcore`.
//!
//! Every atomic and spin hint used by the core comes from here: `core`'s atomics in normal builds,
//! loom's model-checked ones under `--cfg loom`. Nothing else in `hvcore` names `core::sync` or
//! `loom` directly, so the same code is what runs on the hypervisor and what loom explores.

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

/// Hint that we are in a spin-wait loop.
///
/// Under loom this yields to the scheduler so that models with spinning terminate.
#[inline]
pub fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
