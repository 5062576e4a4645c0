//! One CPU's shootdown mailbox: where initiators post flush requests and the CPU acknowledges them.
//!
//! Words (one cache line per CPU, no lock):
//!
//! | word      | contents                                   | written by                  |
//! |-----------|--------------------------------------------|-----------------------------|
//! | `req`     | the coalesced pending request (see below)  | initiators (merge), owner (take) |
//! | `posted`  | `count << 1 \| ARMED`                      | initiators (+1, clear ARMED), owner (set ARMED) |
//! | `done`    | highest `count` whose requests are flushed | owner                       |
//! | `serving` | re-entrancy guard of the owner's handler   | owner                       |
//!
//! `req` encoding: 0 = none, 1 = full flush, `page | 2` = the page at `page` (4 KiB aligned).
//! Merging: none + x = x, x + x = x, anything else = full.
//!
//! Protocol. Initiator: (1) merge its request into `req` (RMW, Release); (2) add 1 to the count in
//! `posted` and clear ARMED (CAS, Release); the new count is its *ticket*; if ARMED was set it must
//! send the IPI; (3) wait until `done >= ticket` (Acquire). Owner (`serve`): load `posted`
//! (Acquire); if `count != done`, take `req` (swap to 0, Acquire), flush it, store `done = count`
//! (Release) and repeat; once `count == done`, set ARMED with a CAS that fails if anything was
//! posted meanwhile.
//!
//! Why a ticket is covered when `done >= ticket`: the initiator's merge is sequenced before its
//! count increment, which the owner acquired when it read `count >= ticket`; so the merge
//! happens-before the owner's next take. Every write to `req` is an RMW, so the merged bits stay
//! until the first take after them in `req`'s modification order: that take or an earlier one of
//! the same CPU, both flushed before `done = count` is stored. The take's Acquire pairs with the
//! merge's Release, so whatever the initiator changed before posting happens-before the flush.
//!
//! Why no post is lost (progress): ARMED = 1 means "owner idle, the next poster sends the IPI".
//! ARMED is cleared only by a poster that saw it set (and then sends one IPI), and set only by the
//! owner's CAS when nothing is unserved. So whenever a request is unserved, either an IPI is on
//! its way to the owner or the owner is inside `serve` and will not leave before serving it.
//! Loops: the initiator's CASes retry only when another CPU changed the word (lock-free); `serve`
//! repeats only when new requests arrived, each round serving them.

use super::token::{FlushKind, PAGE_SIZE};
use crate::sync::{AtomicBool, AtomicU64, Ordering};

const REQ_NONE: u64 = 0;
const REQ_FULL: u64 = 1;
const REQ_VA: u64 = 2;

const ARMED: u64 = 1;
const COUNT_SHIFT: u32 = 1;

fn encode(kind: FlushKind) -> u64 {
    match kind {
        FlushKind::Full => REQ_FULL,
        FlushKind::Va(va) => (va & !(PAGE_SIZE - 1)) | REQ_VA,
    }
}

fn decode(word: u64) -> Option<FlushKind> {
    match word {
        REQ_NONE => None,
        REQ_FULL => Some(FlushKind::Full),
        w => Some(FlushKind::Va(w & !(PAGE_SIZE - 1))),
    }
}

fn merge(cur: u64, new: u64) -> u64 {
    if cur == REQ_NONE || cur == new {
        new
    } else {
        REQ_FULL
    }
}

/// One CPU's mailbox, alone on its cache line. The caller provides one per CPU (index = CPU).
#[derive(Debug)]
#[repr(align(64))]
pub struct Mailbox {
    req: AtomicU64,
    posted: AtomicU64,
    done: AtomicU64,
    serving: AtomicBool,
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<Mailbox>() == 64);

/// What posting a request returned to the initiator.
#[derive(Debug, Clone, Copy)]
pub(super) struct Posted {
    /// Wait until the owner's `done` reaches this.
    pub ticket: u64,
    /// The owner was idle: the initiator must send it the IPI (unless it is the initiator).
    pub must_ipi: bool,
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Mailbox {
    /// An idle mailbox: nothing posted, armed (the first poster sends the IPI).
    pub fn new() -> Self {
        Self {
            req: AtomicU64::new(REQ_NONE),
            posted: AtomicU64::new(ARMED),
            done: AtomicU64::new(0),
            serving: AtomicBool::new(false),
        }
    }

    /// Has everything posted here been served (and the owner gone idle)? Diagnostics and tests.
    pub fn is_idle(&self) -> bool {
        // Acquire: pairs with the posters' Release CAS; a `true` answer is only a snapshot.
        self.posted.load(Ordering::Acquire) & ARMED != 0
    }

    /// Post `kind` (initiator side, steps 1 and 2 of the protocol).
    pub(super) fn post(&self, kind: FlushKind) -> Posted {
        let new = encode(kind);
        // Relaxed: only seeds the CAS; the CAS re-reads on failure.
        let mut cur = self.req.load(Ordering::Relaxed);
        // Always write, even when `cur` already covers `new`: the owner's take must synchronise
        // with *this* initiator's Release, or its earlier page-table change might not be visible
        // to the flush that covers it.
        loop {
            // Release: pairs with the Acquire swap in `serve` (initiator's changes → flush).
            match self.req.compare_exchange_weak(
                cur,
                merge(cur, new),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => cur = seen,
            }
        }
        // Relaxed: only seeds the CAS.
        let mut p = self.posted.load(Ordering::Relaxed);
        loop {
            // The count has 63 bits: at one post per nanosecond it lasts 292 years.
            let ticket = (p >> COUNT_SHIFT) + 1;
            // Release: the merge above happens-before the owner's Acquire load of `posted` that
            // sees this ticket, hence before its next take. Pairs with `serve`'s load.
            match self.posted.compare_exchange_weak(
                p,
                ticket << COUNT_SHIFT,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Posted {
                        ticket,
                        must_ipi: p & ARMED != 0,
                    };
                }
                Err(seen) => p = seen,
            }
        }
    }

    /// Has the owner served every request up to `ticket`? (Initiator side, step 3.)
    pub(super) fn acked(&self, ticket: u64) -> bool {
        // Acquire: pairs with the Release store of `done` in `serve`, so the flush that covered
        // the ticket happens-before the initiator goes on.
        self.done.load(Ordering::Acquire) >= ticket
    }

    /// Enter the owner's handler; false if it is already active on this CPU (an IPI arrived in
    /// the middle of it). The caller must then leave it to the outer invocation.
    pub(super) fn enter(&self) -> bool {
        // Relaxed: only the owner CPU (and interrupt handlers nested on it, which are ordered by
        // program order) touches `serving`; it orders nothing else.
        !self.serving.swap(true, Ordering::Relaxed)
    }

    /// Leave the owner's handler.
    pub(super) fn leave(&self) {
        // Relaxed: as in `enter`.
        self.serving.store(false, Ordering::Relaxed);
    }

    /// Serve every request posted here (owner side), calling `flush` once per take that found a
    /// request; return once the mailbox is armed again. Must run between `enter` and `leave`.
    pub(super) fn serve(&self, mut flush: impl FnMut(FlushKind)) {
        loop {
            // Acquire: pairs with the posters' Release CAS; their merges happen-before the take.
            let p = self.posted.load(Ordering::Acquire);
            let count = p >> COUNT_SHIFT;
            // Relaxed: `done` is written only by this CPU.
            if count != self.done.load(Ordering::Relaxed) {
                // Acquire: pairs with the Release merge in `post` (initiator's changes → flush).
                if let Some(kind) = decode(self.req.swap(REQ_NONE, Ordering::Acquire)) {
                    flush(kind);
                }
                // Release: the flush above happens-before an initiator that sees `done >= its
                // ticket`; pairs with the Acquire load in `acked`.
                self.done.store(count, Ordering::Release);
                continue;
            }
            if p & ARMED != 0 {
                return;
            }
            // Relaxed: arming publishes nothing; it only must fail if a post intervened, which the
            // CAS on the whole word guarantees. The retry re-loads with Acquire.
            if self
                .posted
                .compare_exchange(p, p | ARMED, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn request_encoding_round_trips_and_merges() {
        for kind in [
            FlushKind::Full,
            FlushKind::Va(0),
            FlushKind::Va(0xffff_8000_dead_b000),
        ] {
            assert_eq!(decode(encode(kind)), Some(kind));
        }
        assert_eq!(decode(REQ_NONE), None);
        let (a, b) = (encode(FlushKind::Va(0x1000)), encode(FlushKind::Va(0x2000)));
        assert_eq!(merge(REQ_NONE, a), a);
        assert_eq!(merge(a, a), a);
        assert_eq!(merge(a, b), REQ_FULL);
        assert_eq!(merge(REQ_FULL, a), REQ_FULL);
        assert_eq!(merge(a, REQ_FULL), REQ_FULL);
    }

    #[test]
    fn first_post_ipis_later_posts_coalesce() {
        let m = Mailbox::new();
        assert!(m.is_idle());
        let p1 = m.post(FlushKind::Va(0x1000));
        let p2 = m.post(FlushKind::Va(0x1000));
        assert_eq!(
            (p1.ticket, p1.must_ipi, p2.ticket, p2.must_ipi),
            (1, true, 2, false)
        );
        assert!(!m.is_idle() && !m.acked(1));
        let mut seen = Vec::new();
        assert!(m.enter());
        assert!(!m.enter(), "a nested entry must be refused");
        m.serve(|k| seen.push(k));
        m.leave();
        assert_eq!(seen, [FlushKind::Va(0x1000)], "one flush for both posts");
        assert!(m.acked(2) && m.is_idle());
        let p3 = m.post(FlushKind::Va(0x3000));
        let p4 = m.post(FlushKind::Va(0x4000));
        assert!(p3.must_ipi && !p4.must_ipi);
        m.serve(|k| seen.push(k));
        assert_eq!(
            seen[1..],
            [FlushKind::Full],
            "two pages degrade to a full flush"
        );
    }
}
