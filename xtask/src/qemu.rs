//! Booting an image under QEMU and judging the run.
//!
//! Every run has a timeout. A run passes only when QEMU exits with the isa-debug-exit success
//! status (33) *and* the serial log holds the expected final marker; status 0 (a triple fault
//! under `-no-reboot`), a kill on timeout or any other status is a failure.
//!
//! A run can also end on a serial marker (`Boot::stop_on`), for images that cannot write
//! isa-debug-exit (Xen): QEMU is stopped a moment after the marker's line and the caller judges
//! the serial log. QEMU runs under `timeout`, which forwards SIGTERM, so stopping sends SIGTERM to
//! `timeout` first and SIGKILL only if that does not end it.

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
    /// Firmware for `-bios`; `None` is QEMU's default (SeaBIOS). Default qboot.
    pub bios: Option<PathBuf>,
    /// Serial markers that end the run: after a line containing one (and `STOP_GRACE` more
    /// output), QEMU is stopped. Empty: run until QEMU exits or the timeout.
    pub stop_on: Vec<String>,
}

/// The default firmware: boots multiboot kernels in a tenth of SeaBIOS's time.
pub const QBOOT: &str = "/usr/share/qemu/qboot.rom";

/// How long output is still collected after a `stop_on` marker.
const STOP_GRACE: Duration = Duration::from_secs(1);

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
            bios: Some(PathBuf::from(QBOOT)),
            stop_on: Vec::new(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("timeout");
        // `timeout` is the outer guard; the reader below enforces the deadline as well.
        c.arg("--kill-after=5")
            .arg(format!("{}", self.timeout.as_secs() + 5));
        c.arg("qemu-system-x86_64");
        match self.accel {
            Accel::Tcg => c.args(["-accel", "tcg"]).args(["-cpu", &self.cpu]),
            Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host"]),
        };
        c.args([
            "-smp",
            &self.smp.to_string(),
            "-m",
            &format!("{}M", self.memory_mb),
        ]);
        c.args([
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
        ]);
        c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        if let Some(bios) = &self.bios {
            c.arg("-bios").arg(bios);
        }
        c.arg("-kernel").arg(&self.kernel);
        c.args(["-append", &self.cmdline]);
        if !self.modules.is_empty() {
            let list: Vec<String> = self
                .modules
                .iter()
                .map(|(p, args)| {
                    let p = p.display().to_string();
                    let s = if args.is_empty() {
                        p
                    } else {
                        format!("{p} {args}")
                    };
                    // QEMU splits the -initrd list on commas; a doubled comma is a literal one.
                    s.replace(',', ",,")
                })
                .collect();
            c.arg("-initrd").arg(list.join(","));
        }
        if self.gdb {
            c.args(["-s", "-S"]);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
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
    /// Time since QEMU's start at which each serial line arrived (one entry per line).
    pub line_times: Vec<Duration>,
    /// The `stop_on` marker that ended the run, if one did.
    pub stopped_on: Option<String>,
}

impl Outcome {
    /// Why a run that expected `want_status` and `marker` did not pass, or `None` if it passed.
    pub fn verdict(&self, want_status: i32, marker: &str) -> Option<String> {
        if self.timed_out {
            return Some(format!(
                "timed out after {:.1}s",
                self.elapsed.as_secs_f64()
            ));
        }
        match self.status {
            Some(s) if s == want_status => {}
            Some(0) => return Some("QEMU exited 0: triple fault or reset (never a pass)".into()),
            Some(s) => return Some(format!("exit status {s}, expected {want_status}")),
            None => return Some("QEMU was killed by a signal".into()),
        }
        if !self.serial.contains(marker) {
            return Some(format!(
                "final marker {marker:?} missing from the serial log"
            ));
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
            let _ = tx.send(
                String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string(),
            );
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(format!("[qemu] {line}"));
        }
    });
    let mut deadline = start + boot.timeout;
    let mut serial = String::new();
    let mut line_times = Vec::new();
    let mut stopped_on: Option<String> = None;
    let mut timed_out = false;
    let mut killed = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            timed_out = stopped_on.is_none();
            killed = true;
            stop(&mut child);
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
                if stopped_on.is_none()
                    && let Some(m) = boot.stop_on.iter().find(|m| line.contains(m.as_str()))
                {
                    stopped_on = Some(m.clone());
                    deadline = deadline.min(Instant::now() + STOP_GRACE);
                }
                serial.push_str(&line);
                serial.push('\n');
                line_times.push(start.elapsed());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait()?;
    let status = if killed { None } else { status.code() };
    // `timeout` itself reports 124 (and 137 after --kill-after) when it had to stop QEMU.
    let timed_out = timed_out || matches!(status, Some(124) | Some(137));
    Ok(Outcome {
        status,
        timed_out,
        serial,
        elapsed: start.elapsed(),
        line_times,
        stopped_on,
    })
}

/// Ends the run: SIGTERM to `timeout`, which passes it on to QEMU; SIGKILL if both are not gone
/// within a few seconds. (SIGKILL alone would kill only `timeout` and orphan QEMU.)
fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let give_up = Instant::now() + Duration::from_secs(5);
    while Instant::now() < give_up {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
}
