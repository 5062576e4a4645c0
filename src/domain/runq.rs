//! [`RunQueue`]: a bounded multi-producer multi-consumer FIFO of `u32` entries (Dmitry Vyukov's
//! array queue), one per CPU. Any CPU may push to and pop from any queue, which is how the
//! scheduler steals work; there is no lock.
//!
//! Each cell carries a sequence word. For the position `pos` a producer or consumer is at, let
//! `lap = pos & !MASK` (the position of the cell's first use in this lap). A cell is free for
//! the producer at `pos` when its sequence is `lap`, holds the entry for the consumer at `pos`
//! when it is `lap + 1`, and is free again for the next lap at `lap + CAP`. (Vyukov's sequence
//! minus the cell index, so that every cell starts at 0 and the queue is `const`.)
//!
//! Orderings: producers and consumers claim a position with a Relaxed CAS on `head`/`tail` (the
//! claim itself publishes nothing); the entry is published by the Release store of the cell's
//! sequence after writing it, and taken after an Acquire load of the sequence (pairs with that
//! store); the consumer's Release store of `lap + CAP` pairs with the next producer's Acquire
//! load, so the old entry was read before it is overwritten. Progress: a producer stopped between
//! its claim and its sequence store (an interrupt handler runs; no handler pushes) makes
//! consumers see that cell as empty until it resumes, which only delays them.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use smp::CachePadded;

/// Entries a queue holds; a domain has at most `dom::MAX_VCPUS` entries in all queues together.
pub const CAP: usize = 64;
const MASK: usize = CAP - 1;
const _: () = assert!(CAP.is_power_of_two() && CAP >= super::dom::MAX_VCPUS);

struct Cell {
    seq: AtomicUsize,
    value: AtomicU32,
}

/// One bounded MPMC FIFO (see the module head).
pub struct RunQueue {
    cells: [Cell; CAP],
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
}

impl RunQueue {
    pub const fn new() -> Self {
        Self {
            cells: [const {
                Cell {
                    seq: AtomicUsize::new(0),
                    value: AtomicU32::new(0),
                }
            }; CAP],
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Appends `value`; gives it back if the queue is full.
    pub fn push(&self, value: u32) -> Result<(), u32> {
        // Relaxed: only seeds the claim CAS.
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let cell = &self.cells[pos & MASK];
            let lap = pos & !MASK;
            // Acquire: pairs with the consumer's Release that freed the cell.
            let seq = cell.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(lap) as isize;
            if diff == 0 {
                // Relaxed: the claim publishes nothing (module head).
                match self.tail.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // Relaxed: published by the Release store below.
                        cell.value.store(value, Ordering::Relaxed);
                        // Release: publishes the entry; pairs with the Acquire in `pop`.
                        cell.seq.store(lap.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(seen) => pos = seen,
                }
            } else if diff < 0 {
                return Err(value);
            } else {
                // Relaxed: another producer moved on; re-seed.
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Takes the oldest entry, if any.
    pub fn pop(&self) -> Option<u32> {
        // Relaxed: only seeds the claim CAS.
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let cell = &self.cells[pos & MASK];
            let lap = pos & !MASK;
            // Acquire: pairs with the producer's Release store of the sequence.
            let seq = cell.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(lap.wrapping_add(1)) as isize;
            if diff == 0 {
                // Relaxed: the claim publishes nothing (module head).
                match self.head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // Relaxed: ordered after the Acquire load of the sequence above.
                        let value = cell.value.load(Ordering::Relaxed);
                        // Release: the read above happens-before the next lap's write.
                        cell.seq.store(lap.wrapping_add(CAP), Ordering::Release);
                        return Some(value);
                    }
                    Err(seen) => pos = seen,
                }
            } else if diff < 0 {
                return None;
            } else {
                // Relaxed: another consumer moved on; re-seed.
                pos = self.head.load(Ordering::Relaxed);
            }
        }
    }
}
