//! Host tests of the MBI parser over fake physical memory laid out as QEMU does.

use super::fake::{FakeMem, MBI_AT, MMAP_AT, MODS_AT, Mbi};
use super::*;
use crate::{cmdline, memmap};

fn parse_mem(mem: &FakeMem) -> Result<BootInfo, Error> {
    parse(BOOTLOADER_MAGIC, MBI_AT, mem)
}

fn qemu_with(edit: impl FnOnce(&mut FakeMem)) -> Result<BootInfo, Error> {
    let mut mem = Mbi::qemu().build();
    edit(&mut mem);
    parse_mem(&mem)
}

#[test]
fn qemu_layout() {
    let info = parse_mem(&Mbi::qemu().build()).unwrap();
    assert_eq!(info.flags(), 0x24f);
    assert_eq!(info.mbi_range(), Range::new(MBI_AT, MBI_AT + 68));
    assert_eq!(
        info.basic_memory(),
        Some(BasicMemory {
            lower_kib: 639,
            upper_kib: 129920
        })
    );
    assert_eq!(
        (info.cmdline(), info.loader_name()),
        ("/build/argon a b", Some("qemu"))
    );
    let modules: Vec<_> = info.modules().collect();
    assert_eq!(modules.len(), 2);
    assert_eq!(
        modules[0],
        Module {
            start: 0x330000,
            end: 0x330011,
            cmdline: "a.bin arg1"
        }
    );
    assert_eq!(modules[1].range(), Range::new(0x331000, 0x331011));
    assert_eq!(modules[1].cmdline, "b.bin arg2");
    let want: Vec<_> = Mbi::qemu()
        .mmap
        .iter()
        .map(|&(b, e, k)| Region {
            base: b,
            len: e - b,
            kind: RegionKind::from_e820(k),
        })
        .collect();
    assert_eq!(info.memory_map(), want);
    assert!(format!("{info:?}").contains("b.bin arg2"));

    // The pieces downstream of the parser accept it.
    let ram = memmap::normalise(info.memory_map()).unwrap();
    assert_eq!(memmap::max_frame(&ram), 0x7fe0);
    let (options, warnings) = cmdline::parse(info.cmdline());
    assert_eq!(options, cmdline::Options::DEFAULT);
    assert_eq!(
        warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        ["unknown option 'a'", "unknown option 'b'"]
    );
    let (m, _) = cmdline::parse_module(modules[0].cmdline);
    assert_eq!(
        (m.path, m.guest_args().collect::<Vec<_>>()),
        ("a.bin", vec!["arg1"])
    );
}

#[test]
fn optional_parts_follow_the_flags() {
    // Only the memory map: the other fields hold garbage pointers that must not be followed.
    let info = qemu_with(|mem| {
        mem.write_u32(MBI_AT, flags::MEMORY_MAP);
        for off in [16, 20, 24, 64] {
            mem.write_u32(MBI_AT + off, 0xdead_0000);
        }
    })
    .unwrap();
    assert_eq!(
        (info.cmdline(), info.loader_name(), info.basic_memory()),
        ("", None, None)
    );
    assert_eq!((info.modules().len(), info.memory_map().len()), (0, 6));
    assert_eq!(info.mbi_range(), Range::new(MBI_AT, MBI_AT + 52));
    // A null module string is an empty command line.
    let info = qemu_with(|mem| mem.write_u32(MODS_AT + 8, 0)).unwrap();
    assert_eq!(info.modules().next().map(|m| m.cmdline), Some(""));
    let info = qemu_with(|mem| mem.write_u32(MBI_AT + 20, 0)).unwrap();
    assert_eq!(info.modules().len(), 0);
}

#[test]
fn missing_memory_map_and_bad_magic() {
    let err = qemu_with(|mem| mem.write_u32(MBI_AT, 0x20f)).unwrap_err();
    assert_eq!(err, Error::NoMemoryMap { flags: 0x20f });
    let mem = Mbi::qemu().build();
    assert_eq!(
        parse(0x36d7_6289, MBI_AT, &mem).unwrap_err(),
        Error::BadMagic(0x36d7_6289)
    );
    let err = parse(BOOTLOADER_MAGIC, 0x20_0000, &mem).unwrap_err();
    assert_eq!(
        err,
        Error::Unreadable {
            item: Item::Info,
            paddr: 0x20_0000,
            len: 4
        }
    );
}

#[test]
fn module_errors() {
    let count = |n| move |mem: &mut FakeMem| mem.write_u32(MBI_AT + 20, n);
    assert_eq!(
        qemu_with(count(17)).unwrap_err(),
        Error::TooManyModules { count: 17 }
    );
    assert_eq!(
        qemu_with(count(u32::MAX)).unwrap_err(),
        Error::TooManyModules { count: u32::MAX }
    );
    // Three entries fit in the page, but the third is zeros over the strings: not a real module.
    let err = qemu_with(count(3)).unwrap_err();
    assert!(
        matches!(err, Error::ModuleEndBeforeStart { index: 2, .. }),
        "{err:?}"
    );
    let err = qemu_with(|mem| mem.write_u32(MODS_AT + 16 + 4, 0x330fff)).unwrap_err();
    let want = Error::ModuleEndBeforeStart {
        index: 1,
        start: 0x331000,
        end: 0x330fff,
    };
    assert_eq!(err, want);
    assert_eq!(
        err.to_string(),
        "module 1 ends at 0x330fff before its start 0x331000"
    );
    let err = qemu_with(|mem| mem.write_u32(MBI_AT + 24, 0xffff_fff8)).unwrap_err();
    assert_eq!(
        err,
        Error::Unreadable {
            item: Item::ModuleList,
            paddr: 0xffff_fff8,
            len: 4
        }
    );
}

#[test]
fn string_errors() {
    // Pointers outside memory.
    let err = qemu_with(|mem| mem.write_u32(MODS_AT + 16 + 8, 0x5000_0000)).unwrap_err();
    let item = Item::ModuleCmdline(1);
    assert_eq!(
        err,
        Error::Unreadable {
            item,
            paddr: 0x5000_0000,
            len: 1
        }
    );
    let err = qemu_with(|mem| mem.write_u32(MBI_AT + 16, 0xffff_ffff)).unwrap_err();
    assert_eq!(
        err,
        Error::Unreadable {
            item: Item::Cmdline,
            paddr: 0xffff_ffff,
            len: 1
        }
    );
    // No NUL before the end of memory: the read past the end fails.
    let err = qemu_with(|mem| {
        mem.write_u32(MBI_AT + 64, 0x9ff0);
        mem.write(0x9ff0, &[b'q'; 16]);
    })
    .unwrap_err();
    assert_eq!(
        err,
        Error::Unreadable {
            item: Item::LoaderName,
            paddr: 0xa000,
            len: 1
        }
    );
    let err = qemu_with(|mem| mem.write(MODS_AT + 0x30, &[0xff, 0xfe, 0])).unwrap_err();
    assert_eq!(
        err,
        Error::StringNotUtf8 {
            item: Item::Cmdline
        }
    );
}

#[test]
fn string_limits() {
    let long = |len: usize| {
        move |mem: &mut FakeMem| {
            mem.segment(0x100_0000, 0x3000);
            mem.write(0x100_0000, &vec![b'k'; len]);
            mem.write_u32(MBI_AT + 16, 0x100_0000);
        }
    };
    let info = qemu_with(long(MAX_STRING_LEN)).unwrap();
    assert_eq!(info.cmdline().len(), MAX_STRING_LEN);
    let err = qemu_with(long(MAX_STRING_LEN + 1)).unwrap_err();
    assert_eq!(
        err,
        Error::StringTooLong {
            item: Item::Cmdline
        }
    );
    // Three near-maximal strings do not fit the arena together.
    let err = qemu_with(|mem| {
        long(4000)(mem);
        mem.write(0x100_1000, &vec![b'n'; 4000]);
        mem.write_u32(MBI_AT + 64, 0x100_1000);
        mem.write_u32(MODS_AT + 8, 0x100_0000);
    })
    .unwrap_err();
    assert_eq!(
        err,
        Error::StringSpaceFull {
            item: Item::ModuleCmdline(0)
        }
    );
}

#[test]
fn memory_map_errors() {
    let length = |n| move |mem: &mut FakeMem| mem.write_u32(MBI_AT + 44, n);
    let truncated = |offset, length| Err(Error::MmapTruncated { offset, length });
    assert_eq!(qemu_with(length(143)).map(|_| ()), truncated(120, 143));
    assert_eq!(qemu_with(length(122)).map(|_| ()), truncated(120, 122));
    assert_eq!(qemu_with(length(2)).map(|_| ()), truncated(0, 2));
    assert_eq!(qemu_with(length(0)).unwrap().memory_map(), []);
    let err = qemu_with(|mem| mem.write_u32(MMAP_AT + 48, 12)).unwrap_err();
    assert_eq!(
        err,
        Error::MmapEntryTooSmall {
            offset: 48,
            size: 12
        }
    );
    let err = qemu_with(|mem| mem.write_u32(MBI_AT + 48, 0x7000_0000)).unwrap_err();
    assert_eq!(
        err,
        Error::Unreadable {
            item: Item::MemoryMap,
            paddr: 0x7000_0000,
            len: 4
        }
    );
    let err = qemu_with(|mem| mem.write(MMAP_AT + 24 * 5 + 12, &u64::MAX.to_le_bytes()));
    let want = Error::MmapEntryOverflow {
        index: 5,
        base: 0xfffc0000,
        len: u64::MAX,
    };
    assert_eq!(err.unwrap_err(), want);
}

#[test]
fn memory_map_entry_sizes() {
    // An entry may be longer than 20 bytes; the next one starts `size + 4` after it.
    let mut mbi = Mbi::qemu();
    mbi.mmap.truncate(2);
    let mut mem = mbi.build();
    mem.write_u32(MMAP_AT, 28);
    let mut second = 20u32.to_le_bytes().to_vec();
    second.extend(
        0x9fc00u64
            .to_le_bytes()
            .into_iter()
            .chain(0x400u64.to_le_bytes()),
    );
    mem.write(MMAP_AT + 32, &second);
    mem.write_u32(MMAP_AT + 52, 2);
    mem.write_u32(MBI_AT + 44, 56);
    let info = parse_mem(&mem).unwrap();
    let kinds: Vec<_> = info
        .memory_map()
        .iter()
        .map(|r| (r.base, r.len, r.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, 0x9fc00, RegionKind::Usable),
            (0x9fc00, 0x400, RegionKind::Reserved)
        ]
    );
    // More entries than fit.
    let mut mbi = Mbi::qemu();
    mbi.mmap = (0..=MAX_MMAP_ENTRIES as u64)
        .map(|i| (i << 12, (i + 1) << 12, 1))
        .collect();
    mbi.mmap_at = 0x8000;
    assert_eq!(
        parse_mem(&mbi.build()).unwrap_err(),
        Error::TooManyMmapEntries
    );
    mbi.mmap.pop();
    assert_eq!(
        parse_mem(&mbi.build()).unwrap().memory_map().len(),
        MAX_MMAP_ENTRIES
    );
}
