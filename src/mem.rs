//! Boot-time memory: from the multiboot memory map to the frame table and the frame allocator.
//!
//! RAM is the firmware map's usable regions. The hypervisor image, the boot modules and the first
//! MiB (AP trampoline, BIOS areas — Xen's rule) are never handed out. The frame-table array,
//! sized to the machine's highest frame, and the allocator's bitmap are placed from what is left
//! (below 4 GiB, inside the early direct map); the allocator then owns all remaining RAM.
//! RAM above 4 GiB is not used yet: the direct map covers 0–4 GiB.

use core::mem::size_of;

use boot::arch::{self, DIRECTMAP_SIZE};
use boot::frame_alloc::FrameAllocator;
use boot::memmap::{self, LOW_MEMORY_END, PAGE_SIZE, Range};
use boot::multiboot::{BootInfo, PhysRead, Unreadable};
use hvcore::frame::FrameInfo;

/// Reads physical memory through the direct map (0–4 GiB).
pub struct DirectMap;

impl PhysRead for DirectMap {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let end = paddr.checked_add(buf.len() as u64).ok_or(Unreadable)?;
        if end > DIRECTMAP_SIZE {
            return Err(Unreadable);
        }
        let src = arch::phys_to_virt(paddr).ok_or(Unreadable)? as *const u8;
        // SAFETY: [paddr, end) lies inside the direct map, which maps all of 0–4 GiB; the bytes
        // are firmware/loader data that nothing writes while we copy them.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}

/// Memory as the rest of boot sees it.
pub struct BootMemory {
    pub alloc: FrameAllocator<'static>,
    /// One past the highest RAM frame: the frame table's length.
    pub max_frame: u64,
    pub frame_table: &'static [FrameInfo],
}

/// Why memory setup failed.
#[derive(Debug)]
pub enum MemError {
    Map(memmap::Error),
    Alloc(boot::frame_alloc::Error),
    /// The structure needs more bytes than the address space can express.
    TooLarge,
}

impl core::fmt::Display for MemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MemError::Map(e) => write!(f, "memory map: {e}"),
            MemError::Alloc(e) => write!(f, "frame allocator: {e}"),
            MemError::TooLarge => write!(f, "boot structure too large"),
        }
    }
}

impl BootMemory {
    /// Sets up the frame table and allocator from the boot information.
    pub fn init(info: &BootInfo) -> Result<Self, MemError> {
        let mut ram = memmap::normalise(info.memory_map()).map_err(MemError::Map)?;
        let high = ram.total();
        ram.remove(Range::new(DIRECTMAP_SIZE, u64::MAX))
            .map_err(MemError::Map)?;
        if ram.total() < high {
            warn!(
                "ignoring {} MiB of RAM above 4 GiB (not in the direct map yet)",
                (high - ram.total()) >> 20
            );
        }
        let max_frame = memmap::max_frame(&ram);
        info!(
            "memory: {} MiB usable in {} ranges, max frame {:#x}",
            ram.total() >> 20,
            ram.as_slice().len(),
            max_frame
        );
        let mut holes = [Range::new(0, 0); 1 + boot::multiboot::MAX_MODULES];
        let (img_start, img_end) = arch::image_phys_range();
        holes[0] = Range::new(img_start, img_end);
        for (i, m) in info.modules().enumerate() {
            holes[1 + i] = m.range();
        }
        let mut free = memmap::free_ranges(&ram, &holes, LOW_MEMORY_END).map_err(MemError::Map)?;

        let ft_len = usize::try_from(max_frame).map_err(|_| MemError::TooLarge)?;
        let ft_bytes = ft_len
            .checked_mul(size_of::<FrameInfo>())
            .ok_or(MemError::TooLarge)?;
        let ft_addr =
            memmap::place(&mut free, ft_bytes as u64, PAGE_SIZE).map_err(MemError::Map)?;
        let ft = zeroed_slice::<FrameInfo>(ft_addr, ft_len);
        info!(
            "frame table: {} entries ({} KiB) at {:#x}",
            ft_len,
            ft_bytes.div_ceil(1024),
            ft_addr
        );

        let words = FrameAllocator::bitmap_words(&free);
        let bm_addr =
            memmap::place(&mut free, (words * 8) as u64, PAGE_SIZE).map_err(MemError::Map)?;
        let bitmap = zeroed_slice_mut::<u64>(bm_addr, words);
        let alloc = FrameAllocator::new(&free, bitmap).map_err(MemError::Alloc)?;
        info!(
            "frame allocator: {} frames free ({} MiB) in {} ranges",
            alloc.free_count(),
            (alloc.free_count() * PAGE_SIZE) >> 20,
            free.as_slice().len()
        );
        Ok(BootMemory {
            alloc,
            max_frame,
            frame_table: ft,
        })
    }

    /// A pointer to the first word of frame `mfn` through the direct map.
    pub fn frame_ptr(&self, mfn: u64) -> Option<*mut u64> {
        let paddr = mfn.checked_mul(PAGE_SIZE)?;
        (mfn < self.max_frame).then_some(())?;
        arch::phys_to_virt(paddr).map(|v| v as *mut u64)
    }
}

/// Zeroes `len` elements at physical `paddr` and returns them as a shared slice.
fn zeroed_slice<T>(paddr: u64, len: usize) -> &'static [T] {
    zeroed_slice_mut(paddr, len)
}

/// Zeroes `len` elements at physical `paddr` and returns them as a slice owned by the caller.
fn zeroed_slice_mut<T>(paddr: u64, len: usize) -> &'static mut [T] {
    let virt = arch::phys_to_virt(paddr).expect("placed below 4 GiB by memmap::place") as *mut T;
    // SAFETY: memmap::place carved [paddr, paddr + len * size_of::<T>()) out of free RAM below
    // 4 GiB, so it is mapped, page aligned (enough for T) and used by nothing else. Callers only
    // use T for which all-zero bytes are a valid value (atomics and integers).
    unsafe {
        core::ptr::write_bytes(virt, 0, len);
        core::slice::from_raw_parts_mut(virt, len)
    }
}
