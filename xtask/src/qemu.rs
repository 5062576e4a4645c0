//! Booting an image under QEMU and judging the run.
//!
//! Every run has a timeout. A run passes only when QEMU exits with the isa-debug-exit success
//! status (33) *and* the serial log holds the expected final marker; status 0 (a triple fault
//! under `-no-reboot`), a kill on timeout or any other status is a failure.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::symbols::Symbols;

/// QEMU's exit status for Argon's `ExitCode::Success` (0x10 → (0x10 << 1) | 1).
pub const EXIT_SUCCESS: i32 = 33;
/// QEMU's exit status for Argon's `ExitCode::Failure` (0x11).
pub const EXIT_FAILURE: i32 = 35;

/// Which accelerator runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

/// One QEMU invocation.
#[derive(Debug, Clone)]
pub struct Boot {
    pub kernel: PathBuf,
    pub cmdline: String,
    /// Boot modules: (path, module command line after the path).
    pub modules: Vec<(PathBuf, String)>,
    pub smp: u32,
    pub memory_mb: u32,
    pub accel: Accel,
    /// `-cpu` model (default `max`); e.g. `max,-x2apic` for the xAPIC fallback.
    pub cpu: String,
    pub timeout: Duration,
    pub gdb: bool,
}

impl Boot {
    pub fn new(kernel: &Path) -> Self {
        Boot {
            kernel: kernel.to_path_buf(),
            cmdline: String::new(),
            modules: Vec::new(),
            smp: 1,
            memory_mb: 256,
            accel: Accel::Tcg,
            cpu: "max".into(),
            timeout: Duration::from_secs(60),
            gdb: false,
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("timeout");
        // `timeout` is the outer guard; the reader below enforces the deadline as well.
        c.arg("--kill-after=5").arg(format!("{}", self.timeout.as_secs() + 5));
        c.arg("qemu-system-x86_64");
        match self.accel {
            Accel::Tcg => c.args(["-accel", "tcg"]).args(["-cpu", &self.cpu]),
            Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host"]),
        };
        c.args(["-smp", &self.smp.to_string(), "-m", &format!("{}M", self.memory_mb)]);
        c.args(["-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"]);
        c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        c.args(["-bios", "/usr/share/qemu/qboot.rom"]);
        c.arg("-kernel").arg(&self.kernel);
        c.args(["-append", &self.cmdline]);
        if !self.modules.is_empty() {
            let list: Vec<String> = self
                .modules
                .iter()
                .map(|(p, args)| {
                    let p = p.display().to_string();
                    let s = if args.is_empty() { p } else { format!("{p} {args}") };
                    // QEMU splits the -initrd list on commas; a doubled comma is a literal one.
                    s.replace(',', ",,")
                })
                .collect();
            c.arg("-initrd").arg(list.join(","));
        }
        if self.gdb {
            c.args(["-s", "-S"]);
        }
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// Shell-style rendering of the command, for logs and the README.
    pub fn describe(&self) -> String {
        let c = self.command();
        let mut s = String::new();
        for a in c.get_args() {
            let a = a.to_string_lossy();
            if !s.is_empty() {
                s.push(' ');
            }
            if a.contains(' ') || a.is_empty() {
                s.push_str(&format!("'{a}'"));
            } else {
                s.push_str(&a);
            }
        }
        format!("timeout {s}")
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status; `None` when killed (timeout or signal).
    pub status: Option<i32>,
    pub timed_out: bool,
    pub serial: String,
    pub elapsed: Duration,
}

impl Outcome {
    /// Why a run that expected `want_status` and `marker` did not pass, or `None` if it passed.
    pub fn verdict(&self, want_status: i32, marker: &str) -> Option<String> {
        if self.timed_out {
            return Some(format!("timed out after {:.1}s", self.elapsed.as_secs_f64()));
        }
        match self.status {
            Some(s) if s == want_status => {}
            Some(0) => return Some("QEMU exited 0: triple fault or reset (never a pass)".into()),
            Some(s) => return Some(format!("exit status {s}, expected {want_status}")),
            None => return Some("QEMU was killed by a signal".into()),
        }
        if !self.serial.contains(marker) {
            return Some(format!("final marker {marker:?} missing from the serial log"));
        }
        None
    }
}

/// Boots and waits; `echo` streams the (symbolised) serial output to stdout as it arrives.
pub fn run(boot: &Boot, symbols: Option<&Symbols>, echo: bool) -> std::io::Result<Outcome> {
    let start = Instant::now();
    let mut child = boot.command().spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let _ = tx.send(String::from_utf8_lossy(&line).trim_end_matches('\r').to_string());
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(format!("[qemu] {line}"));
        }
    });
    let deadline = start + boot.timeout;
    let mut serial = String::new();
    let mut timed_out = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            let _ = child.kill();
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(line) => {
                let line = match symbols {
                    Some(s) => s.annotate(&line),
                    None => line,
                };
                if echo {
                    println!("{line}");
                    let _ = std::io::stdout().flush();
                }
                serial.push_str(&line);
                serial.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait()?;
    let status = if timed_out { None } else { status.code() };
    // `timeout` itself reports 124 (and 137 after --kill-after) when it had to stop QEMU.
    let timed_out = timed_out || matches!(status, Some(124) | Some(137));
    Ok(Outcome { status, timed_out, serial, elapsed: start.elapsed() })
}
