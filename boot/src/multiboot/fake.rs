//! Test support: fake physical memory and a builder that lays an MBI out the way QEMU's
//! multiboot loader does (boot-notes §2).

use super::{PhysRead, Unreadable};

/// Physical memory made of separate segments; reads must fall inside one segment.
#[derive(Default)]
pub struct FakeMem {
    segments: Vec<(u64, Vec<u8>)>,
}

impl FakeMem {
    pub fn segment(&mut self, base: u64, len: usize) {
        self.segments.push((base, vec![0; len]));
    }

    /// Segment index and offset holding all of `paddr..paddr + len`.
    fn locate(&self, paddr: u64, len: usize) -> Option<(usize, usize)> {
        self.segments
            .iter()
            .enumerate()
            .find_map(|(i, (base, bytes))| {
                let off = usize::try_from(paddr.checked_sub(*base)?).ok()?;
                (off.checked_add(len)? <= bytes.len()).then_some((i, off))
            })
    }

    pub fn write(&mut self, paddr: u64, bytes: &[u8]) {
        let (i, off) = self
            .locate(paddr, bytes.len())
            .expect("write outside fake memory");
        self.segments[i].1[off..off + bytes.len()].copy_from_slice(bytes);
    }

    pub fn write_u32(&mut self, paddr: u64, v: u32) {
        self.write(paddr, &v.to_le_bytes());
    }
}

impl PhysRead for FakeMem {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let (i, off) = self.locate(paddr, buf.len()).ok_or(Unreadable)?;
        buf.copy_from_slice(&self.segments[i].1[off..off + buf.len()]);
        Ok(())
    }
}

// The MBI at 0x9500 and the modules at 0x330000/0x331000 as boot-notes §2 saw them; the memory
// map beside the MBI in low memory and the module list and strings in the page below the first
// module, as in QEMU's multiboot buffer (their exact addresses do not matter to the parser).
pub const MMAP_AT: u64 = 0x9000;
pub const MBI_AT: u64 = 0x9500;
pub const MODS_AT: u64 = 0x32f000;

/// What goes into an MBI; [`Mbi::qemu`] is what QEMU passes for
/// `-m 128M -kernel argon -append "a b" -initrd "a.bin arg1,b.bin arg2"`.
pub struct Mbi {
    pub flags: u32,
    pub cmdline: &'static str,
    pub modules: Vec<(u32, u32, &'static str)>,
    /// (base, end, e820 type); each entry gets `size = 20`.
    pub mmap: Vec<(u64, u64, u32)>,
    pub mmap_at: u64,
}

impl Mbi {
    pub fn qemu() -> Self {
        Self {
            flags: 0x24f,
            cmdline: "/build/argon a b",
            modules: vec![
                (0x330000, 0x330011, "a.bin arg1"),
                (0x331000, 0x331011, "b.bin arg2"),
            ],
            mmap: vec![
                (0, 0x9fc00, 1),
                (0x9fc00, 0xa0000, 2),
                (0xf0000, 0x100000, 2),
                (0x100000, 0x7fe0000, 1),
                (0x7fe0000, 0x8000000, 2),
                (0xfffc0000, 0x1_0000_0000, 2),
            ],
            mmap_at: MMAP_AT,
        }
    }

    pub fn build(&self) -> FakeMem {
        let mut mem = FakeMem::default();
        mem.segment(0x8000, 0x2000); // 0x8000..0xa000: e820 copy and MBI
        mem.segment(MODS_AT, 0x1000); // module list and strings
        for &(start, end, _) in &self.modules {
            mem.segment(u64::from(start), (end - start) as usize);
        }
        fn put_str(mem: &mut FakeMem, at: &mut u64, s: &str) -> u32 {
            let addr = *at as u32;
            mem.write(*at, s.as_bytes());
            mem.write(*at + s.len() as u64, &[0]);
            *at += s.len() as u64 + 1;
            addr
        }
        let mut strings = MODS_AT + 16 * self.modules.len() as u64;
        let cmdline = put_str(&mut mem, &mut strings, self.cmdline);
        let loader = put_str(&mut mem, &mut strings, "qemu");
        for (i, &(start, end, name)) in self.modules.iter().enumerate() {
            let name = put_str(&mut mem, &mut strings, name);
            let entry = MODS_AT + 16 * i as u64;
            for (off, v) in [(0, start), (4, end), (8, name), (12, 0)] {
                mem.write_u32(entry + off, v);
            }
        }
        for (i, &(base, end, kind)) in self.mmap.iter().enumerate() {
            let at = self.mmap_at + 24 * i as u64;
            mem.write_u32(at, 20);
            mem.write(at + 4, &base.to_le_bytes());
            mem.write(at + 12, &(end - base).to_le_bytes());
            mem.write_u32(at + 20, kind);
        }
        let fields = [
            (0, self.flags),
            (4, 639),                           // mem_lower, KiB
            (8, (0x7fe0000 - 0x100000) / 1024), // mem_upper, KiB
            (12, 0x8000_ffff),                  // boot_device
            (16, cmdline),
            (20, self.modules.len() as u32),
            (24, MODS_AT as u32),
            (44, 24 * self.mmap.len() as u32),
            (48, self.mmap_at as u32),
            (64, loader),
        ];
        for (off, v) in fields {
            mem.write_u32(MBI_AT + off, v);
        }
        mem
    }
}
