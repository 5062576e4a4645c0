//! The hypervisor and boot-module command lines, Xen style.
//!
//! Owns the token grammar (ASCII-whitespace separated `key=value`, bare `key` = true, `no-key` =
//! false, Xen's boolean spellings), Xen's number and size syntax, the hypervisor [`Options`] and
//! the per-module [`ModuleCmdline`].
//!
//! Invariants: parsing never fails and never panics. An unknown option or a bad value becomes a
//! [`Warning`] (the first [`MAX_WARNINGS`] are kept, the rest counted) and leaves the previous
//! value in place; when an option repeats, the last good value wins, as in Xen. Nothing allocates:
//! strings are borrowed from the input or copied into fixed buffers.
//!
//! Like Xen: keys and values are case-sensitive (size suffixes aside), and a size without a suffix
//! counts KiB (`dom0_mem=524288` is 512 MiB; `B` means bytes). Unlike Xen: no quoting, numbers are
//! decimal or `0x` hex only (no octal, no sign), and `dom0_mem` / `dom0_max_vcpus` take a single
//! value (Xen's `min:`/`max:` and range forms are reported as bad values).

use core::fmt;
use core::str::SplitAsciiWhitespace;

/// Warnings kept per parse; further ones are only counted ([`Warnings::dropped`]).
pub const MAX_WARNINGS: usize = 16;
/// Longest accepted `argon.test=` / `argon.bench=` value, in bytes.
pub const MAX_TEST_NAME: usize = 32;

/// The whitespace-separated tokens of `s`.
pub fn tokens(s: &str) -> SplitAsciiWhitespace<'_> {
    s.split_ascii_whitespace()
}

/// Splits a boot loader command line into its first token (the image path) and the rest.
pub fn split_path(cmdline: &str) -> (&str, &str) {
    let s = cmdline.trim_start_matches(|c: char| c.is_ascii_whitespace());
    match s.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    }
}

/// Splits a token at its first `=`: a bare `key` has no value, `key=` an empty one.
pub fn split_option(token: &str) -> (&str, Option<&str>) {
    token
        .split_once('=')
        .map_or((token, None), |(k, v)| (k, Some(v)))
}

/// Xen's boolean spellings.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "yes" | "on" | "true" | "enable" | "1" => Some(true),
        "no" | "off" | "false" | "disable" | "0" => Some(false),
        _ => None,
    }
}

/// Why a number or size did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueError {
    Empty,
    InvalidDigit,
    Overflow,
    BadSuffix,
}

/// Leading decimal or `0x` hex digits of `s` and what follows them.
fn leading_number(s: &str) -> Result<(u64, &str), ValueError> {
    if s.is_empty() {
        return Err(ValueError::Empty);
    }
    let (radix, body) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(body) => (16, body),
        None => (10, s),
    };
    let mut value: u64 = 0;
    let mut digits = 0;
    for c in body.chars() {
        let Some(d) = c.to_digit(radix) else { break };
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(ValueError::Overflow)?;
        digits += 1;
    }
    if digits == 0 {
        return Err(ValueError::InvalidDigit);
    }
    // Every digit is ASCII, so `digits` is a byte offset on a char boundary.
    Ok((value, body.get(digits..).unwrap_or("")))
}

/// A plain unsigned number: decimal or `0x` hex.
pub fn parse_number(s: &str) -> Result<u64, ValueError> {
    match leading_number(s)? {
        (v, "") => Ok(v),
        _ => Err(ValueError::InvalidDigit),
    }
}

/// A Xen size in bytes: a number with an optional suffix `B` (bytes), `K`, `M`, `G` or `T`
/// (binary units, any case); no suffix means KiB, as in Xen. In hex, `b` is a digit.
pub fn parse_size(s: &str) -> Result<u64, ValueError> {
    let (v, suffix) = leading_number(s)?;
    let shift = match suffix {
        "b" | "B" => 0,
        "" | "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        _ => return Err(ValueError::BadSuffix),
    };
    v.checked_mul(1 << shift).ok_or(ValueError::Overflow)
}

/// New value of an optional count (at least 1, fits `u32`: CPUs, vCPUs); `None` when bad.
pub(crate) fn count(v: Option<&str>) -> Option<Option<u32>> {
    let n = parse_number(v?).ok().and_then(|n| u32::try_from(n).ok());
    n.filter(|&n| n > 0).map(Some)
}

/// New value of an optional size; `None` when bad.
pub(crate) fn size(v: Option<&str>) -> Option<Option<u64>> {
    parse_size(v?).ok().map(Some)
}

/// Xen's `loglvl=` levels, least to most verbose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    None,
    Error,
    Warning,
    Info,
    Debug,
    All,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "error" => Self::Error,
            "warning" => Self::Warning,
            "info" => Self::Info,
            "debug" => Self::Debug,
            "all" => Self::All,
            _ => return None,
        })
    }

    /// `level` or Xen's `level/rate-limited-level`; both must be valid, the first is used.
    fn parse_xen(s: &str) -> Option<Self> {
        match s.split_once('/') {
            Some((level, limited)) => Self::parse(limited).and(Self::parse(level)),
            None => Self::parse(s),
        }
    }
}

/// The console; only the first serial port exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    Com1,
}

/// `apic=`: force a local APIC mode, or take x2APIC when CPUID offers it (`Auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicMode {
    Auto,
    X2apic,
    Xapic,
}

/// The `argon.test=` self-test (or `argon.bench=` measurement) name, copied out of the command
/// line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestName {
    buf: [u8; MAX_TEST_NAME],
    len: usize,
}

impl TestName {
    /// `None` when `name` is empty or longer than [`MAX_TEST_NAME`] bytes.
    pub fn new(name: &str) -> Option<Self> {
        let (mut buf, len) = ([0; MAX_TEST_NAME], name.len());
        buf.get_mut(..len)
            .filter(|_| len > 0)?
            .copy_from_slice(name.as_bytes());
        Some(Self { buf, len })
    }

    pub fn as_str(&self) -> &str {
        // Copied whole from a `&str`, so always UTF-8.
        let bytes = self.buf.get(..self.len).unwrap_or_default();
        core::str::from_utf8(bytes).unwrap_or_default()
    }
}

/// The hypervisor's options; [`Options::DEFAULT`] holds the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// `console=` (default `com1`).
    pub console: Console,
    /// `loglvl=` (default `info`).
    pub loglvl: LogLevel,
    /// `dom0_max_vcpus=`; `None`: the module's `vcpus=`, else 1.
    pub dom0_max_vcpus: Option<u32>,
    /// `dom0_mem=` in bytes; `None`: the module's `mem=` or the builder's default.
    pub dom0_mem: Option<u64>,
    /// `smp=` or `maxcpus=`: at most this many CPUs, the BSP included.
    pub max_cpus: Option<u32>,
    /// `argon.test=`: the self-test to run.
    pub test: Option<TestName>,
    /// `argon.bench=`: a hypervisor-side measurement printed once at boot (`ipi`).
    pub bench: Option<TestName>,
    /// `apic=x2apic|xapic|auto` (default auto).
    pub apic: ApicMode,
    /// `nodelay`: skip the 10 ms INIT delay when starting APs (default false).
    pub nodelay: bool,
    /// `linear-pt` / `pv-linear-pt`: allow PV linear page tables (default true).
    pub linear_pt: bool,
}

impl Options {
    pub const DEFAULT: Self = Self {
        console: Console::Com1,
        loglvl: LogLevel::Info,
        dom0_max_vcpus: None,
        dom0_mem: None,
        max_cpus: None,
        test: None,
        bench: None,
        apic: ApicMode::Auto,
        nodelay: false,
        linear_pt: true,
    };
}

/// Something the caller should log; parsing went on without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warning<'a> {
    /// An option no one knows; ignored.
    Unknown { key: &'a str },
    /// A value that does not parse (empty when missing); the option keeps its previous value.
    BadValue { key: &'a str, value: &'a str },
    /// A well-formed value Argon does not implement; ignored.
    Unsupported { key: &'a str, value: &'a str },
}

impl fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unknown { key } => write!(f, "unknown option '{key}'"),
            Self::BadValue { key, value: "" } => write!(f, "missing value for option '{key}'"),
            Self::BadValue { key, value } => write!(f, "bad value '{value}' for option '{key}'"),
            Self::Unsupported { key, value } => {
                write!(f, "unsupported value '{value}' for option '{key}'")
            }
        }
    }
}

/// The warnings of one parse, in command-line order: the first [`MAX_WARNINGS`], then a count.
#[derive(Clone, Copy, Debug, Default)]
pub struct Warnings<'a> {
    list: [Option<Warning<'a>>; MAX_WARNINGS],
    len: usize,
    dropped: usize,
}

impl<'a> Warnings<'a> {
    pub const fn new() -> Self {
        Self {
            list: [None; MAX_WARNINGS],
            len: 0,
            dropped: 0,
        }
    }

    fn push(&mut self, w: Warning<'a>) {
        match self.list.get_mut(self.len) {
            Some(slot) => (*slot, self.len) = (Some(w), self.len + 1),
            None => self.dropped = self.dropped.saturating_add(1),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Warning<'a>> {
        self.list.iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Warnings that did not fit.
    pub fn dropped(&self) -> usize {
        self.dropped
    }
}

/// Stores `value` in `slot`, or warns with `bad` and leaves `slot` alone.
pub(crate) fn set<'a, T>(slot: &mut T, value: Option<T>, bad: Warning<'a>, w: &mut Warnings<'a>) {
    match value {
        Some(v) => *slot = v,
        None => w.push(bad),
    }
}

/// Parses the multiboot command line of the hypervisor: the first token (its path) is skipped.
pub fn parse(cmdline: &str) -> (Options, Warnings<'_>) {
    parse_args(split_path(cmdline).1)
}

/// Parses option tokens only (no leading path).
pub fn parse_args(args: &str) -> (Options, Warnings<'_>) {
    let (mut o, mut w) = (Options::DEFAULT, Warnings::new());
    for token in tokens(args) {
        apply(&mut o, token, &mut w);
    }
    (o, w)
}

fn apply<'a>(o: &mut Options, token: &'a str, w: &mut Warnings<'a>) {
    let (key, v) = split_option(token);
    let value = v.unwrap_or("");
    let bad = Warning::BadValue { key, value };
    match key {
        "console" if value.is_empty() => w.push(bad),
        "console" if value.split(',').any(|c| c != "com1") => {
            w.push(Warning::Unsupported { key, value })
        }
        "console" => {}
        "loglvl" => set(&mut o.loglvl, v.and_then(LogLevel::parse_xen), bad, w),
        "dom0_max_vcpus" => set(&mut o.dom0_max_vcpus, count(v), bad, w),
        "dom0_mem" => set(&mut o.dom0_mem, size(v), bad, w),
        "smp" | "maxcpus" => set(&mut o.max_cpus, count(v), bad, w),
        "argon.test" => set(&mut o.test, v.and_then(TestName::new).map(Some), bad, w),
        "argon.bench" => set(&mut o.bench, v.and_then(TestName::new).map(Some), bad, w),
        "apic" => {
            let mode = match value {
                "auto" => Some(ApicMode::Auto),
                "x2apic" => Some(ApicMode::X2apic),
                "xapic" => Some(ApicMode::Xapic),
                _ => None,
            };
            set(&mut o.apic, mode, bad, w);
        }
        _ => {
            let (name, negated) = key.strip_prefix("no-").map_or((key, false), |n| (n, true));
            let slot = match name {
                "nodelay" => &mut o.nodelay,
                "linear-pt" | "pv-linear-pt" => &mut o.linear_pt,
                _ => return w.push(Warning::Unknown { key }),
            };
            // `no-key=value` is rejected, as in Xen.
            let b = match v {
                None => Some(!negated),
                Some(s) if !negated => parse_bool(s),
                Some(_) => None,
            };
            set(slot, b, bad, w);
        }
    }
}

#[path = "cmdline_module.rs"]
mod module;
pub use module::{GuestArgs, GuestArgsTooLong, ModuleCmdline, parse_module};

#[cfg(test)]
#[path = "cmdline_tests.rs"]
mod tests;
