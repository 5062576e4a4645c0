//! Console output through `console_io(CONSOLEIO_write)`, one hypercall per line.
//!
//! [`Line`] collects formatted text in a stack buffer and writes it when it sees a newline or
//! fills up, so each `println!` normally reaches the hypervisor console as one write and lines of
//! different origins do not interleave mid-line. Under Xen, dom0's writes go straight to Xen's
//! serial console.

use core::fmt;

use crate::hypercall;

const LINE_BYTES: usize = 256;

/// A line buffer that flushes to the hypervisor console.
pub struct Line {
    buf: [u8; LINE_BYTES],
    len: usize,
}

impl Line {
    pub const fn new() -> Line {
        Line {
            buf: [0; LINE_BYTES],
            len: 0,
        }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            hypercall::console_write(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == LINE_BYTES {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Prints one line (a newline is appended) on the hypervisor console.
macro_rules! println {
    ($($arg:tt)*) => {{
        let mut line = $crate::console::Line::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!("{}\n", format_args!($($arg)*)));
    }};
}
pub(crate) use println;
