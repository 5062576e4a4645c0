//! The suites, selected by name from the command line, and the scratch pages they write.
//!
//! | suite | contents |
//! |---|---|
//! | `tests` | conformance: start_info and initial address space (`boot`), hypercall encodings and error paths (`mmu`, `vcpu`) |
//! | `smp` | secondary vCPUs, concurrent page-table updates, shootdowns, hostile batches |
//! | `demo` | every vCPU issuing `mmu_update` batches at once, with statistics |
//! | `crash` | a secondary vCPU faults with no handler while the others update page tables |
//!
//! Each test names the spec case it checks (`xen-pv-mmu.md` §8). Every test here must pass on
//! Xen 4.17 (the `smp` suite with as many vCPUs as Xen gives dom0).

mod boot;
mod crash;
mod demo;
mod mmu;
mod smp;
mod smp_sched;
mod smp_tlb;
mod vcpu;

use core::cell::UnsafeCell;

use crate::harness::Test;

/// Suite names, for the "unknown suite" message.
pub const NAMES: &str = "tests, smp, demo, crash";

/// `[Test]` entries named after their functions.
macro_rules! tests {
    ($($module:ident :: $f:ident),* $(,)?) => {
        [$(Test { name: stringify!($f), run: $module::$f }),*]
    };
}

static TESTS: &[Test] = &tests![
    boot::start_info_magic,
    boot::start_info_nr_pages,
    boot::start_info_pt_base,
    boot::p2m_m2p_consistent,
    boot::xen_version_sane,
    boot::hypercall_page_bytes,
    mmu::mmu_update_bad_cmd_enosys,
    mmu::mmuext_unknown_cmds,
    mmu::mmu_update_raw_write_data_page,
    mmu::unpin_not_pinned_einval,
    mmu::pin_initial_l4_again_einval,
    mmu::initial_l4_unpin_repin,
    mmu::update_va_mapping_alias,
    mmu::vm_assist_cmds,
    vcpu::vcpu_op_errors,
];

static SMP: &[Test] = &tests![
    smp::vcpus_up,
    smp::own_batches,
    smp::long_batches,
    smp::shared_l1,
    smp::pin_vs_map,
    smp_sched::preemption_without_yield,
    smp_sched::remote_down_up,
    smp_sched::sched_block,
    smp_tlb::shootdown_uvmf,
    smp_tlb::shootdown_flush_multi,
    smp_tlb::stale_writable_retyped,
    smp_tlb::hostile_batches,
    smp_tlb::vcpus_down,
];

static DEMO: &[Test] = &tests![demo::mmu_update_batches];

static CRASH: &[Test] = &tests![crash::secondary_fault_kills_domain];

/// The suite called `name`, with its canonical name.
pub fn by_name(name: &[u8]) -> Option<(&'static str, &'static [Test])> {
    match name {
        b"tests" => Some(("tests", TESTS)),
        b"smp" => Some(("smp", SMP)),
        b"demo" => Some(("demo", DEMO)),
        b"crash" => Some(("crash", CRASH)),
        _ => None,
    }
}

/// Words in a page.
pub const PAGE_WORDS: usize = 512;

/// A page-aligned page of the image's .bss that only the tests touch. The hypervisor may write it
/// behind the compiler's back (raw `mmu_update` writes, remapping), so it is only accessed through
/// volatile loads and stores of its words.
#[repr(C, align(4096))]
pub struct Page(UnsafeCell<[u64; PAGE_WORDS]>);

// SAFETY: the suites that use `Page` run on vCPU 0 alone, one test after another; every access
// is a volatile word access through `read`/`write`, never a reference to the contents.
unsafe impl Sync for Page {}

impl Page {
    pub const fn new() -> Page {
        Page(UnsafeCell::new([0; PAGE_WORDS]))
    }

    /// The page's VA.
    pub fn va(&self) -> u64 {
        self.0.get() as u64
    }

    /// Word `i` (panics past the page).
    pub fn read(&self, i: usize) -> u64 {
        assert!(i < PAGE_WORDS);
        let word = self.0.get().cast::<u64>().wrapping_add(i);
        // SAFETY: `word` is inside the page, which is mapped for the kernel's lifetime (possibly
        // aliased by a test, which is what the volatile access is for).
        unsafe { core::ptr::read_volatile(word) }
    }

    /// Sets word `i` (panics past the page).
    pub fn write(&self, i: usize, value: u64) {
        assert!(i < PAGE_WORDS);
        let word = self.0.get().cast::<u64>().wrapping_add(i);
        // SAFETY: as in `read`; no reference to the contents exists to be invalidated.
        unsafe { core::ptr::write_volatile(word, value) }
    }

    /// Sets every word to `value`.
    pub fn fill(&self, value: u64) {
        for i in 0..PAGE_WORDS {
            self.write(i, value);
        }
    }
}
