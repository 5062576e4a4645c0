//! The MADT ("APIC" table) as a pure function of its bytes: which CPUs exist and may be started.
//!
//! Rules (ACPI 6.5 §5.2.12.2 and §5.2.12.12): a Local APIC (type 0, 8 bytes) or Local x2APIC
//! (type 9, 16 bytes) entry names one processor. Flags bit 0 (Enabled) means it may be started
//! now; bit 1 (Online Capable) without bit 0 means it can be hot-added later, so it is counted but
//! not started; neither bit means unusable. An ID seen twice (firmware that lists a CPU in both a
//! type 0 and a type 9 entry, or simply twice) keeps its first entry. The APIC ID 0xff in a type 0
//! entry and 0xffff_ffff in a type 9 entry are broadcast IDs, never a CPU. Entries past
//! [`MAX_CPUS`] are counted in [`CpuList::dropped`] and left out. Other entry types are skipped,
//! except type 5 (local APIC address override). Every length is checked against the slice: a
//! malformed table is an error, never a panic or an out-of-bounds read.

use crate::MAX_CPUS;

/// Size of the MADT's fixed part: the 36-byte SDT header, the local APIC address and the flags.
pub const MADT_HEADER_LEN: usize = 44;

/// Why a MADT was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MadtError {
    /// Fewer bytes than the fixed header.
    TooShort,
    /// The signature is not `APIC`.
    BadSignature,
    /// The header's length is below the fixed header or beyond the bytes given.
    BadLength { header: u32, available: usize },
    /// The bytes do not sum to zero.
    BadChecksum,
    /// An entry at `offset` (from the table start) is truncated or has the wrong length.
    BadEntry { offset: usize, kind: u8, len: u8 },
}

impl core::fmt::Display for MadtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::TooShort => write!(f, "shorter than the {MADT_HEADER_LEN}-byte header"),
            Self::BadSignature => write!(f, "signature is not APIC"),
            Self::BadLength { header, available } => {
                write!(f, "header length {header} but {available} bytes")
            }
            Self::BadChecksum => write!(f, "checksum does not sum to zero"),
            Self::BadEntry { offset, kind, len } => {
                write!(f, "bad entry type {kind} length {len} at offset {offset}")
            }
        }
    }
}

/// One startable CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cpu {
    /// Local APIC ID (8-bit in type 0 entries, 32-bit in type 9 entries).
    pub apic_id: u32,
    /// ACPI processor UID (the processor ID byte of type 0, the UID of type 9).
    pub acpi_uid: u32,
}

/// The CPUs a MADT lists, in table order, with counts of what was left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuList {
    cpus: [Cpu; MAX_CPUS],
    len: usize,
    /// Physical address of the local APIC registers (type 5 override applied).
    pub lapic_addr: u64,
    /// Enabled CPUs beyond [`MAX_CPUS`].
    pub dropped: usize,
    /// Entries that repeat an APIC ID already listed.
    pub duplicates: usize,
    /// Online-capable (hot-pluggable, not enabled) entries: not started.
    pub online_capable: usize,
    /// Entries with neither flag, or a broadcast ID: unusable.
    pub unusable: usize,
}

impl CpuList {
    /// An empty list with the architectural default APIC address.
    pub const fn new() -> Self {
        Self {
            cpus: [Cpu {
                apic_id: 0,
                acpi_uid: 0,
            }; MAX_CPUS],
            len: 0,
            lapic_addr: 0xfee0_0000,
            dropped: 0,
            duplicates: 0,
            online_capable: 0,
            unusable: 0,
        }
    }

    /// The listed CPUs.
    pub fn cpus(&self) -> &[Cpu] {
        self.cpus.get(..self.len).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `cpu` unless its ID is listed already (counted as a duplicate) or the list is full.
    pub fn push(&mut self, cpu: Cpu) {
        if self.cpus().iter().any(|c| c.apic_id == cpu.apic_id) {
            self.duplicates += 1;
        } else if let Some(slot) = self.cpus.get_mut(self.len) {
            *slot = cpu;
            self.len += 1;
        } else {
            self.dropped += 1;
        }
    }

    /// The boot order: the CPU with `bsp_apic_id` first (added if the table lacks it, which
    /// would be a firmware bug), then the others in table order, at most `max` in all (at least 1).
    pub fn boot_order(&self, bsp_apic_id: u32, max: usize) -> CpuList {
        let mut out = CpuList {
            cpus: [Cpu::default(); MAX_CPUS],
            len: 0,
            ..*self
        };
        let bsp = self.cpus().iter().find(|c| c.apic_id == bsp_apic_id);
        out.push(bsp.copied().unwrap_or(Cpu {
            apic_id: bsp_apic_id,
            acpi_uid: u32::MAX,
        }));
        for &c in self.cpus().iter().filter(|c| c.apic_id != bsp_apic_id) {
            if out.len >= max.max(1) {
                out.dropped += 1;
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl Default for CpuList {
    fn default() -> Self {
        Self::new()
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(u32_at(b, at)?) | u64::from(u32_at(b, at.checked_add(4)?)?) << 32)
}

const FLAG_ENABLED: u32 = 1 << 0;
const FLAG_ONLINE_CAPABLE: u32 = 1 << 1;

/// Parses a whole MADT (header included, as found in memory) into the CPUs to start.
pub fn cpus_from_madt(madt: &[u8]) -> Result<CpuList, MadtError> {
    if madt.len() < MADT_HEADER_LEN {
        return Err(MadtError::TooShort);
    }
    if madt.get(..4) != Some(b"APIC".as_slice()) {
        return Err(MadtError::BadSignature);
    }
    let header = u32_at(madt, 4).ok_or(MadtError::TooShort)?;
    let len = usize::try_from(header).unwrap_or(usize::MAX);
    let table = madt
        .get(..len)
        .filter(|_| len >= MADT_HEADER_LEN)
        .ok_or(MadtError::BadLength {
            header,
            available: madt.len(),
        })?;
    if table.iter().fold(0u8, |s, &b| s.wrapping_add(b)) != 0 {
        return Err(MadtError::BadChecksum);
    }
    let mut list = CpuList::new();
    list.lapic_addr = u32_at(table, 36).map_or(list.lapic_addr, u64::from);
    let mut off = MADT_HEADER_LEN;
    while off < table.len() {
        let kind = table.get(off).copied().unwrap_or(0);
        let elen = table.get(off + 1).copied().unwrap_or(0);
        let bad = MadtError::BadEntry {
            offset: off,
            kind,
            len: elen,
        };
        let entry = table
            .get(off..off + usize::from(elen))
            .filter(|_| elen >= 2)
            .ok_or(bad)?;
        // (apic id, uid, flags, broadcast id) of a processor entry.
        let proc = match kind {
            0 if elen == 8 => Some((
                u32::from(entry[3]),
                u32::from(entry[2]),
                u32_at(entry, 4),
                0xff,
            )),
            9 if elen == 16 => Some((
                u32_at(entry, 4).unwrap_or(0),
                u32_at(entry, 12).unwrap_or(0),
                u32_at(entry, 8),
                u32::MAX,
            )),
            0 | 9 => return Err(bad),
            5 if elen == 12 => {
                list.lapic_addr = u64_at(entry, 4).ok_or(bad)?;
                None
            }
            5 => return Err(bad),
            _ => None,
        };
        if let Some((apic_id, acpi_uid, flags, broadcast)) = proc {
            let flags = flags.ok_or(bad)?;
            if apic_id == broadcast {
                list.unusable += 1;
            } else if flags & FLAG_ENABLED != 0 {
                list.push(Cpu { apic_id, acpi_uid });
            } else if flags & FLAG_ONLINE_CAPABLE != 0 {
                list.online_capable += 1;
            } else {
                list.unusable += 1;
            }
        }
        off += usize::from(elen);
    }
    Ok(list)
}

#[cfg(test)]
#[path = "madt_tests.rs"]
mod tests;
