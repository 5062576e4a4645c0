//! Page tables the SMP suites build and change, and the frames they use.
//!
//! Frames come from the top of the domain's pseudo-physical memory, far above the builder's
//! initial mapping (which ends at a 4 MiB boundary near the image), so nothing maps them when
//! they are handed out. The scratch tree hangs under L4 slot [`SLOT`]: one L3, one L2, and L1s
//! at L2 slot 0 (shared by every vCPU, [`SHARED`]) and 1 + i (vCPU i's own, [`own`]); each vCPU
//! also has [`DATA`] data frames with a marker in word 0 ([`marker`]). Everything is set up by
//! vCPU 0 before any job runs ([`build`]) and published with the job (`smp`); after that the
//! frame numbers are only read. [`alloc`] also hands out frames to the suites that build their
//! own tables on vCPU 0 (`suites::ops::frame`), after [`init_frames`].

use core::sync::atomic::{AtomicU64, Ordering};

use abi::domid::DOMID_SELF;
use abi::mmuext::{MMUEXT_CLEAR_PAGE, MMUEXT_TLB_FLUSH_LOCAL};
use abi::{MmuCmd, MmuUpdate, MmuextOp};

use crate::env::Env;
use crate::harness::Fail;
use crate::hypercall;
use crate::smp::MAX_VCPUS;

/// The L4 slot of the scratch tree (VA 512 GiB up).
pub const SLOT: u64 = 1;
/// First VA of the scratch tree.
pub const BASE: u64 = SLOT << 39;
/// Data frames per vCPU.
pub const DATA: usize = 8;
/// L2 index of the shared L1.
pub const SHARED: usize = 0;
/// Present, writable, user, accessed, dirty: data leaves and upper-level entries.
pub const RW: u64 = 0x67;
const FD_SELF: u32 = DOMID_SELF as u32;

static MFN_LIST: AtomicU64 = AtomicU64::new(0);
static NR_PAGES: AtomicU64 = AtomicU64::new(0);
static NEXT_PFN: AtomicU64 = AtomicU64::new(0);
static L4: AtomicU64 = AtomicU64::new(0);
static L3: AtomicU64 = AtomicU64::new(0);
static L2: AtomicU64 = AtomicU64::new(0);
static L1S: [AtomicU64; MAX_VCPUS + 1] = [const { AtomicU64::new(0) }; MAX_VCPUS + 1];
static DATAS: [[AtomicU64; DATA]; MAX_VCPUS + 1] =
    [const { [const { AtomicU64::new(0) }; DATA] }; MAX_VCPUS + 1];
/// Cleared frames for the race and retype tests (valid as L1s while they stay zero).
static SCRATCH: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

// Every word here is written by vCPU 0 before a job is published and only read during jobs:
// Relaxed loads and stores, ordered by the job's Release/Acquire (`smp`).

/// The L2 index of vCPU `id`'s own L1.
pub fn own(id: usize) -> usize {
    1 + id
}

/// The VA mapped by entry `l1` of the L1 at L2 index `l2`.
pub fn va(l2: usize, l1: usize) -> u64 {
    BASE + ((l2 as u64) << 21) + ((l1 as u64) << 12)
}

/// The L1 at L2 index `l2` (its MFN).
pub fn l1(l2: usize) -> u64 {
    L1S[l2].load(Ordering::Relaxed)
}

/// Data frame `k` of vCPU `id` (the shared pool is `id == MAX_VCPUS`).
pub fn data(id: usize, k: usize) -> u64 {
    DATAS[id][k].load(Ordering::Relaxed)
}

/// Cleared scratch frame `k` (below 4).
pub fn scratch(k: usize) -> u64 {
    SCRATCH[k].load(Ordering::Relaxed)
}

/// The marker in word 0 of data frame `k` of vCPU `id`.
pub fn marker(id: usize, k: usize) -> u64 {
    0xC0DE_0000_0000 | ((id as u64) << 16) | k as u64
}

/// The kernel's L4 (its MFN).
pub fn kernel_l4() -> u64 {
    L4.load(Ordering::Relaxed)
}

/// The request writing `val` into entry `index` of table `mfn`.
pub fn entry(mfn: u64, index: usize, val: u64) -> MmuUpdate {
    MmuUpdate::new(MmuCmd::NormalPtUpdate, (mfn << 12) + index as u64 * 8, val)
}

/// `mmu_update` of `reqs` on the domain's own tables: `(rc, done)`.
pub fn update(reqs: &[MmuUpdate]) -> (i64, u32) {
    let mut done = 0xDEAD_BEEF;
    // SAFETY: the suites only write entries of the scratch tree and raw words of frames they
    // allocated here, none of which the kernel's own mappings use.
    let rc = unsafe { hypercall::mmu_update(reqs, Some(&mut done), FD_SELF) };
    (rc, done)
}

/// One `mmuext_op`: its rc.
pub fn ext(cmd: u32, arg1: u64, arg2: u64) -> i64 {
    let op = MmuextOp { cmd, arg1, arg2 };
    // SAFETY: the suites pin, unpin, clear and flush only frames and mappings of the scratch
    // tree; nothing the kernel runs on changes.
    unsafe { hypercall::mmuext_op(&[op], None, FD_SELF) }
}

/// Drops this vCPU's whole TLB.
pub fn flush_local() -> Result<(), Fail> {
    match ext(MMUEXT_TLB_FLUSH_LOCAL, 0, 0) {
        0 => Ok(()),
        rc => Err(Fail::new(format_args!("TLB_FLUSH_LOCAL = {rc}"))),
    }
}

fn mfn_of_pfn(pfn: u64) -> u64 {
    let at = MFN_LIST.load(Ordering::Relaxed) + pfn * 8;
    // SAFETY: the P2M list is mapped for the domain's lifetime and `pfn < nr_pages` (the
    // allocator's floor and ceiling).
    unsafe { core::ptr::read_volatile(at as *const u64) }
}

/// A frame nothing maps yet (its MFN), cleared.
pub fn alloc() -> Result<u64, Fail> {
    // Relaxed: a counter; only vCPU 0 allocates.
    let pfn = NEXT_PFN.fetch_sub(1, Ordering::Relaxed);
    // Far above the initial mapping (a few MiB at most); the suites take a few hundred frames.
    if pfn < NR_PAGES.load(Ordering::Relaxed) / 2 {
        return Err(Fail::new(format_args!("out of scratch frames")));
    }
    let mfn = mfn_of_pfn(pfn);
    match ext(MMUEXT_CLEAR_PAGE, mfn, 0) {
        0 => Ok(mfn),
        rc => Err(Fail::new(format_args!("CLEAR_PAGE({mfn:#x}) = {rc}"))),
    }
}

/// Points [`alloc`] at the top of the domain's pseudo-physical memory (once per boot; later
/// calls change nothing, so suites that take frames without the scratch tree can call it too).
pub fn init_frames(env: &Env) {
    if MFN_LIST.load(Ordering::Relaxed) != 0 {
        return;
    }
    NR_PAGES.store(env.si.nr_pages, Ordering::Relaxed);
    NEXT_PFN.store(env.si.nr_pages - 1, Ordering::Relaxed);
    MFN_LIST.store(env.si.mfn_list, Ordering::Relaxed);
}

/// Builds and installs the scratch tree for `n` vCPUs (once per boot; later calls only
/// check it is there).
pub fn build(env: &Env, n: usize) -> Result<(), Fail> {
    if L3.load(Ordering::Relaxed) != 0 {
        return Ok(());
    }
    init_frames(env);
    let l4 = env
        .kernel_l4_mfn()
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for the L4")))?;
    L4.store(l4, Ordering::Relaxed);
    let (l3, l2) = (alloc()?, alloc()?);
    for (k, slot) in L1S.iter().enumerate().take(n + 1) {
        let t = alloc()?;
        slot.store(t, Ordering::Relaxed);
        let (rc, _) = update(&[entry(l2, k, (t << 12) | RW)]);
        if rc != 0 {
            return Err(Fail::new(format_args!("raw L2 write = {rc}")));
        }
    }
    // Data frames of vCPUs 0..n and of the shared pool; their markers are written once the
    // tree is live (`write_markers`).
    for frames in DATAS
        .iter()
        .take(n)
        .chain(core::iter::once(&DATAS[MAX_VCPUS]))
    {
        for f in frames {
            f.store(alloc()?, Ordering::Relaxed);
        }
    }
    for f in &SCRATCH {
        f.store(alloc()?, Ordering::Relaxed);
    }
    let (rc, _) = update(&[entry(l3, 0, (l2 << 12) | RW)]);
    if rc != 0 {
        return Err(Fail::new(format_args!("raw L3 write = {rc}")));
    }
    let (rc, _) = update(&[entry(l4, SLOT as usize, (l3 << 12) | RW)]);
    if rc != 0 {
        return Err(Fail::new(format_args!(
            "installing the scratch tree = {rc}"
        )));
    }
    L2.store(l2, Ordering::Relaxed);
    L3.store(l3, Ordering::Relaxed);
    write_markers(n)
}

/// Writes every data frame's marker through entry 0 of the shared L1.
fn write_markers(n: usize) -> Result<(), Fail> {
    let s = l1(SHARED);
    let ids = (0..n).chain(core::iter::once(MAX_VCPUS));
    for id in ids {
        for k in 0..DATA {
            let (rc, _) = update(&[entry(s, 0, (data(id, k) << 12) | RW)]);
            if rc != 0 {
                return Err(Fail::new(format_args!(
                    "mapping data frame {id}/{k} = {rc}"
                )));
            }
            flush_local()?;
            let at = va(SHARED, 0) as *mut u64;
            // SAFETY: the shared L1's entry 0 maps the data frame just allocated, and nothing
            // else uses that VA now.
            unsafe { core::ptr::write_volatile(at, marker(id, k)) };
        }
    }
    let (rc, _) = update(&[entry(s, 0, 0)]);
    if rc != 0 {
        return Err(Fail::new(format_args!("unmapping = {rc}")));
    }
    flush_local()
}

/// Removes the scratch tree from the L4 (de-validating it).
pub fn teardown() -> Result<(), Fail> {
    let l3 = L3.swap(0, Ordering::Relaxed);
    if l3 == 0 {
        return Ok(());
    }
    let (rc, _) = update(&[entry(kernel_l4(), SLOT as usize, 0)]);
    if rc != 0 {
        return Err(Fail::new(format_args!("removing the scratch tree = {rc}")));
    }
    Ok(())
}
