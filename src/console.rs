//! The hypervisor console: COM1 with Xen-style log levels (`loglvl=`).
//!
//! Lines from different CPUs never interleave: a small spin lock serialises whole lines. The lock
//! is console-only and never taken on a hot path (nothing logs per hypercall or per IPI).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use boot::arch::serial::Com1;

/// Log levels, most severe first (Xen's `loglvl=` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 0,
    Warning = 1,
    Info = 2,
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static LOCK: AtomicBool = AtomicBool::new(false);

/// Sets up COM1. Call once, first thing.
pub fn init() {
    Com1::init();
}

/// Sets the most verbose level that is printed.
pub fn set_level(level: Level) {
    // Relaxed: a filter setting; no other memory depends on it.
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether messages of `level` are printed.
pub fn enabled(level: Level) -> bool {
    // Relaxed: see `set_level`.
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

struct Guard;

impl Guard {
    fn lock() -> Self {
        // Acquire: pairs with the Release in `drop`, so lines are written one after another.
        // Bounded: a CPU that died holding the lock must not silence the others forever.
        let mut spins = 0u32;
        while LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
            && spins < 10_000_000
        {
            spins += 1;
            core::hint::spin_loop();
        }
        Guard
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Release: pairs with the Acquire in `lock`.
        LOCK.store(false, Ordering::Release);
    }
}

/// Prints one log line at `level` with the `argon:` prefix.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let prefix = match level {
        Level::Error => "argon: error: ",
        Level::Warning => "argon: warning: ",
        Level::Info => "argon: ",
        Level::Debug => "argon: debug: ",
    };
    let _guard = Guard::lock();
    let mut com = Com1;
    let _ = com.write_str(prefix);
    let _ = com.write_fmt(args);
    let _ = com.write_str("\n");
}

/// Prints raw text with no prefix or level (register dumps, panics).
pub fn raw(args: fmt::Arguments<'_>) {
    let _guard = Guard::lock();
    let _ = Com1.write_fmt(args);
}

/// Logs at error level.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Error, format_args!($($arg)*)) };
}
/// Logs at warning level.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Warning, format_args!($($arg)*)) };
}
/// Logs at info level.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Info, format_args!($($arg)*)) };
}
/// Logs at debug level.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::console::log($crate::console::Level::Debug, format_args!($($arg)*)) };
}
