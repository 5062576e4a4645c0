//! Host tests of the MADT parser: tables captured from QEMU boots (`argon.test=dump-madt`, kept in
//! `smp/tests/fixtures/`), cross-checked against the `acpi` crate's own MADT walker, and synthetic
//! tables for the rules and the malformed cases.

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ids(list: &CpuList) -> Vec<u32> {
    list.cpus().iter().map(|c| c.apic_id).collect()
}

/// A MADT with the given entries and a correct length and checksum.
fn table(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut t = b"APIC".to_vec();
    t.extend([0u8; 4]); // length, patched below
    t.extend([3, 0]); // revision, checksum
    t.extend(b"ARGON ARGONTST");
    t.extend([0u8; 12]); // OEM revision, creator id, creator revision
    t.extend(0xfee0_0000u32.to_le_bytes());
    t.extend(1u32.to_le_bytes()); // PCAT_COMPAT
    for e in entries {
        t.extend(e);
    }
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    fix_checksum(&mut t);
    t
}

fn fix_checksum(t: &mut [u8]) {
    t[9] = 0;
    let sum = t.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    t[9] = sum.wrapping_neg();
}

fn lapic(uid: u8, id: u8, flags: u32) -> Vec<u8> {
    let mut e = vec![0, 8, uid, id];
    e.extend(flags.to_le_bytes());
    e
}

fn x2apic(id: u32, flags: u32, uid: u32) -> Vec<u8> {
    let mut e = vec![9, 16, 0, 0];
    e.extend(id.to_le_bytes());
    e.extend(flags.to_le_bytes());
    e.extend(uid.to_le_bytes());
    e
}

fn ioapic() -> Vec<u8> {
    vec![1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]
}

/// The CPUs the `acpi` crate's MADT walker finds, under the same enabled rule.
fn acpi_crate_ids(bytes: &[u8]) -> Vec<u32> {
    use acpi::madt::{Madt, MadtEntry};
    // The crate reads the table in place: give it an exactly sized copy.
    let buf = bytes.to_vec();
    let header = buf.as_ptr().cast::<Madt>();
    // SAFETY: `buf` holds a whole, checksummed MADT of `header.length` bytes (the fixture), and
    // `Madt` is `repr(C, packed)`, so any address is aligned for it; `buf` outlives the walk.
    let madt = unsafe { &*header };
    // SAFETY: `buf` is not moved or freed while the pinned reference is used.
    let madt = unsafe { core::pin::Pin::new_unchecked(madt) };
    let mut out = Vec::new();
    for e in madt.entries() {
        match e {
            MadtEntry::LocalApic(a) if { a.flags } & 1 != 0 && a.apic_id != 0xff => {
                out.push(u32::from(a.apic_id))
            }
            MadtEntry::LocalX2Apic(a) if { a.flags } & 1 != 0 && { a.x2apic_id } != u32::MAX => {
                out.push(a.x2apic_id)
            }
            _ => {}
        }
    }
    out.dedup();
    out
}

#[test]
fn qemu_tables_give_one_cpu_per_smp() {
    for (name, n) in [
        ("madt-smp1.bin", 1u32),
        ("madt-smp4.bin", 4),
        ("madt-smp8.bin", 8),
    ] {
        let bytes = fixture(name);
        let list = cpus_from_madt(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ids(&list), (0..n).collect::<Vec<_>>(), "{name}");
        assert_eq!(list.lapic_addr, 0xfee0_0000, "{name}");
        assert_eq!(
            (
                list.duplicates,
                list.dropped,
                list.online_capable,
                list.unusable
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(
            ids(&list),
            acpi_crate_ids(&bytes),
            "{name}: the acpi crate disagrees"
        );
    }
}

#[test]
fn qemu_hotplug_slots_are_listed_disabled() {
    // -smp 2,maxcpus=4: two more type-0 entries with flags 0 (hot-pluggable, absent).
    let bytes = fixture("madt-smp2-maxcpus4.bin");
    let list = cpus_from_madt(&bytes).expect("valid table");
    assert_eq!(
        (ids(&list), list.unusable, list.online_capable),
        (vec![0, 1], 2, 0)
    );
    assert_eq!(ids(&list), acpi_crate_ids(&bytes));
}

#[test]
fn qemu_x2apic_entries_for_ids_from_255() {
    // q35 -smp 2,maxcpus=300: type-0 entries for IDs 0..=254 and type-9 for 255..=299.
    let mut bytes = fixture("madt-q35-smp2-maxcpus300.bin");
    let list = cpus_from_madt(&bytes).expect("valid table");
    assert_eq!((ids(&list), list.unusable), (vec![0, 1], 298));
    assert_eq!(ids(&list), acpi_crate_ids(&bytes));
    // Enable every x2APIC entry (as if those CPUs were present) and fix the checksum.
    let mut off = MADT_HEADER_LEN;
    let mut enabled = 0;
    while off < bytes.len() {
        if bytes[off] == 9 {
            bytes[off + 8] |= 1;
            enabled += 1;
        }
        off += usize::from(bytes[off + 1]);
    }
    assert_eq!(enabled, 45);
    fix_checksum(&mut bytes);
    let list = cpus_from_madt(&bytes).expect("valid table");
    let want: Vec<u32> = [0, 1].into_iter().chain(255..300).collect();
    assert_eq!(ids(&list), want);
    assert_eq!(list.unusable, 253);
    assert_eq!(
        ids(&list),
        acpi_crate_ids(&bytes),
        "the acpi crate disagrees"
    );
}

#[test]
fn qemu_table_damaged_anywhere_is_rejected_or_still_sane() {
    // Flipping any single byte breaks the checksum, so every variant must be an error.
    let good = fixture("madt-smp4.bin");
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x5a;
        assert!(
            cpus_from_madt(&bad).is_err(),
            "byte {i} flipped but accepted"
        );
    }
    // Truncations never panic and are errors.
    for n in 0..good.len() {
        assert!(
            cpus_from_madt(&good[..n]).is_err(),
            "truncated to {n} accepted"
        );
    }
    // Trailing bytes beyond the header's length are ignored.
    let mut longer = good.clone();
    longer.extend([0xff; 7]);
    assert_eq!(cpus_from_madt(&longer).map(|l| l.len()), Ok(4));
}

#[test]
fn enabled_online_capable_and_broadcast_rules() {
    let t = table(&[
        lapic(0, 0, 1),
        ioapic(),
        lapic(1, 1, 0),    // disabled: unusable
        lapic(2, 2, 2),    // online capable: not started
        lapic(3, 0xff, 1), // broadcast ID
        x2apic(300, 1, 4), // an ID only x2APIC can express
        x2apic(u32::MAX, 1, 5),
        x2apic(301, 2, 6),
        lapic(7, 5, 3), // enabled wins over online capable
    ]);
    let list = cpus_from_madt(&t).expect("valid table");
    assert_eq!(ids(&list), [0, 300, 5]);
    assert_eq!(
        list.cpus()[1],
        Cpu {
            apic_id: 300,
            acpi_uid: 4
        }
    );
    assert_eq!(
        (list.online_capable, list.unusable, list.duplicates),
        (2, 3, 0)
    );
    assert_eq!(acpi_crate_ids(&t), [0, 300, 5]);
}

#[test]
fn duplicates_keep_the_first_entry() {
    let t = table(&[
        lapic(0, 0, 1),
        lapic(1, 1, 1),
        x2apic(1, 1, 9),
        lapic(2, 0, 1),
    ]);
    let list = cpus_from_madt(&t).expect("valid table");
    assert_eq!(ids(&list), [0, 1]);
    assert_eq!(list.cpus()[1].acpi_uid, 1);
    assert_eq!(list.duplicates, 2);
}

#[test]
fn more_than_max_cpus_are_counted_and_dropped() {
    let entries: Vec<Vec<u8>> = (0..MAX_CPUS as u32 + 6).map(|i| x2apic(i, 1, i)).collect();
    let list = cpus_from_madt(&table(&entries)).expect("valid table");
    assert_eq!(list.len(), MAX_CPUS);
    assert_eq!(list.dropped, 6);
}

#[test]
fn apic_address_override() {
    let mut e = vec![5, 12, 0, 0];
    e.extend(0x1_2345_6000u64.to_le_bytes());
    let list = cpus_from_madt(&table(&[lapic(0, 0, 1), e])).expect("valid table");
    assert_eq!(list.lapic_addr, 0x1_2345_6000);
}

#[test]
fn malformed_tables() {
    assert_eq!(cpus_from_madt(&[]), Err(MadtError::TooShort));
    let mut t = table(&[lapic(0, 0, 1)]);
    t[0] = b'X';
    assert_eq!(cpus_from_madt(&t), Err(MadtError::BadSignature));
    let mut t = table(&[lapic(0, 0, 1)]);
    t[4] = 200; // longer than the bytes
    assert!(matches!(
        cpus_from_madt(&t),
        Err(MadtError::BadLength { header: 200, .. })
    ));
    let mut t = table(&[lapic(0, 0, 1)]);
    t[4..8].copy_from_slice(&10u32.to_le_bytes()); // shorter than the header
    assert!(matches!(
        cpus_from_madt(&t),
        Err(MadtError::BadLength { .. })
    ));
    let mut t = table(&[lapic(0, 0, 1)]);
    t[50] ^= 1;
    assert_eq!(cpus_from_madt(&t), Err(MadtError::BadChecksum));
    // Zero-length entry (would loop forever), truncated entry, wrong sizes for CPU entries.
    for bad in [
        vec![7, 0],
        vec![0, 8, 0],
        vec![0, 6, 0, 1, 1, 0],
        vec![9, 12, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0],
        vec![5, 4, 0, 0],
    ] {
        let t = table(&[lapic(0, 0, 1), bad.clone()]);
        assert!(
            matches!(
                cpus_from_madt(&t),
                Err(MadtError::BadEntry { offset: 52, .. })
            ),
            "{bad:?}"
        );
    }
    // Unknown entry types are skipped.
    let t = table(&[vec![0x42, 3, 0], lapic(0, 4, 1)]);
    assert_eq!(cpus_from_madt(&t).map(|l| ids(&l)), Ok(vec![4]));
}

#[test]
fn boot_order_puts_the_bsp_first_and_caps() {
    let t = table(&[
        lapic(0, 0, 1),
        lapic(1, 1, 1),
        lapic(2, 2, 1),
        lapic(3, 3, 1),
    ]);
    let list = cpus_from_madt(&t).expect("valid table");
    assert_eq!(ids(&list.boot_order(2, 64)), [2, 0, 1, 3]);
    let capped = list.boot_order(2, 2);
    assert_eq!((ids(&capped), capped.dropped), (vec![2, 0], 2));
    assert_eq!(
        ids(&list.boot_order(9, 64)),
        [9, 0, 1, 2, 3],
        "a BSP missing from the table is added"
    );
    assert_eq!(ids(&list.boot_order(0, 0)), [0], "never fewer than the BSP");
}
