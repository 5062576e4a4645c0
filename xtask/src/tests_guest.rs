//! Guest tests on Argon for `cargo xtask test` (QEMU, TCG): the guest kernel's `tests` suite
//! (whose exception tests, `guest/src/suites/exceptions.rs`, check bounce frames, `iret` and
//! XSA-7), malformed modules, and a guest that faults with no handler (the multi-vCPU guest
//! cases are in `tests_smp`, the multi-domain ones in `tests_domains`). The parser these
//! fixtures exercise, `abi::pv_image`, has its own host tests in `abi/tests/`.
//!
//! The one small PV kernel that cannot be a test of the suite, because it kills its domain
//! (`fault-guest`), is synthesised here ([`pv_image`]): code at 0x100000, the hypercall page at
//! 0x101000, data at 0x102000, Xen notes in a PT_NOTE segment. Its code is the machine code of
//! the listing below (GNU as, `ld -Ttext=0x100000 -Tdata=0x102000`), kept as bytes so that
//! tests need no assembler. Every case must see its lines *and* the exact exit status (33
//! success, 35 failure); the last expected line is the final marker.

use std::path::{Path, PathBuf};

use crate::qemu::{EXIT_FAILURE, EXIT_SUCCESS};
use crate::tests::Case;

/// Where the kernels are linked (VIRT_BASE 0, so PFN = VA / 4 KiB).
const TEXT: u64 = 0x10_0000;
const HYPERCALL_PAGE: u64 = 0x10_1000;
const DATA: u64 = 0x10_2000;

/// `fault-guest`: prints a line, then reads 0x40000000 (outside the 4 MiB initial mapping)
/// with no trap table: the domain must be killed, the hypervisor must not.
///
/// ```text
/// _start: xor %edi,%edi; mov $41,%esi; lea msg(%rip),%rdx; call HC+18*32   # console_io
///         mov 0x40000000,%rax                                               # #PF
///         ud2
/// msg:    .ascii "fault-guest: reading an unmapped address\n"
/// ```
const FAULT_TEXT: &[&str] = &[
    "31ffbe29000000488d150f000000e82d120000488b0425000000400f0b6661756c742d67756573743a2072656164696e",
    "6720616e20756e6d617070656420616464726573730a",
];

/// PASS lines of the `tests` suite's exception and hypercall-entry tests
/// (`guest/src/suites/exceptions.rs`), which replaced the generated `traps-guest` kernel.
const SUITE_BOUNCES: [&str; 9] = [
    "guest: PASS pf_unmapped_read_bounced",
    "guest: PASS pf_m2p_write_bounced",
    "guest: PASS pf_xen_slot_read_bounced",
    "guest: PASS gp_noncanonical_load_bounced",
    "guest: PASS gp_iret_noncanonical_bounced",
    "guest: PASS ud_bounced",
    "guest: PASS multicall_two_entries",
    "guest: PASS bad_buffer_pointers_efault",
    "guest: PASS unknown_hypercall_enosys",
];

fn hex(lines: &[&str]) -> Vec<u8> {
    let s: String = lines.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex constant"))
        .collect()
}

fn fault_guest() -> Vec<u8> {
    pv_image("fault-guest", &hex(FAULT_TEXT), &[], true)
}

/// One Xen ELF note (owner "Xen").
fn note(out: &mut Vec<u8>, kind: u32, desc: &[u8]) {
    for word in [4u32, desc.len() as u32, kind] {
        out.extend(word.to_le_bytes());
    }
    out.extend(b"Xen\0");
    out.extend(desc);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// The notes of a generic-loader kernel at 0x100000: GUEST_OS, XEN_VERSION, LOADER,
/// VIRT_BASE 0, PADDR_OFFSET 0, ENTRY and HYPERCALL_PAGE.
fn standard_notes(guest_os: &str) -> Vec<u8> {
    let mut n = Vec::new();
    note(&mut n, 6, format!("{guest_os}\0").as_bytes());
    note(&mut n, 5, b"xen-3.0\0");
    note(&mut n, 8, b"generic\0");
    note(&mut n, 3, &0u64.to_le_bytes());
    note(&mut n, 4, &0u64.to_le_bytes());
    note(&mut n, 1, &TEXT.to_le_bytes());
    note(&mut n, 2, &HYPERCALL_PAGE.to_le_bytes());
    n
}

/// A PV kernel ELF: one RWX PT_LOAD of three pages (text, hypercall page, data) at 0x100000
/// and, with `notes`, a PT_NOTE holding [`standard_notes`].
pub fn pv_image(guest_os: &str, text: &[u8], data: &[u8], notes: bool) -> Vec<u8> {
    image_with_notes(
        text,
        data,
        notes.then(|| standard_notes(guest_os)).as_deref(),
    )
}

fn image_with_notes(text: &[u8], data: &[u8], notes: Option<&[u8]>) -> Vec<u8> {
    assert!(text.len() <= 4096 && data.len() <= 4096);
    let phnum: u16 = if notes.is_some() { 2 } else { 1 };
    let mut f = vec![0u8; 0x4000];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4..8].copy_from_slice(&[2, 1, 1, 0]);
    let put = |f: &mut Vec<u8>, at: usize, v: &[u8]| f[at..at + v.len()].copy_from_slice(v);
    put(&mut f, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut f, 18, &62u16.to_le_bytes()); // x86-64
    put(&mut f, 20, &1u32.to_le_bytes());
    put(&mut f, 24, &TEXT.to_le_bytes()); // e_entry
    put(&mut f, 32, &64u64.to_le_bytes()); // e_phoff
    put(&mut f, 52, &64u16.to_le_bytes()); // e_ehsize
    put(&mut f, 54, &56u16.to_le_bytes());
    put(&mut f, 56, &phnum.to_le_bytes());
    put(&mut f, 58, &64u16.to_le_bytes());
    let phdr = |kind: u32, flags: u32, off: u64, va: u64, len: u64, align: u64| {
        let mut p = Vec::new();
        p.extend(kind.to_le_bytes());
        p.extend(flags.to_le_bytes());
        for v in [off, va, va, len, len, align] {
            p.extend(v.to_le_bytes());
        }
        p
    };
    put(&mut f, 64, &phdr(1, 7, 0x1000, TEXT, 0x3000, 0x1000));
    if let Some(n) = notes {
        put(&mut f, 120, &phdr(4, 4, 0x4000, 0, n.len() as u64, 4));
        f.extend(n);
    }
    put(&mut f, 0x1000, text);
    put(&mut f, 0x1000 + (DATA - TEXT) as usize, data);
    f
}

fn fixture(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    if let Err(e) = std::fs::write(&path, bytes) {
        // The case then fails with QEMU's own error about the missing module.
        eprintln!("cannot write fixture {}: {e}", path.display());
    }
    path
}

fn case(
    name: &'static str,
    modules: Vec<(PathBuf, &str)>,
    status: i32,
    expect: Vec<&'static str>,
) -> Case {
    Case {
        name,
        smp: 1,
        cpu: "max",
        cmdline: "",
        modules: modules
            .into_iter()
            .map(|(p, a)| (p, a.to_string()))
            .collect(),
        status,
        seabios: false,
        expect,
    }
}

/// The guest cases; `guest_elf` is the guest kernel (`target/x86_64-unknown-none/release/guest`).
pub fn cases(guest_elf: &Path) -> Vec<Case> {
    let dir = crate::root().join("target/xtask/fixtures");
    let _ = std::fs::create_dir_all(&dir);
    let text = fixture(&dir, "notes.txt", b"this is a text file, not a kernel\n");
    let no_notes = fixture(
        &dir,
        "no-notes.elf",
        &pv_image("x", &hex(FAULT_TEXT), &[], false),
    );
    let fault = fixture(&dir, "fault-guest.elf", &fault_guest());
    let guest = || (guest_elf.to_path_buf(), "tests");
    let suite_ok = [
        "(d0) guest: suite tests",
        "guest: done",
        ", 0 failed",
        "argon: d0: shutdown: poweroff",
        "argon: d0: audit at shutdown: 0 discrepancies",
    ];
    let mut malformed = suite_ok.to_vec();
    malformed.extend([
        "module 1 (",
        "not an ELF file (bad magic); domain 1 not created",
        "module 2 (",
        "no Xen ELF notes (not a PV kernel); domain 2 not created",
        "argon: audit: 0 discrepancies",
        "argon: exit: success",
    ]);
    let mut fault_d1 = suite_ok.to_vec();
    fault_d1.extend([
        "(d1) fault-guest: reading an unmapped address",
        "argon: d1: crashed: #PF page fault in guest kernel mode",
        "cr2 0x40000000",
        "d1 vCPU 0 registers:",
        "argon: d1: audit at shutdown: 0 discrepancies",
        "argon: audit: 0 discrepancies",
        "argon: exit: success",
    ]);
    let mut suite = suite_ok.to_vec();
    // The moved exception tests (formerly a generated `traps-guest` kernel) must have run.
    suite.extend(SUITE_BOUNCES);
    suite.extend(["argon: audit: 0 discrepancies", "argon: exit: success"]);
    let mut v = vec![
        case("guest/tests-suite", vec![guest()], EXIT_SUCCESS, suite),
        case(
            "guest/malformed-modules",
            vec![guest(), (text, ""), (no_notes, "mem=16M")],
            EXIT_SUCCESS,
            malformed,
        ),
        case(
            "guest/fault-no-handler-domu",
            vec![guest(), (fault.clone(), "mem=16M")],
            EXIT_SUCCESS,
            fault_d1,
        ),
        case(
            "guest/fault-no-handler-dom0",
            vec![(fault, "mem=16M")],
            EXIT_FAILURE,
            vec![
                "(d0) fault-guest: reading an unmapped address",
                "argon: d0: crashed: #PF page fault",
                "argon: audit: 0 discrepancies",
                "argon: exit: failure (d0 crash)",
            ],
        ),
    ];
    v.extend(crate::tests_smp::guest_cases(guest_elf));
    v.extend(crate::tests_domains::cases(guest_elf));
    v
}
