//! Symbolising addresses in Argon's serial output with the image's own ELF symbol table.
//!
//! The hypervisor prints `rip: 0x…` lines in register dumps and backtraces; the harness appends
//! `<function+offset>` so a crash report names the code that faulted. A small ELF64 symtab reader
//! and a demangler for Rust's legacy symbol scheme keep this free of external tools.

use std::path::Path;

pub struct Symbols {
    /// (start, size, name), sorted by start.
    funcs: Vec<(u64, u64, String)>,
}

fn u16le(b: &[u8], o: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as u64)
}
fn u32le(b: &[u8], o: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?) as u64)
}
fn u64le(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

impl Symbols {
    pub fn load(path: &Path) -> Option<Symbols> {
        Self::parse(&std::fs::read(path).ok()?)
    }

    /// Reads the function symbols of an ELF64 little-endian image.
    pub fn parse(b: &[u8]) -> Option<Symbols> {
        if b.get(0..4)? != b"\x7fELF" || *b.get(4)? != 2 {
            return None;
        }
        let shoff = u64le(b, 0x28)? as usize;
        let shentsize = u16le(b, 0x3a)? as usize;
        let shnum = u16le(b, 0x3c)? as usize;
        let sh = |i: usize| shoff + i * shentsize;
        let mut funcs = Vec::new();
        for i in 0..shnum {
            if u32le(b, sh(i) + 4)? != 2 {
                continue; // not SHT_SYMTAB
            }
            let off = u64le(b, sh(i) + 0x18)? as usize;
            let size = u64le(b, sh(i) + 0x20)? as usize;
            let strtab = sh(u32le(b, sh(i) + 0x28)? as usize);
            let str_off = u64le(b, strtab + 0x18)? as usize;
            for s in (off..off + size).step_by(24) {
                let info = *b.get(s + 4)?;
                if info & 0xf != 2 {
                    continue; // not STT_FUNC
                }
                let name_off = str_off + u32le(b, s)? as usize;
                let end = b.get(name_off..)?.iter().position(|&c| c == 0)? + name_off;
                let name = String::from_utf8_lossy(&b[name_off..end]).to_string();
                funcs.push((u64le(b, s + 8)?, u64le(b, s + 16)?, demangle(&name)));
            }
        }
        funcs.sort();
        Some(Symbols { funcs })
    }

    /// The function containing `addr`, as `name+0xoff`.
    pub fn lookup(&self, addr: u64) -> Option<String> {
        let i = self.funcs.partition_point(|f| f.0 <= addr).checked_sub(1)?;
        let (start, size, name) = &self.funcs[i];
        (addr < start + (*size).max(1)).then(|| format!("{name}+{:#x}", addr - start))
    }

    /// Appends `<symbol>` to a line that carries `rip: 0x…`.
    pub fn annotate(&self, line: &str) -> String {
        let Some(pos) = line.find("rip: 0x") else {
            return line.to_string();
        };
        let hex: String = line[pos + 7..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        match u64::from_str_radix(&hex, 16)
            .ok()
            .and_then(|a| self.lookup(a))
        {
            Some(sym) => format!("{line}  <{sym}>"),
            None => line.to_string(),
        }
    }
}

/// Demangles Rust's legacy scheme (`_ZN5argon4kmain17h0123456789abcdefE` → `argon::kmain`).
pub fn demangle(name: &str) -> String {
    let Some(mut rest) = name.strip_prefix("_ZN") else {
        return name.to_string();
    };
    let mut parts = Vec::new();
    while !rest.starts_with('E') {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let Ok(len) = rest[..digits].parse::<usize>() else {
            return name.to_string();
        };
        let Some(part) = rest.get(digits..digits + len) else {
            return name.to_string();
        };
        parts.push(part);
        rest = &rest[digits + len..];
    }
    if parts
        .last()
        .is_some_and(|p| p.len() == 17 && p.starts_with('h'))
    {
        parts.pop();
    }
    parts
        .join("::")
        .replace("$LT$", "<")
        .replace("$GT$", ">")
        .replace("$u20$", " ")
        .replace("$C$", ",")
        .replace("..", "::")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demangles_legacy_rust_symbols() {
        assert_eq!(
            demangle("_ZN5argon5kmain5kmain17h0123456789abcdefE"),
            "argon::kmain::kmain"
        );
        assert_eq!(demangle("trap_dispatch"), "trap_dispatch");
        assert_eq!(demangle("_ZN3foo99E"), "_ZN3foo99E");
    }

    #[test]
    fn looks_up_functions_by_range() {
        let s = Symbols {
            funcs: vec![(0x1000, 0x10, "a".into()), (0x2000, 0x20, "b".into())],
        };
        assert_eq!(s.lookup(0x1004).as_deref(), Some("a+0x4"));
        assert_eq!(s.lookup(0x1010), None);
        assert_eq!(s.lookup(0x201f).as_deref(), Some("b+0x1f"));
        assert_eq!(
            s.annotate("rip: 0x0000000000002001   cs"),
            "rip: 0x0000000000002001   cs  <b+0x1>"
        );
    }
}
