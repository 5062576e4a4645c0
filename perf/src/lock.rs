//! The baselines' lock: a test-and-test-and-set spin lock on its own cache line.
//!
//! A hypervisor lock is a spin lock (Xen's `page_lock` is a bit spin lock in `page_info`), so
//! both baselines use this one rather than a futex-backed `std::sync::Mutex`. Each lock is
//! padded to 64 bytes, so the per-table baseline never suffers false sharing between locks:
//! that flatters the baseline, never Argon. Past `SPINS_BEFORE_YIELD` failed polls a waiter
//! yields, so runs with more threads than cores (`--threads`) still make progress when a holder
//! is preempted.
//!
//! Orderings: the acquiring swap is Acquire (pairs with the Release store of the previous
//! holder's unlock, so its critical section happens-before ours); polls are Relaxed (they only
//! decide when to retry the swap); unlock is Release.

use std::sync::atomic::{AtomicBool, Ordering};

const SPINS_BEFORE_YIELD: u32 = 1 << 12;

/// A spin lock on its own cache line.
#[repr(align(64))]
#[derive(Debug, Default)]
pub struct SpinLock {
    locked: AtomicBool,
}

impl SpinLock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        Self {
            locked: AtomicBool::new(false),
        }
    }

    /// Run `f` with the lock held.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        self.lock();
        let r = f();
        // Release: our critical section happens-before the next holder's Acquire swap.
        self.locked.store(false, Ordering::Release);
        r
    }

    #[inline]
    fn lock(&self) {
        // Acquire: pairs with the Release store in `with` of the previous holder.
        while self.locked.swap(true, Ordering::Acquire) {
            let mut spins = 0u32;
            // Relaxed: only decides when to retry the swap.
            while self.locked.load(Ordering::Relaxed) {
                spins += 1;
                if spins < SPINS_BEFORE_YIELD {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }
}

const _: () = assert!(core::mem::size_of::<SpinLock>() == 64);

#[cfg(test)]
mod tests {
    use super::SpinLock;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[test]
    fn excludes_concurrent_holders() {
        // A non-atomic read-modify-write under the lock loses no increments.
        let lock = SpinLock::new();
        let n = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        lock.with(|| {
                            let v = n.load(Relaxed);
                            std::hint::spin_loop();
                            n.store(v + 1, Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(n.load(Relaxed), 40_000);
    }
}
