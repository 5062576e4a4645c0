//! The suites, selected by name from the command line, and the scratch pages they write.
//!
//! | suite | contents |
//! |---|---|
//! | `tests` | conformance: start_info and initial address space (`boot`), hypercall encodings and error paths (`mmu`, `vcpu`), a page-table tree's life (`lifecycle`), refused requests (`reject`, `reject_pt`), stored entries, retyping and linear-use limits (`entries`), stores into read-only L1s emulated as writable page tables (`ptwr`), encoding edges: NULL `pdone`, guest-set continuations, SET_LDT, INVLPG and `update_va_mapping` flush encodings (`encodings`), exception bounces (`exceptions`), descriptor tables and emulated CR moves (`desc`) |
//! | `smp` | secondary vCPUs (one brought up with a GDT), concurrent page-table updates, per-vCPU GDTs and data selectors across switches (`smp_segs`), shootdowns, hostile batches |
//! | `demo` | every vCPU issuing `mmu_update` batches at once, with statistics |
//! | `crash` | a secondary vCPU faults with no handler while the others update page tables |
//! | `mmu-stress` | perf workload: `mmu_update` scaling in three layouts, shootdown latency |
//!
//! A domain that is not the initial domain runs the `isolation` tests first in `tests`
//! (`prelude`): what it may not do to domain 0, which runs beside it (Argon only: under Xen the
//! test guest is always dom0).
//!
//! Each test names the spec case it checks (`xen-pv-mmu.md` §8). Every test here must pass on
//! Xen 4.17 (the `smp` suite with as many vCPUs as Xen gives dom0).

mod boot;
mod crash;
mod demo;
mod desc;
mod encodings;
mod entries;
mod exceptions;
mod fpu;
mod isolation;
mod lifecycle;
mod mmu;
mod ops;
mod ptwr;
mod reject;
mod reject_pt;
mod smp;
mod smp_sched;
mod smp_segs;
mod smp_tlb;
mod stress;
mod vcpu;

use core::cell::UnsafeCell;

use crate::harness::Test;

/// Suite names, for the "unknown suite" message.
pub const NAMES: &str = "tests, smp, demo, crash, mmu-stress";

/// `[Test]` entries named after their functions.
macro_rules! tests {
    ($($module:ident :: $f:ident),* $(,)?) => {
        [$(Test { name: stringify!($f), run: $module::$f }),*]
    };
}

static TESTS: &[Test] = &tests![
    boot::start_info_magic,
    fpu::sse_registers_usable,
    fpu::fpu_taskswitch_nm_once,
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
    lifecycle::page_table_lifecycle,
    reject::rw_map_pinned_table_ebusy,
    reject::pin_l1_mapped_rw_einval,
    reject::pin_l1_self_map,
    reject::map_unowned_ram_ebusy,
    reject::map_hypervisor_frame_ebusy,
    reject::map_all_ones_frame_einval,
    reject::map_lapic_mmio_eperm,
    reject::mmu_update_batch_bad_cmd,
    reject::mmuext_batch_bad_cmd,
    reject::request_array_bad_pointer_efault,
    reject::request_array_runs_past_lower_half,
    reject::flush_multi_bad_mask_einval,
    reject::bad_domain_ids_esrch,
    reject::uvm_bad_va_einval,
    reject::clear_page_pinned_l1_einval,
    reject_pt::l4_xen_slots_einval,
    reject_pt::l4_pin_overwrites_xen_slots,
    reject_pt::l4_self_map_read_only,
    reject_pt::linear_l2_rules,
    reject_pt::upper_entry_bad_flags_einval,
    reject_pt::upper_entry_level_rules,
    entries::former_l4_referenced_as_l3,
    entries::linear_use_limit,
    entries::l1_entries_stored_adjusted,
    entries::preserve_ad_keeps_accessed_dirty,
    ptwr::ptwr_store_emulated,
    ptwr::ptwr_table_mapping_faults,
    ptwr::ptwr_misaligned_or_l2_faults,
    ptwr::ptwr_half_store_merged,
    ptwr::ptwr_cmpxchg,
    ptwr::ptwr_assist_disabled,
    encodings::null_pdone_accepted,
    encodings::continuation_count_from_guest,
    encodings::final_return_call_returns_fd,
    encodings::set_ldt_checks,
    encodings::invlpg_bad_va_ignored,
    encodings::uvm_multi_bad_bitmap_efault,
    encodings::uvm_flush_type_3,
    encodings::uvm_otherdomain_unknown_esrch,
    exceptions::pf_unmapped_read_bounced,
    exceptions::pf_m2p_write_bounced,
    exceptions::pf_xen_slot_read_bounced,
    exceptions::gp_noncanonical_load_bounced,
    exceptions::gp_iret_noncanonical_bounced,
    exceptions::ud_bounced,
    exceptions::multicall_two_entries,
    exceptions::bad_buffer_pointers_efault,
    exceptions::unknown_hypercall_enosys,
    desc::set_gdt_frame_not_writable,
    desc::set_gdt_refused,
    desc::set_gdt_validates_frame,
    desc::update_descriptor_stores_checked_form,
    desc::update_descriptor_refused,
    desc::gdt_selector_loads,
    desc::read_cr3_is_kernel_base,
    desc::read_cr2_after_page_fault,
    desc::write_cr3_emulated,
];

static SMP: &[Test] = &tests![
    smp_segs::initialise_gdt_refused,
    smp::vcpus_up,
    smp::own_batches,
    smp::long_batches,
    smp::shared_l1,
    smp::pin_vs_map,
    smp_sched::preemption_without_yield,
    smp_sched::remote_down_up,
    smp_sched::sched_block,
    fpu::state_survives_switches,
    smp_segs::secondary_gdt_selector,
    smp_segs::selectors_survive_switches,
    smp_tlb::shootdown_uvmf,
    smp_tlb::shootdown_flush_multi,
    smp_tlb::stale_writable_retyped,
    smp_tlb::hostile_batches,
    smp_tlb::vcpus_down,
];

/// Run before `tests` by a domain that is not the initial domain, while domain 0 runs beside it.
static ISOLATION: &[Test] = &tests![
    isolation::map_foreign_frame_ebusy,
    isolation::map_with_fd_dom0_eperm,
    isolation::update_in_foreign_frame_einval,
    isolation::machphys_foreign_einval,
    isolation::pin_foreign_refused,
    isolation::baseptr_foreign_einval,
    isolation::update_va_mapping_foreign_ebusy,
    isolation::remote_shutdown_and_audit_eperm,
];

static DEMO: &[Test] = &tests![demo::mmu_update_batches];

static CRASH: &[Test] = &tests![crash::secondary_fault_kills_domain];

static STRESS: &[Test] = &tests![stress::mmu_stress];

/// The tests a domain runs before suite `name`: the isolation tests before `tests` in a domain
/// that is not the initial domain (`initial`), else none.
pub fn prelude(name: &str, initial: bool) -> &'static [Test] {
    if name == "tests" && !initial {
        ISOLATION
    } else {
        &[]
    }
}

/// The suite called `name`, with its canonical name.
pub fn by_name(name: &[u8]) -> Option<(&'static str, &'static [Test])> {
    match name {
        b"tests" => Some(("tests", TESTS)),
        b"smp" => Some(("smp", SMP)),
        b"demo" => Some(("demo", DEMO)),
        b"crash" => Some(("crash", CRASH)),
        b"mmu-stress" => Some(("mmu-stress", STRESS)),
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
