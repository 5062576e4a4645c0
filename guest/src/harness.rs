//! A minimal test framework: named tests, one verdict line each, a summary, then shutdown.
//!
//! Output contract (parsed by `xtask`, identical on Argon and on Xen):
//!
//! ```text
//! guest: suite <name> (<n> tests)
//! guest: PASS <test>
//! guest: FAIL <test>: <why>
//! guest: info audit: 0 discrepancies      (Argon: the count its audit hypercall returned)
//! guest: PASS audit
//! guest: <n> passed, <m> failed
//! guest: done
//! ```
//!
//! After every suite the kernel asks Argon's audit hypercall (63) how many frame-table
//! discrepancies there are and reports the count as the verdict `audit` (`FAIL audit: N
//! discrepancies`); where the hypercall does not exist (Xen: `-ENOSYS`) or is refused (an
//! unprivileged domain: `-EPERM`) it says so on an `info` line and gives no verdict. On Argon
//! the initial domain first waits for the other domains to end (`outlive_peers`).
//!
//! After `done` the kernel shuts the domain down: `SHUTDOWN_poweroff` when every test passed,
//! `SHUTDOWN_crash` otherwise. A test that faults never returns, so a missing `done` line is a
//! failure too.

use core::fmt::{self, Write};

use crate::console::println;
use crate::env::Env;
use crate::hypercall;

/// One test: a name and a function that says why it failed.
pub struct Test {
    pub name: &'static str,
    pub run: fn(&Env) -> Outcome,
}

/// A test's result.
pub type Outcome = Result<(), Fail>;

/// Room for a reason; keeps `Fail` under clippy's large-error threshold (128 bytes).
const FAIL_BYTES: usize = 120;

/// Why a test failed: a short message, truncated to fit a fixed buffer (no allocator here).
pub struct Fail {
    buf: [u8; FAIL_BYTES],
    len: u8,
}

impl Fail {
    pub fn new(args: fmt::Arguments<'_>) -> Fail {
        let mut f = Fail {
            buf: [0; FAIL_BYTES],
            len: 0,
        };
        let _ = f.write_fmt(args);
        f
    }

    pub fn as_str(&self) -> &str {
        // Only whole `str`s are copied in, cut at a char boundary, so this cannot fail.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("<bad utf-8>")
    }
}

impl Write for Fail {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let len = usize::from(self.len);
        let mut take = s.len().min(FAIL_BYTES - len);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[len..len + take].copy_from_slice(&s.as_bytes()[..take]);
        // FAIL_BYTES < 256, so the sum fits.
        self.len = (len + take) as u8;
        Ok(())
    }
}

/// Fails the test with a formatted message.
macro_rules! fail {
    ($($arg:tt)+) => {
        return Err($crate::harness::Fail::new(format_args!($($arg)+)))
    };
}
pub(crate) use fail;

/// Fails the test with a formatted message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::harness::Fail::new(format_args!($($arg)+)));
        }
    };
}
pub(crate) use ensure;

/// Fails the test unless `got == want`, naming both.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($arg:tt)+) => {{
        let (got, want) = (&$got, &$want);
        if got != want {
            return Err($crate::harness::Fail::new(format_args!(
                "{}: got {:?}, want {:?}",
                format_args!($($arg)+),
                got,
                want
            )));
        }
    }};
}
pub(crate) use ensure_eq;

/// Runs every test of a suite (given in parts, run in order), prints the verdicts and the
/// summary, and shuts the domain down.
pub fn run_suite(name: &str, parts: &[&[Test]], env: &Env) -> ! {
    let count: usize = parts.iter().map(|p| p.len()).sum();
    println!("guest: suite {name} ({count} tests)");
    let mut passed = 0u32;
    let mut failed = 0u32;
    for t in parts.iter().flat_map(|p| p.iter()) {
        match (t.run)(env) {
            Ok(()) => {
                passed += 1;
                println!("guest: PASS {}", t.name);
            }
            Err(why) => {
                failed += 1;
                println!("guest: FAIL {}: {}", t.name, why.as_str());
            }
        }
    }
    if env.si.flags & abi::start_info::SIF_INITDOMAIN != 0 && hypercall::is_argon() {
        outlive_peers(env);
    }
    let audit = hypercall::argon_audit();
    if audit >= 0 {
        println!("guest: info audit: {audit} discrepancies");
    }
    match audit {
        0 => {
            passed += 1;
            println!("guest: PASS audit");
        }
        n if n > 0 => {
            failed += 1;
            println!("guest: FAIL audit: {n} discrepancies");
        }
        rc => println!("guest: info audit unavailable ({rc})"),
    }
    finish(passed, failed)
}

/// On Argon, the initial domain waits (blocking) until the other domains have ended, so that
/// their isolation tests meet it alive and its audit then judges the whole machine. Other
/// domains' frames show in the read-only M2P until they are destroyed (`Env::foreign_frames`).
fn outlive_peers(env: &Env) {
    /// About a minute of 0.5 ms naps: a peer that runs longer is not waited for.
    const MAX_NAPS: u32 = 120_000;
    let peers = |env: &Env| env.foreign_frames(&mut []).1;
    if peers(env) == 0 {
        return;
    }
    println!("guest: info waiting for the other domains to end");
    for _ in 0..MAX_NAPS {
        if peers(env) == 0 {
            println!("guest: info the other domains ended");
            return;
        }
        hypercall::sched_block();
    }
    println!("guest: info other domains still run; not waiting any longer");
}

/// Prints the summary and `done`, then powers off (all passed) or crashes the domain.
pub fn finish(passed: u32, failed: u32) -> ! {
    println!("guest: {passed} passed, {failed} failed");
    println!("guest: done");
    let reason = if failed == 0 && passed > 0 {
        abi::sched::SHUTDOWN_POWEROFF
    } else {
        abi::sched::SHUTDOWN_CRASH
    };
    let rc = hypercall::shutdown(reason);
    println!("guest: shutdown returned {rc}");
    loop {
        core::hint::spin_loop();
    }
}
